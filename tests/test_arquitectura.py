"""La arquitectura del paquete: tres habitaciones sin ciclos, importar ``helpers`` no cuesta nada,
funciona sin ``fcntl`` (Windows) y ninguna respuesta de un ejercicio calificado viene instalada.

Lee ``docs/arquitectura.md``.
"""

import ast
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import helpers
from helpers.maintainers.import_graph import build_graph, find_cycles, module_files

sys.path.insert(0, str(Path(__file__).parent))
from solution_code import answer_names, solution_cells  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
PACKAGE_DIR = Path(helpers.__file__).resolve().parent  # el paquete instalado (editable: esta copia)


# El ciclo del calificador lo deshace la incidencia «Calificación en la que confiar» (otra rama).
# Con strict=True esta prueba falla en cuanto desaparezca: entonces se borra esta línea.
def room(module: str) -> str:
    """'alumnado', 'calificador' o 'mantenimiento': de quién es cada módulo."""
    if module.startswith("helpers.classroom"):
        return "calificador"
    if module.startswith("helpers.maintainers"):
        return "mantenimiento"
    return "alumnado"


def test_el_grafo_ve_todas_las_importaciones():
    """El grafo se construye del código de verdad: aristas conocidas, también las diferidas."""
    graph = build_graph()
    assert set(graph) == set(module_files())
    edges = {(e.source, e.target): e.deferred for edges in graph.values() for e in edges}
    assert edges[("helpers.models", "helpers.environment")] is False
    assert edges[("helpers.models", "helpers.quantization")] is True  # dentro de load_model
    assert ("helpers.maintainers.release", "helpers.course_files") in edges


def test_sin_ciclos_de_importacion():
    cycles = find_cycles(build_graph())
    assert cycles == [], "ciclos de importación: " + "; ".join(" → ".join(c) for c in cycles)


def test_un_ciclo_nuevo_se_detecta(tmp_path):
    """La prueba de ciclos puede fallar: un paquete con a → b → a da ese ciclo."""
    package = tmp_path / "helpers"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "a.py").write_text("from . import b\n")
    (package / "b.py").write_text("def f():\n    from .a import x\n")
    assert find_cycles(build_graph(package)) == [["helpers.a", "helpers.b", "helpers.a"]]


def _lint_imports(package_parent: Path) -> subprocess.CompletedProcess:
    """``lint-imports`` (import-linter) con los contratos de pyproject.toml sobre el ``helpers`` de
    ``package_parent`` (la carpeta desde la que se ejecuta va primero en ``sys.path``)."""
    lint = Path(sys.executable).with_name("lint-imports")
    return subprocess.run(
        [str(lint), "--config", str(ROOT / "pyproject.toml"), "--no-cache"],
        cwd=package_parent,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_cada_habitacion_importa_solo_lo_permitido():
    """Los contratos de import-linter de pyproject.toml (los que pasa ``make quality``) se cumplen."""
    result = _lint_imports(ROOT)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    import tomllib

    contracts = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["tool"]["importlinter"][
        "contracts"
    ]
    assert f"{len(contracts)} kept, 0 broken" in result.stdout
    # Dentro del calificador, la guardia y el recogedor (se cargan por su ruta en el núcleo del
    # alumnado) no pueden importar nada del calificador: otro contrato, también exhaustivo.
    inner = [c for c in contracts if c.get("containers") == ["helpers.classroom"]]
    assert len(inner) == 1 and inner[0]["exhaustive"] is True
    assert "guard" in inner[0]["layers"][-1].split(" | ") and "collector" in inner[0]["layers"][-1].split(" | ")


@pytest.mark.parametrize(
    ("module", "line"),
    [
        ("helpers/plots.py", "from .classroom import grading"),  # la caja de herramientas importa el calificador
        ("helpers/classroom/export.py", "def f():\n    from ..maintainers import pins"),  # diferida, también cuenta
    ],
)
def test_los_contratos_de_las_habitaciones_pueden_fallar(tmp_path, module, line):
    """En una copia con una importación prohibida (también dentro de una función), lint-imports falla."""
    copy = tmp_path / "helpers"
    shutil.copytree(PACKAGE_DIR, copy, ignore=shutil.ignore_patterns("__pycache__"))
    with open(tmp_path / module, "a", encoding="utf-8") as handle:
        handle.write(f"\n\n{line}\n")
    result = _lint_imports(tmp_path)
    assert result.returncode != 0 and "BROKEN" in result.stdout, result.stdout[-3000:]


def test_un_modulo_sin_habitacion_rompe_el_contrato(tmp_path):
    """Un módulo nuevo de helpers/ que no está en ninguna capa del contrato (``exhaustive``) lo rompe:
    hay que decidir de qué habitación es."""
    copy = tmp_path / "helpers"
    shutil.copytree(PACKAGE_DIR, copy, ignore=shutil.ignore_patterns("__pycache__"))
    (copy / "cuaderno11.py").write_text('"""Un módulo nuevo."""\n', encoding="utf-8")
    result = _lint_imports(tmp_path)
    assert result.returncode != 0 and "helpers.cuaderno11" in result.stdout + result.stderr, result.stdout[-3000:]


def _run(code: str, **env) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=300, env={**os.environ, **env}
    )


