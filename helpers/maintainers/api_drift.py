"""Guardia contra la deriva de la API de ``trl``, ``peft``, ``transformers`` y ``bitsandbytes``.

Estas bibliotecas cambian deprisa: un argumento que ayer existía (el clásico,
``SFTTrainer(tokenizer=..., max_seq_length=...)``) hoy da un ``TypeError`` o, peor, se ignora en
silencio. Este módulo lee **sin ejecutar nada** (con ``ast``) las celdas de código de los cuadernos
y los módulos de ``helpers``, resuelve los nombres importados de esas bibliotecas y comprueba cada
argumento con nombre contra la firma instalada (``inspect.signature`` y, en las configuraciones,
los campos del *dataclass*).

Uso: ``python -m helpers.maintainers.api_drift`` imprime el informe y termina con código 1 si algo no cuadra.

Reglas, de más estricta a menos:

- firma sin ``**kwargs``: el argumento tiene que ser un parámetro (o un campo del *dataclass*);
- ``from_pretrained`` de un modelo de ``transformers``: parámetros de
  ``PreTrainedModel.from_pretrained``, las claves que su código saca de ``kwargs`` y los
  atributos de la configuración de los modelos del curso (Llama); cualquier otra cosa acaba en un
  ``TypeError`` al construir el modelo;
- configuraciones de cuantización (``BitsAndBytesConfig``...): solo sus parámetros; el resto se
  ignoraría en silencio;
- funciones de ``helpers`` que reenvían ``**kwargs`` (:data:`FORWARDS`): se comprueba contra el
  destino (p. ej. ``helpers.sft_config(**extra)`` contra ``trl.SFTConfig``);
- cualquier otra firma con ``**kwargs``: vale si su código lee esa clave de ``kwargs``; si no,
  queda como «sin comprobar» (no es un error: esas funciones aceptan claves libres).
"""

from __future__ import annotations

import ast
import dataclasses
import functools
import importlib
import inspect
import json
import re
import sys
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("trl", "peft", "transformers", "bitsandbytes")
ROOTS = PACKAGES + ("helpers",)
INSTANCE = "()"  # marca en una ruta: «una instancia de la clase anterior»
UNPARSABLE = "<sin analizar>"  # destino de un uso que marca código que no se pudo analizar


@functools.cache
def _module_builders(module: str) -> dict[str, tuple[set[str], set[str]]]:
    """Las funciones de un módulo de helpers que devuelven un ``dict(...)`` (ver ``_built_keys``)."""
    source = ROOT.joinpath(*module.split(".")).with_suffix(".py")
    if not source.exists():
        return {}
    collector = _Collector(module)
    collector._find_builders(ast.parse(source.read_text(encoding="utf-8")))
    return collector.builders


# Funciones de helpers cuyo ``**kwargs`` va entero a otra función o clase.
FORWARDS: dict[str, tuple[str, ...]] = {
    "helpers.training.sft_config": ("trl.SFTConfig",),
    "helpers.training.run_sft": ("helpers.training.sft_config",),
    "helpers.models.load_model": ("transformers.AutoModelForCausalLM.from_pretrained",),
    "helpers.models.load_model_and_tokenizer": ("helpers.models.load_model",),
}


@dataclass(frozen=True)
class KeywordUse:
    """Un argumento con nombre pasado a una función o clase de las bibliotecas vigiladas."""

    target: str  # ruta con puntos, p. ej. "trl.SFTTrainer" o "trl.SFTTrainer().train"
    keyword: str
    where: str  # archivo, celda y línea


@dataclass(frozen=True)
class Finding:
    use: KeywordUse
    message: str

    def __str__(self) -> str:
        return f"{self.use.where}: {self.message}"


@dataclass
class Report:
    uses: list[KeywordUse]
    errors: list[Finding]
    unchecked: list[KeywordUse]


class _NotResolvable(Exception):
    """La ruta pasa por algo cuyo tipo no se conoce sin ejecutar (no es un error)."""


