"""Entregas con los fallos de ``grading-faults.md``, hechas desde el cuaderno publicado y la solución.

Cada caso devuelve los bytes del archivo que «sube» el alumno/a y lo que se espera del calificador
(estado, nota y observaciones). Nada depende del contenido concreto del cuaderno: se usan sus celdas
de solución y de pruebas, así que los casos siguen valiendo cuando el cuaderno cambia.
"""

from __future__ import annotations

import ast
import copy
import json
import re
from dataclasses import dataclass, field

import nbformat

from helpers.course_files import ROOT

SOLUTION_MARKER = re.compile(r"^\s*### (BEGIN|END) SOLUTION\s*$")


def meta(cell) -> dict:
    m = cell.get("metadata", {}).get("nbgrader")
    return m if isinstance(m, dict) else {}


def is_test(cell) -> bool:
    return bool(meta(cell).get("grade")) and not meta(cell).get("solution")


def is_solution(cell) -> bool:
    return bool(meta(cell).get("solution"))


def strip_markers(source: str) -> str:
    return "\n".join(line for line in source.split("\n") if not SOLUTION_MARKER.match(line))


def to_bytes(nb) -> bytes:
    return nbformat.writes(nb).encode("utf-8")


@dataclass
class Expect:
    estado: str
    puntuacion: float | None
    celdas: dict = field(default_factory=dict)  # grade_id -> nota esperada
    notas: list = field(default_factory=list)  # fragmentos que deben aparecer en las observaciones


class Notebook:
    """Un cuaderno del curso: publicado (recién generado), solución y celdas calificadas."""

    def __init__(self, name: str):
        self.name = name
        self.solution = nbformat.read(ROOT / "solutions" / name / f"{name}.ipynb", as_version=4)
        # El publicado del repositorio (test_notebooks.py comprueba que está al día con solutions/).
        self.released = nbformat.read(ROOT / "notebooks" / name / f"{name}.ipynb", as_version=4)
        self.tests = [meta(c)["grade_id"] for c in self.released.cells if is_test(c)]
        self.points = {meta(c)["grade_id"]: float(meta(c)["points"]) for c in self.released.cells if is_test(c)}
        self.max_score = sum(self.points.values())
        self.full_tests = {meta(c)["grade_id"]: c.source for c in self.solution.cells if is_test(c)}

    def fresh(self):
        return copy.deepcopy(self.released)

    def solved(self):
        """El publicado con cada celda de solución resuelta (lo que entrega quien lo hace bien)."""
        sources = {meta(c)["grade_id"]: strip_markers(c.source) for c in self.solution.cells if is_solution(c)}
        nb = self.fresh()
        for cell in nb.cells:
            if is_solution(cell):
                cell.source = sources[meta(cell)["grade_id"]]
        return nb

    def index(self, nb, grade_id: str) -> int:
        return next(i for i, c in enumerate(nb.cells) if meta(c).get("grade_id") == grade_id)

    def setup_index(self, nb) -> int:
        return next(i for i, c in enumerate(nb.cells) if "preparacion" in c.metadata.get("tags", []))

    def full(self, **overrides) -> dict:
        scores = dict(self.points)
        scores.update(overrides)
        return scores


def code(source: str):
    return nbformat.v4.new_code_cell(source)


# --- los casos ----------------------------------------------------------------------------------
def correct_with_noise(nb: Notebook, reorder: bool = False) -> tuple[bytes, Expect]:
    """17 + 18: núcleo inexistente y archivo nbformat 4.4 con ``id`` de 4.5 y ruido de otro editor.
    Con ``reorder``, además 9: cada celda de pruebas movida encima de su solución."""
    sub = nb.solved()
    if reorder:
        _move_tests_up(nb, sub)
    raw = json.loads(nbformat.writes(sub))
    raw["nbformat_minor"] = 4
    raw["metadata"]["kernelspec"] = {"name": "python-que-no-existe", "display_name": "Py", "language": "python"}
    raw["metadata"]["colab"] = {"provenance": [], "toc_visible": True}
    for i, cell in enumerate(raw["cells"]):
        cell["id"] = "repetido" if i in (1, 2) else f"celda{i}"  # id de 4.5 (y uno repetido)
        cell["metadata"]["collapsed"] = False
        if cell["cell_type"] == "code":
            cell["execution_count"] = 7
            cell["outputs"] = [{"output_type": "stream", "name": "stdout", "text": "salida vieja\n"}]
    return json.dumps(raw, ensure_ascii=False, indent=1).encode(), Expect(
        "calificado", nb.max_score, nb.full(), notas=["reordenadas"] if reorder else []
    )


