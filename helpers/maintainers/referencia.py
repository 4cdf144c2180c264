"""``make referencia``: ejecuta todos los experimentos de referencia, reanudables, y publica sus resultados.

Cada ejecución (una opción, una tasa, una semilla de :mod:`helpers.reference`) se guarda en
``<caché>/runs/<clave>.json``. La clave es el SHA-256 de su configuración, del código que la
ejecuta (las funciones de :data:`helpers.reference.RUN_FUNCTIONS` y los módulos que usan), de los
datos y de las versiones fijadas en ``pyproject.toml``, y del dispositivo. Así:

- una ejecución terminada nunca se repite; una interrumpida sigue desde su último punto de
  guardado (``<caché>/ckpt/<clave>.pt``, cada ``eval_every`` pasos);
- si cambias un experimento (sus opciones, su rejilla), solo se ejecuta lo que cambió;
- si cambias el código de entrenamiento, los datos o una versión fijada, todo vuelve a ejecutarse.

Después de cada ejecución se reescriben ``helpers/data/referencia.json`` (se publica con el
paquete: lo leen los cuadernos con :func:`helpers.reference.load`) y la sección de referencia de
``docs/rendimiento.md`` con sus gráficas: un corte no pierde nada de lo ya medido. Cada resultado
lleva su procedencia: máquina, GFLOPS medidos al empezar, versiones, semilla, fecha, orden y commit.

Uso::

    python -m helpers.maintainers.referencia               # todo (make referencia)
    python -m helpers.maintainers.referencia --solo 05     # un cuaderno
    python -m helpers.maintainers.referencia --plan        # qué falta y cuánto tardaría, sin ejecutar
"""

from __future__ import annotations

import argparse
import ast
import datetime as dt
import json
import math
import os
import shlex
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

from .. import reference
from ..reference import EXPERIMENTS, Cache, Experiment, plan_next, run_config, tried_rates
from .bench import REFERENCE_BEGIN, REFERENCE_END, machine
from .pins import read_pyproject
from .release import ROOT

DEFAULT_CACHE = ROOT / "build" / "referencia"
DOCS = ROOT / "docs" / "rendimiento.md"
IMAGES = ROOT / "docs" / "img"
BEGIN, END = REFERENCE_BEGIN, REFERENCE_END
TASK_NOTEBOOK = "03_lora_sft"
TASK_NAMES = ("COMMON", "words", "key_words", "task_metrics")
LOFTQ_NOTEBOOK = "08_variantes_lora"


# ----------------------------------------------------------------------------------------------
# La clave de la caché (la de helpers.reference, con las versiones fijadas de pyproject.toml)
# ----------------------------------------------------------------------------------------------
def pinned_versions(data: dict | None = None) -> dict[str, str]:
    """Las versiones fijadas en ``pyproject.toml`` de los paquetes que deciden el cálculo."""
    data = data or read_pyproject()
    lines = list(data["project"]["dependencies"]) + list(data["tool"]["curso-peft"]["no-deps"])
    for extra in data["project"].get("optional-dependencies", {}).values():
        lines += list(extra)
    found = {}
    for line in lines:
        name, _, version = line.partition("==")
        name = name.split("[")[0].strip().lower()
        if name in reference.VERSION_PACKAGES and version:
            found[name] = version.split(";")[0].strip()
    return dict(sorted(found.items()))


def code_fingerprint() -> str:
    """La huella del código de :func:`helpers.reference.code_fingerprint`, con ``loftq_factors`` de la
    solución del 08."""
    return reference.code_fingerprint(custom_inits()[1])


def course_cache(folder: Path) -> Cache:
    """La caché del ejecutor del curso: versiones fijadas (no las instaladas) y la huella de arriba."""
    return Cache(folder, fingerprint=code_fingerprint(), versions=pinned_versions())


# ----------------------------------------------------------------------------------------------
# La procedencia y la métrica de la tarea
# ----------------------------------------------------------------------------------------------
def provenance(gflops: float | None, command: str) -> dict:
    """Máquina, GFLOPS, versiones instaladas, fecha, orden y commit de esta invocación."""
    installed = reference.installed_versions()
    commit = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True
    ).stdout.strip()
    return {
        "maquina": machine(),
        "gflops": None if gflops is None else round(gflops, 1),
        "versiones": installed,
        "fecha": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "orden": command,
        "commit": commit or None,
    }


