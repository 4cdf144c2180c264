"""Banco de pruebas de rendimiento (``make bench``): mide y escribe ``docs/rendimiento.md``.

``python -m helpers.bench [--reusar-curso] [--pasos 6] [--sin-curso] [--sin-calificacion]``

Mide en esta máquina, con el modelo embebido (SmolLM2-135M-Instruct):
1. el tiempo de cada cuaderno en ``make curso``;
2. ajuste fino completo, LoRA, QLoRA y ajuste de *prompts* con el mismo modelo, lote y
   semilla: s/paso, tokens/s, memoria pico y parámetros entrenables, en proporción al completo;
3. el planificador de memoria frente a lo medido (pesos, gradientes + optimizador, activaciones);
4. fp32 frente a autocast bf16 (en CPU) o fp16/bf16 (en GPU);
5. los segundos por entrega al calificar con nbgrader.
Cada dispositivo guarda sus cifras en ``docs/bench/<dispositivo>.json``; el Markdown se
regenera con todas, con las de CPU y GPU separadas.
"""
from __future__ import annotations

import argparse
import csv
import datetime as dt
import json
import os
import platform
import subprocess
import sys
import tempfile
from pathlib import Path

import torch

from . import compare
from .measure import count_parameters, footprint_bytes, format_count
from .memory_planner import plan
from .release import ROOT

DOCS = ROOT / "docs"
BENCH_DIR = DOCS / "bench"
IMG_DIR = DOCS / "img"
PROFILE = "embedded"
BATCH, SEQ = 4, 64


def machine() -> dict:
    """Descripción de la máquina en la que se mide."""
    import psutil

    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    info = {"cpu": cpu, "núcleos": os.cpu_count(), "memoria_gb": round(psutil.virtual_memory().total / 1024**3, 1),
            "torch": torch.__version__, "fecha": dt.date.today().isoformat()}
    if torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name(0)
    return info


def device_key() -> str:
    if torch.cuda.is_available():
        return "gpu-" + torch.cuda.get_device_name(0).lower().replace(" ", "-")
    return "cpu"


# --- 1. make curso ----------------------------------------------------------------------------
def bench_course(reuse: bool) -> list[dict]:
    out = ROOT / "build" / "curso"
    if not (reuse and (out / "resumen.csv").exists()):
        from .course import main as course_main

        course_main(["--perfil", PROFILE, "--salida", str(out)])
    with open(out / "resumen.csv", encoding="utf-8") as handle:
        return [dict(r) for r in csv.DictReader(handle)]


# --- 2. los cuatro métodos --------------------------------------------------------------------
def bench_methods(steps: int) -> list[dict]:
    records = compare.compare_methods(steps=steps, profile=PROFILE, batch_size=BATCH, max_length=SEQ)
    full = next(r for r in records if r.method == "full")
    rows = []
    for r in records:
        rows.append({
            "método": compare.METHOD_NAMES[r.method], "clave": r.method, "entrenables": r.trainable, "totales": r.total,
            "s_paso": r.seconds_per_step, "tokens_s": BATCH * SEQ / r.seconds_per_step, "memoria_mb": r.peak_memory_bytes / 1024**2,
            "pérdida_final": r.final_loss, "x_tiempo": r.seconds_per_step / full.seconds_per_step,
            "x_memoria": r.peak_memory_bytes / max(full.peak_memory_bytes, 1), "x_entrenables": r.trainable / full.trainable,
        })
    return rows


