"""El banco de rendimiento (``helpers.maintainers.bench``): en modo rápido y siempre fuera de docs/."""

import json
import math

import pytest

from helpers.maintainers import bench

PARTS_RUN = "b,c,d"


@pytest.fixture(scope="module")
def salida(tmp_path_factory):
    out = tmp_path_factory.mktemp("bench")
    docs = _snapshot()
    assert bench.main(["--rapido", "--solo", PARTS_RUN, "--salida", str(out)]) == 0
    assert _snapshot() == docs, "con --salida el banco no debe escribir en docs/"
    return out


def _snapshot():
    return {p: p.stat().st_mtime for p in (bench.ROOT / "docs").rglob("*")}


@pytest.mark.slow
def test_escribe_md_json_y_graficas(salida):
    data = json.loads((salida / "bench" / f"{bench.device_key()}.json").read_text(encoding="utf-8"))
    assert sorted(data["partes"]) == PARTS_RUN.split(",")
    md = (salida / "rendimiento.md").read_text(encoding="utf-8")
    for part in PARTS_RUN.split(","):
        assert f"### {bench.TITLES[part]}" in md
        assert (salida / "img" / f"{bench.device_key()}_{part}.png").stat().st_size > 1000
        assert f"--solo {part}" in md  # cada figura dice cómo repetirla
    assert md.count("torch ") >= 3  # y en qué máquina se midió


@pytest.mark.slow
def test_numeros_sensatos(salida):
    parts = json.loads((salida / "bench" / f"{bench.device_key()}.json").read_text(encoding="utf-8"))["partes"]
    by = {r["metodo"]: r for r in parts["b"]["metodos"]}
    assert list(by) == ["full", "lora", "qlora", "prompt"]
    for row in by.values():
        assert row["s_por_paso"] > 0 and row["tokens_por_s"] > 0
        assert row["entrenables"] > 0
    assert all(v == pytest.approx(1.0) for v in by["full"]["frente_a_completo"].values())
    assert by["full"]["memoria_pico_bytes"] > 0
    assert by["lora"]["entrenables"] < by["full"]["entrenables"]
    assert by["lora"]["frente_a_completo"]["entrenables"] < 1
    assert all(v > 0 for v in parts["c"]["s_por_paso"].values())
    for row in parts["d"]["metodos"]:
        assert row["estimado_bytes"] > 0 and math.isfinite(row["error_pct"])
        assert row["medido_bytes"] == by[row["metodo"]]["memoria_pico_bytes"]  # el mismo lote que en b


def _entry(device, gpu, parts):
    m = {
        "dispositivo": device,
        "cpu": "CPU de prueba",
        "nucleos": 2,
        "hilos_torch": 2,
        "gpu": gpu,
        "torch": "9.9",
        "python": "3.11",
        "fecha": "2026-01-01T00:00:00",
    }
    return {
        "dispositivo": device,
        "partes": {
            k: {**v, "maquina": m, "orden": f"make bench --solo {k}", "rapido": False} for k, v in parts.items()
        },
    }


def test_una_seccion_por_dispositivo(tmp_path):
    course = {
        "cuadernos": [{"cuaderno": "01_x", "estado": "correcto", "segundos": 12.0, "perfil": "embedded"}],
        "total_segundos": 12.0,
        "reutilizado": True,
        "fecha_resumen": "2026-01-01T00:00:00",
    }
    grading = {
        "cuaderno": "01_x",
        "entregas": 2,
        "filas": [
            {
                "trabajadores": 1,
                "entregas": 2,
                "segundos_calificando": 10.0,
                "segundos_por_entrega": 5.0,
                "segundos_media_de_una_entrega": 5.0,
                "segundos_totales_con_preparacion": 12.0,
            }
        ],
    }
    (tmp_path / "bench").mkdir()
    for device, gpu, parts in (
        ("cpu", None, {"a": course, "e": grading}),
        ("cuda-nvidia-h200", "NVIDIA H200", {"a": course}),
    ):
        (tmp_path / "bench" / f"{device}.json").write_text(json.dumps(_entry(device, gpu, parts)), encoding="utf-8")
    md = bench.render(tmp_path).read_text(encoding="utf-8")
    assert md.index("## CPU: CPU de prueba") < md.index("## GPU: NVIDIA H200")
    assert md.count(f"### {bench.TITLES['a']}") == 2 and md.count(f"### {bench.TITLES['e']}") == 1
    assert "| 1 | 5.0 | 5.0 | 10.0 |" in md
    assert (tmp_path / "img" / "cpu_a.png").exists() and (tmp_path / "img" / "cuda-nvidia-h200_a.png").exists()
    # La sección de `make referencia` sobrevive a un nuevo `make bench`.
    BEGIN, END = bench.REFERENCE_BEGIN, bench.REFERENCE_END
    block = f"{BEGIN}\n## Experimentos de referencia\n\n| tabla |\n{END}"
    (tmp_path / "rendimiento.md").write_text(md + "\n\n" + block + "\n", encoding="utf-8")
    again = bench.render(tmp_path).read_text(encoding="utf-8")
    assert again.count(BEGIN) == 1 and block in again and again.startswith(md)


def test_guardar_conserva_las_otras_partes(tmp_path):
    bench.save_results({"a": {"x": 1}}, tmp_path)
    bench.save_results({"e": {"y": 2}}, tmp_path)
    data = json.loads((tmp_path / "bench" / f"{bench.device_key()}.json").read_text(encoding="utf-8"))
    assert data["partes"] == {"a": {"x": 1}, "e": {"y": 2}}


def test_partes():
    assert bench.parse_parts(None, fast=True) == ["b", "c", "d", "e"]
    assert bench.parse_parts(None, fast=False) == list(bench.PARTS)
    assert bench.parse_parts("d,b", fast=False) == ["b", "d"]
    with pytest.raises(SystemExit):
        bench.parse_parts("z", fast=False)


def test_reusar_curso_lee_el_resumen(tmp_path, monkeypatch):
    monkeypatch.setattr(bench, "COURSE_DIR", tmp_path)
    opts = bench.Options(reuse_course=True)
    with pytest.raises(SystemExit):
        bench.bench_course(opts)
    (tmp_path / "resumen.csv").write_text(
        "cuaderno,estado,segundos,figuras,perfil\n01_a,correcto,10.5,1,embedded\n02_b,correcto,4.5,0,embedded\n",
        encoding="utf-8",
    )
    data = bench.bench_course(opts)
    assert [r["cuaderno"] for r in data["cuadernos"]] == ["01_a", "02_b"]
    assert data["total_segundos"] == 15.0 and data["reutilizado"]
    assert data["velocidad"] is None and "GFLOPS" not in "\n".join(bench.md_course(data))
    (tmp_path / "velocidad.json").write_text('{"gflops_inicio": 140.5, "gflops_fin": 97.0}', encoding="utf-8")
    text = "\n".join(bench.md_course(bench.bench_course(opts)))
    assert "140.5 GFLOPS al empezar y 97.0 al terminar" in text
