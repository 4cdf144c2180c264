"""El grafo de importaciones del paquete ``helpers``, leído del código (AST) sin importar nada.

``python -m helpers.maintainers.import_graph`` imprime, para cada módulo, los módulos de
``helpers`` que importa (``(diferida)`` si la importación está dentro de una función) y, al final,
los ciclos. Sale con código 1 si hay alguno. ``tests/test_arquitectura.py`` usa :func:`build_graph`
y :func:`find_cycles` para que un ciclo nuevo haga fallar las pruebas.
"""

from __future__ import annotations

import ast
import sys
from dataclasses import dataclass
from pathlib import Path

from ..cli import ArgumentParser

PACKAGE = "helpers"
PACKAGE_DIR = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class Edge:
    """``source`` importa ``target``; ``deferred`` si la importación está dentro de una función."""

    source: str
    target: str
    deferred: bool


def module_files(package_dir: Path = PACKAGE_DIR) -> dict[str, Path]:
    """``{nombre del módulo: archivo}`` de todos los ``.py`` del paquete (``helpers.x.y``)."""
    modules = {}
    for path in sorted(Path(package_dir).rglob("*.py")):
        parts = list(path.relative_to(package_dir).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        modules[".".join([PACKAGE, *parts])] = path
    return modules


def _is_package(name: str, files: dict[str, Path]) -> bool:
    return files[name].name == "__init__.py"


def _resolve(source: str, files: dict[str, Path], module: str | None, level: int, names: list[str]) -> list[str]:
    """Módulos de ``helpers`` a los que apunta un ``import`` o un ``from ... import ...``."""
    if level:
        base = source.split(".") if _is_package(source, files) else source.split(".")[:-1]
        base = base[: len(base) - (level - 1)] if level > 1 else base
        stem = ".".join(base + ([module] if module else []))
    else:
        stem = module or ""
    if stem != PACKAGE and not stem.startswith(PACKAGE + "."):
        return []
    targets = []
    for name in names:
        full = f"{stem}.{name}"
        if full in files:  # from helpers import models → el submódulo
            targets.append(full)
        elif stem in files:  # from helpers.models import load_model → el módulo
            targets.append(stem)
    return sorted(set(targets))


class _Collector(ast.NodeVisitor):
    def __init__(self, source: str, files: dict[str, Path]):
        self.source, self.files, self.depth, self.edges = source, files, 0, set()

    def _function(self, node):
        self.depth += 1
        self.generic_visit(node)
        self.depth -= 1

    visit_FunctionDef = visit_AsyncFunctionDef = visit_Lambda = _function

    def visit_Import(self, node: ast.Import):
        for alias in node.names:
            for target in _resolve(self.source, self.files, alias.name, 0, []) or (
                [alias.name] if alias.name in self.files else []
            ):
                self._add(target)

    def visit_ImportFrom(self, node: ast.ImportFrom):
        for target in _resolve(self.source, self.files, node.module, node.level, [a.name for a in node.names]):
            self._add(target)

    def _add(self, target: str):
        if target != self.source:
            self.edges.add(Edge(self.source, target, self.depth > 0))


def build_graph(package_dir: Path = PACKAGE_DIR) -> dict[str, set[Edge]]:
    """``{módulo: aristas}`` con todas las importaciones internas del paquete, también las diferidas."""
    files = module_files(package_dir)
    graph = {}
    for name, path in files.items():
        collector = _Collector(name, files)
        collector.visit(ast.parse(path.read_text(encoding="utf-8"), filename=str(path)))
        graph[name] = collector.edges
    return graph


def find_cycles(graph: dict[str, set[Edge]]) -> list[list[str]]:
    """Un ciclo por cada componente fuertemente conexa con más de un módulo (Tarjan), ordenado."""
    succ = {n: sorted({e.target for e in edges if e.target in graph}) for n, edges in graph.items()}
    index, low, stack, on_stack, components = {}, {}, [], set(), []

    def visit(node):
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in succ[node]:
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                item = stack.pop()
                on_stack.discard(item)
                component.append(item)
                if item == node:
                    break
            if len(component) > 1:
                components.append(set(component))

    for node in sorted(succ):
        if node not in index:
            visit(node)
    return sorted(_one_cycle(c, succ) for c in components)


def _one_cycle(component: set[str], succ: dict[str, list[str]]) -> list[str]:
    """El ciclo más corto de la componente que pasa por su módulo de nombre menor (búsqueda en anchura)."""
    start = min(component)
    previous = {start: None}
    queue = [start]
    while queue:
        node = queue.pop(0)
        for nxt in succ[node]:
            if nxt == start:
                path = [node]
                while previous[path[-1]] is not None:
                    path.append(previous[path[-1]])
                return path[::-1] + [start]
            if nxt in component and nxt not in previous:
                previous[nxt] = node
                queue.append(nxt)
    raise AssertionError("una componente fuertemente conexa siempre tiene un ciclo")


def cycle_components(graph: dict[str, set[Edge]]) -> list[list[str]]:
    """Los módulos de cada grupo que se importa en círculo (componentes con más de un módulo)."""
    succ = {n: {e.target for e in edges if e.target in graph} for n, edges in graph.items()}
    members = []
    for cycle in find_cycles(graph):
        reach = _reachable(cycle[0], succ)
        members.append(sorted(n for n in reach if cycle[0] in _reachable(n, succ)))
    return members


def _reachable(start: str, succ: dict[str, set[str]]) -> set[str]:
    seen, stack = {start}, [start]
    while stack:
        for nxt in succ[stack.pop()]:
            if nxt not in seen:
                seen.add(nxt)
                stack.append(nxt)
    return seen


def render(graph: dict[str, set[Edge]]) -> str:
    """El grafo como texto: una línea por módulo y, al final, la lista de ciclos."""
    lines = []
    for name in sorted(graph):
        targets = sorted(graph[name], key=lambda e: e.target)
        shown = ", ".join(e.target + (" (diferida)" if e.deferred else "") for e in targets) or "—"
        lines.append(f"{name} → {shown}")
    cycles = find_cycles(graph)
    lines.append("")
    lines.append(f"Ciclos: {len(cycles)}")
    for cycle, members in zip(cycles, cycle_components(graph)):
        lines.append("  " + " → ".join(cycle) + f"   (en el círculo: {', '.join(members)})")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = ArgumentParser(
        prog="python -m helpers.maintainers.import_graph",
        description="Imprime el grafo de importaciones del paquete y sus ciclos (termina con código 1 si hay alguno).",
    )
    parser.add_argument(
        "paquete",
        nargs="?",
        type=Path,
        default=PACKAGE_DIR,
        help="carpeta del paquete (por defecto, helpers/ de este repositorio)",
    )
    package_dir = parser.parse_args(argv).paquete
    graph = build_graph(package_dir)
    print(render(graph))
    return 1 if find_cycles(graph) else 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