# --- 3. planificador frente a lo medido --------------------------------------------------------
def _saved_activation_bytes(model, batch) -> int:
    """Bytes que autograd guarda para la retropropagación (sin contar los parámetros), más el
    gradiente de los *logits*, que se crea al empezar la retropropagación con todo lo guardado."""
    params = {p.untyped_storage().data_ptr() for p in model.parameters()}
    seen: dict[int, int] = {}

    def pack(t):
        try:
            st = t.untyped_storage()
            if st.data_ptr() not in params:
                seen[st.data_ptr()] = st.nbytes()
        except (RuntimeError, NotImplementedError):
            pass
        return t

    grads: list[int] = []
    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        out = model(**batch)
    out.logits.register_hook(lambda g: grads.append(g.numel() * g.element_size()))
    out.loss.backward()
    return sum(seen.values()) + sum(grads)


def bench_planner(profile: str = PROFILE) -> list[dict]:
    """Cada parte de la memoria estimada por el planificador frente a la medida, por método."""
    from .models import load_tokenizer

    tokenizer = load_tokenizer(profile)
    batch = compare.lm_batches(tokenizer, 1, batch_size=BATCH, max_length=SEQ)[0]
    precision = "fp32" if not torch.cuda.is_available() else ("bf16" if torch.cuda.is_bf16_supported() and torch.cuda.get_device_capability(0) >= (8, 0) else "fp16")
    rows = []
    for method in ("full", "lora", "qlora"):
        torch.manual_seed(0)
        model = compare.build_model(method, profile)
        device = next(model.parameters()).device
        b = {k: v.to(device) for k, v in batch.items()}
        weights = footprint_bytes(model)
        activations = _saved_activation_bytes(model, b)
        trainable = [p for p in model.parameters() if p.requires_grad]
        optimizer = torch.optim.AdamW(trainable, lr=1e-5)
        optimizer.step()
        grads = sum(p.grad.numel() * p.grad.element_size() for p in trainable if p.grad is not None)
        states = sum(t.numel() * t.element_size() for s in optimizer.state.values() for t in s.values() if torch.is_tensor(t) and t.dim() > 0)
        est = plan(model.config, method, r=compare.LORA_RANK, batch=BATCH, seq_len=SEQ, precision=precision, cuda_overhead=False).breakdown
        measured = {"pesos": weights, "gradientes + optimizador": grads + states, "activaciones + logits": activations}
        estimated = {"pesos": est["pesos"], "gradientes + optimizador": est["gradientes"] + est["estados del optimizador"],
                     "activaciones + logits": est["activaciones"] + est["logits"]}
        for part in measured:
            rows.append({"método": compare.METHOD_NAMES[method], "parte": part, "medido_mb": measured[part] / 1024**2,
                         "estimado_mb": estimated[part] / 1024**2, "error": estimated[part] / measured[part] - 1})
        rows.append({"método": compare.METHOD_NAMES[method], "parte": "total", "medido_mb": sum(measured.values()) / 1024**2,
                     "estimado_mb": sum(estimated.values()) / 1024**2, "error": sum(estimated.values()) / sum(measured.values()) - 1})
        del model, optimizer
        compare._release()
    return rows


# --- 4. precisión -------------------------------------------------------------------------------
def bench_precision() -> list[dict]:
    from .models import load_tokenizer

    tokenizer = load_tokenizer(PROFILE)
    batches = compare.lm_batches(tokenizer, 3, batch_size=BATCH, max_length=SEQ)
    cuda = torch.cuda.is_available()
    low = torch.float16 if cuda and torch.cuda.get_device_capability(0) < (8, 0) else torch.bfloat16
    rows = []
    for name, dtype, steps in (("fp32", None, 3), (f"autocast {str(low).replace('torch.', '')}", low, 3 if cuda else 1)):
        torch.manual_seed(0)
        model = compare.build_model("lora", PROFILE)
        device = "cuda" if cuda else "cpu"
        optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-3)
        times = []
        for batch in batches[:steps]:
            batch = {k: v.to(device) for k, v in batch.items()}
            if cuda:
                torch.cuda.synchronize()
            start = __import__("time").perf_counter()
            with torch.autocast(device, dtype=dtype, enabled=dtype is not None):
                loss = model(**batch).loss
            loss.backward()
            optimizer.step()
            optimizer.zero_grad()
            if cuda:
                torch.cuda.synchronize()
            times.append(__import__("time").perf_counter() - start)
        timed = times[1:] if len(times) > 1 else times
        rows.append({"precisión": name, "s_paso": sum(timed) / len(timed), "pasos": len(timed)})
        del model, optimizer
        compare._release()
    return rows