def notebook_definitions(notebook: str, names: tuple[str, ...], namespace: dict | None = None) -> tuple[dict, str]:
    """Ejecuta las definiciones ``names`` (funciones y asignaciones) de ``solutions/<notebook>``.

    Devuelve el espacio de nombres y su código (entra en la clave de la caché). Las respuestas de
    los ejercicios nunca están en el paquete: el ejecutor las lee de las soluciones, como las pruebas.
    """
    import nbformat

    path = ROOT / "solutions" / notebook / f"{notebook}.ipynb"
    nb = nbformat.read(path, as_version=4)
    namespace = {} if namespace is None else namespace
    exec("import re\nimport torch", namespace)
    sources = []
    for cell in nb.cells:
        if cell.cell_type != "code":
            continue
        try:
            tree = ast.parse(cell.source)
        except SyntaxError:
            continue
        for node in tree.body:
            defined = (
                {node.name}
                if isinstance(node, ast.FunctionDef)
                else {t.id for t in node.targets if isinstance(t, ast.Name)}
                if isinstance(node, ast.Assign)
                else set()
            )
            if defined & set(names):
                sources.append(ast.unparse(node))
                exec(compile(ast.Module([node], []), str(path), "exec"), namespace)
    missing = [n for n in names if n not in namespace]
    if missing:
        raise RuntimeError(f"{path.name} ya no define {', '.join(missing)}: el ejecutor de referencia lo lee de ahí.")
    return namespace, "\n".join(sources)


def task_metric_function() -> Callable:
    """``task_metrics`` del cuaderno 03 (formato y dato), leída de ``solutions/`` (nunca del paquete)."""
    return notebook_definitions(TASK_NOTEBOOK, TASK_NAMES)[0]["task_metrics"]


def custom_inits() -> tuple[dict[str, Callable], str]:
    """Las inicializaciones de :data:`helpers.reference.CUSTOM_INITS` (LoftQ, del cuaderno 08) y su código."""
    from ..variants import nf4_roundtrip

    namespace, source = notebook_definitions(LOFTQ_NOTEBOOK, ("loftq_factors",), {"nf4_roundtrip": nf4_roundtrip})
    return {"loftq": namespace["loftq_factors"]}, source


# ----------------------------------------------------------------------------------------------
# Ejecutar y publicar
# ----------------------------------------------------------------------------------------------
def run_experiments(
    experiments: list[Experiment],
    cache: Cache,
    *,
    command: str,
    data_file: Path | None,
    docs: Path | None,
    deadline: float | None = None,
    on_checkpoint=None,
    log=print,
    progress: bool = False,
) -> dict:
    """Ejecuta lo que falta de ``experiments``, en orden, y publica después de cada ejecución."""
    from .course import speed_reference

    prov = provenance(speed_reference(), command)
    log(f"Máquina: {prov['maquina']['cpu']} · {prov['gflops']} GFLOPS · caché {cache.folder}")
    inits = custom_inits()[0]
    for experiment in experiments:
        reference.run_experiment(
            experiment,
            cache=cache,
            inits=inits,
            provenance=prov,
            deadline=deadline,
            on_checkpoint=on_checkpoint,
            log=log,
            progress=progress,
            after_run=lambda: publish(cache, data_file, docs, experiments),
        )
        if deadline is not None and time.time() > deadline:
            break
    return publish(cache, data_file, docs, experiments)


def publish(cache: Cache, data_file: Path | None, docs: Path | None, experiments=None) -> dict:
    """Escribe el archivo de datos y la sección de ``docs``; devuelve lo escrito."""
    metric = task_metric_function()
    # Siempre todos los del curso (una invocación con --solo no borra los demás) y los que se pidan.
    experiments = list({**EXPERIMENTS, **{e.key: e for e in experiments or []}}.values())
    data = {
        "descripcion": "Resultados de referencia (make referencia); generado, no lo edites a mano.",
        "protocolo": {
            "pasos": reference.STEPS,
            "semillas": list(reference.SEEDS),
            "lote": reference.BATCH_SIZE,
            "longitud": reference.MAX_LENGTH,
            "ampliaciones_de_rejilla": reference.MAX_GRID_EXTENSIONS,
        },
        "versiones_fijadas": cache.versions,
        "dispositivo": cache.device,
        "codigo": cache.fingerprint[:16],
        "experimentos": {},
    }
    for experiment in experiments:
        summary = reference.summarize(experiment, cache.get, metric)
        if any(o["rejilla"] for o in summary["opciones"].values()):
            data["experimentos"][experiment.key] = summary
    if data_file is not None:
        data_file.parent.mkdir(parents=True, exist_ok=True)
        data_file.write_text(
            json.dumps(data, ensure_ascii=False, indent=1, allow_nan=False, default=str) + "\n", encoding="utf-8"
        )
    if docs is not None and data_file is not None:
        write_docs(docs, data_file, data)
    return data


