"""El examinador: decide la nota de cada celda calificada sin ejecutar nunca código del alumnado.

Corre en el proceso del calificador (el trabajador del lote), donde nunca se ejecuta nada de una
entrega: el código del alumnado solo corre en el núcleo, dentro de la caja de arena. Para cada
cuaderno con ``solutions/<cuaderno>/examen.py`` (que nunca se publica):

1. **Preguntas.** ``examen.questions(rng)`` devuelve una :class:`Question` por celda de pruebas:
   qué funciones del cuaderno llamar y con qué entradas (:class:`Ask`, con descripciones como
   :class:`Model` o :class:`Tensor`). ``rng`` (``random.Random``) tiene una semilla secreta por
   clase y entrega: las entradas no se pueden conocer de antemano.
2. **Respuestas.** El calificador, en vez de ejecutar la celda de pruebas en el núcleo, le envía
   las preguntas; el recogedor del núcleo (:mod:`helpers.classroom.collector`) construye las
   entradas, llama a las funciones y devuelve **datos** (:func:`decode` los lee con límites
   estrictos: solo tipos exactos, profundidad y tamaño acotados, tensores en safetensors con la
   cabecera acotada; nunca pickle).
3. **Lo esperado.** Aquí mismo se ejecutan las celdas de solución de ``solutions/`` (código de
   confianza) con las mismas entradas, con el mismo recogedor (:func:`expected`).
4. **Veredicto.** Se comparan datos con datos (:func:`same`, tipo a tipo) o con el ``judge`` de la
   pregunta, y sale un :class:`Verdict` (puntos y un mensaje en español que no revela entradas ni
   resultados ocultos). :func:`write_gradebook` lo escribe en el libro de notas de nbgrader
   (``Grade.auto_score`` y ``Comment.auto_comment`` de la celda de solución).

Nada de lo que el núcleo dice sobre aprobado/suspenso, salidas o errores cuenta: solo las
respuestas a estas preguntas.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import importlib.util
import json
import os
import random
import re
import secrets
import struct
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..course_files import EXAM_FILE, SOLUTIONS
from . import collector

# Límites de una respuesta (la salida del núcleo ya está acotada por SandboxedExecute._fits).
MAX_ANSWER_CHARS = 16 << 20
MAX_DEPTH = 32
MAX_HEADER_BYTES = 64 << 10
MAX_TENSORS = 256
MAX_INT_DIGITS = 100
PENDING_MESSAGE = "esta celda la califica el examinador (sin su veredicto, 0 puntos)"
HIDDEN_BEGIN, HIDDEN_END = "### BEGIN HIDDEN TESTS", "### END HIDDEN TESTS"
_FLOAT_HEX = re.compile(r"^-?(0x[0-9a-f]+(\.[0-9a-f]*)?p[+-]?\d+|inf|nan)$")
_STRINGS = re.compile(r'"(?:[^"\\]|\\.)*"', re.S)


# --- cómo se escribe un examen -----------------------------------------------------------------
@dataclass(frozen=True)
class Model:
    """Descripción de un modelo que construye el recogedor (nunca un objeto).

    ``Model("tiny")``: el Llama diminuto del curso (pesos atados). ``Model("red", capas=[...])``: un
    ``nn.Sequential`` con capas ``["linear", in, out, bias]``, ``["embedding", n, d]``,
    ``["layernorm", d]``, ``["relu"]`` o ``["same", i]`` (el mismo módulo que la capa ``i``).
    Opciones: ``atadas=[["3.weight", "0.weight"]]`` (el parámetro de la izquierda pasa a ser el de
    la derecha), ``tipos={"1": "bfloat16"}`` (tipo de una capa), ``congeladas=["0", "2.bias"]``
    (nombres o prefijos sin gradiente) y ``semilla``.
    """

    kind: str
    options: dict = field(default_factory=dict)

    def __init__(self, kind: str, **options):
        object.__setattr__(self, "kind", kind)
        object.__setattr__(self, "options", options)

    def to_json(self) -> dict:
        return {"$modelo": {"tipo": self.kind, **self.options}}


@dataclass(frozen=True)
class Tensor:
    """Un tensor aleatorio ``randn(forma)`` con su semilla (y su tipo), construido en el núcleo."""

    shape: tuple
    seed: int
    dtype: str = "float32"

    def to_json(self) -> dict:
        return {"$tensor": {"forma": [int(n) for n in self.shape], "semilla": int(self.seed), "dtype": self.dtype}}


def _describe(value):
    if isinstance(value, (Model, Tensor)):
        return value.to_json()
    if isinstance(value, tuple):
        return {"$tupla": [_describe(v) for v in value]}
    if isinstance(value, list):
        return [_describe(v) for v in value]
    if value is None or type(value) in (bool, int, float, str):
        return value
    raise TypeError(f"argumento no admitido en una pregunta: {type(value).__name__}")


@dataclass
class Ask:
    """Una llamada: ``function(*args, **kwargs)``; con ``then="requires_grad"`` se pide también qué
    parámetros del primer argumento quedan entrenables después. ``what`` dice en el mensaje qué
    falló, sin revelar las entradas."""

    function: str
    args: list = field(default_factory=list)
    kwargs: dict = field(default_factory=dict)
    then: str | None = None
    what: str = ""

    def to_json(self) -> dict:
        out = {
            "funcion": self.function,
            "args": [_describe(a) for a in self.args],
            "kwargs": {k: _describe(v) for k, v in self.kwargs.items()},
        }
        if self.then:
            out["despues"] = self.then
        return out


@dataclass
class Verdict:
    points: float
    message: str


@dataclass
class Question:
    """Lo que decide la nota de la celda de pruebas ``cell``: sus preguntas y cómo juzgarlas.

    ``solution`` es la celda de solución cuyo comentario recibe el mensaje. Sin ``judge``, la celda
    tiene todos sus puntos si cada respuesta es idéntica (:func:`same`) a la de la solución.
    ``judge(answers, expected, points) -> Verdict`` recibe datos ya decodificados."""

    cell: str
    solution: str
    asks: list
    judge: Callable | None = None


def visible_source(source: str) -> str:
    """El código de una celda de pruebas sin sus pruebas ocultas (lo que ve el alumnado)."""
    lines, inside = [], False
    for line in source.split("\n"):
        if line.strip().startswith(HIDDEN_BEGIN):
            inside = True
        elif line.strip().startswith(HIDDEN_END):
            inside = False
        elif not inside:
            lines.append(line)
    return "\n".join(lines).rstrip("\n")


# --- respuestas: datos y nada más ---------------------------------------------------------------
class InvalidAnswer(Exception):
    """La respuesta del núcleo no es un dato admitido."""


@dataclass(frozen=True)
class Raised:
    """La llamada lanzó una excepción de esta clase de Python."""

    name: str


@dataclass(frozen=True)
class Invalid:
    """El valor devuelto no es de un tipo admitido (p. ej. una subclase de ``int``)."""

    what: str


@dataclass
class Answer:
    value: Any = None
    state: Any = None
    problem: str | None = None  # por qué no hay respuesta válida
    index: int | None = None  # a qué pregunta contesta


def _depth(text: str) -> int:
    """Anidamiento máximo de un texto JSON (sin recursión: cuenta corchetes fuera de las cadenas)."""
    depth = best = 0
    for char in _STRINGS.sub('""', text):
        if char in "[{":
            depth += 1
            best = max(best, depth)
        elif char in "]}":
            depth -= 1
    return best


def _tensors(blob) -> dict:
    if blob is None:
        return {}
    if type(blob) is not str or len(blob) > MAX_ANSWER_CHARS:
        raise InvalidAnswer("bloque de tensores no válido")
    try:
        raw = base64.b64decode(blob.encode("ascii"), validate=True)
    except (ValueError, UnicodeEncodeError):
        raise InvalidAnswer("bloque de tensores no válido (base64)") from None
    if len(raw) < 8:
        raise InvalidAnswer("bloque de tensores no válido (corto)")
    (header_len,) = struct.unpack("<Q", raw[:8])
    if header_len > MAX_HEADER_BYTES or 8 + header_len > len(raw):
        raise InvalidAnswer("bloque de tensores no válido (cabecera demasiado grande)")
    try:
        header = json.loads(raw[8 : 8 + header_len].decode("utf-8"))
    except (ValueError, UnicodeDecodeError, RecursionError):
        raise InvalidAnswer("bloque de tensores no válido (cabecera)") from None
    if type(header) is not dict or len(header) > MAX_TENSORS + 1 or _depth(json.dumps(header)) > 4:
        raise InvalidAnswer("bloque de tensores no válido (cabecera)")
    allowed = {"F32", "F64", "F16", "BF16", "I64", "I32", "I16", "I8", "U8", "BOOL"}
    for key, entry in header.items():
        if key == "__metadata__":
            continue
        if type(entry) is not dict or entry.get("dtype") not in allowed:
            raise InvalidAnswer("bloque de tensores no válido (tipo de tensor)")
    try:
        from safetensors.torch import load

        return load(raw)
    except Exception:  # noqa: BLE001 - cualquier fallo de safetensors es una respuesta no válida
        raise InvalidAnswer("bloque de tensores no válido") from None


def _value(obj, tensors: dict, depth: int = 0):
    if depth > MAX_DEPTH:
        raise InvalidAnswer("respuesta demasiado anidada")
    kind = type(obj)
    if obj is None or kind in (bool, str):
        return obj
    if kind is int:
        if len(str(abs(obj))) > MAX_INT_DIGITS:
            raise InvalidAnswer("número entero demasiado grande")
        return obj
    if kind is list:
        return [_value(v, tensors, depth + 1) for v in obj]
    if kind is not dict or len(obj) != 1:
        raise InvalidAnswer("respuesta con una forma desconocida")
    ((tag, body),) = obj.items()
    if tag == "$float" and type(body) is str and _FLOAT_HEX.match(body):
        return float.fromhex(body)
    if tag == "$tupla" and type(body) is list:
        return tuple(_value(v, tensors, depth + 1) for v in body)
    if tag == "$conjunto" and type(body) is list:
        return frozenset(_value(v, tensors, depth + 1) for v in body)
    if tag == "$dict" and type(body) is list:
        out = {}
        for pair in body:
            if type(pair) is not list or len(pair) != 2:
                raise InvalidAnswer("diccionario no válido")
            key = _value(pair[0], tensors, depth + 1)
            try:
                out[key] = _value(pair[1], tensors, depth + 1)
            except TypeError:  # una clave que no se puede usar (p. ej. una lista)
                raise InvalidAnswer("diccionario no válido") from None
        return out
    if tag == "$tensor" and type(body) is str and body in tensors:
        return tensors[body]
    if tag == "$no_valida" and type(body) is str:
        return Invalid(body[:80])
    raise InvalidAnswer("respuesta con una etiqueta desconocida")


def decode(payload) -> Answer:
    """Lee una respuesta del recogedor. Lanza :class:`InvalidAnswer` si no es un dato admitido."""
    if type(payload) is not str:
        raise InvalidAnswer("la respuesta no es texto")
    if len(payload) > MAX_ANSWER_CHARS:
        raise InvalidAnswer("respuesta demasiado grande")
    if _depth(payload) > MAX_DEPTH + 4:
        raise InvalidAnswer("respuesta demasiado anidada")
    try:
        raw = json.loads(payload, parse_constant=lambda name: (_ for _ in ()).throw(ValueError(name)))
    except (ValueError, RecursionError):
        raise InvalidAnswer("la respuesta no es JSON válido") from None
    if type(raw) is not dict or raw.get("formato") != collector.FORMAT or type(raw.get("i")) is not int:
        raise InvalidAnswer("la respuesta no tiene el formato del recogedor")
    if "entrada" in raw:
        return Answer(problem="no se pudieron construir las entradas en el núcleo", index=raw["i"])
    tensors = _tensors(raw.get("tensores"))
    answer = Answer(index=raw["i"])
    if "error" in raw:
        name = raw["error"]
        if type(name) is not str or name not in (*collector.EXCEPTIONS, "Exception"):
            raise InvalidAnswer("excepción desconocida")
        answer.value = Raised(name)
    elif "valor" in raw:
        answer.value = _value(raw["valor"], tensors)
    else:
        raise InvalidAnswer("respuesta sin valor")
    if "estado" in raw:
        answer.state = _value(raw["estado"], tensors)
    return answer


def same(a, b) -> bool:
    """¿Son ``a`` y ``b`` el mismo dato, con los mismos tipos exactos? (``True`` no es ``1``)."""
    if type(a) is not type(b):
        return False
    if isinstance(a, (list, tuple)):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b))
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
    if isinstance(a, float):
        return a == b or (a != a and b != b)
    if type(a).__module__ == "torch" and type(a).__name__ == "Tensor":
        import torch

        return a.dtype == b.dtype and a.shape == b.shape and bool(torch.equal(a, b))
    if isinstance(a, Invalid):
        return False  # una respuesta no válida nunca es la buena
    return a == b


# --- el examen de un cuaderno ----------------------------------------------------------------
def exam_path(name: str, solutions: Path = SOLUTIONS) -> Path:
    return Path(solutions) / name / EXAM_FILE


def has_exam(name: str, solutions: Path = SOLUTIONS) -> bool:
    return exam_path(name, solutions).is_file()


def load_exam(name: str, solutions: Path = SOLUTIONS):
    """El módulo ``examen.py`` de ``name`` (código del profesorado, de confianza)."""
    path = exam_path(name, solutions)
    spec = importlib.util.spec_from_file_location(f"curso_peft_examen_{name}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def class_secret(folder: Path) -> bytes:
    """Clave secreta de la clase (se crea una vez, solo legible por el calificador)."""
    path = Path(folder) / ".secreto-examinador"
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return path.read_bytes()
    with os.fdopen(fd, "wb") as handle:
        key = secrets.token_bytes(32)
        handle.write(key)
    return key


def rng_for(secret: bytes, *parts: str) -> random.Random:
    """El generador de una entrega: determinista dentro de la clase, imposible de adivinar fuera."""
    digest = hmac.new(secret, "\0".join(parts).encode(), hashlib.sha256).digest()
    return random.Random(int.from_bytes(digest, "big"))


def questions(exam, rng: random.Random) -> list[Question]:
    found = list(exam.questions(rng))
    cells = [q.cell for q in found]
    if len(set(cells)) != len(cells):
        raise ValueError("examen.py: dos preguntas para la misma celda de pruebas")
    return found


def asks_json(question: Question) -> str:
    return json.dumps([ask.to_json() for ask in question.asks], ensure_ascii=False)


# --- lo esperado: la solución, en este proceso ------------------------------------------------
_SOLUTION_NS: dict = {}


def solution_namespace(name: str, solutions: Path = SOLUTIONS) -> dict:
    """Espacio de nombres con las celdas de solución de ``solutions/<name>`` ejecutadas (de confianza)."""
    key = (str(solutions), name)
    if key not in _SOLUTION_NS:
        import nbformat
        import torch

        import helpers

        nb = nbformat.read(Path(solutions) / name / f"{name}.ipynb", as_version=4)
        namespace = {"torch": torch, "nn": torch.nn, "helpers": helpers, "__name__": f"solucion_{name}"}
        for cell in nb.cells:
            meta = cell.get("metadata", {}).get("nbgrader", {})
            if cell.cell_type == "code" and meta.get("solution"):
                exec(compile(cell.source, f"<solución {meta.get('grade_id')}>", "exec"), namespace)  # noqa: S102
        _SOLUTION_NS[key] = namespace
    return _SOLUTION_NS[key]


def expected(name: str, question: Question, solutions: Path = SOLUTIONS) -> list[Answer]:
    namespace = solution_namespace(name, solutions)
    return [decode(collector.answer_one(ask.to_json(), namespace, i)) for i, ask in enumerate(question.asks)]


# --- juzgar -----------------------------------------------------------------------------------
def _describe_value(value) -> str:
    if isinstance(value, Raised):
        return f"lanzó {value.name}"
    if isinstance(value, Invalid):
        return f"devolvió un valor de un tipo no admitido ({value.what})"
    return f"devolvió un valor de tipo {type(value).__name__}"


def _default_judge(question: Question, answers: list[Answer], wanted: list[Answer], points: float) -> Verdict:
    for ask, got, want in zip(question.asks, answers, wanted):
        what = ask.what or ask.function
        if got.problem:
            return Verdict(0.0, f"{ask.function}: {what}: {got.problem}")
        if isinstance(got.value, Invalid):
            return Verdict(0.0, f"{ask.function}: {what}: {_describe_value(got.value)}; respuesta no válida")
        if isinstance(want.value, Raised) and not same(got.value, want.value):
            return Verdict(
                0.0, f"{ask.function}: {what}: debía lanzar {want.value.name} y {_describe_value(got.value)}"
            )
        if isinstance(got.value, Raised) and not same(got.value, want.value):
            return Verdict(0.0, f"{ask.function}: {what}: {_describe_value(got.value)}")
        if not same(got.value, want.value):
            return Verdict(0.0, f"{ask.function}: {what}: el resultado no es el correcto")
        if not same(got.state, want.state):
            return Verdict(0.0, f"{ask.function}: {what}: el modelo no queda como debe")
    return Verdict(points, f"{question.solution}: correcto")


def judge(name: str, question: Question, payloads: list | None, points: float, solutions: Path = SOLUTIONS) -> Verdict:
    """Puntos de la celda de ``question`` a partir de lo que contestó el núcleo (``payloads``)."""
    if payloads is None:
        return Verdict(0.0, f"{question.solution}: la celda de pruebas no llegó a ejecutarse")
    by_index: dict[int, Answer] = {}
    invalid = None
    for payload in payloads:
        try:
            answer = decode(payload)
        except InvalidAnswer as exc:
            invalid = f"respuesta no válida ({exc})"
            continue
        by_index[answer.index] = answer  # si contesta dos veces, cuenta la última
    missing = invalid or "no contestó (¿la función lanzó un error grave, tardó demasiado o no existe?)"
    answers = [by_index.get(i, Answer(problem=missing)) for i in range(len(question.asks))]
    wanted = expected(name, question, solutions)
    if question.judge is not None:
        if any(a.problem for a in answers):
            bad = next(a for a in answers if a.problem)
            return Verdict(0.0, f"{question.solution}: {bad.problem}")
        verdict = question.judge(answers, wanted, points)
    else:
        verdict = _default_judge(question, answers, wanted, points)
    return Verdict(max(0.0, min(float(points), float(verdict.points))), verdict.message)


# --- el libro de notas -------------------------------------------------------------------------
def write_gradebook(db: Path, name: str, student: str, verdicts: dict, questions_by_cell: dict) -> None:
    """``Grade.auto_score`` de cada celda de pruebas y ``Comment.auto_comment`` de su solución.

    Lo puesto a mano (``manual_score``, ``manual_comment``) no se toca."""
    import warnings

    from nbgrader.api import Gradebook, MissingEntry

    with warnings.catch_warnings(), Gradebook(f"sqlite:///{db}") as gb:
        warnings.simplefilter("ignore")
        for cell, verdict in verdicts.items():
            grade = gb.find_grade(cell, name, name, student)
            grade.auto_score = float(verdict.points)
            if grade.manual_score is None:
                grade.needs_manual_grade = False
            try:
                comment = gb.find_comment(questions_by_cell[cell].solution, name, name, student)
                comment.auto_comment = verdict.message
            except MissingEntry:
                pass
        gb.db.commit()


def annotate(path: Path, verdicts: dict, max_points: dict) -> None:
    """En el cuaderno calificado, la salida de cada celda de pruebas pasa a ser el veredicto: un
    texto si tiene todos sus puntos y un error (con el mensaje) si no, como una prueba de nbgrader."""
    import nbformat
    from nbformat.notebooknode import NotebookNode

    nb = nbformat.read(path, as_version=4)
    for cell in nb.cells:
        meta = cell.get("metadata", {}).get("nbgrader", {})
        verdict = verdicts.get(meta.get("grade_id")) if meta.get("grade") and not meta.get("solution") else None
        if cell.cell_type != "code" or verdict is None:
            continue
        text = f"Examinador: {verdict.points:g}/{max_points.get(meta['grade_id'], 0):g} · {verdict.message}"
        if verdict.points >= max_points.get(meta["grade_id"], 0):
            cell.outputs = [NotebookNode(output_type="stream", name="stdout", text=text + "\n")]
        else:
            cell.outputs = [NotebookNode(output_type="error", ename="Examinador", evalue=text, traceback=[text])]
    # nbgrader deja el cuaderno calificado de solo lectura: se escribe al lado y se cambia por él.
    mode = path.stat().st_mode & 0o777
    fresh = path.with_name(f".{path.name}.examinador")
    nbformat.write(nb, fresh)
    os.chmod(fresh, mode)
    os.replace(fresh, path)
