"""El examinador (helpers.classroom.examiner) y el recogedor del núcleo (helpers.classroom.collector).

Sin núcleo ni nbgrader: el decodificador estricto, el examen del cuaderno 01 contra su solución y
sus respuestas erróneas (en este proceso, con el mismo recogedor que corre en el núcleo), y que el
examen nunca se publica. El examinador de punta a punta (con ``make calificar``, la caja y ataques)
está en test_classroom_ataques.py.
"""

from __future__ import annotations

import base64
import json
import random
import struct
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
from wrong_answers import nb01  # noqa: E402

from helpers.classroom import collector, examiner, guard  # noqa: E402
from helpers.course_files import EXAM_FILE, ROOT, notebook_names  # noqa: E402

NB1 = "01_introduccion_peft"


def _payload(value=None, **extra) -> str:
    body = {"formato": collector.FORMAT, "i": 0, "tensores": None, **extra}
    if "error" not in extra and "valor" not in extra:
        body["valor"] = value
    return json.dumps(body)


def _roundtrip(value):
    return examiner.decode(collector.answer_one({"funcion": "f", "args": []}, {"f": lambda: value})).value


# --- decodificador estricto ------------------------------------------------------------------
def test_tipos_exactos_ida_y_vuelta():
    import torch

    value = (3, -2.5, True, None, "ñ", [1, (2, 3)], {"a": 1, (1, 2): [False]}, frozenset({"x", "y"}))
    assert examiner.same(_roundtrip(value), value)
    for special in (float("inf"), float("-inf"), 1e-310, 0.1):
        assert examiner.same(_roundtrip(special), special)
    assert _roundtrip(float("nan")) != _roundtrip(float("nan"))  # nan sigue siendo nan...
    assert examiner.same(_roundtrip(float("nan")), float("nan"))  # ...y cuenta como el mismo dato
    tensor = torch.arange(6, dtype=torch.bfloat16).reshape(2, 3)
    back = _roundtrip({"w": tensor, "p": torch.nn.Parameter(torch.ones(2))})
    assert examiner.same(back["w"], tensor) and type(back["p"]) is torch.Tensor
    assert not examiner.same(True, 1) and not examiner.same(1, 1.0) and not examiner.same((1, 2), [1, 2])
    assert not examiner.same(torch.zeros(2), torch.zeros(2, dtype=torch.float64))


def test_subclases_y_objetos_raros_no_son_validos():
    """Un ``int`` con ``__eq__`` trucado, un ``dict`` o un tensor subclase: «no válida», sin llamar a
    ningún método suyo (el codificador mira ``type(x) is ...``)."""
    import torch

    calls = []

    class Todo(int):
        def __eq__(self, other):
            calls.append("eq")
            return True

        __hash__ = int.__hash__

    class Dict(dict):
        pass

    class Mine(torch.Tensor):
        pass

    for bad in (Todo(3), Dict(a=1), torch.zeros(2).as_subclass(Mine), object(), b"bytes", 1j):
        back = _roundtrip(bad)
        assert isinstance(back, examiner.Invalid), bad
        assert not examiner.same(back, back)
    back = _roundtrip((Todo(0), Todo(0)))
    assert all(isinstance(x, examiner.Invalid) for x in back) and calls == []


def test_respuestas_que_no_son_datos():
    deep = '{"formato": 1, "i": 0, "valor": ' + "[" * 200_000 + "]" * 200_000 + "}"
    with pytest.raises(examiner.InvalidAnswer, match="anidada"):
        examiner.decode(deep)
    for bad in (
        b"\x80\x04K\x01.",  # pickle: ni siquiera es texto
        {"formato": 1},
        "no es json",
        _payload({"$otra": 1}),
        _payload({"a": 1, "b": 2}),  # un objeto sin etiqueta
        _payload({"$float": "__import__('os')"}),
        _payload(int("9" * 200)),
        _payload(NaN=1).replace('"valor": null', '"valor": NaN'),
        json.dumps({"formato": 99, "i": 0, "valor": 1}),
        json.dumps({"formato": 1, "i": "0", "valor": 1}),
        _payload(error="SystemExit"),
        "x" * (examiner.MAX_ANSWER_CHARS + 1),
    ):
        with pytest.raises(examiner.InvalidAnswer):
            examiner.decode(bad)


