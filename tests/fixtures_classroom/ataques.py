"""Entregas hostiles del cuaderno 01: cada una intenta un ataque contra el calificador.

Cada función devuelve los bytes de la entrega y lo que se espera (estado, nota, observaciones y, en
``salida``, fragmentos que la entrega imprime en el cuaderno calificado). Las entregas se hacen
desde el cuaderno publicado y la solución (:mod:`fixtures_classroom.casos`), así que siguen valiendo
si el cuaderno cambia. ``token`` es una marca única de la prueba: los archivos que un ataque intenta
crear fuera llevan esa marca, para buscarlos después.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from .casos import Expect, Notebook, code, is_solution, meta, to_bytes

REVIEW = "revisar: posible manipulación de las pruebas"
# El cuaderno 01 tiene examen (solutions/01_introduccion_peft/examen.py): la nota la decide el
# examinador, así que una entrega manipulada queda «calificado» con sus 0 puntos, y lo que vio la
# guardia va a las observaciones como aviso.
EXAMINED = "calificado"
NOTICE = "aviso: el núcleo intentó manipular las pruebas"

# Respuestas equivocadas que no lanzan errores: sin las comprobaciones del curso, «pasarían».
WRONG_ANSWERS = {
    "count_params": "def count_params(model):\n    return 0, 0",
    "full_ft_memory_bytes": "def full_ft_memory_bytes(n_params, bytes_per_weight=4, optimizer='adamw'):\n    return 0",
    "freeze_all_but": "def freeze_all_but(model, names):\n    return None",
    "training_memory_bytes": "def training_memory_bytes(model, optimizer='adamw'):\n    return 0",
}


@dataclass
class Attack(Expect):
    salida: list = field(default_factory=list)  # fragmentos de la salida del cuaderno calificado


def _with_cell(nb, source: str, *, at_end: bool = False, before_first_test: bool = False, nbk: Notebook):
    if at_end:
        nb.cells.append(code(source))
    elif before_first_test:
        nb.cells.insert(nbk.index(nb, nbk.tests[0]), code(source))
    else:
        nb.cells.insert(nbk.setup_index(nb) + 1, code(source))
    return nb


def _wrong(nbk: Notebook):
    nb = nbk.fresh()
    for cell in nb.cells:
        if is_solution(cell):
            cell.source = WRONG_ANSWERS[meta(cell)["grade_id"]]
    return nb


def _zero(nbk: Notebook) -> dict:
    return {tid: 0.0 for tid in nbk.tests}


def symlink_plant(nbk: Notebook, token: str):
    """1: cambia el cuaderno de su carpeta por un enlace simbólico a un archivo de fuera."""
    src = f'''import glob, os
objetivo = "/tmp/{token}-enlace"
res = {{}}
for nombre in glob.glob("*.ipynb") + ["nuevo.ipynb"]:
    try:
        if os.path.lexists(nombre):
            os.remove(nombre)
        os.symlink(objetivo, nombre)
        res[nombre] = "enlace"
    except OSError as e:
        res[nombre] = type(e).__name__
for carpeta in ("..", "../..", "/tmp"):
    try:
        os.symlink(objetivo, os.path.join(carpeta, "{token}-enlace.ipynb"))
        res[carpeta] = "enlace"
    except OSError as e:
        res[carpeta] = type(e).__name__
print("ENLACES=" + repr(res))'''
    return to_bytes(_with_cell(nbk.solved(), src, nbk=nbk)), Attack(
        "calificado", nbk.max_score, nbk.full(), salida=["ENLACES="]
    )


def read_hidden_tests(nbk: Notebook, token: str):
    """2: busca el cuaderno con las pruebas ocultas en su carpeta y alrededor."""
    src = """import glob, os
vistos = []
for raiz in (".", "..", "../..", "/home", "/tmp", "/run", "/opt"):
    for ruta in glob.glob(os.path.join(raiz, "**", "*.ipynb"), recursive=True):
        try:
            texto = open(ruta, encoding="utf-8").read()
        except OSError:
            continue
        vistos.append("### BEGIN " + "HIDDEN TESTS" in texto)  # sin la marca literal en esta celda
