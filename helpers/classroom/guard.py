"""Guardia dentro del núcleo del alumnado: deja las pruebas como estaban al arrancar.

El núcleo de cada entrega arranca con :func:`main` (en vez de ``ipykernel_launcher``): antes de
ejecutar nada del alumnado guarda una referencia a lo que usan las celdas de pruebas (los
transformadores de entrada y de AST de IPython, sus eventos, ``run_cell`` y compañía, el
manejador de ``execute_request``, ``helpers.check_*`` y funciones de biblioteca como
``torch.equal`` o ``np.allclose``). Antes de cada celda de pruebas el calificador llama a
:meth:`Guard.restore` (por ``user_expressions``, que no pasa por los transformadores de entrada):
lo devuelve todo a ese estado y contesta qué había cambiado. El calificador lo anota como
«revisar: posible manipulación de las pruebas (...)».

En un cuaderno con examen (``solutions/<nb>/examen.py``) la nota la decide el examinador
(:mod:`helpers.classroom.examiner`) y lo que vea la guardia es solo un aviso; al arrancar, la guardia
carga también el recogedor que contesta sus preguntas (:mod:`helpers.classroom.collector`).

Esto es **detección**, no aislamiento: el código del alumnado corre en el mismo proceso y quien se
empeñe puede engañar a la guardia; por eso el calificador también examina el código entregado
(:mod:`helpers.classroom.tamper`) y, si la guardia no contesta, lo marca igual. Lo que sí está
garantizado (la máquina y las demás entregas) lo da la caja de arena, no esta guardia.

Este archivo se carga por su ruta dentro de la caja: solo usa la biblioteca estándar, IPython e
ipykernel (``helpers``, ``torch`` y ``numpy`` si están instalados).
"""

from __future__ import annotations

import builtins
import importlib
import json
import sys
import threading
import types

MODULE_NAME = "curso_peft_guardia"
# Lo que evalúa el calificador (en ``user_expressions``) antes de cada celda de pruebas.
RESTORE_EXPRESSION = f"__import__('sys').modules[{MODULE_NAME!r}].GUARD.restore_json()"

SHELL_METHODS = (
    "run_cell",
    "run_cell_async",
    "_run_cell",
    "run_ast_nodes",
    "run_code",
    "transform_cell",
    "transform_ast",
    "showtraceback",
    "_showtraceback",
    "showsyntaxerror",
    "user_expressions",
    "should_run_async",
    "ex",
    "ev",
    "set_custom_exc",
)
KERNEL_METHODS = ("do_execute", "execute_request", "dispatch_shell", "process_one", "send_response")
TRANSFORMER_LISTS = (
    ("input_transformers_cleanup", "transformadores de entrada"),
    ("input_transformers_post", "transformadores de entrada"),
    ("ast_transformers", "transformadores AST"),
)
MANAGER_LISTS = ("cleanup_transforms", "line_transforms", "token_transformers")
# Funciones de biblioteca en las que confían las pruebas (módulo.atributo).
LIBRARY = (
    "torch.equal",
    "torch.allclose",
    "torch.isclose",
    "torch.isfinite",
    "torch.testing.assert_close",
    "numpy.allclose",
    "numpy.isclose",
    "numpy.array_equal",
    "numpy.isfinite",
    "numpy.testing.assert_allclose",
    "numpy.testing.assert_array_equal",
    "numpy.testing.assert_equal",
    "math.isclose",
    "math.isfinite",
    "math.isnan",
    "math.isinf",
)
BUILTINS = (
    "isinstance",
    "issubclass",
    "len",
    "sum",
    "abs",
    "all",
    "any",
    "round",
    "min",
    "max",
    "sorted",
    "set",
    "dict",
    "tuple",
    "list",
    "int",
    "float",
    "str",
    "bool",
    "type",
    "getattr",
    "hasattr",
    "repr",
    "range",
    "zip",
    "enumerate",
    "map",
    "iter",
    "next",
    "print",
    "AssertionError",
    "ValueError",
    "TypeError",
    "Exception",
    "__import__",
)
CLASS_METHODS = {
    "torch.Tensor": ("__eq__", "__ne__", "equal", "allclose", "numel", "element_size", "item", "tolist", "__bool__"),
    "torch.nn.Module": (
        "parameters",
        "named_parameters",
        "buffers",
        "named_buffers",
        "modules",
        "named_modules",
        "children",
        "requires_grad_",
        "__call__",
    ),
}
# Nombres del cuaderno que deben seguir siendo esos módulos.
ALIASES = {"helpers": "helpers", "torch": "torch", "nn": "torch.nn", "np": "numpy", "numpy": "numpy", "math": "math"}
TRUSTED_HOOK_MODULES = ("IPython", "ipykernel", "matplotlib", "matplotlib_inline", "comm", "ipywidgets", "jupyter")
_MISSING = object()


def _resolve(dotted: str):
    """(objeto que tiene el atributo, nombre del atributo) para ``"torch.testing.assert_close"``."""
    module, _, attr = dotted.rpartition(".")
    parts = module.split(".")
    obj = sys.modules.get(parts[0])
    for part in parts[1:]:
        obj = getattr(obj, part, None) if obj is not None else None
    return obj, attr


