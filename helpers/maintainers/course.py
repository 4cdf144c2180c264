"""Ejecuta el curso completo: cada cuaderno de solutions/ de principio a fin con el modelo real.

``python -m helpers.maintainers.course [--perfil embedded] [--solo 01 03] [--salida build/curso] [--trabajos 2]``

Escribe los cuadernos ejecutados y sus figuras (PNG) en la carpeta de salida, y al final una
tabla en español (cuaderno, estado, segundos) que también queda en ``resumen.csv``.
"""

from __future__ import annotations

import argparse
import base64
import csv
import json
import os
import shutil
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import nbformat
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError
from traitlets.config import Config

from ..course_files import copy_source, ipc_kernel_settings
from ..models import ENV_VAR, resolve_profile
from ..validar import SKIP_ENV
from .release import ROOT, notebook_names

DEFAULT_OUT = ROOT / "build" / "curso"
CELL_TIMEOUT = 1800
SPEED_FILE = "velocidad.json"


def speed_reference(size: int = 1024, repeats: int = 5) -> float:
    """GFLOPS de un producto de matrices fp32 ``size × size`` (mediana de ``repeats`` medidas).

    La velocidad de esta máquina compartida cambia a lo largo del día (se ha visto el mismo paso de
    LoRA tardar 1,3 s y 2,2 s): anotarla antes y después del curso dice si dos tiempos se pueden
    comparar. No es una prueba: solo se guarda junto a ``resumen.csv``.
    """
    import statistics

    import torch

    generator = torch.Generator().manual_seed(0)
    a = torch.randn(size, size, generator=generator)
    b = torch.randn(size, size, generator=generator)
    a @ b  # calentamiento
    measures = []
    for _ in range(repeats):
        start = time.perf_counter()
        for _ in range(10):
            a @ b
        measures.append(10 * 2 * size**3 / (time.perf_counter() - start) / 1e9)
    return statistics.median(measures)


def extract_figures(nb, folder: Path) -> int:
    """Guarda como PNG cada imagen de las salidas del cuaderno; devuelve cuántas."""
    folder.mkdir(parents=True, exist_ok=True)
    count = 0
    for cell in nb.cells:
        for output in cell.get("outputs", []):
            data = output.get("data", {})
            if "image/png" in data:
                count += 1
                (folder / f"figura_{count:02d}.png").write_bytes(base64.b64decode(data["image/png"]))
    return count


def default_jobs() -> int:
    """Cuadernos a la vez por defecto: 2 si hay al menos 2 núcleos de CPU, 1 si no; en una GPU, 1 (se la
    repartirían). Buena parte de cada cuaderno es Python de un solo hilo (tokenizar, preparar datos,
    arrancar el núcleo), así que con un hilo cada uno se espera que dos a la vez terminen antes; no
    está medido frente a ``--trabajos 1`` en la misma máquina: compáralo con el tiempo de reloj que
    imprime al final."""
    import importlib.util

    if importlib.util.find_spec("torch") is not None:
        import torch

        if torch.cuda.is_available():
            return 1
    return 2 if (os.cpu_count() or 1) >= 2 else 1


def longest_first(names: list[str], out_dir: Path) -> list[str]:
    """Los cuadernos, el más largo primero según el ``resumen.csv`` anterior (si lo hay): así el último
    en empezar es corto y nadie espera a un cuaderno largo que empezó tarde."""
    previous = {}
    summary = out_dir / "resumen.csv"
    if summary.exists():
        with open(summary, encoding="utf-8") as handle:
            for row in csv.DictReader(handle):
                try:
                    previous[row["cuaderno"]] = float(row["segundos"])
                except (KeyError, ValueError):
                    pass
    return sorted(names, key=lambda name: -previous.get(name, 0.0))