# --- 5. calificación ----------------------------------------------------------------------------
def bench_grading(n: int = 3) -> dict:
    from . import autograde as ag

    name = "01_introduccion_peft"
    with tempfile.TemporaryDirectory() as tmp:
        course = ag.make_course(Path(tmp), [name])
        import time

        subs = {f"alumno{i}": ag.SOLUTIONS / name / f"{name}.ipynb" for i in range(n)}
        start = time.perf_counter()
        ag.autograde(course, name, subs)
        seconds = time.perf_counter() - start
    return {"cuaderno": name, "entregas": n, "s_por_entrega": seconds / n, "perfil": "tiny", "trabajadores": 1}


# --- informe ------------------------------------------------------------------------------------
def plots(key: str, data: dict) -> list[str]:
    from .plots import plot_bars

    files = []
    if data.get("metodos"):
        rows = data["metodos"]
        for field, label, log in (("s_paso", "segundos por paso", False), ("memoria_mb", "memoria pico (MB)", False), ("entrenables", "parámetros entrenables", True)):
            fig = plot_bars({r["método"]: r[field] for r in rows}, label, f"{label} · {key}", log=log)
            path = IMG_DIR / f"rendimiento_{key}_{field}.png"
            fig.savefig(path, dpi=100)
            files.append(path.name)
    if data.get("curso"):
        fig = plot_bars({r["cuaderno"][:2]: float(r["segundos"]) for r in data["curso"]}, "segundos", f"make curso por cuaderno · {key}")
        path = IMG_DIR / f"rendimiento_{key}_curso.png"
        fig.savefig(path, dpi=100)
        files.append(path.name)
    return files