# --- recolección estática ---------------------------------------------------------------------
class _Collector(ast.NodeVisitor):
    """Recorre el código en orden: alias de importación, instancias y llamadas."""

    def __init__(self, module: str = "") -> None:
        self.module = module  # nombre del módulo, para resolver importaciones relativas
        self.aliases: dict[str, str] = {}
        self.dicts: dict[str, set[str]] = {}
        # función local que devuelve un dict(...) → (sus claves, sus parámetros)
        self.builders: dict[str, tuple[set[str], set[str]]] = {}
        self.where = ""
        self.uses: list[KeywordUse] = []

    # importaciones
    def _absolute(self, node: ast.ImportFrom) -> str:
        if not node.level:
            return node.module or ""
        parts = self.module.split(".")
        is_package = self.module.endswith("__init__")
        base = parts[: len(parts) - node.level + (1 if is_package else 0)]
        base = [p for p in base if p != "__init__"]
        return ".".join(base + ([node.module] if node.module else []))

    def visit_Import(self, node: ast.Import) -> None:
        for alias in node.names:
            if alias.asname:
                self.aliases[alias.asname] = alias.name
            else:
                top = alias.name.split(".")[0]
                self.aliases[top] = top

    def visit_ImportFrom(self, node: ast.ImportFrom) -> None:
        module = self._absolute(node)
        for alias in node.names:
            if alias.name != "*":
                self.aliases[alias.asname or alias.name] = f"{module}.{alias.name}"

    # nombres y asignaciones
    def dotted(self, node: ast.AST) -> str | None:
        if isinstance(node, ast.Name):
            return self.aliases.get(node.id)
        if isinstance(node, ast.Attribute):
            base = self.dotted(node.value)
            return f"{base}.{node.attr}" if base else None
        return None

    def _watched(self, path: str | None) -> bool:
        return bool(path) and path.split(".")[0] in ROOTS

    @staticmethod
    def _dict_keys(node: ast.AST) -> set[str] | None:
        if isinstance(node, ast.Dict):
            if all(isinstance(k, ast.Constant) and isinstance(k.value, str) for k in node.keys):
                return {k.value for k in node.keys}
            return None
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "dict" and not node.args:
            if all(k.arg for k in node.keywords):
                return {k.arg for k in node.keywords}
        return None

    def visit_Assign(self, node: ast.Assign) -> None:
        self.generic_visit(node)
        for target in node.targets:
            if isinstance(target, ast.Name):
                self.aliases.pop(target.id, None)
                self.dicts.pop(target.id, None)
                keys = self._dict_keys(node.value)
                if keys is None:
                    keys = self._built_keys(node.value)
                if keys is not None:
                    self.dicts[target.id] = keys
                elif isinstance(node.value, ast.Call):
                    path = self.dotted(node.value.func)
                    if self._watched(path) and path.split(".")[-1][:1].isupper():
                        self.aliases[target.id] = path + INSTANCE  # instancia de una clase
            elif (
                isinstance(target, ast.Subscript)
                and isinstance(target.value, ast.Name)
                and target.value.id in self.dicts
                and isinstance(target.slice, ast.Constant)
                and isinstance(target.slice.value, str)
            ):
                self.dicts[target.value.id].add(target.slice.value)

    def _built_keys(self, node: ast.AST) -> set[str] | None:
        """Claves de ``builder(...)``, una función de este mismo código que devuelve un ``dict(...)``
        (p. ej. ``training.trainer_options``): las de ese diccionario más los argumentos con nombre de
        la llamada que no son parámetros suyos (los que van a su ``**more``)."""
        if not isinstance(node, ast.Call):
            return None
        if isinstance(node.func, ast.Name) and node.func.id in self.builders:
            keys, params = self.builders[node.func.id]
        else:  # importada de otro módulo de helpers (p. ej. preferences usa training.trainer_options)
            path = self.dotted(node.func) or ""
            module, _, name = path.rpartition(".")
            if not module.startswith("helpers") or name not in _module_builders(module):
                return None
            keys, params = _module_builders(module)[name]
        return keys | {kw.arg for kw in node.keywords if kw.arg and kw.arg not in params}

    def _find_builders(self, tree: ast.AST) -> None:
        for func in ast.walk(tree):
            if not isinstance(func, ast.FunctionDef) or func.args.kwarg is None:
                continue
            assigned = {}
            for stmt in ast.walk(func):
                if isinstance(stmt, ast.Assign) and len(stmt.targets) == 1 and isinstance(stmt.targets[0], ast.Name):
                    keys = self._dict_keys(stmt.value)
                    if keys is not None:
                        assigned[stmt.targets[0].id] = keys
            returned = [
                r.value.id for r in ast.walk(func) if isinstance(r, ast.Return) and isinstance(r.value, ast.Name)
            ]
            if returned and all(name in assigned for name in returned):
                params = {a.arg for a in func.args.args + func.args.kwonlyargs + func.args.posonlyargs}
                self.builders[func.name] = (set().union(*(assigned[n] for n in returned)), params)

    # llamadas
    def visit_Call(self, node: ast.Call) -> None:
        if (
            isinstance(node.func, ast.Attribute)
            and node.func.attr == "update"
            and isinstance(node.func.value, ast.Name)
            and node.func.value.id in self.dicts
        ):  # options.update(clave=...): más claves del mismo diccionario
            self.dicts[node.func.value.id] |= {kw.arg for kw in node.keywords if kw.arg}
        path = self.dotted(node.func)
        if self._watched(path):
            keywords: list[str] = []
            for kw in node.keywords:
                if kw.arg is not None:
                    keywords.append(kw.arg)
                elif isinstance(kw.value, ast.Name) and kw.value.id in self.dicts:
                    keywords += sorted(self.dicts[kw.value.id])
                else:
                    keywords += sorted(self._dict_keys(kw.value) or ())
            for keyword in keywords:
                self.uses.append(KeywordUse(path, keyword, f"{self.where}línea {node.lineno}"))
        self.generic_visit(node)

    def collect(self, chunks: list[tuple[str, str]]) -> list[KeywordUse]:
        """``chunks``: (lugar, código) en orden; comparten espacio de nombres, como en un cuaderno."""
        trees = []
        for where, code in chunks:
            try:
                trees.append((where, ast.parse(code)))
            except SyntaxError as exc:  # se informa como error: ese código tampoco se ejecutaría
                self.uses.append(KeywordUse(UNPARSABLE, exc.msg, f"{where}línea {exc.lineno}"))
        for _, tree in trees:  # primero todas las importaciones (pueden venir al final del módulo)
            self._find_builders(tree)
            for node in ast.walk(tree):
                if isinstance(node, (ast.Import, ast.ImportFrom)):
                    self.visit(node)
        for where, tree in trees:
            self.where = where
            self.visit(tree)
        return self.uses