def test_importar_helpers_no_carga_nada_pesado():
    """``import helpers`` (y las herramientas que deben ir aunque torch esté roto) no carga torch;
    el primer uso de una función sí carga su módulo."""
    code = (
        "import sys, helpers, helpers.maintainers.pins, helpers.doctor; "
        "print(sorted(m for m in ('torch', 'transformers', 'matplotlib', 'peft') if m in sys.modules)); "
        "helpers.load_model; print('torch' in sys.modules)"
    )
    out = _run(code)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split("\n")[:2] == ["[]", "True"]


def test_nombres_publicos_perezosos():
    """Cada nombre de ``helpers.__all__`` existe de verdad en su módulo (y dir() los enseña)."""
    for name in helpers.__all__:
        assert callable(getattr(helpers, name)) or isinstance(getattr(helpers, name), type), name
    assert set(helpers.__all__) <= set(dir(helpers))
    with pytest.raises(AttributeError):
        helpers.no_existe  # noqa: B018


def test_sin_fcntl_como_en_windows(tmp_path):
    """Con ``fcntl`` inexistente, la caja de herramientas se importa, bloquea y carga el modelo diminuto."""
    toolbox = sorted(m for m in module_files() if room(m) == "alumnado" and m != "helpers.ddp_sft")
    code = (
        "import sys; sys.modules['fcntl'] = None\n"  # import fcntl → ImportError, como en Windows
        "import importlib, helpers\n"
        f"for name in {toolbox!r}:\n    importlib.import_module(name)\n"
        "from helpers.locking import file_lock\n"
        f"with file_lock({str(tmp_path / 'cerrojo')!r}):\n    pass\n"
        "model = helpers.load_model('tiny', verbose=False)\n"
        "print('fcntl' in sys.modules and sys.modules['fcntl'] is None, helpers.count_parameters(model).total > 0)\n"
    )
    out = _run(code)
    assert out.returncode == 0, out.stderr[-3000:]
    assert out.stdout.split() == ["True", "True"]


# --- ninguna respuesta en el paquete instalado ---------------------------------------------
# Nombres que tuvo en el paquete alguna respuesta con otro nombre (no pueden volver).
FORMER_ANSWERS = {
    "count_params": ["param_count"],
    "tokenize_with_mask": ["encode_example"],
    "build_qlora_model": ["build_model"],
    "add_lora": ["inject_lora"],
    "copy_to_peft": ["copy_lora_to_peft"],
    "merge": ["merge_lora"],
    "lora_params": ["lora_param_count"],
    "model_lora_params": ["model_lora_param_count"],
}


def _package_definitions() -> dict[str, list[str]]:
    """``{nombre: [módulos]}`` de toda función o clase (también métodos) del paquete instalado."""
    found = {}
    for path in sorted(PACKAGE_DIR.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                found.setdefault(node.name, []).append(str(path.relative_to(PACKAGE_DIR)))
    return found


def _shape(function: ast.FunctionDef) -> str:
    """El cuerpo de una función sin su docstring y con los nombres locales numerados por orden."""
    body = function.body[1:] if ast.get_docstring(function) else function.body
    names = {}
    tree = ast.Module(body=[ast.parse(ast.unparse(stmt)).body[0] for stmt in body], type_ignores=[])
    for node in ast.walk(tree):
        if isinstance(node, ast.Name):
            node.id = names.setdefault(node.id, f"v{len(names)}")
        elif isinstance(node, ast.arg):
            node.arg = names.setdefault(node.arg, f"v{len(names)}")
    return ast.dump(tree, annotate_fields=False)


def _functions(source: str) -> list[ast.FunctionDef]:
    return [n for n in ast.walk(ast.parse(source)) if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))]


def test_las_respuestas_se_leen_de_las_soluciones():
    """La lista de respuestas sale de las celdas ### BEGIN SOLUTION (no de una lista escrita a mano)."""
    answers = answer_names()
    assert {"01:count_params", "02:lora_linear", "03:tokenize_with_mask", "04:build_qlora_model"} <= set(answers)
    assert answers["02:lora_linear"] == {"LoRALinear"} and answers["02:add_lora"] == {"add_lora", "copy_to_peft"}
    assert len(answers) >= 28


