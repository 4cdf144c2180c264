"""Examen estático de una entrega: código que intenta cambiar cómo se ejecutan o juzgan las pruebas.

Complementa a la guardia del núcleo (:mod:`helpers.classroom.guard`), que lo detecta en tiempo de
ejecución. Se examinan las celdas de código que escribe el alumnado (todas menos las de pruebas,
que nbgrader restaura del libro de notas). Cada hallazgo es una frase corta en español que el
calificador anota como «revisar: posible manipulación de las pruebas (<hallazgo>)».

Son indicios para que el profesorado revise, no una condena: el código de un cuaderno del curso
resuelto correctamente no da ninguno, ni el código honrado de un corpus de ejemplos (comentarios que
nombran ``builtins``, clases con un ``__eq__`` que compara de verdad, ``run_cell_magic``...); lo
comprueban las pruebas. Los comentarios no se examinan, y un método especial solo es sospechoso si
siempre devuelve una constante (``def __eq__(self, otro): return True``).
"""

from __future__ import annotations

import ast
import io
import re
import tokenize

# (expresión regular sobre el código, qué se anota)
PATTERNS = [
    (r"input_transformer|ast_transformers", "transformadores de entrada o AST de IPython"),
    (
        r"\brun_cell(?!_magic)\w*|\brun_ast_nodes\b|\brun_code\b|\btransform_(?:cell|ast)\b",
        "ejecución de celdas de IPython (run_cell)",
    ),
    (
        r"\bdo_execute\b|\bexecute_request\b|\bshell_handlers\b|\buser_expressions\b|\bdispatch_shell\b",
        "ejecución del núcleo",
    ),
    (r"\.events\s*\.\s*(?:register|unregister|callbacks|trigger)", "eventos de IPython"),
    (r"showtraceback|set_custom_exc|excepthook|InteractiveTB|CustomTB|showsyntaxerror", "trazas de error"),
    (
        r"\bsettrace\b|\bsetprofile\b|_getframe|\bf_back\b|\bf_globals\b|\bf_locals\b|get_referrers|gc\.get_objects",
        "marcos de ejecución",
    ),
    (
        r"sys\.modules\s*\[[^\]]*\]\s*=(?!=)|sys\.modules\s*\.\s*(?:pop|update|setdefault|clear|__setitem__)|"
        r"del\s+sys\.modules|importlib\.reload|curso_peft_guardia",
        "módulos cargados (sys.modules)",
    ),
    (r"__code__|__globals__|__defaults__|__kwdefaults__|__closure__", "código de funciones (__code__)"),
    (r"\bctypes\b|\bcffi\b", "memoria del proceso (ctypes)"),
    (r"\bbuiltins\b|__builtins__", "funciones de Python (builtins)"),
]
# Métodos especiales con los que un objeto «pasa» cualquier comparación o comprobación de tipo.
TRICK_METHODS = {"__eq__", "__ne__", "__bool__", "__instancecheck__", "__subclasscheck__"}
# Módulos en los que confían las pruebas: asignar un atributo suyo es cambiar la biblioteca.
LIBRARY_ROOTS = {"helpers", "torch", "np", "numpy", "nn", "F", "math", "sys", "builtins", "peft", "transformers"}
ALLOWED_PREFIXES = ("torch.backends.",)


def _dotted(node) -> str | None:
    parts = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    if isinstance(node, ast.Name):
        return ".".join([node.id, *reversed(parts)])
    return None


def _library_target(node) -> str | None:
    """``torch.equal`` si ``node`` es un atributo de un módulo de confianza; si no, None."""
    name = _dotted(node) if isinstance(node, ast.Attribute) else None
    if name and name.split(".")[0] in LIBRARY_ROOTS and not name.startswith(ALLOWED_PREFIXES):
        return name
    return None


def _what_for(target: str) -> str:
    attr = target.rsplit(".", 1)[-1]
    if attr.startswith("check_") or target.startswith("helpers."):
        return f"comprobaciones del curso ({target})"
    return f"funciones de biblioteca ({target})"


