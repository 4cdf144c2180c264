"""Pruebas de los cuadernos: publicación al día, estructura, celdas calificadas honestas y
calificación automática real con nbgrader (solución = nota máxima, publicado = 0, errónea = parcial)."""
import ast
import re
import sys
from pathlib import Path

import nbformat
import pytest

sys.path.insert(0, str(Path(__file__).parent))
from wrong_answers import wrong_cells  # noqa: E402

from helpers import autograde as ag  # noqa: E402
from helpers.release import ROOT, badge_line, notebook_names, setup_cell_source, generate, SETUP_TAG  # noqa: E402

NAMES = notebook_names()


def read(path):
    return nbformat.read(path, as_version=4)


def solution(name):
    return ROOT / "solutions" / name / f"{name}.ipynb"


def released(name):
    return ROOT / "notebooks" / name / f"{name}.ipynb"


def nbgrader_meta(cell):
    return cell.get("metadata", {}).get("nbgrader", {})


def grade_cells(nb):
    return [c for c in nb.cells if nbgrader_meta(c).get("grade") and not nbgrader_meta(c).get("solution")]


def comparable(nb):
    return [(c.cell_type, c.source, nbgrader_meta(c)) for c in nb.cells]


def test_hay_cuadernos():
    assert NAMES, "solutions/ no tiene cuadernos"
    assert NAMES[0] == "01_introduccion_peft"


@pytest.mark.parametrize("name", NAMES)
def test_publicado_al_dia(name, tmp_path):
    """notebooks/ es exactamente lo que genera nbgrader desde solutions/ (nadie lo edita a mano)."""
    assert released(name).exists(), f"Falta notebooks/{name}: ejecuta `make release`"
    out = generate(name, release_dir=tmp_path)
    fresh = read(out / f"{name}.ipynb")
    assert comparable(fresh) == comparable(read(released(name))), f"notebooks/{name} está desfasado: ejecuta `make release`"


@pytest.mark.parametrize("name", NAMES)
def test_insignia_y_preparacion(name):
    for path in (solution(name), released(name)):
        nb = read(path)
        assert nb.cells[0].source.split("\n")[0] == badge_line(name)
        setup = [c for c in nb.cells if SETUP_TAG in c.metadata.get("tags", [])]
        assert len(setup) == 1 and setup[0].source == setup_cell_source()
        assert nb.cells.index(setup[0]) == 1 + next(i for i, c in enumerate(nb.cells[1:]) if c.cell_type == "code"), \
            "la celda de preparación debe ser la primera de código"
    target = re.search(r"/blob/[^/]+/(notebooks/.+\.ipynb)\)$", badge_line(name)).group(1)
    assert (ROOT / target).exists()


@pytest.mark.parametrize("name", NAMES)
def test_estructura(name):
    nb = read(solution(name))
    text = "\n".join(c.source for c in nb.cells if c.cell_type == "markdown")
    for needed in ("Objetivos", "🐢", "🐕", "🦁", "Resumen", "Para saber más"):
        assert needed in text, f"{name}: falta «{needed}» en el texto"
    graded = grade_cells(nb)
    assert len(graded) >= 4, f"{name}: hacen falta al menos 4 celdas calificadas"
    assert any("### BEGIN HIDDEN TESTS" in c.source for c in graded), f"{name}: ninguna celda con pruebas ocultas"
    ids = [nbgrader_meta(c)["grade_id"] for c in nb.cells if nbgrader_meta(c)]
    assert len(ids) == len(set(ids)), "grade_id repetidos"


@pytest.mark.parametrize("name", NAMES)
def test_celdas_calificadas_solo_comprueban(name):
    """Una celda calificada nunca termina en una expresión con valor (nbgrader la tomaría como nota parcial)."""
    for cell in grade_cells(read(solution(name))):
        tree = ast.parse(cell.source.replace("### BEGIN HIDDEN TESTS", "").replace("### END HIDDEN TESTS", ""))
        last = tree.body[-1]
        ok = isinstance(last, ast.Assert) or (
            isinstance(last, ast.Expr) and isinstance(last.value, ast.Call)
            and getattr(last.value.func, "attr", getattr(last.value.func, "id", "")).startswith("check_")
        )
        assert ok, f"{name}/{nbgrader_meta(cell)['grade_id']}: debe terminar en assert o en helpers.check_*(...)"