PYTHON_CELL_MAGICS = ("%%time", "%%timeit", "%%capture")


def _strip_magics(source: str) -> str:
    """Quita las líneas de IPython (``%magia``, ``!orden``) conservando la numeración.

    Una celda con una magia de celda que no es Python (``%%bash``, ``%%writefile``...) se ignora.
    """
    first = source.lstrip().split("\n", 1)[0]
    if first.startswith("%%") and not first.startswith(PYTHON_CELL_MAGICS):
        return ""
    return "\n".join("" if line.lstrip().startswith(("%", "!")) else line for line in source.split("\n"))


def collect_source(source: str, where: str = "<código>", module: str = "") -> list[KeywordUse]:
    """Argumentos con nombre que ``source`` pasa a las bibliotecas vigiladas (y a helpers)."""
    return _Collector(module).collect([(f"{where}, ", _strip_magics(source))])


def collect_notebook(path: Path) -> list[KeywordUse]:
    """Lo mismo para las celdas de código de un cuaderno (un solo espacio de nombres)."""
    cells = json.loads(Path(path).read_text(encoding="utf-8"))["cells"]
    name = _relative(path)
    chunks = [
        (f"{name}, celda {i}, ", _strip_magics("".join(c["source"]) if isinstance(c["source"], list) else c["source"]))
        for i, c in enumerate(cells)
        if c["cell_type"] == "code"
    ]
    return _Collector().collect(chunks)