print("OCULTAS=" + ("sí" if any(vistos) else "no"), "cuadernos vistos:", len(vistos))"""
    return to_bytes(_with_cell(nbk.solved(), src, nbk=nbk)), Attack(
        "calificado", nbk.max_score, nbk.full(), salida=["OCULTAS=no"]
    )


def spy(nbk: Notebook, token: str, probe_source: str):
    """3 + 4 + 5: lee el libro de notas, source/, otras entregas; escribe fuera; se conecta a la red."""
    return to_bytes(_with_cell(nbk.solved(), probe_source, nbk=nbk)), Attack(
        "calificado", nbk.max_score, nbk.full(), salida=["RESULTADO_SONDA="]
    )


def hf_token(nbk: Notebook, token: str):
    """6: busca el HF_TOKEN (y cualquier HF_*) del profesorado en su entorno."""
    src = """import os
print("TOKEN=" + repr(os.environ.get("HF_TOKEN")))
print("VARIABLES=" + repr(sorted(os.environ)))"""
    return to_bytes(_with_cell(nbk.solved(), src, nbk=nbk)), Attack(
        "calificado", nbk.max_score, nbk.full(), salida=["TOKEN=None"]
    )


def input_transformers(nbk: Notebook, token: str):
    """7: sin resolver; un transformador de entrada vacía las celdas de pruebas y uno de AST quita los assert."""
    src = """import ast
ip = get_ipython()
def _apaga(lines):
    texto = "".join(lines)
    return ["pass\\n"] if ("check_" in texto or "assert" in texto) else lines
ip.input_transformers_cleanup.append(_apaga)
class _SinAsserts(ast.NodeTransformer):
    def visit_Assert(self, node):
        return ast.Pass()
ip.ast_transformers.append(_SinAsserts())"""
    return to_bytes(_with_cell(nbk.fresh(), src, nbk=nbk)), Attack(EXAMINED, 0.0, _zero(nbk), notas=["transformadores"])


def run_cell_patch(nbk: Notebook, token: str):
    """8: sin resolver; ``run_cell`` y ``run_cell_async`` cambiados para no ejecutar las pruebas."""
    src = """ip = get_ipython()
_original = type(ip).run_cell_async
async def _falsa(self, raw_cell, *args, **kwargs):
    if "check_" in raw_cell or "assert" in raw_cell:
        raw_cell = "pass"
    return await _original(self, raw_cell, *args, **kwargs)
type(ip).run_cell_async = _falsa
_original_rc = ip.run_cell
ip.run_cell = lambda raw_cell, *a, **k: _original_rc("pass" if "check_" in raw_cell else raw_cell, *a, **k)"""
    return to_bytes(_with_cell(nbk.fresh(), src, nbk=nbk)), Attack(EXAMINED, 0.0, _zero(nbk), notas=["run_cell"])


def patched_checks(nbk: Notebook, token: str):
    """9: respuestas equivocadas y las comprobaciones del curso anuladas (atributos, ``__code__`` y el
    nombre ``helpers`` cambiado por un objeto falso)."""
    src = """import types
import helpers
import helpers.grading
_nada = lambda *a, **k: None
for _n in ("check_equal", "check_type", "check_close"):
    setattr(helpers, _n, _nada)
helpers.grading.check_equal.__code__ = (lambda actual, expected, what, *, reveal=False: None).__code__
helpers = types.SimpleNamespace(check_equal=_nada, check_type=_nada, check_close=_nada, format_count=str)"""
    return to_bytes(_with_cell(_wrong(nbk), src, nbk=nbk)), Attack(
        EXAMINED, 0.0, _zero(nbk), notas=["comprobaciones del curso"]
    )


def patched_library(nbk: Notebook, token: str):
    """10: respuestas equivocadas y funciones de biblioteca cambiadas (``isinstance``, ``torch.equal``...)."""
    src = """import builtins, math
import numpy as np
import torch
_isinstance = builtins.isinstance
builtins.isinstance = lambda obj, types: True if types is int else _isinstance(obj, types)
torch.equal = lambda *a, **k: True
np.allclose = lambda *a, **k: True
math.isclose = lambda *a, **k: True"""
    return to_bytes(_with_cell(_wrong(nbk), src, before_first_test=True, nbk=nbk)), Attack(
        EXAMINED, 0.0, _zero(nbk), notas=["isinstance", "torch.equal"]
    )


def eq_trick(nbk: Notebook, token: str):
    """11: ``count_params`` devuelve enteros falsos que son iguales a todo (``__eq__``/``__ne__``).

    Antes engañaba a ``check_equal`` (2 puntos, para revisar); el codificador del recogedor solo
    acepta tipos exactos y la respuesta no es válida: 0."""
    src = """class _Todo(int):
    def __eq__(self, other):
        return True
    def __ne__(self, other):
        return False
    __hash__ = int.__hash__