def _put_back(cls: type, name: str, value) -> bool:
    """Deja ``cls.<name>`` como estaba (o sin él); True si había cambiado."""
    if cls.__dict__.get(name, _MISSING) is value:
        return False
    if value is _MISSING:
        delattr(cls, name)
    else:
        setattr(cls, name, value)
    return True


def _hook_is_trusted(callback) -> bool:
    owner = getattr(callback, "__self__", None)
    module = getattr(callback, "__module__", None) or getattr(type(owner), "__module__", "") or ""
    return module.startswith(TRUSTED_HOOK_MODULES)


class Guard:
    """Foto de lo que usan las pruebas, tomada al arrancar el núcleo, y su restauración."""

    def __init__(self, shell, kernel):
        self.shell, self.kernel = shell, kernel
        for name in ("torch", "numpy", "helpers.grading"):
            try:
                importlib.import_module(name)
            except Exception:  # noqa: BLE001 - un cuaderno sin torch también se califica
                pass
        self.lists = [
            (shell, attr, list(getattr(shell, attr)), what)
            for attr, what in TRANSFORMER_LISTS
            if isinstance(getattr(shell, attr, None), list)
        ]
        self.manager = getattr(shell, "input_transformer_manager", None)
        if self.manager is not None:
            self.lists += [
                (self.manager, attr, list(getattr(self.manager, attr)), "transformadores de entrada")
                for attr in MANAGER_LISTS
                if isinstance(getattr(self.manager, attr, None), list)
            ]
        self.events = shell.events
        self.callbacks = {event: list(cbs) for event, cbs in shell.events.callbacks.items()}
        self.methods = self._methods(shell, SHELL_METHODS, "métodos del intérprete")
        self.methods += self._methods(kernel, KERNEL_METHODS, "ejecución del núcleo")
        self.custom_exc = (shell.custom_exceptions, shell.CustomTB)
        self.excepthook = sys.excepthook
        self.shell_handlers = dict(getattr(kernel, "shell_handlers", {}))
        self.library = [(dotted, *_resolve(dotted)) for dotted in LIBRARY]
        self.library = [
            (d, obj, attr, getattr(obj, attr))
            for d, obj, attr in self.library
            if obj is not None and hasattr(obj, attr)
        ]
        self.builtins = {name: getattr(builtins, name) for name in BUILTINS}
        self.classes = []
        for dotted, names in CLASS_METHODS.items():
            cls, attr = _resolve(dotted)
            cls = getattr(cls, attr, None) if cls is not None else None
            if isinstance(cls, type):
                self.classes.append((dotted, cls, {n: cls.__dict__.get(n, _MISSING) for n in names}))
        self.modules = {
            name: sys.modules[name]
            for name in set(ALIASES.values()) | {"helpers.grading", "builtins"}
            if name in sys.modules
        }
        grading = self.modules.get("helpers.grading")
        self.checks = {}
        if grading is not None:
            for name, func in vars(grading).items():
                if name.startswith("check_") and isinstance(func, types.FunctionType):
                    self.checks[name] = (func, func.__code__, func.__defaults__, func.__kwdefaults__)

    @staticmethod
    def _methods(obj, names, what):
        saved = []
        for name in names:
            per_class = [(cls, cls.__dict__.get(name, _MISSING)) for cls in type(obj).__mro__]
            saved.append((obj, name, obj.__dict__.get(name, _MISSING), per_class, what))
        return saved

    # --- restauración --------------------------------------------------------------------
    def restore(self) -> list[str]:
        """Lo devuelve todo a la foto del arranque; devuelve qué había cambiado (en español).

        Cada parte se restaura por separado: si una falla, las demás se restauran igual y el fallo
        se anota (algo impide restaurarla)."""
        changed: list[str] = []

        def note(text: str) -> None:
            if text not in changed:
                changed.append(text)

        for step in (self._restore_shell, self._restore_library, self._restore_checks, self._restore_namespace):
            try:
                step(note)
            except Exception as exc:  # noqa: BLE001 - se anota y se sigue
                note(f"no se pudo restaurar {step.__name__.removeprefix('_restore_')} ({type(exc).__name__})")
        return changed

    def _restore_shell(self, note) -> None:
        shell = self.shell
        if getattr(shell, "input_transformer_manager", None) is not self.manager:
            shell.input_transformer_manager = self.manager
            note("transformadores de entrada")
        for owner, attr, saved, what in self.lists:
            current = getattr(owner, attr, None)
            if current != saved:
                if isinstance(current, list):
                    current[:] = saved  # algunas son propiedades sin «setter» (p. ej. input_transformers_cleanup)
                else:
                    setattr(owner, attr, list(saved))
                note(what)
        if shell.events is not self.events:
            shell.events = self.events
            note("eventos de IPython")
        for event, cbs in list(self.events.callbacks.items()):
            keep = [cb for cb in cbs if cb in self.callbacks.get(event, []) or _hook_is_trusted(cb)]
            if keep != cbs:
                cbs[:] = keep
                note(f"eventos de IPython ({event})")
        for obj, name, own, per_class, what in self.methods:
            current = obj.__dict__.get(name, _MISSING)
            if current is not own:
                if own is _MISSING:
                    del obj.__dict__[name]
                else:
                    obj.__dict__[name] = own
                note(f"{what} ({name})")
            for cls, value in per_class:
                if _put_back(cls, name, value):
                    note(f"{what} ({name})")
        if (shell.custom_exceptions, shell.CustomTB) != self.custom_exc:
            shell.custom_exceptions, shell.CustomTB = self.custom_exc
            note("trazas de error (set_custom_exc)")
        if sys.excepthook is not self.excepthook:
            sys.excepthook = self.excepthook
            note("trazas de error (sys.excepthook)")
        handlers = getattr(self.kernel, "shell_handlers", None)
        if isinstance(handlers, dict) and handlers != self.shell_handlers:
            handlers.clear()
            handlers.update(self.shell_handlers)
            note("ejecución del núcleo (shell_handlers)")
        if sys.gettrace() is not None or sys.getprofile() is not None:
            sys.settrace(None)
            sys.setprofile(None)
            threading.settrace(None)
            note("trazado de la ejecución (sys.settrace)")
        for name, module in self.modules.items():
            if sys.modules.get(name) is not module:
                sys.modules[name] = module
                note(f"módulos cargados (sys.modules[{name!r}])")

    def _restore_library(self, note) -> None:
        for dotted, obj, attr, value in self.library:
            if getattr(obj, attr, _MISSING) is not value:
                setattr(obj, attr, value)
                note(f"funciones de biblioteca ({dotted})")
        for name, value in self.builtins.items():
            if getattr(builtins, name, _MISSING) is not value:
                setattr(builtins, name, value)
                note(f"funciones de Python ({name})")
        for dotted, cls, saved in self.classes:
            for name, value in saved.items():
                if _put_back(cls, name, value):
                    note(f"métodos de {dotted} ({name})")

    def _restore_checks(self, note) -> None:
        owners = [m for m in (self.modules.get("helpers.grading"), self.modules.get("helpers")) if m is not None]
        for name, (func, code, defaults, kwdefaults) in self.checks.items():
            if (func.__code__, func.__defaults__, func.__kwdefaults__) != (code, defaults, kwdefaults):
                func.__code__, func.__defaults__, func.__kwdefaults__ = code, defaults, kwdefaults
                note(f"comprobaciones del curso (helpers.{name})")
            for owner in owners:
                if owner.__dict__.get(name, func) is not func:
                    setattr(owner, name, func)
                    note(f"comprobaciones del curso (helpers.{name})")

    def _restore_namespace(self, note) -> None:
        user_ns = self.shell.user_ns
        for alias, module_name in ALIASES.items():
            module = self.modules.get(module_name) or sys.modules.get(module_name)
            if (
                alias in user_ns
                and module is not None
                and user_ns[alias] is not module
                and (isinstance(user_ns[alias], types.ModuleType) or alias == "helpers")
            ):
                user_ns[alias] = module
                note(f"nombres de módulos redefinidos ({alias})")
        for name, value in self.builtins.items():
            if callable(user_ns.get(name)) and user_ns[name] is not value:
                del user_ns[name]
                note(f"funciones de Python redefinidas ({name})")

    def restore_json(self) -> str:
        return json.dumps({"guardia": "ok", "cambios": self.restore()}, ensure_ascii=False)