def collect_module(path: Path) -> list[KeywordUse]:
    path = Path(path)
    module = ".".join(path.resolve().relative_to(ROOT).with_suffix("").parts)
    return _Collector(module).collect([(f"{_relative(path)}, ", path.read_text(encoding="utf-8"))])


def _relative(path: Path) -> str:
    try:
        return str(Path(path).resolve().relative_to(ROOT))
    except ValueError:
        return str(path)


def course_files(root: Path = ROOT) -> tuple[list[Path], list[Path]]:
    """Cuadernos del profesorado (solutions/*/*.ipynb) y módulos de helpers."""
    notebooks = sorted(root.glob("solutions/*/*.ipynb"))
    modules = sorted(p for p in (root / "helpers").rglob("*.py") if "__pycache__" not in p.parts)
    return notebooks, modules


def collect_course(root: Path = ROOT) -> list[KeywordUse]:
    notebooks, modules = course_files(root)
    uses: list[KeywordUse] = []
    for path in notebooks:
        uses += collect_notebook(path)
    for path in modules:
        uses += collect_module(path)
    return uses


# --- comprobación contra lo instalado ---------------------------------------------------------
def resolve(target: str):
    """Importa el paquete y recorre los atributos de ``target`` (``()`` = instancia de la clase)."""
    parts = target.split(".")
    obj, index = None, 0
    for index in range(len(parts), 0, -1):  # el módulo más largo que se pueda importar
        name = ".".join(parts[:index]).replace(INSTANCE, "")
        if INSTANCE in ".".join(parts[:index]):
            continue
        try:
            obj = importlib.import_module(name)
            break
        except ImportError:
            continue
    if obj is None:
        raise ImportError(f"no se puede importar {parts[0]}")
    for part in parts[index:]:
        instance = part.endswith(INSTANCE)
        obj = getattr(obj, part.removesuffix(INSTANCE))
        if instance and not inspect.isclass(obj):
            raise _NotResolvable(target)
    return obj


def canonical(obj) -> str:
    func = getattr(obj, "__func__", obj)
    owner = getattr(obj, "__self__", None)
    if inspect.isclass(owner):
        return f"{owner.__module__}.{owner.__qualname__}.{func.__name__}"
    return f"{getattr(func, '__module__', '')}.{getattr(func, '__qualname__', '')}"


def _parameters(obj) -> tuple[set[str], bool]:
    """(nombres admitidos, ¿tiene **kwargs?) de una función o clase."""
    sig = inspect.signature(obj)
    names = {p.name for p in sig.parameters.values() if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)}
    var_keyword = any(p.kind == p.VAR_KEYWORD for p in sig.parameters.values())
    if inspect.isclass(obj) and dataclasses.is_dataclass(obj):
        names |= {f.name for f in dataclasses.fields(obj) if f.init}
    names.discard("self")
    names.discard("cls")
    return names, var_keyword


_KWARGS_KEY = re.compile(
    r"""kwargs(?:\.(?:pop|get|setdefault)\(\s*|\[\s*)["'](\w+)["']|["'](\w+)["']\s+(?:not\s+)?in\s+\w*kwargs"""
)


@functools.cache
def _source_keys(func) -> frozenset[str]:
    """Claves que el código de ``func`` lee de ``kwargs`` (``kwargs.pop("x")``, ``"x" in kwargs``...)."""
    try:
        source = inspect.getsource(func)
    except (OSError, TypeError):
        return frozenset()
    return frozenset(a or b for a, b in _KWARGS_KEY.findall(source))


