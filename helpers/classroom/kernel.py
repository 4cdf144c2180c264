"""Ejecución de una entrega dentro de nbgrader: núcleo aislado y límites de tiempo y de salida.

- :class:`SandboxKernelManager` lanza el núcleo de Jupyter dentro de la caja de arena
  (:mod:`helpers.classroom.sandbox`). Como el núcleo no tiene red, se comunica con nbgrader por
  sockets de Unix (transporte ``ipc`` de ZeroMQ) en una carpeta que ambos ven en la misma ruta.
- :class:`SandboxedExecute` sustituye al preprocesador ``Execute`` de nbgrader en la calificación:

  * tiempo máximo por celda (el de nbgrader, ``Execute.timeout``): la celda se interrumpe, se anota
    el error y el cuaderno sigue;
  * presupuesto de tiempo para el cuaderno entero (``total_budget``): al agotarse, la celda en curso
    se interrumpe y las siguientes no se ejecutan;
  * si el núcleo muere (``os._exit``, falta de memoria), se conservan las celdas ya ejecutadas;
  * una celda que no llegó a ejecutarse recibe una salida de error, porque nbgrader daría la nota
    máxima a una celda de pruebas sin errores... aunque no se haya ejecutado;
  * las celdas de pruebas solo cuentan por sus errores: un resultado numérico (la nota parcial de
    nbgrader) se descarta, porque en este curso las pruebas solo usan ``assert``;
  * la salida de cada celda se corta a partir de ``max_output_chars`` caracteres.

El calificador fija el estado de cada entrega con :func:`configure` antes de llamar a nbgrader
(un proceso califica una entrega cada vez), y lee el informe que deja :class:`SandboxedExecute`.
"""
from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

from jupyter_client.manager import AsyncKernelManager
from nbclient.exceptions import CellTimeoutError, DeadKernelError
from nbclient.util import run_sync
from nbformat.notebooknode import NotebookNode
from nbgrader import utils as nbutils
from nbgrader.preprocessors import Execute
from traitlets import Integer

# Estado de la entrega en curso (lo fija el trabajador con configure()).
_STATE: dict = {"spec_path": None, "run_dir": None, "report_path": None}

TIMEOUT_ENAME = "CellTimeoutError"
NOT_RUN_ENAME = "CeldaNoEjecutada"


def die_with_parent() -> None:
    """Pide al núcleo de Linux que este proceso reciba SIGKILL si muere su proceso padre."""
    import ctypes
    import signal

    ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL, 0, 0, 0)  # PR_SET_PDEATHSIG


def configure(*, spec_path: str | None, run_dir: str | None, report_path: str | None) -> None:
    """Fija la caja de arena (o ninguna, con ``None``) y dónde escribir el informe de ejecución."""
    _STATE.update(spec_path=spec_path, run_dir=run_dir, report_path=report_path)