GUARD: Guard | None = None


COLLECTOR_MODULE = "curso_peft_recogedor"


def load_collector() -> None:
    """Carga el recogedor del examinador (``collector.py``, al lado de este archivo) por su ruta."""
    import importlib.util
    import os

    path = os.path.join(os.path.dirname(os.path.abspath(__file__)), "collector.py")
    spec = importlib.util.spec_from_file_location(COLLECTOR_MODULE, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[COLLECTOR_MODULE] = module
    spec.loader.exec_module(module)


def main(argv: list[str]) -> None:
    """Arranca el núcleo de IPython con la guardia puesta antes de cualquier código del alumnado, y
    con el recogedor que contesta las preguntas del examinador."""
    global GUARD
    from ipykernel.kernelapp import IPKernelApp

    app = IPKernelApp.instance()
    app.initialize(argv)
    GUARD = Guard(app.shell, app.kernel)
    load_collector()
    app.start()


BOOT = (
    "import importlib.util, sys; "
    "s = importlib.util.spec_from_file_location({name!r}, {path!r}); m = importlib.util.module_from_spec(s); "
    "sys.modules[s.name] = m; s.loader.exec_module(m); m.main(sys.argv[1:])"
)


def boot_command(python: str) -> list[str]:
    """Orden que arranca el núcleo con la guardia (se le añade ``-f <archivo de conexión>``)."""
    return [python, "-c", BOOT.format(name=MODULE_NAME, path=__file__)]