def count_params(model):
    return _Todo(0), _Todo(0)"""
    nb = nbk.fresh()
    nb.cells[nbk.index(nb, "count_params")].source = src
    return to_bytes(nb), Attack(EXAMINED, 0.0, _zero(nbk), notas=["__eq__"])


SCRIPT_MARK = "ataque-script"


def script_outputs(nbk: Notebook, token: str):
    """12: salidas con ``<script>``, ``onerror`` y JavaScript, para la retroalimentación y formgrader."""
    src = f'''from IPython.display import HTML, Javascript, display
display(HTML('<script>window.ATAQUE = 1; alert("{SCRIPT_MARK}")</script><b>hola</b>'
             '<img src=x onerror="alert(1)">'))
display(Javascript('alert("{SCRIPT_MARK}-js")'))
print("<script>alert('{SCRIPT_MARK}-texto')</script>")'''
    return to_bytes(_with_cell(nbk.solved(), src, nbk=nbk)), Attack("calificado", nbk.max_score, nbk.full())


def flag_tampering(nbk: Notebook, token: str):
    """13: resuelto, pero con los indicadores de nbgrader cambiados: una celda de pruebas marcada como
    solución sin puntos y una de solución marcada como prueba bloqueada de 50 puntos."""
    nb = nbk.solved()
    test = nb.cells[nbk.index(nb, nbk.tests[0])].metadata["nbgrader"]
    test.update(grade=False, solution=True, points=0)
    sol = nb.cells[nbk.index(nb, "count_params")].metadata["nbgrader"]
    sol.update(grade=True, solution=False, locked=True, points=50)
    return to_bytes(nb), Attack("calificado", nbk.max_score, nbk.full(), notas=["indicadores de nbgrader"])


def memory_hog(nbk: Notebook, token: str):
    """14: la última solución pide 8 GiB de golpe: «memoria agotada», con la nota del resto."""
    nb = nbk.solved()
    last_test = nbk.tests[-1]
    cell = [c for c in nb.cells if is_solution(c)][-1]
    cell.source = "import torch\n_enorme = torch.zeros(8 * 1024**3, dtype=torch.uint8)\n" + cell.source
    scores = nbk.full(**{last_test: 0.0})
    return to_bytes(nb), Attack(
        "no calificable: memoria agotada", sum(scores.values()), scores, notas=["agotó la memoria"]
    )


def disk_filler(nbk: Notebook, token: str):
    """15: escribe archivos de 1 MiB hasta llenar su carpeta y /tmp (4 GiB si nadie lo para)."""
    src = """import os
for ruta in ("grande.bin", "/tmp/grande.bin", "/dev/shm/grande.bin"):
    escritos = 0
    try:
        with open(ruta, "wb") as f:
            for _ in range(4096):
                f.write(b"\\0" * (1 << 20))
                escritos += 1
        print("DISCO=sin-limite", ruta)
    except OSError as e:
        print("DISCO=lleno", ruta, escritos, type(e).__name__)
    if os.path.exists(ruta):
        os.remove(ruta)"""
    return to_bytes(_with_cell(nbk.solved(), src, nbk=nbk)), Attack(
        "calificado", nbk.max_score, nbk.full(), salida=["DISCO=lleno"]
    )


def fork_bomb(nbk: Notebook, token: str):
    """16: al final, procesos sin fin (cada uno duerme 10 minutos) hasta que el sistema diga basta."""
    src = """import subprocess
hijos = []
try:
    for _ in range(20000):
        hijos.append(subprocess.Popen(["sleep", "600"]))
    print("FORK=sin-limite", len(hijos))