class SandboxKernelManager(AsyncKernelManager):
    """Gestor de núcleo que arranca el núcleo dentro de la caja de arena."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        run_dir = _STATE["run_dir"]
        if run_dir:
            self.transport = "ipc"
            self.ip = os.path.join(run_dir, "k")
            self.connection_file = os.path.join(run_dir, "conexion.json")

    def format_kernel_cmd(self, extra_arguments=None):
        cmd = super().format_kernel_cmd(extra_arguments)
        if not _STATE["spec_path"]:
            return cmd
        # sandbox.py solo usa la biblioteca estándar: se ejecuta como programa, sin importar helpers
        # (que importaría torch en cada arranque).
        from . import sandbox

        return [sys.executable, sandbox.__file__, _STATE["spec_path"], "--", *cmd]


def _error_output(ename: str, evalue: str) -> NotebookNode:
    return NotebookNode(output_type="error", ename=ename, evalue=evalue, traceback=[f"{ename}: {evalue}"])


class SandboxedExecute(Execute):
    """``Execute`` de nbgrader con caja de arena, presupuesto total y cortes de salida."""

    total_budget = Integer(0, help="Segundos para el cuaderno entero (0: sin límite).").tag(config=True)
    max_output_chars = Integer(2_000_000, help="Caracteres de salida que se guardan por celda.").tag(config=True)

    def __init__(self, *args, **kwargs):
        kwargs["kernel_manager_class"] = SandboxKernelManager if _STATE["spec_path"] else AsyncKernelManager
        super().__init__(*args, **kwargs)
        self._report = self._new_report()
        self._start = time.monotonic()
        self._stop_reason: str | None = None
        self._output_chars: dict[int, int] = {}

    @staticmethod
    def _new_report() -> dict:
        return {"timeouts": [], "dead_kernel": None, "budget_exhausted": None, "truncated": [],
                "ignored_results": [], "seconds": 0.0}

    # --- el cuaderno entero --------------------------------------------------------------
    def preprocess(self, nb, resources=None, km=None):
        self._report = self._new_report()
        self._start = time.monotonic()
        self._stop_reason: str | None = None
        self._output_chars: dict[int, int] = {}
        try:
            return super().preprocess(nb, resources, km)
        finally:
            self._report["seconds"] = round(time.monotonic() - self._start, 3)
            path = _STATE["report_path"]
            if path:
                Path(path).write_text(json.dumps(self._report, ensure_ascii=False), encoding="utf-8")

    def _remaining(self) -> float | None:
        if not self.total_budget:
            return None
        return self.total_budget - (time.monotonic() - self._start)

    # --- cada celda ----------------------------------------------------------------------
    async def async_execute_cell(self, cell, cell_index, execution_count=None, store_history=True):
        if cell.cell_type != "code" or not cell.source.strip():
            return await super().async_execute_cell(cell, cell_index, execution_count, store_history)
        remaining = self._remaining()
        if self._stop_reason is None and remaining is not None and remaining <= 0:
            self._stop_reason = "budget"
            self._report["budget_exhausted"] = cell_index
        if self._stop_reason is not None:
            motivo = ("el núcleo había muerto" if self._stop_reason == "dead"
                      else "se había agotado el tiempo total del cuaderno")
            cell.outputs = [_error_output(NOT_RUN_ENAME, f"esta celda no se ejecutó: {motivo}")]
            return cell
        cell_timeout = self.timeout
        cut_by_budget = remaining is not None and (not cell_timeout or remaining < cell_timeout)
        if cut_by_budget:
            self.timeout = max(1, int(remaining + 0.999))
        try:
            cell = await super().async_execute_cell(cell, cell_index, execution_count, store_history)
        except CellTimeoutError:
            # p. ej. la salida (IOPub) no terminó a tiempo: es un fallo de esta celda, no del cuaderno.
            cell.outputs = list(cell.get("outputs", [])) + [
                _error_output(TIMEOUT_ENAME, "la celda no terminó a tiempo (interrumpida por el calificador)")]
            self._report["timeouts"].append(cell_index)
            return cell
        except DeadKernelError:
            self._stop_reason = "dead"
            self._report["dead_kernel"] = cell_index
            cell.outputs = list(cell.get("outputs", [])) + [
                _error_output("DeadKernelError", "el núcleo murió mientras se ejecutaba esta celda")]
            return cell
        finally:
            self.timeout = cell_timeout
        if any(o.get("output_type") == "error" and o.get("ename") == TIMEOUT_ENAME for o in cell.outputs):
            if cut_by_budget:
                self._stop_reason = "budget"
                self._report["budget_exhausted"] = cell_index
            else:
                self._report["timeouts"].append(cell_index)
        if nbutils.is_grade(cell) and not nbutils.is_solution(cell):
            kept = [o for o in cell.outputs if o.get("output_type") != "execute_result"]
            if len(kept) != len(cell.outputs):
                self._report["ignored_results"].append(cell_index)
                cell.outputs = kept
        return cell

    # nbclient enlaza la versión síncrona con la función de su propia clase: hay que rehacerla.
    execute_cell = run_sync(async_execute_cell)

    def output(self, outs, msg, display_id, cell_index):
        content = msg.get("content", {})
        size = len(json.dumps(content.get("text", content.get("data", "")), ensure_ascii=False))
        used = self._output_chars.get(cell_index, 0)
        self._output_chars[cell_index] = used + size
        if used + size > self.max_output_chars:
            if used <= self.max_output_chars:
                self._report["truncated"].append(cell_index)
                outs.append(NotebookNode(output_type="stream", name="stdout",
                                         text="\n... salida recortada por el calificador (demasiado larga) ...\n"))
            return None
        return super().output(outs, msg, display_id, cell_index)