def render() -> str:
    """Markdown con todas las mediciones guardadas (una sección por dispositivo)."""
    out = ["# Rendimiento medido", "",
           "Cifras medidas con `make bench` (`python -m helpers.bench`). Para repetirlas en tu máquina:",
           "`make bench` (unos 15 minutos en una CPU de 2 núcleos; `--reusar-curso` reutiliza el último `make curso`).",
           "En una GPU (Colab T4 u otra CUDA) la misma orden mide memoria pico de CUDA y añade su propia sección;",
           "las cifras de CPU y de GPU no se mezclan. Modelo: SmolLM2-135M-Instruct (perfil embebido).", ""]
    for path in sorted(BENCH_DIR.glob("*.json")):
        data = json.loads(path.read_text(encoding="utf-8"))
        key, m = path.stem, data["maquina"]
        out += [f"## {'GPU' if key.startswith('gpu') else 'CPU'}: {m.get('gpu', m['cpu'])}", "",
                f"Máquina: {m['cpu']}, {m['núcleos']} núcleos, {m['memoria_gb']} GB de RAM, torch {m['torch']}; medido el {m['fecha']}.", ""]
        if data.get("curso"):
            total = sum(float(r["segundos"]) for r in data["curso"])
            out += ["### `make curso` por cuaderno", "", "| cuaderno | estado | segundos |", "| --- | --- | ---: |"]
            out += [f"| {r['cuaderno']} | {r['estado']} | {float(r['segundos']):.1f} |" for r in data["curso"]]
            out += [f"| **total** | | **{total:.1f}** |", ""]
        if data.get("metodos"):
            out += [f"### Los cuatro métodos (lote {BATCH} × {SEQ} tokens, mismos datos y semilla)", "",
                    "| método | entrenables | s/paso | tokens/s | memoria pico (MB) | pérdida final | × tiempo | × memoria | × entrenables |",
                    "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
            out += [f"| {r['método']} | {format_count(r['entrenables'])} | {r['s_paso']:.2f} | {r['tokens_s']:.0f} | {r['memoria_mb']:.0f} | "
                    f"{r['pérdida_final']:.3f} | {r['x_tiempo']:.2f} | {r['x_memoria']:.2f} | {r['x_entrenables']:.5f} |" for r in data["metodos"]]
            out += ["", "Las proporciones (×) son respecto al ajuste fino completo. En CPU la memoria pico es la memoria",
                    "residente que el proceso gana durante la carga y el entrenamiento (incluye pesos).", ""]
        if data.get("planificador"):
            out += ["### Planificador de memoria frente a lo medido", "",
                    "Medido: pesos con su tamaño en memoria, gradientes y estados de AdamW tras un paso, y las",
                    "activaciones que autograd guarda de verdad (sin contar parámetros).", "",
                    "| método | parte | medido (MB) | estimado (MB) | error |", "| --- | --- | ---: | ---: | ---: |"]
            out += [f"| {r['método']} | {r['parte']} | {r['medido_mb']:.1f} | {r['estimado_mb']:.1f} | {100 * r['error']:+.0f} % |" for r in data["planificador"]]
            out += [""]
        if data.get("precision"):
            out += ["### Precisión", "", "| precisión | s/paso (LoRA) | pasos medidos |", "| --- | ---: | ---: |"]
            out += [f"| {r['precisión']} | {r['s_paso']:.2f} | {r['pasos']} |" for r in data["precision"]]
            out += ["", "En una CPU sin bf16 por hardware (sin AVX-512-BF16 ni AMX) el autocast bf16 se emula y es mucho",
                    "más lento: por eso `helpers.training_precision()` elige fp32 ahí.", ""]
        if data.get("calificacion"):
            g = data["calificacion"]
            out += ["### Calificación automática", "",
                    f"nbgrader, cuaderno {g['cuaderno']}, perfil {g['perfil']}: **{g['s_por_entrega']:.1f} s por entrega** "
                    f"({g['entregas']} entregas, {g['trabajadores']} trabajador).", ""]
        for name in data.get("figuras", []):
            out += [f"![{name}](img/{name})", ""]
    return "\n".join(out) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Mide el rendimiento del curso y escribe docs/rendimiento.md.")
    parser.add_argument("--reusar-curso", action="store_true", help="usa build/curso/resumen.csv si existe")
    parser.add_argument("--sin-curso", action="store_true", help="no mide make curso")
    parser.add_argument("--sin-calificacion", action="store_true", help="no mide la calificación")
    parser.add_argument("--pasos", type=int, default=6, help="pasos medidos por método (por defecto 6)")
    args = parser.parse_args(argv)
    BENCH_DIR.mkdir(parents=True, exist_ok=True)
    IMG_DIR.mkdir(parents=True, exist_ok=True)
    key = device_key()
    data = {"maquina": machine()}
    if not args.sin_curso:
        print("1/5 make curso ...", flush=True)
        data["curso"] = bench_course(args.reusar_curso)
    print("2/5 los cuatro métodos ...", flush=True)
    data["metodos"] = bench_methods(args.pasos)
    print("3/5 planificador frente a lo medido ...", flush=True)
    data["planificador"] = bench_planner()
    print("4/5 precisión ...", flush=True)
    data["precision"] = bench_precision()
    if not args.sin_calificacion:
        print("5/5 calificación ...", flush=True)
        data["calificacion"] = bench_grading()
    data["figuras"] = plots(key, data)
    (BENCH_DIR / f"{key}.json").write_text(json.dumps(data, ensure_ascii=False, indent=1), encoding="utf-8")
    (DOCS / "rendimiento.md").write_text(render(), encoding="utf-8")
    print(f"Escrito {DOCS / 'rendimiento.md'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