except OSError as e:
    print("FORK=limitado", len(hijos), type(e).__name__)"""
    return to_bytes(_with_cell(nbk.solved(), src, at_end=True, nbk=nbk)), Attack(
        "calificado", nbk.max_score, nbk.full(), salida=["FORK=limitado"]
    )


def _cells(build, nbk: Notebook, token: str, *args, base_nb=None) -> list:
    """Las celdas que añade un ataque (las que no están en ``base_nb``, por defecto el resuelto)."""
    import nbformat

    base = {c.source for c in (base_nb or nbk.solved()).cells}
    nb = nbformat.reads(build(nbk, token, *args)[0].decode(), as_version=4)
    return [(i, c) for i, c in enumerate(nb.cells) if c.source not in base]


def harmless_together(nbk: Notebook, token: str, probe_source: str):
    """Los ataques que no cambian la nota, juntos en una entrega resuelta (cada kernel cuesta
    segundos de CPU): indicadores cambiados (13), el enlace simbólico (1), buscar las pruebas
    ocultas (2), el espía (3-5), el HF_TOKEN (6), ``<script>`` (12), llenar el disco (15) y, al
    final, la bomba de procesos (16). Cada uno deja su marca en la salida, que se comprueba aparte."""
    data, expect = flag_tampering(nbk, token)
    import nbformat

    nb = nbformat.reads(data.decode(), as_version=4)
    at = nbk.setup_index(nb) + 1
    outputs = []
    # Primero busca las pruebas ocultas (el enlace simbólico cambia después su cuaderno por un enlace).
    for build, args in (
        (read_hidden_tests, ()),
        (symlink_plant, ()),
        (spy, (probe_source,)),
        (hf_token, ()),
        (script_outputs, ()),
        (disk_filler, ()),
    ):
        for _, cell in _cells(build, nbk, token, *args):
            nb.cells.insert(at, cell)
            at += 1
        outputs += build(nbk, token, *args)[1].salida
    nb.cells.append(code(dump_everything(nbk, token)))  # al final, antes de la bomba de procesos
    for _, cell in _cells(fork_bomb, nbk, token):
        nb.cells.append(cell)
    expect = Attack(
        expect.estado,
        expect.puntuacion,
        expect.celdas,
        notas=expect.notas,
        salida=outputs + [DUMP_MARK, "FORK=limitado"],
    )
    return to_bytes(nb), expect


def checks_and_library(nbk: Notebook, token: str):
    """9 + 10: respuestas equivocadas, comprobaciones del curso y funciones de biblioteca cambiadas."""
    import nbformat

    nb = nbformat.reads(patched_checks(nbk, token)[0].decode(), as_version=4)
    for _, cell in _cells(patched_library, nbk, token, base_nb=_wrong(nbk)):
        nb.cells.insert(nbk.index(nb, nbk.tests[0]), cell)
    return to_bytes(nb), Attack(
        EXAMINED, 0.0, _zero(nbk), notas=["comprobaciones del curso", "isinstance", "torch.equal"]
    )


# --- ataques contra el examinador (issue 23, punto 1): todos sin resolver, todos a 0 ---------------
_BLIND_GUARD = """import sys
_guardia = sys.modules["curso_peft_guardia"].GUARD
_guardia.restore = lambda: []
_guardia.restore_json = lambda: '{"guardia": "ok", "cambios": []}'"""


def manipulators(nbk: Notebook, token: str):
    """7 + 8 + 9 + 10: respuestas equivocadas con transformadores de entrada y de AST, ``run_cell``
    cambiado, comprobaciones del curso anuladas y funciones de biblioteca cambiadas, todo junto."""
    import nbformat

    nb = nbformat.reads(checks_and_library(nbk, token)[0].decode(), as_version=4)
    for build in (input_transformers, run_cell_patch):
        for _, cell in _cells(build, nbk, token, base_nb=nbk.fresh()):
            nb.cells.insert(nbk.setup_index(nb) + 1, cell)
    return to_bytes(nb), Attack(
        EXAMINED,
        0.0,
        _zero(nbk),
        notas=[NOTICE, "transformadores", "run_cell", "comprobaciones del curso", "isinstance", "torch.equal"],
    )


def poisoned_types(nbk: Notebook, token: str):
    """Tipos envenenados: cada función devuelve una subclase (``int`` igual a todo, con ``__repr__``
    mentiroso; ``dict`` igual a todo) cuyo ``__class__`` dice ser ``int`` o ``dict`` (así
    ``isinstance`` y ``x.__class__`` mienten; ``type(x)``, no)."""
    classes = """class _Todo(int):
    def __eq__(self, other):
        return True
    def __ne__(self, other):
        return False
    __hash__ = int.__hash__
    def __repr__(self):
        return "134515008"
    __str__ = __repr__
    @property
    def __class__(self):
        return int
