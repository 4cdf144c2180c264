"""Retroalimentación en HTML, en español y sin el código de las pruebas ocultas.

La genera ``nbgrader generate_feedback`` con:

- una plantilla traducida al español de la de nbgrader (:func:`write_template`);
- :class:`HideTestTracebacks`: en las celdas de pruebas, cada error se reduce a su tipo y su
  mensaje. La traza completa de IPython incluye las líneas de código que fallaron, y esas líneas
  pueden ser de las pruebas ocultas (con los datos que usan); el mensaje de ``helpers.check_*``
  dice qué falla sin revelar la respuesta;
- ``ClearHiddenTests`` de nbgrader, que quita las pruebas ocultas del código de las celdas.

:func:`add_summary` añade arriba el estado de la entrega y las observaciones del calificador.
"""

from __future__ import annotations

import html
import json
from pathlib import Path

from nbformat.notebooknode import from_dict
from nbgrader import utils as nbutils
from nbgrader.preprocessors import NbGraderPreprocessor

TEMPLATE_NAME = "retroalimentacion_es"

# Traducción de la plantilla de nbgrader 0.9 (cada texto debe aparecer en ella).
_TRANSLATIONS = [
    ("<html>", '<html lang="es">'),
    ("(Score: ", "(Puntuación: "),
    ('">Test cell</a>', '">Celda de pruebas</a>'),
    ('">Coding free-response</a>', '">Respuesta de código libre</a>'),
    ('">Written response</a>', '">Respuesta escrita</a>'),
    ('">Task</a>', '">Tarea</a>'),
    ('">Comment</a>', '">Comentario</a>'),
    ("Late submission penalty", "Penalización por entrega tardía"),
    ("      Score: {{", "      Puntuación: {{"),
    ("(Top)", "(Arriba)"),
    ("Student's answer", "Tu respuesta"),
    ("Student's task", "Tu tarea"),
    ("Grade cell: <code>", "Celda de pruebas: <code>"),
    ("Task: <code>", "Tarea: <code>"),
    ("<b>Comments:</b>", "<b>Comentarios:</b>"),
]


def nbgrader_template_dir() -> Path:
    import nbgrader

    return Path(nbgrader.__file__).parent / "server_extensions" / "formgrader" / "templates"


def write_template(base: Path) -> Path:
    """Escribe la plantilla en español en ``base/<TEMPLATE_NAME>/`` y devuelve ``base``."""
    source = (nbgrader_template_dir() / "feedback" / "index.html.j2").read_text(encoding="utf-8")
    for english, spanish in _TRANSLATIONS:
        if english not in source:
            raise RuntimeError(f"La plantilla de retroalimentación de nbgrader cambió: no encuentro {english!r}")
        source = source.replace(english, spanish)
    folder = Path(base) / TEMPLATE_NAME
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "index.html.j2").write_text(source, encoding="utf-8")
    (folder / "conf.json").write_text(
        json.dumps({"base_template": "classic", "mimetypes": {"text/html": True}}), encoding="utf-8"
    )
    return Path(base)


def nbgrader_config(template_base: Path) -> str:
    """Líneas de ``nbgrader_config.py`` para generar esta retroalimentación."""
    return "\n".join(
        [
            "c.GenerateFeedback.preprocessors = [",
            "    'nbgrader.preprocessors.GetGrades',",
            "    'nbconvert.preprocessors.CSSHTMLHeaderPreprocessor',",
            "    'helpers.classroom.feedback.HideTestTracebacks',",
            "    'nbgrader.preprocessors.ClearHiddenTests',",
            "]",
            f"c.HTMLExporter.template_name = {TEMPLATE_NAME!r}",
            # Sin <script> ni HTML activo del alumnado en la página que abre el profesorado.
            "c.HTMLExporter.sanitize_html = True",
            f"c.HTMLExporter.extra_template_basedirs = [{str(template_base)!r}, {str(nbgrader_template_dir())!r}]",
        ]
    )