def unsolved(nb: Notebook) -> bytes:
    return to_bytes(nb.fresh())


def structure(nb: Notebook) -> tuple[bytes, Expect]:
    """4 + 5 + 7 + 8: prueba editada (``pass`` y más puntos), prueba borrada, prueba duplicada, solución
    dividida en dos celdas y prueba convertida en Markdown."""
    t0, t1, t2, t3 = nb.tests[:4]
    sub = nb.solved()
    cell = sub.cells[nb.index(sub, t0)]
    cell.source = "pass"
    cell.metadata["nbgrader"]["points"] = 100
    dup = copy.deepcopy(sub.cells[nb.index(sub, t3)])
    dup["id"] = "copia-de-prueba"
    sub.cells.insert(nb.index(sub, t3) + 1, dup)
    idx = nb.index(sub, t2)
    sub.cells[idx] = nbformat.v4.new_markdown_cell(sub.cells[idx].source, metadata=sub.cells[idx].metadata)
    first_solution = next(c for c in sub.cells if is_solution(c))
    body = ast.parse(first_solution.source).body
    lines = first_solution.source.split("\n")
    if len(body) >= 2:
        first_part, second_part = "\n".join(lines[: body[1].lineno - 1]), "\n".join(lines[body[1].lineno - 1 :])
    else:
        first_part, second_part = first_solution.source, "pass  # segunda parte de la celda dividida"
    second = copy.deepcopy(first_solution)
    second["id"] = "segunda-parte"
    first_solution.source, second.source = first_part, second_part
    sub.cells.insert(sub.cells.index(first_solution) + 1, second)
    del sub.cells[nb.index(sub, t1)]
    return to_bytes(sub), Expect(
        "calificado",
        nb.max_score,
        nb.full(),
        notas=[
            f"«{t0}» estaba modificada",
            t1,
            f"«{t2}» había cambiado de tipo",
            f"«{t3}» estaba duplicada",
            "duplicada o dividida",
        ],
    )


def no_metadata(nb: Notebook) -> tuple[bytes, Expect]:
    """6: otro editor borró los metadatos de nbgrader (y los de bloqueo) de todas las celdas."""
    sub = nb.solved()
    for cell in sub.cells:
        for key in ("nbgrader", "deletable", "editable"):
            cell.metadata.pop(key, None)
    return to_bytes(sub), Expect("calificado", nb.max_score, nb.full(), notas=["metadatos de nbgrader recuperados"])


def _move_tests_up(nb: Notebook, sub) -> None:
    for tid in nb.tests:
        i = nb.index(sub, tid)
        j = max(k for k in range(i) if is_solution(sub.cells[k]))
        sub.cells.insert(j, sub.cells.pop(i))


def reordered(nb: Notebook) -> tuple[bytes, Expect]:
    """9: cada celda de pruebas movida encima de su celda de solución."""
    sub = nb.solved()
    _move_tests_up(nb, sub)
    return to_bytes(sub), Expect("calificado", nb.max_score, nb.full(), notas=["reordenadas"])


def loop_stderr_output(nb: Notebook, spy_cells: list | None = None) -> tuple[bytes, Expect]:
    """10 + 13 + 15: bucle infinito en la última celda de solución; avisos en stderr en todas las
    celdas siguientes (también las de pruebas); 200 000 líneas de salida. Con ``spy_cells``, además
    las celdas espía de :func:`spy_cells` (16)."""
    sub = nb.solved()
    if spy_cells:
        at = nb.setup_index(sub) + 1
        for offset, cell in enumerate(spy_cells[:-1]):
            sub.cells.insert(at + offset, cell)
        sub.cells.append(spy_cells[-1])
    solutions = [c for c in sub.cells if is_solution(c)]
    last = solutions[-1]
    names = {n.name for n in ast.parse(last.source).body if isinstance(n, (ast.FunctionDef, ast.ClassDef))}
    # 13: las funciones del alumno escriben avisos en stderr cada vez que las llama una prueba (como
    # haría una biblioteca); sin ganchos de IPython, que la guardia quitaría antes de cada prueba.
    for cell in solutions[:-1]:
        defined = [n.name for n in ast.parse(cell.source).body if isinstance(n, ast.FunctionDef)]
        cell.source += "".join(f"\n{name} = _ruidosa({name})" for name in defined)
    last.source = "while True:\n    pass\n" + last.source
    setup = nb.setup_index(sub)
    sub.cells.insert(
        setup + 1,
        code(
            "import functools, sys, warnings\n"
            "warnings.simplefilter('always')\n"
            "def _ruidosa(funcion):\n"
            "    @functools.wraps(funcion)\n"
            "    def envuelta(*args, **kwargs):\n"
            "        warnings.warn('AVISO de una biblioteca en stderr', UserWarning)\n"
            "        print('más ruido en stderr', file=sys.stderr)\n"
            "        return funcion(*args, **kwargs)\n"
            "    return envuelta"
        ),
    )
    sub.cells.insert(setup + 2, code("for i in range(200_000):\n    print('línea', i)"))
    broken = {tid for tid, src in nb.full_tests.items() if any(re.search(rf"\b{n}\b", src) for n in names)}
    scores = nb.full(**{tid: 0.0 for tid in broken})
    return to_bytes(sub), Expect(
        "calificado", sum(scores.values()), scores, notas=["superó el tiempo máximo por celda"]
    )