def markdown_section(data: dict, data_file: Path, images: Path | None) -> list[str]:
    """La sección de referencia de ``docs/rendimiento.md``."""
    shown = (
        data_file.relative_to(ROOT / "helpers").as_posix()
        if data_file.is_relative_to(ROOT / "helpers")
        else data_file.name
    )
    lines = [
        BEGIN,
        "",
        "## Experimentos de referencia",
        "",
        "Generado por `make referencia` (`python -m helpers.maintainers.referencia`) a partir de "
        f"`helpers/{shown}`. "
        f"Protocolo: {reference.STEPS} pasos con lotes de {reference.BATCH_SIZE} × {reference.MAX_LENGTH}; "
        f"cada opción, con su tasa elegida en la partición de validación entera (la semilla {reference.SEEDS[0]} "
        f"en una rejilla de factor ~3 que se amplía si la mejor sale en un borde) y después las semillas "
        f"{', '.join(map(str, reference.SEEDS))} en esa tasa. Cada celda es media ± desviación típica entre "
        "semillas. Formato y dato: la métrica de la tarea del cuaderno 03 en la partición de prueba. Olvido: "
        "pérdida en preguntas de cultura general (`texto_general.jsonl`) con el adaptador menos sin él "
        "(`disable_adapter()`); positivo = el ajuste empeoró el texto general.",
        "",
    ]
    if not data["experimentos"]:
        lines += ["Todavía no hay resultados.", ""]
    for key, summary in data["experimentos"].items():
        options = summary["opciones"]
        complete = [k for k, o in options.items() if o["completa"]]
        missing = [k for k, o in options.items() if not o["completa"]]
        lines += [f"### {key}. {summary['titulo']}", "", summary["pregunta"], ""]
        state = (
            "completo"
            if not missing
            else f"**incompleto**: faltan ejecuciones de {', '.join(missing)}"
            + (f" (completas: {', '.join(complete)})" if complete else "")
        )
        lines += [f"Estado: {state}.", ""]
        if images is not None:
            name = f"referencia_{key}.png"
            write_plot(key, data_file, images / name)
            lines += [f"![Referencia {key}](img/{name})", ""]
        lines += [reference.markdown(reference.table_rows(summary)), ""]
        provs = [s["procedencia"] for o in options.values() for s in o["semillas"] if s.get("procedencia")]
        if provs:
            gflops = [p["gflops"] for p in provs if p.get("gflops")]
            dates = sorted(p["fecha"] for p in provs)
            machine = provs[0]["maquina"]
            lines += [
                f"*{len(provs)} {'ejecución' if len(provs) == 1 else 'ejecuciones'} en la tabla · "
                f"{machine.get('cpu')} ({machine.get('nucleos')} núcleos)"
                f"{' · GPU ' + machine['gpu'] if machine.get('gpu') else ''} · "
                f"torch {provs[0]['versiones'].get('torch')}"
                f", peft {provs[0]['versiones'].get('peft')} · {min(gflops) if gflops else '?'}–"
                f"{max(gflops) if gflops else '?'} GFLOPS · del {dates[0]} al {dates[-1]} · commit "
                f"{provs[0].get('commit')} · para repetirlo: `python -m helpers.maintainers.referencia --solo {key}`.*",
                "",
            ]
        for source in summary.get("fuentes", []):
            lines += [f"Fuente: {source}", ""]
    lines += [END]
    return lines


def write_plot(key: str, data_file: Path, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig = reference.plot(key, data_file)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)