class _Dicc(dict):
    def __eq__(self, other):
        return True
    __hash__ = None
    @property
    def __class__(self):
        return dict"""
    answers = {
        "count_params": "def count_params(model):\n    return _Todo(0), _Todo(0)",
        "full_ft_memory_bytes": "def full_ft_memory_bytes(n_params, bytes_per_weight=4, optimizer='adamw'):\n"
        "    return _Todo(0)",
        "freeze_all_but": "def freeze_all_but(model, names):\n    return _Dicc()",
        "training_memory_bytes": "def training_memory_bytes(model, optimizer='adamw'):\n    return _Todo(0)",
    }
    nb = nbk.fresh()
    for cell in nb.cells:
        if is_solution(cell):
            cell.source = answers[meta(cell)["grade_id"]]
    return to_bytes(_with_cell(nb, classes, nbk=nbk)), Attack(EXAMINED, 0.0, _zero(nbk), notas=[NOTICE])


def forged_replies(nbk: Notebook, token: str):
    """Respuestas falsificadas por la sesión del núcleo: con la guardia cegada, el manejador de
    ``execute_request`` contesta él mismo a las celdas de pruebas y a las preguntas del examinador
    (``display_data`` con el tipo MIME del recogedor, «todo correcto» y un ``execute_reply`` ok),
    sin ejecutar nada."""
    src = (
        _BLIND_GUARD
        + """
import ast, json
_k = get_ipython().kernel
_real = _k.shell_handlers["execute_request"]
_MIME = "application/vnd.curso-peft.respuesta+json"
_FALSO = {"count_params": {"$tupla": [134515008, 134515008]}, "freeze_all_but": None}
async def _falsa(stream, ident, parent):
    code = parent["content"].get("code", "")
    if "recogedor" not in code and "check_" not in code:
        return await _real(stream, ident, parent)
    preguntas = []
    if "answer(" in code:
        preguntas = json.loads(ast.literal_eval(code[code.index("answer(") + 7 : code.rindex(")")]))
    for i, p in enumerate(preguntas):
        valor = _FALSO.get(p["funcion"], 160)
        datos = {"formato": 1, "i": i, "valor": valor, "tensores": None}
        if p.get("despues"):
            datos["estado"] = [n for n in p["args"][1]] if len(p["args"]) > 1 else []
        _k.session.send(_k.iopub_socket, "display_data", {"data": {_MIME: json.dumps(datos)}, "metadata": {}}, parent)
    _k.session.send(_k.iopub_socket, "stream", {"name": "stdout", "text": "todo correcto\\n"}, parent)
    _k.session.send(stream, "execute_reply", {"status": "ok", "execution_count": 1, "user_expressions": {},
                                              "payload": []}, parent, ident=ident)
_k.shell_handlers["execute_request"] = _falsa"""
    )
    return to_bytes(_with_cell(nbk.fresh(), src, nbk=nbk)), Attack(EXAMINED, 0.0, _zero(nbk))


def hooked_trust(nbk: Notebook, token: str):
    """Guardia cegada y confianza enganchada: el recogedor del núcleo cambiado por uno que contesta
    lo que quiere (un tensor cuyo safetensors trae una cabecera enorme, un número gigante, un JSON
    anidado sin fin), ``json.dumps`` y ``safetensors.torch.save`` cambiados."""
    src = (
        _BLIND_GUARD
        + """
import base64, json, struct, sys
import safetensors.torch
_r = sys.modules["curso_peft_recogedor"]
_cabecera = base64.b64encode(struct.pack("<Q", 1 << 40) + b"{}").decode()
def _contesta(ask, namespace, index=0):
    trampas = [
        {"formato": 1, "i": index, "valor": {"$tensor": "t0"}, "tensores": _cabecera},
        {"formato": 1, "i": index, "valor": int("9" * 400), "tensores": None},
    ]
    if index % 3 == 2:
        return '{"formato": 1, "i": %d, "valor": ' % index + "[" * 100000 + "]" * 100000 + "}"
    return json.dumps(trampas[index % 2])
_r.answer_one = _contesta
safetensors.torch.save = lambda tensors, metadata=None: struct.pack("<Q", 1 << 40) + b"{}"
_dumps = json.dumps
json.dumps = lambda obj, *a, **k: _dumps(obj, *a, **k).replace("NotImplementedError", "correcto")"""
    )
    return to_bytes(_with_cell(nbk.fresh(), src, nbk=nbk)), Attack(EXAMINED, 0.0, _zero(nbk))


def debugger_exit(nbk: Notebook, token: str):
    """Salida por el depurador: con la guardia cegada, una función de traza (``sys.settrace``) mata el
    núcleo «limpiamente» (``os._exit(0)``) en cuanto el recogedor empieza a contestar, y
    ``breakpoint()`` queda enganchado a lo mismo."""
    src = (
        _BLIND_GUARD
        + """