def dead_kernel(nb: Notebook) -> tuple[bytes, Expect]:
    """11: el núcleo muere (``os._exit``) justo después de la primera celda de pruebas."""
    sub = nb.solved()
    first = nb.tests[0]
    sub.cells.insert(nb.index(sub, first) + 1, code("import os\nos._exit(1)"))
    scores = {tid: 0.0 for tid in nb.tests}
    scores[first] = nb.points[first]
    return to_bytes(sub), Expect(
        "no calificable: kernel muerto", nb.points[first], scores, notas=["el núcleo murió", "parcial"]
    )


def no_traceback(nb: Notebook) -> tuple[bytes, Expect]:
    """12 + 14: sin resolver, con ``showtraceback`` (y ``sys.excepthook``) anulados, y cada celda de
    pruebas cambiada por una expresión suelta (que nbgrader tomaría como nota parcial). Anular las
    trazas es tocar cómo se juzgan las pruebas: además de 0, la fila queda para revisar; con
    examinador (``examen.py``), la nota no depende de eso y queda como aviso."""
    from helpers.classroom import examiner

    sub = nb.fresh()
    sub.cells.insert(
        nb.setup_index(sub) + 1,
        code(
            "import sys\n"
            "get_ipython().showtraceback = lambda *a, **k: None\n"
            "get_ipython().set_custom_exc((Exception,), lambda *a, **k: None)\n"
            "sys.excepthook = lambda *a: None"
        ),
    )
    for i, tid in enumerate(nb.tests):
        sub.cells[nb.index(sub, tid)].source = "0.25" if i % 2 else "import numpy as np\nnp.False_"
    status = "calificado" if examiner.has_exam(nb.name) else "revisar: posible manipulación de las pruebas"
    return to_bytes(sub), Expect(status, 0.0, {tid: 0.0 for tid in nb.tests}, notas=["trazas de error"])


def spy_cells(reads: list[str], writes: list[str], connects: list[tuple[str, int]]) -> list:
    """16 (+ memoria): celdas que leen y escriben donde no deben, intentan conectarse, piden más
    memoria de la que hay y (la última, para el final del cuaderno) imprimen el historial de IPython,
    con las pruebas ocultas ya ejecutadas."""
    from helpers.classroom.probe import probe_source

    return [
        code(probe_source(reads, writes, connects)),
        code(
            "try:\n"
            "    enorme = bytearray(5 * 1024**3)\n"
            "    print('MEMORIA=concedida')\n"
            "    del enorme\n"
            "except MemoryError:\n"
            "    print('MEMORIA=denegada')"
        ),
        code("print('\\n'.join(In))"),
    ]


def truncated_json(nb: Notebook) -> tuple[bytes, Expect]:
    """1: el archivo se cortó a la mitad (JSON inválido)."""
    data = to_bytes(nb.solved())
    return data[: len(data) // 2], Expect("no calificable: JSON inválido", None)


def slow_on_purpose(nb: Notebook, seconds: int) -> bytes:
    """Resuelto, con una celda que duerme ``seconds`` segundos justo después de la preparación: con
    un tiempo total menor, el cuaderno se corta ahí en cualquier máquina, rápida o lenta."""
    sub = nb.solved()
    sub.cells.insert(nb.setup_index(sub) + 1, code(f"import time\ntime.sleep({int(seconds)})"))
    return to_bytes(sub)