def _errors(path):
    return [(i, o.get("ename")) for i, c in enumerate(read(path).cells) if c.cell_type == "code"
            for o in c.get("outputs", []) if o.get("output_type") == "error"]


@pytest.mark.slow
@pytest.mark.parametrize("name", NAMES)
def test_calificacion_automatica(name, tmp_path):
    """Con el perfil rápido: la solución se ejecuta entera sin errores y saca la nota máxima;
    el cuaderno publicado sin tocar saca 0 en cada celda; una respuesta errónea, nota parcial."""
    course = ag.make_course(tmp_path, [name])
    wrong = wrong_cells(name)
    assert wrong, f"tests/wrong_answers/nb{name[:2]}.py debe definir WRONG con al menos una respuesta errónea"
    nb = read(solution(name))
    by_id = {nbgrader_meta(c).get("grade_id"): c for c in nb.cells}
    for grade_id, source in wrong.items():
        by_id[grade_id].source = source
    wrong_path = tmp_path / "erronea.ipynb"
    nbformat.write(nb, wrong_path)

    # La solución se califica con la T4 simulada (CURSO_PEFT_SIMULAR=t4: pesos congelados fp16,
    # entrenables fp32, autocast fp16, GradScaler...) y anota cada historial de pérdida; la
    # publicada y la errónea, con la precisión normal de la CPU. Así la capa «T4 simulada» cuesta
    # solo un arranque más de nbgrader por cuaderno, no una ejecución más de la solución.
    losses_log = tmp_path / "perdidas.jsonl"
    t4 = {"CURSO_PEFT_SIMULAR": "t4", "CURSO_PEFT_REGISTRO_PERDIDAS": str(losses_log)}
    grades = ag.autograde(course, name, {"solucion": solution(name), "publicado": ag.released_notebook(course, name), "erronea": wrong_path},
                          student_env={"solucion": t4})

    sol = grades["solucion"]
    assert _errors(ag.autograded_notebook(course, name, "solucion")) == [], "la solución (T4 simulada) tiene celdas con error"
    assert sol.score == sol.max_score > 0, sol.cells
    check_t4_losses(name, losses_log)
    assert all(score == 0 for score, _ in grades["publicado"].cells.values()), grades["publicado"].cells
    assert 0 < grades["erronea"].score < grades["erronea"].max_score, grades["erronea"].cells


def check_t4_losses(name, log):
    """Cada historial de pérdida de la solución en la T4 simulada: finito, de la T4 y, si tiene al
    menos DECREASING_MIN_STEPS pasos, con la media de sus últimos pasos por debajo de la de los primeros."""
    import json
    import math

    records = [json.loads(line) for line in log.read_text(encoding="utf-8").splitlines()] if log.exists() else []
    if name in TRAINS:
        assert records, f"{name}: la solución entrena pero no anotó ningún historial de pérdida"
    for rec in records:
        where = f"{name} · {rec['origen']} · {rec['perdidas']}"
        assert rec["precision"].startswith("t4 (T4 simulada"), where
        assert rec["perdidas"] and all(math.isfinite(v) for v in rec["perdidas"]), f"pérdida no finita: {where}"
        values = rec["perdidas"]
        if len(values) >= DECREASING_MIN_STEPS:
            window = max(1, min(3, len(values) // 2))
            assert sum(values[-window:]) < sum(values[:window]), f"la pérdida no baja: {where}"


# Cuadernos cuya solución entrena (y por tanto anota historiales de pérdida).
TRAINS = {"03_lora_sft", "04_qlora", "05_experimentos_rango", "06_fusion_adaptadores",
          "07_prompt_tuning_y_comparativa"}
DECREASING_MIN_STEPS = 4
