"""Medidas: parámetros (totales y entrenables), tiempo, memoria pico y tamaño del modelo."""

from __future__ import annotations

import contextlib
import os
import sys
import threading
import time
from dataclasses import dataclass

import torch


def param_numel(param: torch.Tensor) -> int:
    """Número real de parámetros de un tensor, también si está empaquetado en 4 bits.

    bitsandbytes guarda dos valores de 4 bits en cada byte (``Params4bit``): su ``numel()``
    cuenta bytes, no parámetros. La forma original está en ``quant_state.shape``.
    """
    quant_state = getattr(param, "quant_state", None)
    if quant_state is not None and getattr(quant_state, "shape", None) is not None:
        return int(torch.Size(quant_state.shape).numel())
    return param.numel()


@dataclass(frozen=True)
class ParamCount:
    total: int
    trainable: int

    @property
    def fraction(self) -> float:
        """Fracción entrenable (0–1)."""
        return self.trainable / self.total if self.total else 0.0

    def __str__(self) -> str:
        return (
            f"parámetros totales: {format_count(self.total)} · entrenables: "
            f"{format_count(self.trainable)} ({100 * self.fraction:.4f} %)"
        )


def count_parameters(model) -> ParamCount:
    """Parámetros totales y entrenables de un modelo de ``transformers`` o de ``peft``, contados
    por esas bibliotecas (los pesos compartidos cuentan una vez; los de 4 bits, por su forma real).

    - ``PeftModel``: ``model.get_nb_trainable_parameters()`` (incluye los prompts virtuales);
    - modelo de ``transformers``: ``model.num_parameters()`` y ``model.num_parameters(only_trainable=True)``.

    Para cualquier otro ``nn.Module`` lanza ``TypeError``: contar a mano es el ejercicio del cuaderno 01.
    """
    if hasattr(model, "get_nb_trainable_parameters"):
        trainable, total = model.get_nb_trainable_parameters()
    elif hasattr(model, "num_parameters"):
        total, trainable = model.num_parameters(), model.num_parameters(only_trainable=True)
    else:
        raise TypeError(
            f"count_parameters cuenta modelos de transformers o de peft, no un {type(model).__name__}. "
            "Para otro nn.Module, recorre model.parameters() tú (es el ejercicio count_params del cuaderno 01)."
        )
    return ParamCount(int(total), int(trainable))


def format_count(n: int) -> str:
    """12345678 → '12 345 678' (separador de miles con espacio, como recomienda la RAE)."""
    return f"{n:,}".replace(",", " ")


def format_bytes(n: float) -> str:
    """Bytes en la unidad más legible del Sistema Internacional, la del curso: B, kB, MB, GB
    (1 kB = 10³ bytes, 1 MB = 10⁶, 1 GB = 10⁹; las GiB = 2³⁰ bytes se escriben como GiB)."""
    for unit in ("B", "kB", "MB", "GB"):
        if abs(n) < 1000 or unit == "GB":
            return f"{n:.1f} {unit}" if unit != "B" else f"{int(n)} B"
        n /= 1000
    return f"{n:.1f} GB"


def footprint_bytes(model: torch.nn.Module) -> int:
    """Bytes que ocupan los parámetros y búferes del modelo en memoria."""
    seen, total = set(), 0
    for tensor in list(model.parameters()) + list(model.buffers()):
        if tensor.data_ptr() in seen:
            continue
        seen.add(tensor.data_ptr())
        total += tensor.numel() * tensor.element_size()
    return total


class Timer:
    """Cronómetro para ``with``: ``with Timer() as t: ...``; luego ``t.seconds``."""

    def __enter__(self):
        self.start = time.perf_counter()
        self.seconds = 0.0
        return self

    def __exit__(self, *exc):
        self.seconds = time.perf_counter() - self.start
        return False


def _rss_bytes() -> int:
    import psutil

    return psutil.Process(os.getpid()).memory_info().rss


