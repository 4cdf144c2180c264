"""Segundos por entrega con 1 y 2 trabajadores (no es una prueba: mide esta máquina).

``python -m helpers.classroom.bench [--entregas 6] [--cuaderno 01_introduccion_peft] [--trabajadores 1,2]``

Crea una clase de prueba fuera del repositorio (en un directorio temporal) con ``--entregas``
copias de una entrega correcta, la califica con cada número de trabajadores (con la caja de arena y
el perfil rápido, como ``make calificar``) y muestra el tiempo de la fase de calificación dividido
entre el número de entregas. La preparación (generar el cuaderno con nbgrader) no cuenta.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import tempfile
import time
from pathlib import Path

import nbformat

from ..course_files import ROOT, generate
from .batch import default_memory_bytes, run
from .grading import Settings

_MARKER = re.compile(r"^\s*### (BEGIN|END) SOLUTION\s*$")


def solved_submission(name: str) -> bytes:
    """El cuaderno publicado con las soluciones puestas: una entrega con la nota máxima."""
    solution = nbformat.read(ROOT / "solutions" / name / f"{name}.ipynb", as_version=4)
    answers = {
        c.metadata["nbgrader"]["grade_id"]: "\n".join(line for line in c.source.split("\n") if not _MARKER.match(line))
        for c in solution.cells
        if c.get("metadata", {}).get("nbgrader", {}).get("solution")
    }
    with tempfile.TemporaryDirectory() as tmp:
        released = nbformat.read(generate(name, release_dir=Path(tmp)) / f"{name}.ipynb", as_version=4)
    for cell in released.cells:
        meta = cell.get("metadata", {}).get("nbgrader", {})
        if meta.get("solution"):
            cell.source = answers[meta["grade_id"]]
    return nbformat.writes(released).encode("utf-8")


def measure(
    submissions: int = 6, notebook: str = "01_introduccion_peft", workers=(1, 2), profile: str = "tiny"
) -> list[dict]:
    """Califica ``submissions`` entregas correctas con cada número de trabajadores; una fila por número."""
    data = solved_submission(notebook)
    base = Path(tempfile.mkdtemp(prefix="curso-peft-bench-"))
    rows = []
    try:
        source = base / "entregas"
        for i in range(submissions):
            (source / f"alumno{i:02d}").mkdir(parents=True)
            (source / f"alumno{i:02d}" / f"{notebook}.ipynb").write_bytes(data)
        for count in workers:
            class_dir = base / f"clase-{count}"
            settings = Settings(
                class_dir=str(class_dir),
                profile=profile,
                cell_timeout=300,
                total_budget=1800,
                memory_bytes=default_memory_bytes(count),
                threads=max(1, (os.cpu_count() or 1) // count),
            )
            started = time.monotonic()
            table = run(
                source=source,
                notebooks=[notebook],
                class_dir=class_dir,
                settings=settings,
                workers=count,
                say=lambda *_: None,
            )
            timings = json.loads((class_dir / "tiempos.json").read_text(encoding="utf-8"))
            assert all(r["estado"] == "calificado" for r in table), table
            rows.append(
                {
                    "trabajadores": count,
                    "entregas": submissions,
                    "segundos_calificando": timings["segundos_calificando"],
                    "segundos_por_entrega": timings["segundos_por_entrega"],
                    "segundos_media_de_una_entrega": round(
                        sum(timings["segundos_de_cada_entrega"]) / len(timings["segundos_de_cada_entrega"]), 2
                    ),
                    "segundos_totales_con_preparacion": round(time.monotonic() - started, 2),
                }
            )
    finally:
        shutil.rmtree(base, ignore_errors=True)
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m helpers.classroom.bench",
        description="Mide los segundos por entrega del calificador con 1 y 2 trabajadores.",
    )
    parser.add_argument("--entregas", type=int, default=6, help="número de entregas (por defecto 6)")
    parser.add_argument("--cuaderno", default="01_introduccion_peft", help="cuaderno que se califica")
    parser.add_argument("--trabajadores", default="1,2", help="lista de trabajadores, p. ej. 1,2")
    parser.add_argument("--perfil", default="tiny", choices=["tiny", "embedded"])
    parser.add_argument("--json", type=Path, default=None, help="guarda también los resultados en este archivo")
    args = parser.parse_args(argv)
    counts = [int(x) for x in args.trabajadores.split(",") if x.strip()]
    rows = measure(args.entregas, args.cuaderno, counts, args.perfil)
    print(
        f"Calificador · {args.cuaderno} · perfil {args.perfil} · {args.entregas} entregas · "
        f"{os.cpu_count()} núcleos de CPU"
    )
    print(f"{'trabajadores':>12} {'s/entrega':>10} {'s de una entrega':>17} {'s calificando':>14}")
    for r in rows:
        print(
            f"{r['trabajadores']:>12} {r['segundos_por_entrega']:>10.1f} {r['segundos_media_de_una_entrega']:>17.1f} "
            f"{r['segundos_calificando']:>14.1f}"
        )
    if args.json:
        args.json.write_text(json.dumps(rows, ensure_ascii=False, indent=1) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