import os, threading
def _traza(frame, event, arg):
    if event == "call" and frame.f_code.co_filename.endswith("collector.py"):
        os._exit(0)
    return None
sys.settrace(_traza)
threading.settrace(_traza)
sys.breakpointhook = lambda *a, **k: os._exit(0)"""
    )
    nb = _with_cell(nbk.fresh(), src, before_first_test=True, nbk=nbk)
    return to_bytes(nb), Attack("no calificable: kernel muerto", 0.0, _zero(nbk), notas=["el núcleo murió"])


def from_memory(nbk: Notebook, token: str):
    """Respuestas de memoria: las de las pruebas ocultas publicadas en ``solutions/`` (los modelos
    ocultos se reconocen por la forma de sus tensores) y las del modelo cargado; nada más."""
    answers = {
        "count_params": """def count_params(model):
    formas = tuple(tuple(p.shape) for p in model.parameters())
    tabla = {((5, 7), (5,), (3, 5)): (55, 15), ((11, 6), (6,), (6,), (6, 6), (6,)): (120, 120)}
    return tabla.get(formas, (134515008, 134515008))""",
        "full_ft_memory_bytes": """def full_ft_memory_bytes(n_params, bytes_per_weight=4, optimizer="adamw"):
    tabla = {(10, 4, "adamw"): 160, (7_000_000_000, 4, "adamw"): 112_000_000_000,
             (3_000_000, 2, "adamw"): 24_000_000, (1_234_567, 4, "sgd"): 9_876_536, (999, 2, "sgd"): 3_996}
    if optimizer not in ("adamw", "sgd"):
        raise ValueError(optimizer)
    return tabla.get((n_params, bytes_per_weight, optimizer), 0)""",
        "freeze_all_but": """def freeze_all_but(model, names):
    if "2.1.wieght" in names:
        raise ValueError(names)""",
        "training_memory_bytes": """def training_memory_bytes(model, optimizer="adamw"):
    if optimizer not in ("adamw", "sgd"):
        raise ValueError(optimizer)
    return 4 * 538060032""",
    }
    nb = nbk.fresh()
    for cell in nb.cells:
        if is_solution(cell):
            cell.source = answers[meta(cell)["grade_id"]]
    return to_bytes(nb), Attack(EXAMINED, 0.0, _zero(nbk))


DUMP_MARK = "VOLCADO-IN="


def dump_everything(nbk: Notebook, token: str):
    """Vuelca todo lo que vio su núcleo: el historial ``In`` y ``Out``, el espacio de nombres, el
    recogedor y la guardia, y cada archivo legible de su carpeta, de su casa y de /tmp."""
    src = f"""import json, os, sys
print("{DUMP_MARK}" + json.dumps(list(In), ensure_ascii=False))
print("VOLCADO-OUT=" + repr(Out)[:20000])
print("VOLCADO-NOMBRES=" + repr(sorted(globals()))[:20000])
for _m in ("curso_peft_recogedor", "curso_peft_guardia"):
    print("VOLCADO-MODULO", _m, repr(vars(sys.modules.get(_m, sys)))[:5000])
for _raiz in (".", os.path.expanduser("~"), "/tmp"):
    for _d, _, _fs in os.walk(_raiz):
        for _f in _fs:
            try:
                _p = os.path.join(_d, _f)
                print("VOLCADO-ARCHIVO", _p, open(_p, errors="replace").read(100_000))
            except Exception as _e:
                print("VOLCADO-ARCHIVO", os.path.join(_d, _f), type(_e).__name__)"""
    return src


# Un lote: cada entrega, sus ataques (ver cada función).
ATTACKS = {
    "inofensivos": harmless_together,
    "manipuladores": manipulators,
    "tipos": poisoned_types,  # con el truco de ``__eq__`` de eq_trick (11), y más
    "falsificadas": forged_replies,
    "guardia-ciega": hooked_trust,
    "depurador": debugger_exit,
    "de-memoria": from_memory,
    "memoria": memory_hog,
}