def _code_of(obj):
    if inspect.isclass(obj):
        return obj.__init__
    return getattr(obj, "__func__", obj)


def _is_model_from_pretrained(obj) -> bool:
    owner = getattr(obj, "__self__", None)
    if getattr(obj, "__name__", "") != "from_pretrained" or not inspect.isclass(owner):
        return False
    from transformers import PreTrainedModel
    from transformers.models.auto.auto_factory import _BaseAutoModelClass

    return issubclass(owner, (PreTrainedModel, _BaseAutoModelClass))


@functools.lru_cache(maxsize=1)
def _course_model_config():
    from transformers import LlamaConfig

    return LlamaConfig()


def _is_quantization_config(obj) -> bool:
    if not inspect.isclass(obj):
        return False
    from transformers.utils.quantization_config import QuantizationConfigMixin

    return issubclass(obj, QuantizationConfigMixin)


def accepts(obj, keyword: str) -> bool | None:
    """True si ``obj`` admite ``keyword``, False si no, None si no se puede saber sin ejecutar."""
    names, var_keyword = _parameters(obj)
    if keyword in names:
        return True
    if not var_keyword:
        return False
    name = canonical(obj)
    if name in FORWARDS:
        return any(accepts(resolve(t), keyword) for t in FORWARDS[name])
    if _is_model_from_pretrained(obj):
        from transformers import PreTrainedModel

        base = PreTrainedModel.from_pretrained
        base_names, _ = _parameters(base)
        return (
            keyword in base_names or keyword in _source_keys(base.__func__) or hasattr(_course_model_config(), keyword)
        )
    if _is_quantization_config(obj):
        return False  # el resto de claves se ignorarían en silencio
    if keyword in _source_keys(_code_of(obj)):
        return True
    return None


def check(uses: list[KeywordUse]) -> Report:
    """Comprueba cada uso contra las versiones instaladas."""
    errors, unchecked = [], []
    for use in uses:
        if use.target == UNPARSABLE:
            errors.append(Finding(use, f"no se puede analizar el código ({use.keyword})."))
            continue
        try:
            obj = resolve(use.target)
        except _NotResolvable:
            continue
        except (ImportError, AttributeError):
            errors.append(Finding(use, f"`{use.target.replace(INSTANCE, '')}` no existe en la versión instalada."))
            continue
        try:
            verdict = accepts(obj, use.keyword)
        except (TypeError, ValueError):  # sin firma introspectable
            unchecked.append(use)
            continue
        if verdict is False:
            errors.append(
                Finding(
                    use,
                    f"`{use.target.replace(INSTANCE, '')}` no admite el argumento "
                    f"`{use.keyword}=` en la versión instalada.",
                )
            )
        elif verdict is None:
            unchecked.append(use)
    return Report(uses, errors, unchecked)


def check_source(source: str, where: str = "<código>") -> Report:
    return check(collect_source(source, where))


def check_course(root: Path = ROOT) -> Report:
    return check(collect_course(root))


def main(argv: list[str] | None = None) -> int:
    from ..doctor import installed_version

    report = check_course()
    versions = ", ".join(f"{p} {installed_version(p) or '—'}" for p in PACKAGES)
    print(f"Argumentos con nombre revisados: {len(report.uses)} ({versions}).")
    if report.unchecked:
        print(f"Sin comprobar ({len(report.unchecked)}; la función acepta claves libres en **kwargs):")
        for use in report.unchecked:
            print(f"  {use.where}: {use.target.replace(INSTANCE, '')}({use.keyword}=...)")
    if report.errors:
        print(f"✘ {len(report.errors)} argumento(s) que la versión instalada no admite:")
        for finding in report.errors:
            print(f"  {finding}")
        return 1
    print("✔ Todos los argumentos existen en las versiones instaladas.")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