def run_notebook(name: str, out_dir: Path) -> tuple[str, float, int]:
    """Ejecuta un cuaderno en su propia carpeta de trabajo; devuelve (estado, segundos, figuras)."""
    work = out_dir / name
    shutil.rmtree(work, ignore_errors=True)
    copy_source(name, work)  # sin el examen del examinador (examen.py), ni salidas ni cachés
    path = work / f"{name}.ipynb"
    nb = nbformat.read(path, as_version=4)
    # «immediate»: al terminar, el núcleo se cierra sin esperar a que Python se despida (con torch y
    # peft cargados, apagarlo con calma costaba varios segundos por cuaderno y no guarda nada más).
    # Núcleo por sockets de Unix: sin el aviso «Kernel is running over TCP without encryption».
    client = NotebookClient(
        nb,
        timeout=CELL_TIMEOUT,
        kernel_name="python3",
        shutdown_kernel="immediate",
        config=Config({"KernelManager": ipc_kernel_settings()}),
        resources={"metadata": {"path": str(work)}},
    )
    start = time.perf_counter()
    state = "correcto"
    try:
        client.execute()
    except CellExecutionError as exc:
        state = f"error: {exc.ename}"
    except Exception as exc:  # el núcleo murió, tiempo agotado...
        state = f"error: {type(exc).__name__}"
    seconds = time.perf_counter() - start
    nbformat.write(nb, path)
    figures = extract_figures(nb, work / "figuras")
    return state, seconds, figures


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Ejecuta todos los cuadernos del curso con el modelo real.")
    parser.add_argument(
        "--perfil", default="embedded", help="perfil del modelo: embedded (por defecto), tiny, hub o hub:<id>"
    )
    parser.add_argument(
        "--solo", nargs="*", default=None, help="prefijos de los cuadernos que quieres ejecutar (p. ej. 01 03)"
    )
    parser.add_argument(
        "--salida", type=Path, default=DEFAULT_OUT, help="carpeta de resultados (por defecto build/curso)"
    )
    parser.add_argument(
        "--trabajos",
        type=int,
        default=default_jobs(),
        help="cuántos cuadernos se ejecutan a la vez; cada uno usa núcleos de CPU ÷ trabajos hilos (por "
        f"defecto {default_jobs()} en esta máquina; con 1, uno tras otro con todos los núcleos)",
    )
    args = parser.parse_args(argv)
    if args.trabajos < 1:
        parser.error("--trabajos debe ser 1 o más")

    profile = resolve_profile(args.perfil)  # valida el perfil antes de empezar
    os.environ[ENV_VAR] = args.perfil
    os.environ[SKIP_ENV] = "1"  # la celda «Antes de entregar» no vuelve a ejecutar el cuaderno
    names = [n for n in notebook_names() if not args.solo or any(n.startswith(p) for p in args.solo)]
    if not names:
        print("No hay cuadernos que coincidan con --solo.", file=sys.stderr)
        return 2
    args.salida.mkdir(parents=True, exist_ok=True)
    print(f"Ejecutando {len(names)} cuadernos con el perfil {profile.label}; resultados en {args.salida}")
    speed_start = speed_reference()
    jobs = min(args.trabajos, len(names))
    threads = max(1, (os.cpu_count() or 1) // jobs)
    if jobs > 1:
        # Cada núcleo hereda el entorno al arrancar: con varios cuadernos a la vez, cada uno usa su
        # parte de los núcleos (dos núcleos de torch con dos hilos cada uno en 2 núcleos se estorban).
        os.environ["OMP_NUM_THREADS"] = os.environ["MKL_NUM_THREADS"] = str(threads)
        print(f"{jobs} cuadernos a la vez, {threads} {'hilo' if threads == 1 else 'hilos'} cada uno")
    start = time.perf_counter()
    results = {}

    def one(name: str) -> None:
        print(f"→ {name} ...", flush=True)
        state, seconds, figures = run_notebook(name, args.salida)
        results[name] = (name, state, seconds, figures)
        print(f"  {name}: {state} en {seconds:.1f} s ({figures} {'figura' if figures == 1 else 'figuras'})", flush=True)

    with ThreadPoolExecutor(max_workers=jobs) as pool:
        for future in [pool.submit(one, name) for name in longest_first(names, args.salida)]:
            future.result()
    wall = time.perf_counter() - start
    rows = [results[name] for name in names]

    total = sum(r[2] for r in rows)
    width = max(len(r[0]) for r in rows)
    print()
    print(f"{'Cuaderno':<{width}}  {'Estado':<22} {'Segundos':>9}  Figuras")
    print(f"{'-' * width}  {'-' * 22} {'-' * 9}  -------")
    for name, state, seconds, figures in rows:
        print(f"{name:<{width}}  {state:<22} {seconds:>9.1f}  {figures:>7}")
    print(f"{'Total':<{width}}  {'':<22} {total:>9.1f}")
    if jobs > 1:
        print(f"Tiempo de reloj con {jobs} cuadernos a la vez: {wall:.1f} s")
    speed = {
        "gflops_inicio": round(speed_start, 1),
        "gflops_fin": round(speed_reference(), 1),
        "trabajos": jobs,
        "hilos_por_cuaderno": threads if jobs > 1 else None,
        "segundos_de_reloj": round(wall, 1),
    }
    print(
        f"Velocidad de la máquina (producto de matrices fp32 1024 × 1024): {speed['gflops_inicio']} GFLOPS al "
        f"empezar, {speed['gflops_fin']} al terminar"
    )
    (args.salida / SPEED_FILE).write_text(json.dumps(speed), encoding="utf-8")
    with open(args.salida / "resumen.csv", "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["cuaderno", "estado", "segundos", "figuras", "perfil"])
        for name, state, seconds, figures in rows:
            writer.writerow([name, state, f"{seconds:.1f}", figures, profile.name])
    failed = [r for r in rows if r[1] != "correcto"]
    if failed:
        print(f"\n{len(failed)} cuaderno(s) fallaron: abre el .ipynb ejecutado en {args.salida} para ver el error.")
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