HIDDEN_PLACEHOLDER = "[prueba oculta]"


def hidden_lines(nb) -> list[str]:
    """Líneas (con contenido) de las pruebas ocultas de un cuaderno calificado."""
    lines = []
    for cell in nb.cells:
        if cell.cell_type != "code" or not nbutils.is_grade(cell):
            continue
        inside = False
        for line in cell.source.split("\n"):
            if "BEGIN HIDDEN TESTS" in line:
                inside = True
            elif "END HIDDEN TESTS" in line:
                inside = False
            elif inside and len(line.strip()) >= 6:
                lines.append(line.strip())
    return sorted(set(lines), key=len, reverse=True)


def _scrub(value, secrets: list[str]):
    if isinstance(value, str):
        for secret in secrets:
            value = value.replace(secret, HIDDEN_PLACEHOLDER)
        return value
    if isinstance(value, list):
        return [_scrub(v, secrets) for v in value]
    if isinstance(value, dict):
        return from_dict({k: _scrub(v, secrets) for k, v in value.items()})
    return value


class HideTestTracebacks(NbGraderPreprocessor):
    """Protege las pruebas ocultas en la retroalimentación.

    - En las celdas de pruebas, cada error queda en ``Tipo: mensaje`` (la traza mostraría el código).
    - En todas las salidas se tapan las líneas de las pruebas ocultas: el código del alumnado se
      ejecuta después de ellas y podría imprimirlas (p. ej. con el historial ``In`` de IPython).
    """

    def preprocess(self, nb, resources):
        self._secrets = hidden_lines(nb)
        return super().preprocess(nb, resources)

    def preprocess_cell(self, cell, resources, cell_index):
        if cell.cell_type != "code":
            return cell, resources
        if nbutils.is_grade(cell) and not nbutils.is_solution(cell):
            for output in cell.get("outputs", []):
                if output.get("output_type") == "error":
                    output["traceback"] = [f"{output.get('ename', 'Error')}: {output.get('evalue', '')}"]
        secrets = getattr(self, "_secrets", [])
        if secrets:
            for output in cell.get("outputs", []):
                for key in ("text", "evalue", "traceback", "data"):
                    if key in output:
                        output[key] = _scrub(output[key], secrets)
        return cell, resources


def add_summary(page: str, *, student: str, notebook: str, status: str, score, max_score, notes: list[str]) -> str:
    """Inserta al principio del HTML un resumen en español: estado, nota y observaciones."""
    score_text = "—" if score is None else f"{score:g} / {max_score:g}"
    items = "".join(f"<li>{html.escape(n)}</li>" for n in notes)
    block = (
        '<div class="container"><div class="alert alert-info" style="margin-top:1em">'
        f"<h3>Retroalimentación de {html.escape(notebook)}</h3>"
        f"<p><b>Alumno/a:</b> {html.escape(student)} · <b>Estado:</b> {html.escape(status)} · "
        f"<b>Puntuación:</b> {html.escape(score_text)}</p>"
        + (f"<p><b>Observaciones del calificador:</b></p><ul>{items}</ul>" if notes else "")
        + "<p>En las celdas de pruebas solo se muestra el mensaje de cada error; las pruebas ocultas no se "
        "muestran.</p></div></div>"
    )
    marker = '<a name="top"></a>'
    if marker in page:
        return page.replace(marker, marker + block, 1)
    return page.replace("<body>", "<body>" + block, 1)


def standalone_page(*, student: str, notebook: str, status: str, max_score, notes: list[str]) -> str:
    """Página de retroalimentación para una entrega que no se pudo calificar."""
    body = add_summary(
        "<body>", student=student, notebook=notebook, status=status, score=None, max_score=max_score, notes=notes
    )
    return (
        f'<!DOCTYPE html>\n<html lang="es"><head><meta charset="utf-8"><title>{html.escape(notebook)}</title>'
        f"</head>{body}</body></html>\n"
    )