def test_safetensors_con_cabecera_enorme_o_tipos_raros():
    import torch
    from safetensors.torch import save

    def with_blob(raw: bytes) -> str:
        return _payload({"$tensor": "t0"}, tensores=base64.b64encode(raw).decode())

    good = save({"t0": torch.ones(3)})
    assert examiner.same(examiner.decode(with_blob(good)).value, torch.ones(3))
    huge = struct.pack("<Q", 1 << 40) + b"{}"
    lying = struct.pack("<Q", examiner.MAX_HEADER_BYTES + 1) + b" " * (examiner.MAX_HEADER_BYTES + 1)
    header = json.dumps({"t0": {"dtype": "F32", "shape": [1 << 40], "data_offsets": [0, 4]}}).encode()
    too_big = struct.pack("<Q", len(header)) + header + b"\0" * 4
    odd = json.dumps({"t0": {"dtype": "OBJ", "shape": [1], "data_offsets": [0, 8]}}).encode()
    for raw in (huge, lying, too_big, struct.pack("<Q", len(odd)) + odd + b"\0" * 8, b"abc"):
        with pytest.raises(examiner.InvalidAnswer):
            examiner.decode(with_blob(raw))
    with pytest.raises(examiner.InvalidAnswer):
        examiner.decode(_payload({"$tensor": "t0"}, tensores="!!no es base64!!"))


def test_excepciones_por_su_clase_de_python():
    class MiError(ValueError):
        pass

    def boom(exc):
        def f():
            raise exc

        return f

    for exc, name in ((MiError("x"), "ValueError"), (KeyError("k"), "KeyError"), (OSError(), "Exception")):
        answer = examiner.decode(collector.answer_one({"funcion": "f"}, {"f": boom(exc)}))
        assert answer.value == examiner.Raised(name)
    missing = examiner.decode(collector.answer_one({"funcion": "no_existe"}, {}))
    assert missing.value == examiner.Raised("KeyError")


# --- el examen del cuaderno 01 ---------------------------------------------------------------
@pytest.fixture(scope="module")
def exam01():
    return examiner.questions(examiner.load_exam(NB1), random.Random(20261208))


def _grade(questions, namespace) -> dict:
    out = {}
    for q in questions:
        payloads = [collector.answer_one(a.to_json(), namespace, i) for i, a in enumerate(q.asks)]
        out[q.cell] = examiner.judge(NB1, q, payloads, 1.0)
    return out


def test_examen_cubre_cada_celda_de_pruebas(exam01):
    import nbformat

    nb = nbformat.read(ROOT / "solutions" / NB1 / f"{NB1}.ipynb", as_version=4)
    tests = {
        c.metadata["nbgrader"]["grade_id"]
        for c in nb.cells
        if c.metadata.get("nbgrader", {}).get("grade") and not c.metadata["nbgrader"].get("solution")
    }
    solutions = {c.metadata["nbgrader"]["grade_id"] for c in nb.cells if c.metadata.get("nbgrader", {}).get("solution")}
    assert {q.cell for q in exam01} == tests
    assert {q.solution for q in exam01} <= solutions


@pytest.mark.slow
def test_la_solucion_aprueba_y_cada_respuesta_erronea_pierde_sus_puntos(exam01):
    solution = examiner.solution_namespace(NB1)
    verdicts = _grade(exam01, solution)
    assert all(v.points == 1.0 for v in verdicts.values()), verdicts
    for function, source in nb01.WRONG.items():
        namespace = dict(solution)
        exec(source, namespace)  # noqa: S102 - la respuesta errónea del repositorio
        verdicts = _grade(exam01, namespace)
        lost = {cell for cell, v in verdicts.items() if v.points == 0}
        assert lost == set(nb01.BREAKS[function]), (function, verdicts)
        for cell in lost:
            assert verdicts[cell].message.startswith(function) and not verdicts[cell].message.endswith(": correcto")