def write_docs(docs: Path, data_file: Path, data: dict) -> None:
    """Sustituye (o añade al final) la sección entre :data:`BEGIN` y :data:`END` de ``docs``."""
    text = docs.read_text(encoding="utf-8") if docs.exists() else ""
    section = "\n".join(markdown_section(data, data_file, docs.parent / "img"))
    if BEGIN in text and END in text:
        head, rest = text.split(BEGIN, 1)
        text = head + section + rest.split(END, 1)[1]
    else:
        text = text.rstrip("\n") + "\n\n" + section + "\n"
    docs.write_text(text, encoding="utf-8")


# ----------------------------------------------------------------------------------------------
# Plan y estimación
# ----------------------------------------------------------------------------------------------
def plan(experiments: list[Experiment], cache: Cache, seconds_per_step: dict[str, float] | None = None) -> list[str]:
    """Líneas con lo que falta de cada experimento (el mínimo: la rejilla inicial + las semillas)."""
    lines, total = [], 0.0
    for experiment in experiments:
        for option in experiment.options:
            grid_runs = len(experiment.lr_grids[option]) + len(experiment.seeds) - 1
            done = sum(
                1
                for rate in tried_rates(experiment, option, cache.get)
                for seed in experiment.seeds
                if cache.get(run_config(experiment, option, rate, seed))
            )
            left = max(0, grid_runs - done) if plan_next(experiment, option, cache.get) else 0
            method = experiment.options[option]["method"]
            seconds = (seconds_per_step or {}).get(method)
            cost = left * experiment.steps * seconds if seconds else math.nan
            total += 0 if math.isnan(cost) else cost
            lines.append(
                f"{experiment.key} · {option:<22} hechas {done:>2} · faltan ≥{left} ejecuciones"
                + (f" (~{cost / 60:.0f} min)" if not math.isnan(cost) else "")
            )
    if seconds_per_step:
        lines.append(f"Total que falta: ~{total / 3600:.1f} h (sin la evaluación ni ampliaciones de rejilla)")
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m helpers.maintainers.referencia",
        description="Ejecuta los experimentos de referencia (reanudables) y publica sus resultados.",
    )
    parser.add_argument("--solo", default=None, help="cuadernos separados por comas, p. ej. 05,08 (por defecto todos)")
    parser.add_argument(
        "--cache", type=Path, default=DEFAULT_CACHE, help=f"carpeta de la caché (por defecto {DEFAULT_CACHE})"
    )
    parser.add_argument("--datos", type=Path, default=reference.DATA_FILE, help="archivo de resultados que se publica")
    parser.add_argument("--docs", type=Path, default=DOCS, help="documento con la sección de referencia")
    parser.add_argument("--plan", action="store_true", help="solo dice qué falta, sin ejecutar")
    parser.add_argument("--publicar", action="store_true", help="solo reescribe los datos y la sección con lo que hay")
    parser.add_argument("--horas", type=float, default=None, help="no empieza ejecuciones nuevas pasado este tiempo")
    args = parser.parse_args(argv)
    for var in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "HF_DATASETS_OFFLINE"):
        os.environ.setdefault(var, "1")
    keys = [k.strip() for k in args.solo.split(",")] if args.solo else list(EXPERIMENTS)
    unknown = [k for k in keys if k not in EXPERIMENTS]
    if unknown:
        raise SystemExit(f"Experimentos desconocidos {unknown}: usa algunos de {', '.join(EXPERIMENTS)}.")
    experiments = [EXPERIMENTS[k] for k in keys]
    cache = course_cache(args.cache)
    if args.plan:
        print("\n".join(plan(experiments, cache)))
        return 0
    if args.publicar:
        publish(cache, args.datos, args.docs)
        print(f"Datos: {args.datos}\nDocumento: {args.docs}")
        return 0
    command = "python -m helpers.maintainers.referencia " + shlex.join(argv if argv is not None else sys.argv[1:])
    deadline = time.time() + 3600 * args.horas if args.horas else None
    run_experiments(
        experiments,
        cache,
        command=command.strip(),
        data_file=args.datos,
        docs=args.docs,
        deadline=deadline,
        progress=True,
        log=lambda *a: print(*a, flush=True),
    )
    print(f"Datos: {args.datos}\nDocumento: {args.docs}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