def _flatten(targets) -> list:
    out = []
    for target in targets:
        if isinstance(target, (ast.Tuple, ast.List)):
            out += _flatten(target.elts)
        elif isinstance(target, ast.Starred):
            out += _flatten([target.value])
        else:
            out.append(target)
    return out


def _ast_findings(source: str) -> list[str]:
    try:
        tree = ast.parse(source)
    except SyntaxError:
        return []
    found = []
    for node in ast.walk(tree):
        if (
            isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef))
            and node.name in TRICK_METHODS
            and _always_says_yes(node)
        ):
            found.append(f"comparaciones trucadas ({node.name})")
        if (
            isinstance(node, ast.Assign)
            and isinstance(node.value, ast.Lambda)
            and _always_says_yes(node.value)
            and any(isinstance(t, ast.Name) and t.id in TRICK_METHODS for t in node.targets)
        ):
            found.append(f"comparaciones trucadas ({next(t.id for t in node.targets if isinstance(t, ast.Name))})")
        targets = []
        if isinstance(node, ast.Assign):
            targets = node.targets
        elif isinstance(node, (ast.AugAssign, ast.AnnAssign)):
            targets = [node.target]
        elif isinstance(node, ast.Delete):
            targets = node.targets
        elif (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Name)
            and node.func.id in ("setattr", "delattr")
            and node.args
        ):
            base = _dotted(node.args[0])
            if base and base.split(".")[0] in LIBRARY_ROOTS:
                attr = node.args[1].value if len(node.args) > 1 and isinstance(node.args[1], ast.Constant) else "?"
                found.append(_what_for(f"{base}.{attr}"))
        for target in _flatten(targets):
            while isinstance(target, ast.Subscript):
                target = target.value
            lib = _library_target(target)
            if lib:
                found.append(_what_for(lib))
            if isinstance(target, ast.Name) and target.id in LIBRARY_ROOTS - {"F"}:
                found.append(f"nombres de módulos redefinidos ({target.id})")
    return found


def _without_comments(source: str) -> str:
    """El código sin sus comentarios (un comentario que nombra ``builtins`` no cambia nada)."""
    lines = source.splitlines(keepends=True)
    try:
        for token in tokenize.generate_tokens(io.StringIO(source).readline):
            if token.type == tokenize.COMMENT:
                row, col = token.start
                lines[row - 1] = lines[row - 1][:col] + "\n"
    except (tokenize.TokenError, IndentationError, SyntaxError):
        pass  # código a medias: se examina tal cual
    return "".join(lines)


def _always_says_yes(func) -> bool:
    """¿Devuelve siempre una constante (``return True``, ``return not False``...)? Un ``__eq__`` de
    verdad compara algo; uno que siempre dice que sí es el truco."""
    returns = [n.value for n in ast.walk(func) if isinstance(n, ast.Return)]
    if isinstance(func, ast.Lambda):
        returns = [func.body]
    constant = lambda v: (
        isinstance(v, ast.Constant)
        or (  # noqa: E731
            isinstance(v, ast.UnaryOp) and isinstance(v.operand, ast.Constant)
        )
    )
    return bool(returns) and all(v is not None and constant(v) for v in returns)


def scan_sources(sources: list[str]) -> list[str]:
    """Hallazgos (sin repetir, en orden) en el código de estas celdas."""
    found: list[str] = []
    for source in sources:
        code = _without_comments(source)
        for pattern, what in PATTERNS:
            if re.search(pattern, code):
                found.append(what)
        found += _ast_findings(code)
    return list(dict.fromkeys(found))


def scan_notebook(nb) -> list[str]:
    """Hallazgos en las celdas de código del alumnado (todas menos las de pruebas)."""
    sources = []
    for cell in nb.cells:
        meta = cell.get("metadata", {}).get("nbgrader", {})
        if cell.cell_type != "code" or (meta.get("grade") and not meta.get("solution")):
            continue
        sources.append(cell.source if isinstance(cell.source, str) else "".join(cell.source))
    return scan_sources(sources)