def test_de_memoria_no_sirve(exam01):
    """Otra entrega recibe otras entradas: las respuestas de una no valen para otra."""
    key = b"k" * 32
    one = examiner.questions(examiner.load_exam(NB1), examiner.rng_for(key, NB1, "entrega-a"))
    again = examiner.questions(examiner.load_exam(NB1), examiner.rng_for(key, NB1, "entrega-a"))
    other = examiner.questions(examiner.load_exam(NB1), examiner.rng_for(key, NB1, "entrega-b"))
    as_json = [examiner.asks_json(q) for q in one]
    assert as_json == [examiner.asks_json(q) for q in again]
    assert as_json != [examiner.asks_json(q) for q in other]
    # Lo que contestaría la solución a las preguntas de «entrega-a», aprendido de memoria...
    solution = examiner.solution_namespace(NB1)
    memory = {}
    for ask in one[1].asks:  # full_ft_memory_bytes: números al azar
        try:
            memory[json.dumps([ask.args, ask.kwargs])] = solution["full_ft_memory_bytes"](*ask.args, **ask.kwargs)
        except ValueError:
            pass

    def from_memory(*args, **kwargs):
        return memory.get(json.dumps([list(args), kwargs]), 0)

    assert _grade(one[1:2], {"full_ft_memory_bytes": from_memory})["test_full_ft_memory_bytes"].points == 0  # (lanza)
    # ...no sirve para «entrega-b».
    assert _grade(other[1:2], {"full_ft_memory_bytes": from_memory})["test_full_ft_memory_bytes"].points == 0


def test_sin_respuestas_o_con_respuestas_rotas_es_cero(exam01):
    q = exam01[0]
    assert examiner.judge(NB1, q, None, 2.0).points == 0
    assert examiner.judge(NB1, q, [], 2.0).points == 0
    assert "no válida" in examiner.judge(NB1, q, ["[" * 100], 2.0).message
    # Respuestas falsificadas con el formato del recogedor (p. ej. enviadas por la sesión del núcleo).
    forged = [_payload({"$tupla": [0, 0]}).replace('"i": 0', f'"i": {i}') for i in range(len(q.asks))]
    assert examiner.judge(NB1, q, forged, 2.0).points == 0


def test_celda_visible_sin_pruebas_ocultas():
    source = "a = 1\n### BEGIN HIDDEN TESTS\nsecreto = 2\n### END HIDDEN TESTS\nb = 3"
    assert examiner.visible_source(source) == "a = 1\nb = 3"


def test_la_guardia_carga_el_recogedor():
    assert guard.COLLECTOR_MODULE == collector.MODULE_NAME
    assert (Path(guard.__file__).parent / "collector.py") == Path(collector.__file__)
    source = collector.call_source("[]")
    assert source.endswith("_sys.modules['curso_peft_recogedor'].answer('[]')") and collector.__file__ in source


# --- el examen nunca se publica --------------------------------------------------------------
def test_el_examen_nunca_se_publica(tmp_path):
    from helpers import course_files

    exams = sorted(ROOT.glob(f"solutions/*/{EXAM_FILE}"))
    assert exams, "ningún cuaderno tiene examen.py"
    assert sorted(ROOT.glob(f"notebooks/**/{EXAM_FILE}")) == []
    for path in exams:
        name = path.parent.name
        assert name in notebook_names()
        copy = course_files.copy_source(name, tmp_path / name)
        assert not (copy / EXAM_FILE).exists()
    # Lo que publica nbgrader (`make release` → notebooks/), generado de nuevo: sin examen.
    published = course_files.generate("*", release_dir=tmp_path / "publicado")
    assert sorted(published.rglob(EXAM_FILE)) == [], "nbgrader publica examen.py: falta en CourseDirectory.ignore"
