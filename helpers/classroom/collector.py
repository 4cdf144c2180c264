"""Recogedor: dentro del núcleo del alumnado, contesta las preguntas del examinador con datos.

El examinador (:mod:`helpers.classroom.examiner`, en el proceso del calificador) decide la nota;
este módulo solo **construye** las entradas que pide (modelos diminutos, tensores, números), llama a
las funciones del cuaderno y **codifica** lo que devuelven con un codificador estricto:

- ``None``, y los valores cuyo tipo es *exactamente* ``bool``, ``int``, ``float`` o ``str``;
- listas, tuplas y diccionarios de esos (tuplas y diccionarios, con una etiqueta);
- tensores de ``torch`` (``torch.Tensor`` o ``nn.Parameter`` exactos), en un bloque safetensors;
- una excepción, solo por el nombre de la clase de Python de la que hereda (``ValueError``...);
- cualquier otra cosa (una subclase de ``int`` con ``__eq__`` trucado, un objeto raro) se codifica
  como «no válida», sin llamar a ningún método suyo.

Cada respuesta sale del núcleo como un ``display_data`` con el tipo MIME :data:`MIME` (el
calificador lo recibe por ZeroMQ y lo acota como cualquier salida); el calificador no lee ningún
archivo de la caja. Nada de esto es de confianza: el código del alumnado corre en el mismo proceso y
puede cambiar este módulo o falsificar respuestas. Da igual: el examinador solo compara **datos**
con lo que calcula él mismo con la solución, con entradas que el núcleo no conoce de antemano.

El examinador usa las mismas funciones (:func:`build`, :func:`answer_one`) en su propio proceso
para calcular lo esperado con la solución, así las dos respuestas se codifican igual.

Este archivo se carga por su ruta dentro de la caja (como la guardia): solo usa la biblioteca
estándar y, al construir entradas, ``torch``, ``safetensors`` y ``helpers``.
"""

from __future__ import annotations

import base64
import copy
import json
import os

MODULE_NAME = "curso_peft_recogedor"
MIME = "application/vnd.curso-peft.respuesta+json"
FORMAT = 1
# Excepciones que se distinguen (la primera de la que hereda la lanzada; si ninguna, «Exception»).
EXCEPTIONS = (
    "NotImplementedError",
    "ValueError",
    "TypeError",
    "KeyError",
    "IndexError",
    "AttributeError",
    "NameError",
    "AssertionError",
    "RuntimeError",
    "ZeroDivisionError",
    "MemoryError",
    "RecursionError",
)
TENSOR_DTYPES = ("float32", "float64", "float16", "bfloat16", "int64", "int32", "int16", "int8", "uint8", "bool")
LAYER_KINDS = ("linear", "embedding", "layernorm", "relu", "same")


# --- entradas -------------------------------------------------------------------------------
_TINY: list = []


def _tiny():
    """El Llama diminuto del curso, cargado una vez por proceso (cada pregunta recibe una copia)."""
    if not _TINY:
        from helpers import models

        _TINY.append(models.load_model("tiny", verbose=False))
    return _TINY[0]


def _dtype(name: str):
    import torch

    if name not in TENSOR_DTYPES:
        raise ValueError(f"tipo de tensor no admitido: {name!r}")
    return getattr(torch, name)


def model_from_spec(spec: dict):
    """Un modelo a partir de su descripción (ver :class:`helpers.classroom.examiner.Model`)."""
    import torch
    from torch import nn

    kind = spec["tipo"]
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(int(spec.get("semilla", 0)))
        if kind == "tiny":
            model = copy.deepcopy(_tiny())
        elif kind == "red":
            layers = []
            for layer in spec["capas"]:
                name, args = layer[0], layer[1:]
                if name == "linear":
                    layers.append(nn.Linear(int(args[0]), int(args[1]), bias=bool(args[2]) if len(args) > 2 else True))
                elif name == "embedding":
                    layers.append(nn.Embedding(int(args[0]), int(args[1])))
                elif name == "layernorm":
                    layers.append(nn.LayerNorm(int(args[0])))
                elif name == "relu":
                    layers.append(nn.ReLU())
                elif name == "same":
                    layers.append(layers[int(args[0])])  # el mismo módulo otra vez (pesos compartidos)
                else:
                    raise ValueError(f"capa desconocida: {name!r}")
            model = nn.Sequential(*layers)
        else:
            raise ValueError(f"modelo desconocido: {kind!r}")
    for index, dtype in sorted(spec.get("tipos", {}).items()):
        model[int(index)].to(_dtype(dtype))
    for target, source in spec.get("atadas", []):
        dst_module, _, dst_attr = target.rpartition(".")
        src_module, _, src_attr = source.rpartition(".")
        setattr(model.get_submodule(dst_module), dst_attr, getattr(model.get_submodule(src_module), src_attr))
    frozen = list(spec.get("congeladas", []))
    for name, param in model.named_parameters(remove_duplicate=False):
        if any(name == f or name.startswith(f + ".") for f in frozen):
            param.requires_grad_(False)
    return model


def build(value):
    """Construye un argumento a partir de su descripción en JSON."""
    if isinstance(value, dict):
        if set(value) == {"$modelo"}:
            return model_from_spec(value["$modelo"])
        if set(value) == {"$tensor"}:
            import torch

            spec = value["$tensor"]
            generator = torch.Generator().manual_seed(int(spec["semilla"]))
            return torch.randn(*[int(n) for n in spec["forma"]], generator=generator).to(
                _dtype(spec.get("dtype", "float32"))
            )
        if set(value) == {"$tupla"}:
            return tuple(build(v) for v in value["$tupla"])
        raise ValueError(f"descripción desconocida: {sorted(value)}")
    if isinstance(value, list):
        return [build(v) for v in value]
    return value


# --- codificación ---------------------------------------------------------------------------
class _Encoder:
    def __init__(self):
        self.tensors: dict = {}

    def encode(self, value, depth: int = 0):
        kind = type(value)
        if depth > 32:
            return {"$no_valida": "demasiado anidada"}
        if value is None or kind in (bool, int, str):
            return value
        if kind is float:
            return {"$float": value.hex()}  # exacto, también inf y nan
        if kind is list:
            return [self.encode(v, depth + 1) for v in value]
        if kind is tuple:
            return {"$tupla": [self.encode(v, depth + 1) for v in value]}
        if kind is dict:
            return {"$dict": [[self.encode(k, depth + 1), self.encode(v, depth + 1)] for k, v in value.items()]}
        if kind is set or kind is frozenset:
            items = [self.encode(v, depth + 1) for v in value]
            return {"$conjunto": sorted(items, key=lambda x: json.dumps(x, sort_keys=True))}
        tensor = self._tensor(value)
        if tensor is not None:
            key = f"t{len(self.tensors)}"
            self.tensors[key] = tensor
            return {"$tensor": key}
        return {"$no_valida": f"{kind.__module__}.{kind.__qualname__}"[:80]}

    @staticmethod
    def _tensor(value):
        import sys

        torch = sys.modules.get("torch")
        if torch is None or type(value) not in (torch.Tensor, torch.nn.Parameter):
            return None
        return torch.Tensor.detach(value).cpu().contiguous().clone()

    def blob(self) -> str | None:
        if not self.tensors:
            return None
        from safetensors.torch import save

        return base64.b64encode(save(self.tensors)).decode("ascii")


def exception_name(exc: BaseException) -> str:
    import builtins

    for name in EXCEPTIONS:
        if isinstance(exc, getattr(builtins, name)):
            return name
    return "Exception"


def _state(model, what: str):
    """Lo que se lee del modelo tras la llamada (``then`` de la pregunta)."""
    if what == "requires_grad":
        return sorted(name for name, p in model.named_parameters() if p.requires_grad)
    raise ValueError(f"estado desconocido: {what!r}")


def answer_one(ask: dict, namespace: dict, index: int = 0) -> str:
    """Construye las entradas, llama a ``namespace[función]`` y devuelve la respuesta en JSON."""
    encoder = _Encoder()
    try:
        args = [build(a) for a in ask.get("args", [])]
        kwargs = {k: build(v) for k, v in ask.get("kwargs", {}).items()}
    except Exception as exc:  # noqa: BLE001 - un fallo al construir se dice, no se confunde con la respuesta
        return json.dumps({"formato": FORMAT, "i": index, "entrada": f"{type(exc).__name__}: {exc}"[:300]})
    try:
        value = namespace[ask["funcion"]](*args, **kwargs)
        result = {"valor": encoder.encode(value)}
    except BaseException as exc:  # noqa: BLE001 - la excepción del cuaderno es parte de la respuesta
        if isinstance(exc, (KeyboardInterrupt, SystemExit)):
            raise
        result = {"error": exception_name(exc)}
    then = ask.get("despues")
    if then:
        try:
            result["estado"] = encoder.encode(_state(args[0], then))
        except Exception as exc:  # noqa: BLE001
            result["estado"] = {"$no_valida": type(exc).__name__}
    return json.dumps({"formato": FORMAT, "i": index, **result, "tensores": encoder.blob()}, allow_nan=False)


def answer(asks_json: str) -> None:
    """En el núcleo: contesta cada pregunta de ``asks_json`` con un ``display_data`` propio."""
    from IPython import get_ipython
    from IPython.display import display

    namespace = get_ipython().user_ns
    for index, ask in enumerate(json.loads(asks_json)):
        display({MIME: answer_one(ask, namespace, index)}, raw=True)


def call_source(asks_json: str) -> str:
    """Código que el calificador envía al núcleo en lugar de la celda de pruebas. Con la caja, la
    guardia ya cargó el recogedor al arrancar; sin caja (``--sin-aislamiento``), se carga aquí."""
    path = os.path.abspath(__file__)
    return (
        f"import sys as _sys\n"
        f"if {MODULE_NAME!r} not in _sys.modules:\n"
        f"    import importlib.util as _util\n"
        f"    _spec = _util.spec_from_file_location({MODULE_NAME!r}, {path!r})\n"
        f"    _sys.modules[_spec.name] = _util.module_from_spec(_spec)\n"
        f"    _spec.loader.exec_module(_sys.modules[_spec.name])\n"
        f"_sys.modules[{MODULE_NAME!r}].answer({asks_json!r})"
    )