class PeakMemory:
    """Memoria pico durante un bloque ``with``.

    En GPU usa ``torch.cuda.max_memory_allocated``. En CPU, por defecto, muestrea la memoria
    residente (RSS) del proceso cada ``interval`` segundos; con ``tensors=True`` cuenta en cambio
    los bytes de tensores vivos con el perfilador de PyTorch (lo mismo que mide CUDA, sin la
    memoria que el asignador de C guarda para reutilizar). ``peak_bytes`` es el pico absoluto (con
    ``tensors=True`` en CPU, solo el de lo reservado dentro del bloque) y ``delta_bytes`` lo que
    creció respecto al inicio del bloque.
    """

    def __init__(self, interval: float = 0.005, tensors: bool = False):
        self.interval = interval
        self.cuda = torch.cuda.is_available()
        self.tensors = tensors and not self.cuda

    def __enter__(self):
        if self.cuda:
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
            self.start_bytes = torch.cuda.memory_allocated()
        elif self.tensors:
            self.start_bytes = 0
            self._profiler = torch.profiler.profile(
                activities=[torch.profiler.ProfilerActivity.CPU], profile_memory=True
            )
            with _quiet_stderr():
                self._profiler.__enter__()
        else:
            self.start_bytes = _rss_bytes()
            self._peak = self.start_bytes
            self._stop = threading.Event()
            self._thread = threading.Thread(target=self._sample, daemon=True)
            self._thread.start()
        return self

    def _sample(self):
        while not self._stop.is_set():
            self._peak = max(self._peak, _rss_bytes())
            self._stop.wait(self.interval)

    def __exit__(self, *exc):
        if self.cuda:
            torch.cuda.synchronize()
            self.peak_bytes = torch.cuda.max_memory_allocated()
            self.device = "cuda"
        elif self.tensors:
            with _quiet_stderr():
                self._profiler.__exit__(*exc)
            self.peak_bytes = _live_tensor_peak(self._profiler)
            self.device = "cpu (tensores vivos, perfilador de PyTorch)"
        else:
            self._stop.set()
            self._thread.join()
            self.peak_bytes = max(self._peak, _rss_bytes())
            self.device = "cpu (RSS del proceso)"
        self.delta_bytes = self.peak_bytes - self.start_bytes
        return False


@contextlib.contextmanager
def _quiet_stderr():
    """Silencia la salida de error del proceso (descriptor 2): el perfilador de PyTorch escribe
    ahí una línea al arrancar y otra al parar que no le dicen nada a quien lee el cuaderno."""
    sys.stderr.flush()
    saved = os.dup(2)
    try:
        with open(os.devnull, "w") as devnull:
            os.dup2(devnull.fileno(), 2)
            yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


def _live_tensor_peak(profiler) -> int:
    """Pico de bytes de tensores de la CPU reservados y aún no liberados, en orden de tiempo.

    Recorre los sucesos de memoria que registra el perfilador (uno por reserva o liberación, con
    sus bytes; negativos al liberar). Usa la lista en bruto de Kineto, que se lee en centésimas de
    segundo; ``profiler.events()`` tarda segundos en construirse y solo ve la memoria atribuida a
    una operación. Si esta versión de PyTorch no la expone, recurre a ``events()``.
    """
    try:
        raw = profiler.profiler.kineto_results.events()
        cpu = torch.autograd.DeviceType.CPU
        changes = sorted((e.start_ns(), e.nbytes()) for e in raw if e.name() == "[memory]" and e.device_type() == cpu)
    except AttributeError:
        changes = sorted(
            (e.time_range.start, e.self_cpu_memory_usage) for e in profiler.events() if e.self_cpu_memory_usage
        )
    live = peak = 0
    for _, change in changes:
        live += change
        peak = max(peak, live)
    return peak


# Lo que todos los cuadernos importan (peft trae transformers y accelerate).
HEAVY_LIBRARIES = ("transformers", "peft")


def settle_imports(libraries: tuple[str, ...] = HEAVY_LIBRARIES) -> int:
    """Importa las bibliotecas pesadas del curso y aparta del recolector de basura lo ya cargado.

    torch, transformers y peft dejan unos 600 000 objetos de Python (funciones, clases, tuplas) que
    viven hasta el final del proceso. Cada ``gc.collect()`` —el de :func:`free_memory`, que los
    cuadernos llaman entre experimento y experimento, y las recolecciones completas que Python hace
    solo— los recorre todos: más de un segundo cada vez en la máquina de referencia.
    ``gc.freeze()`` los pasa a una generación permanente y el recolector solo mira lo creado después
    (modelos, tensores, lotes). Por eso se llama al principio, desde la celda de preparación
    (:func:`helpers.show_environment`), antes de crear ningún modelo: nada de lo congelado es basura
    que luego se quiera liberar. Devuelve cuántos objetos quedaron congelados.
    """
    import gc
    import importlib

    for name in libraries:
        with contextlib.suppress(ImportError):
            importlib.import_module(name)
    gc.collect()
    gc.freeze()
    return gc.get_freeze_count()


def free_memory() -> None:
    """Libera la memoria que ya no se usa: recolector de Python, caché de CUDA y, en Linux, la
    memoria libre del asignador de C (para que lo liberado se note en la memoria del proceso)."""
    import ctypes
    import gc

    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass
