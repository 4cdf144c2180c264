"""Banco de rendimiento del curso (no es una prueba: mide esta máquina).

``python -m helpers.maintainers.bench [--solo a,b,c,d,e] [--rapido] [--reusar-curso] [--salida docs]``

Partes:

a. segundos de cada cuaderno de ``make curso`` con el modelo embebido;
b. ajuste fino completo, LoRA, QLoRA y ajuste de prompts con el mismo modelo y el mismo lote;
c. LoRA en fp32 frente a bf16 (``torch.autocast``);
d. memoria estimada por :mod:`helpers.memory_planner` frente a la medida;
e. segundos de calificación automática por entrega (nbgrader, perfil diminuto).

Los números quedan en ``<salida>/bench/<dispositivo>.json`` (``cpu`` o ``cuda-<gpu>``) y
``<salida>/rendimiento.md`` se genera a partir de TODOS los JSON presentes, una sección por
dispositivo: medir en una GPU añade su sección sin borrar la de la CPU.
"""

from __future__ import annotations

import argparse
import csv
import datetime as dt
import json
import os
import platform
import re
from dataclasses import dataclass
from pathlib import Path

import torch

from .release import ROOT

PARTS = ("a", "b", "c", "d", "e")
DEFAULT_OUT = ROOT / "docs"
COURSE_DIR = ROOT / "build" / "curso"
GRADED_NOTEBOOK = "01_introduccion_peft"
TITLES = {
    "a": "a. Tiempo de cada cuaderno (`make curso`)",
    "b": "b. Ajuste fino completo, LoRA, QLoRA y ajuste de prompts",
    "c": "c. LoRA en fp32 frente a bf16",
    "d": "d. Planificador de memoria frente a lo medido",
    "e": "e. Calificación automática: segundos por entrega",
}


@dataclass
class Options:
    """Lo que controla una ejecución del banco."""

    profile: str = "embedded"
    steps: int = 5
    precision_steps: int = 4
    batch_size: int = 4
    max_length: int = 64
    submissions: int = 4
    reuse_course: bool = False
    fast: bool = False

    @classmethod
    def quick(cls) -> Options:
        """``--rapido``: modelo diminuto, 2 pasos, una entrega."""
        return cls(profile="tiny", steps=2, precision_steps=2, submissions=1, fast=True)


# ----------------------------------------------------------------------------------------------
# La máquina
# ----------------------------------------------------------------------------------------------
def cpu_model() -> str:
    """Nombre del procesador (``/proc/cpuinfo`` en Linux)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "CPU desconocida"


def slug(text: str) -> str:
    """'NVIDIA H200' → 'nvidia-h200'."""
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")


def t4_mode() -> bool:
    """True con ``CURSO_PEFT_SIMULAR=t4`` (``make gpu``): se mide en modo T4."""
    from ..precision import simulation

    return simulation() == "t4"


def device_key() -> str:
    """'cpu' o 'cuda-<nombre de la GPU>', con '-modo-t4' si se mide en modo T4."""
    key = "cuda-" + slug(torch.cuda.get_device_name(0)) if torch.cuda.is_available() else "cpu"
    return key + "-modo-t4" if t4_mode() else key


def machine() -> dict:
    """Descripción de la máquina en la que se mide."""
    return {
        "dispositivo": device_key(),
        "cpu": cpu_model(),
        "nucleos": os.cpu_count(),
        "hilos_torch": torch.get_num_threads(),
        "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
        "torch": torch.__version__,
        "python": platform.python_version(),
        "fecha": dt.datetime.now().isoformat(timespec="seconds"),
        "modo": "T4 (CURSO_PEFT_SIMULAR=t4: fp16, memoria de una T4)" if t4_mode() else None,
    }


def machine_text(m: dict) -> str:
    """Una línea: GPU (si hay), CPU y núcleos, versión de torch."""
    cpu = f"CPU {m['cpu']} ({m['nucleos']} núcleos)"
    gpu = f"GPU {m['gpu']} · " if m.get("gpu") else ""
    return f"{gpu}{cpu} · torch {m['torch']}"


def rerun_command(part: str, opts: Options) -> str:
    """La orden que repite una parte."""
    if t4_mode():
        return "make gpu"
    fast = " --rapido" if opts.fast else ""
    return f".venv/bin/python -m helpers.maintainers.bench{fast} --solo {part}"


# ----------------------------------------------------------------------------------------------
# a. make curso
# ----------------------------------------------------------------------------------------------
def read_course_summary(path: Path) -> list[dict]:
    """Filas de ``resumen.csv`` de :mod:`helpers.maintainers.course`."""
    with open(path, encoding="utf-8") as handle:
        return [
            {
                "cuaderno": r["cuaderno"],
                "estado": r["estado"],
                "segundos": float(r["segundos"]),
                "perfil": r.get("perfil", ""),
            }
            for r in csv.DictReader(handle)
        ]


def bench_course(opts: Options) -> dict:
    """Ejecuta el curso (o reutiliza ``build/curso/resumen.csv``) y devuelve sus tiempos."""
    summary = COURSE_DIR / "resumen.csv"
    if not opts.reuse_course:
        from . import course

        course.main(["--perfil", opts.profile, "--salida", str(COURSE_DIR)])
    if not summary.exists():
        raise SystemExit(f"No existe {summary}: ejecuta antes `make curso` o quita --reusar-curso.")
    rows = read_course_summary(summary)
    from .course import SPEED_FILE

    speed_file = COURSE_DIR / SPEED_FILE
    speed = json.loads(speed_file.read_text(encoding="utf-8")) if speed_file.exists() else None
    return {
        "cuadernos": rows,
        "total_segundos": round(sum(r["segundos"] for r in rows), 1),
        "reutilizado": opts.reuse_course,
        "velocidad": speed,
        "fecha_resumen": dt.datetime.fromtimestamp(summary.stat().st_mtime).isoformat(timespec="seconds"),
    }


# ----------------------------------------------------------------------------------------------
# b. Cuatro métodos con el mismo lote
# ----------------------------------------------------------------------------------------------
def method_row(record, tokens_per_step: int) -> dict:
    """Un :class:`helpers.compare.MethodRecord` → fila del JSON."""
    from ..compare import METHOD_NAMES

    return {
        "metodo": record.method,
        "nombre": METHOD_NAMES[record.method],
        "entrenables": record.trainable,
        "total": record.total,
        "s_por_paso": record.seconds_per_step,
        "tokens_por_s": tokens_per_step / record.seconds_per_step,
        "memoria_pico_bytes": record.peak_memory_bytes,
        "perdida_entrenamiento_ultimo_paso": record.final_loss,
    }  # no es la «pérdida final» (validación)


def add_ratios(rows: list[dict]) -> None:
    """Añade a cada fila sus cocientes respecto al ajuste fino completo."""
    full = next(r for r in rows if r["metodo"] == "full")
    for row in rows:
        row["frente_a_completo"] = {
            key: row[key] / full[key] if full[key] else None
            for key in ("s_por_paso", "tokens_por_s", "memoria_pico_bytes", "entrenables")
        }


def bench_methods(opts: Options) -> tuple[dict, list]:
    """Los cuatro métodos de :func:`helpers.compare.compare_methods`; (resultado, registros)."""
    from ..compare import compare_methods

    records = compare_methods(
        steps=opts.steps, profile=opts.profile, batch_size=opts.batch_size, max_length=opts.max_length
    )
    rows = [method_row(r, opts.batch_size * opts.max_length) for r in records]
    add_ratios(rows)
    memory = (
        "torch.cuda.max_memory_allocated"
        if torch.cuda.is_available()
        else "pesos + pico de tensores vivos (perfilador de PyTorch)"
    )
    return {"metodos": rows, "medida_memoria": memory, "pasos": opts.steps, **batch_info(opts)}, records


def batch_info(opts: Options) -> dict:
    from ..models import resolve_profile

    return {"perfil": resolve_profile(opts.profile).label, "lote": opts.batch_size, "longitud": opts.max_length}


# ----------------------------------------------------------------------------------------------
# c. fp32 frente a bf16
# ----------------------------------------------------------------------------------------------
def lora_seconds_per_step(opts: Options, autocast_dtype: torch.dtype | None) -> float:
    """Segundos por paso de LoRA (modelo en fp32), con o sin ``torch.autocast``."""
    from contextlib import nullcontext

    from peft import get_peft_model

    from ..compare import LEARNING_RATES, lora_config
    from ..models import load_model, load_tokenizer
    from ..sweep import fixed_batches, train_steps

    batches = fixed_batches(
        load_tokenizer(opts.profile), opts.precision_steps, batch_size=opts.batch_size, max_length=opts.max_length
    )
    model = get_peft_model(load_model(opts.profile, dtype=torch.float32, verbose=False), lora_config())
    device = "cuda" if torch.cuda.is_available() else "cpu"
    context = torch.autocast(device, dtype=autocast_dtype) if autocast_dtype else nullcontext()
    with context:
        _, seconds = train_steps(model, batches, LEARNING_RATES["lora"])
    timed = seconds[1:] if len(seconds) > 1 else seconds
    return sum(timed) / len(timed)


def bench_precision(opts: Options) -> dict:
    """LoRA en fp32 y con autocast bf16 en el dispositivo de esta máquina."""
    from ..environment import cpu_has_bf16, gpu_has_real_bf16
    from ..precision import training_precision

    fp32 = lora_seconds_per_step(opts, None)
    bf16 = lora_seconds_per_step(opts, torch.bfloat16)
    cuda = torch.cuda.is_available()
    hardware = gpu_has_real_bf16(torch.cuda.get_device_capability(0)) if cuda else cpu_has_bf16()
    return {
        "s_por_paso": {"fp32": fp32, "bf16 (autocast)": bf16},
        "bf16_entre_fp32": bf16 / fp32,
        "pasos": opts.precision_steps,
        "bf16_por_hardware": bool(hardware),
        "precision_recomendada": training_precision(),
        **batch_info(opts),
    }


# ----------------------------------------------------------------------------------------------
# d. Planificador de memoria
# ----------------------------------------------------------------------------------------------
def planner_precision() -> str:
    """La precisión del cálculo con la que entrena :mod:`helpers.compare` (la de :func:`helpers.precision.decide`)."""
    from ..precision import decide

    return decide().compute


def bench_planner(opts: Options, records: list | None) -> dict:
    """Estimación de :func:`helpers.memory_planner.plan` frente a la memoria pico medida."""
    from transformers import AutoConfig

    from ..compare import LORA_RANK, compare_methods
    from ..memory_planner import plan
    from ..models import checkpoint
    from ..precision import decide

    methods = ("full", "lora", "qlora")
    by = {r.method: r for r in records or []}
    if not set(methods) <= set(by):
        by = {
            r.method: r
            for r in compare_methods(
                methods, steps=opts.steps, profile=opts.profile, batch_size=opts.batch_size, max_length=opts.max_length
            )
        }
    config = AutoConfig.from_pretrained(checkpoint(opts.profile))
    precision = planner_precision()
    rows = []
    for method in methods:
        estimate = plan(
            config,
            method,
            r=LORA_RANK,
            batch=opts.batch_size,
            seq_len=opts.max_length,
            precision=precision,
            gradient_checkpointing=decide().gradient_checkpointing,
            cuda_overhead=False,
        ).total_bytes
        measured = by[method].peak_memory_bytes
        rows.append(
            {
                "metodo": method,
                "estimado_bytes": estimate,
                "medido_bytes": measured,
                "error_pct": 100 * (estimate - measured) / measured if measured else None,
            }
        )
    return {"metodos": rows, "precision": precision, **batch_info(opts)}


# ----------------------------------------------------------------------------------------------
# e. Calificación automática
# ----------------------------------------------------------------------------------------------
def bench_grading(opts: Options) -> dict:
    """Califica ``submissions`` entregas correctas del cuaderno 01 como ``make calificar`` (caja de
    arena, perfil diminuto) con 1 y 2 trabajadores (solo 1 en modo rápido)."""
    from ..classroom.bench import measure

    workers = (1,) if opts.fast else (1, 2)
    return {
        "cuaderno": GRADED_NOTEBOOK,
        "entregas": opts.submissions,
        "filas": measure(opts.submissions, GRADED_NOTEBOOK, workers, "tiny"),
    }


# ----------------------------------------------------------------------------------------------
# Ejecutar y guardar
# ----------------------------------------------------------------------------------------------
def run_parts(parts: list[str], opts: Options) -> dict:
    """Mide las partes pedidas; ``{parte: resultado}`` con la máquina y la orden en cada una."""
    results, records = {}, None
    for part in parts:
        print(f"→ parte {part}: {TITLES[part]}", flush=True)
        if part == "a":
            data = bench_course(opts)
        elif part == "b":
            data, records = bench_methods(opts)
        elif part == "c":
            data = bench_precision(opts)
        elif part == "d":
            data = bench_planner(opts, records)
        else:
            data = bench_grading(opts)
        data.update(maquina=machine(), orden=rerun_command(part, opts), rapido=opts.fast)
        results[part] = data
    return results


def save_results(results: dict, out: Path) -> Path:
    """Mezcla ``results`` con el JSON de este dispositivo (las partes no medidas se conservan)."""
    path = out / "bench" / f"{device_key()}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    old = json.loads(path.read_text(encoding="utf-8")) if path.exists() else {}
    merged = {"dispositivo": device_key(), "partes": {**old.get("partes", {}), **results}}
    path.write_text(json.dumps(merged, ensure_ascii=False, indent=1) + "\n", encoding="utf-8")
    return path


def load_all(out: Path) -> list[dict]:
    """Todos los ``<salida>/bench/*.json``: primero la CPU, luego las GPU."""
    files = sorted((out / "bench").glob("*.json"), key=lambda p: (p.stem != "cpu", p.stem))
    return [json.loads(p.read_text(encoding="utf-8")) for p in files]


# ----------------------------------------------------------------------------------------------
# Gráficas
# ----------------------------------------------------------------------------------------------
def _figure(ncols: int, data: dict, title: str, width: float = 5.0):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, ncols, figsize=(width * ncols, 4.2), squeeze=False)
    fig.suptitle(f"{title}\n{machine_text(data['maquina'])}\nrepetir: {data['orden']}", fontsize=9)
    return fig, list(axes[0])


def _save(fig, path: Path) -> None:
    import matplotlib.pyplot as plt

    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_course(data: dict, path: Path) -> None:
    fig, (ax,) = _figure(1, data, "Segundos de cada cuaderno (make curso)", width=8)
    rows = data["cuadernos"]
    ax.barh([r["cuaderno"] for r in rows][::-1], [r["segundos"] for r in rows][::-1], color="#3a7ca5")
    ax.set_xlabel("segundos")
    ax.grid(axis="x", alpha=0.3)
    _save(fig, path)


def plot_methods(data: dict, path: Path) -> None:
    from ..plots import plot_bars

    fig, axes = _figure(
        4, data, f"Modelo {data['perfil']}, mismo lote ({data['lote']}×{data['longitud']} tokens)", width=4.2
    )
    rows = data["metodos"]
    panels = [
        ("s_por_paso", "segundos por paso", 1, False, "{:.3g}"),
        ("tokens_por_s", "tokens por segundo", 1, False, "{:.3g}"),
        ("memoria_pico_bytes", "memoria pico (MB)", 1e6, False, "{:.0f}"),
        ("entrenables", "parámetros entrenables", 1, True, "{:.3g}"),
    ]
    for ax, (key, label, scale, log, fmt) in zip(axes, panels):
        plot_bars(
            {r["nombre"].replace(" ", "\n", 1): r[key] / scale for r in rows}, label, label, log=log, ax=ax, fmt=fmt
        )
    _save(fig, path)


def plot_precision(data: dict, path: Path) -> None:
    from ..plots import plot_bars

    fig, (ax,) = _figure(1, data, "LoRA: segundos por paso según la precisión", width=6)
    plot_bars(data["s_por_paso"], "segundos por paso", "", ax=ax)
    _save(fig, path)


def plot_planner(data: dict, path: Path) -> None:
    fig, (ax,) = _figure(1, data, "Memoria pico: planificador frente a lo medido", width=7)
    from ..compare import METHOD_NAMES

    names = [METHOD_NAMES[r["metodo"]].replace(" ", "\n", 1) for r in data["metodos"]]
    x = range(len(names))
    for shift, key, label in ((-0.2, "estimado_bytes", "estimada"), (0.2, "medido_bytes", "medida")):
        ax.bar([i + shift for i in x], [r[key] / 1e6 for r in data["metodos"]], width=0.4, label=label)
    ax.set_xticks(list(x), names)
    ax.set_ylabel("MB")
    ax.legend()
    ax.grid(axis="y", alpha=0.3)
    _save(fig, path)


PLOTS = {"a": plot_course, "b": plot_methods, "c": plot_precision, "d": plot_planner}


# ----------------------------------------------------------------------------------------------
# El documento
# ----------------------------------------------------------------------------------------------
def _mb(n: float) -> str:
    return f"{n / 1e6:.0f}"


def _table(header: list[str], rows: list[list]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + " --- |" * len(header)]
    return lines + ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]


def md_course(d: dict) -> list[str]:
    rows = [[r["cuaderno"], r["estado"], f"{r['segundos']:.1f}"] for r in d["cuadernos"]]
    lines = _table(["cuaderno", "estado", "segundos"], rows + [["**total**", "", f"**{d['total_segundos']:.1f}**"]])
    origin = "reutilizado de" if d.get("reutilizado") else "generado en esta ejecución:"
    lines += ["", f"Resumen {origin} `build/curso/resumen.csv` ({d['fecha_resumen']})."]
    speed = d.get("velocidad")
    if speed:
        lines += [
            "",
            f"Velocidad de la máquina durante esa ejecución (producto de matrices fp32 1024 × 1024): "
            f"{speed['gflops_inicio']} GFLOPS al empezar y {speed['gflops_fin']} al terminar. La de esta "
            "máquina cambia a lo largo del día: compara tiempos solo entre ejecuciones de velocidad parecida.",
        ]
    return lines


def md_methods(d: dict) -> list[str]:
    rows = []
    for r in d["metodos"]:
        ratio = r["frente_a_completo"]
        rows.append(
            [
                r["nombre"],
                f"{r['s_por_paso']:.3f}",
                f"{r['tokens_por_s']:.0f}",
                _mb(r["memoria_pico_bytes"]),
                f"{r['entrenables']:,}".replace(",", " "),
                f"{ratio['s_por_paso']:.2f}",
                f"{ratio['tokens_por_s']:.2f}",
                f"{ratio['memoria_pico_bytes']:.2f}",
                f"{ratio['entrenables']:.2g}",
            ]
        )
    header = [
        "método",
        "s/paso",
        "tokens/s",
        "memoria pico (MB)",
        "entrenables",
        "s/paso ÷ completo",
        "tokens/s ÷ completo",
        "memoria ÷ completo",
        "entrenables ÷ completo",
    ]
    return _table(header, rows) + [
        "",
        f"Modelo {d['perfil']}, {d['pasos']} pasos de AdamW (s/paso sin contar el "
        f"primero), el mismo lote para los cuatro. Memoria medida con "
        f"{d['medida_memoria']}. Tokens por segundo = {d['lote']} × {d['longitud']} "
        "posiciones (con relleno) ÷ s/paso.",
    ]


def md_precision(d: dict) -> list[str]:
    s = d["s_por_paso"]
    rows = [[k, f"{v:.3f}"] for k, v in s.items()]
    hardware = "sí" if d["bf16_por_hardware"] else "no"
    return _table(["precisión", "s/paso (LoRA)"], rows) + [
        "",
        f"Modelo {d['perfil']}, lote {d['lote']} × {d['longitud']}. bf16 tarda {d['bf16_entre_fp32']:.2f} "
        f"veces lo que fp32 ({d['pasos']} pasos; se descarta el primero "
        f"si hay más de uno). ¿bf16 por hardware en esta máquina? {hardware}. Precisión que elige "
        f"`helpers.precision.decide`: **{d['precision_recomendada']}** (en CPU, fp32 aunque haya bf16 por hardware, "
        "para que todas las máquinas den las mismas pérdidas).",
    ]


def md_planner(d: dict) -> list[str]:
    from ..compare import METHOD_NAMES

    rows = [
        [
            METHOD_NAMES[r["metodo"]],
            _mb(r["estimado_bytes"]),
            _mb(r["medido_bytes"]),
            "—" if r["error_pct"] is None else f"{r['error_pct']:+.1f} %",
        ]
        for r in d["metodos"]
    ]
    return (
        _table(["método", "estimada (MB)", "medida (MB)", "error"], rows)
        + [
            "",
            f"Modelo {d['perfil']}. `plan(config, método, r=8, batch={d['lote']}, seq_len={d['longitud']}, "
            f"precision='{d['precision']}', cuda_overhead=False)` frente a la memoria pico medida con el mismo lote "
            "que la parte b. Error = (estimada − medida) ÷ medida.",
        ]
        + (
            []
            if d["precision"] == "fp32"
            else [
                "",
                f"Ojo: la parte b entrena el ajuste completo con los pesos en {d['precision']} "
                "(sin copia maestra fp32), "
                "mientras que el planificador supone precisión mixta; ahí la estimación es más alta.",
            ]
        )
    )


def md_grading(d: dict) -> list[str]:
    rows = [
        [
            str(r["trabajadores"]),
            f"{r['segundos_por_entrega']:.1f}",
            f"{r['segundos_media_de_una_entrega']:.1f}",
            f"{r['segundos_calificando']:.1f}",
        ]
        for r in d["filas"]
    ]
    return [
        f"Cuaderno `{d['cuaderno']}`, {d['entregas']} entregas correctas calificadas como `make calificar` "
        "(nbgrader con la caja de arena, perfil diminuto). *s/entrega* = tiempo de la fase de calificación ÷ "
        "entregas; *s de una entrega* = media de lo que tarda cada una.",
        "",
        *_table(["trabajadores", "s/entrega", "s de una entrega", "s calificando"], rows),
    ]


MD = {"a": md_course, "b": md_methods, "c": md_precision, "d": md_planner, "e": md_grading}


def device_title(entry: dict) -> str:
    m = next(iter(entry["partes"].values()))["maquina"]
    mode = f" · modo {m['modo']}" if m.get("modo") else ""
    if m.get("gpu"):
        return f"GPU: {m['gpu']}{mode}"
    return f"CPU: {m['cpu']} ({m['nucleos']} núcleos){mode}"


def md_part(key: str, part: str, data: dict, out: Path) -> list[str]:
    """La subsección de una parte: tabla, gráfica, máquina y orden para repetirla."""
    lines = [f"### {TITLES[part]}", ""]
    if data.get("rapido"):
        lines += ["> Ejecución rápida (`--rapido`, modelo diminuto): números de prueba, no didácticos.", ""]
    if part in PLOTS:
        image = out / "img" / f"{key}_{part}.png"
        PLOTS[part](data, image)
        lines += [f"![{TITLES[part]}](img/{image.name})", ""]
    lines += MD[part](data)
    lines += [
        "",
        f"*Máquina: {machine_text(data['maquina'])} · {data['maquina']['fecha']}. "
        f"Para repetirlo: `make bench` o, solo esta parte, `{data['orden']}`.*",
        "",
    ]
    return lines


# La sección de `make referencia` (helpers.maintainers.referencia) va entre estas marcas: render la conserva.
REFERENCE_BEGIN, REFERENCE_END = "<!-- referencia:inicio -->", "<!-- referencia:fin -->"


def reference_block(text: str) -> str:
    """La sección de referencia de un ``rendimiento.md`` ya escrito ('' si no tiene)."""
    if REFERENCE_BEGIN in text and REFERENCE_END in text:
        return REFERENCE_BEGIN + text.split(REFERENCE_BEGIN, 1)[1].split(REFERENCE_END, 1)[0] + REFERENCE_END
    return ""


def render(out: Path) -> Path:
    """Escribe ``<salida>/rendimiento.md`` y sus gráficas a partir de todos los JSON."""
    lines = [
        "# Rendimiento del curso",
        "",
        "Documento generado por `make bench` (`python -m helpers.maintainers.bench`); no lo edites a mano. "
        "Cada sección "
        "es una máquina: los números de CPU y de GPU no se mezclan. Los datos en bruto están en `bench/`.",
        "",
    ]
    for entry in load_all(out):
        key = entry["dispositivo"]
        lines += [f"## {device_title(entry)}", ""]
        for part in PARTS:
            if part in entry["partes"]:
                lines += md_part(key, part, entry["partes"][part], out)
    path = out / "rendimiento.md"
    # La sección de los experimentos de referencia la escribe `make referencia`: se conserva tal cual.
    block = reference_block(path.read_text(encoding="utf-8")) if path.exists() else ""
    path.write_text("\n".join(lines) + (f"\n\n{block}\n" if block else ""), encoding="utf-8")
    return path


def parse_parts(text: str | None, fast: bool) -> list[str]:
    """'b,d' → ['b', 'd']; sin --solo, todas (con --rapido, todas menos a)."""
    if not text:
        return [p for p in PARTS if not (fast and p == "a")]
    parts = [p.strip().lower() for p in text.split(",") if p.strip()]
    unknown = sorted(set(parts) - set(PARTS))
    if unknown:
        raise SystemExit(f"Partes desconocidas {unknown}: usa algunas de {','.join(PARTS)}.")
    return [p for p in PARTS if p in parts]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m helpers.maintainers.bench", description="Mide el rendimiento del curso en esta máquina."
    )
    parser.add_argument("--solo", default=None, help="partes separadas por comas, p. ej. b,d (por defecto todas)")
    parser.add_argument("--rapido", action="store_true", help="modelo diminuto, 2 pasos, sin make curso (para pruebas)")
    parser.add_argument(
        "--reusar-curso", action="store_true", help="parte a: lee build/curso/resumen.csv sin volver a ejecutar"
    )
    parser.add_argument("--salida", type=Path, default=DEFAULT_OUT, help="carpeta del informe (por defecto docs/)")
    parser.add_argument("--pasos", type=int, default=None, help="pasos de entrenamiento de las partes b y d")
    args = parser.parse_args(argv)
    for var in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "HF_DATASETS_OFFLINE"):
        os.environ.setdefault(var, "1")
    opts = Options.quick() if args.rapido else Options()
    opts.reuse_course = args.reusar_curso
    opts.steps = args.pasos or opts.steps
    results = run_parts(parse_parts(args.solo, args.rapido), opts)
    print(f"Datos: {save_results(results, args.salida)}")
    print(f"Informe: {render(args.salida)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