def test_ninguna_respuesta_se_puede_importar_del_paquete():
    """Ningún módulo instalado define una función o clase con el nombre de una respuesta (o con el que
    tuvo antes en el paquete), ni una función con el mismo cuerpo que la de una solución."""
    package = _package_definitions()
    clashes = []
    for exercise, names in answer_names().items():
        for name in sorted(names):
            for candidate in [name] + FORMER_ANSWERS.get(name, []):
                clashes += [f"{exercise}: {candidate} en helpers/{where}" for where in package.get(candidate, [])]
    assert clashes == [], "respuestas importables desde el paquete: " + "; ".join(clashes)

    shapes = {}
    for path in sorted(PACKAGE_DIR.rglob("*.py")):
        for function in _functions(path.read_text(encoding="utf-8")):
            if len(function.body) >= 3:
                shapes.setdefault(_shape(function), []).append(
                    f"helpers/{path.relative_to(PACKAGE_DIR)}:{function.name}"
                )
    copies = []
    for path in sorted((ROOT / "solutions").glob("*/*.ipynb")):
        for grade_id, source in solution_cells(path.stem).items():
            for function in _functions(source):
                copies += [
                    f"{path.stem[:2]}:{grade_id}:{function.name} = {w}" for w in shapes.get(_shape(function), [])
                ]
    assert copies == [], "funciones del paquete iguales a una solución: " + "; ".join(copies)


def test_la_comparacion_de_cuerpos_detecta_una_copia():
    """La comparación de cuerpos puede fallar: la misma función con otros nombres es la misma."""
    one = _functions(
        "def f(model):\n    'doc'\n    total = 0\n"
        "    for p in model.parameters():\n        total += p.numel()\n    return total\n"
    )[0]
    two = _functions("def g(m):\n    n = 0\n    for q in m.parameters():\n        n += q.numel()\n    return n\n")[0]
    other = _functions("def g(m):\n    n = 1\n    for q in m.parameters():\n        n += q.numel()\n    return n\n")[0]
    assert _shape(one) == _shape(two) != _shape(other)


def test_cada_carpeta_del_paquete_se_instala():
    """Una carpeta con módulos pero sin ``__init__.py`` no entra en la rueda (setuptools no la ve)."""
    folders = {path.parent for path in PACKAGE_DIR.rglob("*.py") if "__pycache__" not in path.parts}
    assert [str(f) for f in sorted(folders) if not (f / "__init__.py").exists()] == []


# --- cómo añadir el cuaderno 11 (docs/arquitectura.md) -------------------------------------------
def _checklist() -> list[str]:
    text = (ROOT / "docs" / "arquitectura.md").read_text(encoding="utf-8")
    section = text.split("## Cómo añadir el cuaderno 11", 1)[1].split("\n## ", 1)[0]
    return ["- [ ]" + item for item in section.split("- [ ]")[1:]]


def _defined_tests(path: Path) -> set[str]:
    return {n.name for n in ast.walk(ast.parse(path.read_text(encoding="utf-8"))) if isinstance(n, ast.FunctionDef)}


def test_lista_para_el_cuaderno_11():
    """Cada punto de la lista nombra la prueba que lo exige (y existe), o dice que sale de notebook_names()."""
    items = _checklist()
    assert len(items) >= 6, items
    for item in items:
        references = re.findall(r"`(tests/[\w/]+\.py)::(\w+)`", item)
        assert references or "notebook_names()" in item, f"sin prueba que lo exija: {item}"
        for file, name in references:
            assert (ROOT / file).exists() and name in _defined_tests(ROOT / file), f"{file}::{name} no existe"


def test_ninguna_lista_de_cuadernos_a_mano():
    """Ningún archivo de Python escribe una colección con dos o más cuadernos (como el antiguo TRAINS):
    lo que recorre los cuadernos sale de solutions/ (notebook_names) o del propio cuaderno."""
    from helpers.course_files import notebook_names

    names = set(notebook_names())
    found = []
    for path in sorted([*PACKAGE_DIR.rglob("*.py"), *(ROOT / "tests").rglob("*.py")]):
        if "__pycache__" in path.parts:
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            items = node.keys if isinstance(node, ast.Dict) else getattr(node, "elts", None)
            if isinstance(node, (ast.Set, ast.List, ast.Tuple, ast.Dict)) and items:
                listed = [i.value for i in items if isinstance(i, ast.Constant) and i.value in names]
                if len(listed) >= 2:
                    found.append(f"{path.relative_to(ROOT)}:{node.lineno}: {listed}")
    assert found == [], "listas de cuadernos escritas a mano: " + "; ".join(found)


def test_cada_cuaderno_tiene_sus_pruebas():
    from helpers.course_files import notebook_names

    missing = [name for name in notebook_names() if not list((ROOT / "tests").glob(f"test_nb{name[:2]}_*.py"))]
    assert missing == [], f"cuadernos sin tests/test_nbNN_<tema>.py: {missing}"
