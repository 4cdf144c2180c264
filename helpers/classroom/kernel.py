"""Ejecución de una entrega dentro de nbgrader: núcleo aislado y límites de tiempo y de salida.

- :class:`SandboxKernelManager` lanza el núcleo de Jupyter dentro de la caja de arena de bubblewrap
  (:mod:`helpers.classroom.sandbox`), arrancado con la guardia (:mod:`helpers.classroom.guard`).
  Como el núcleo no tiene red, se comunica con nbgrader por sockets de Unix (transporte ``ipc`` de
  ZeroMQ) que crea en un *tmpfs* propio de la caja; el calificador llega a ellos por
  ``/proc/<pid>/root``, sin que el núcleo pueda escribir en ninguna carpeta del calificador.
  Las interrupciones van por mensaje (``interrupt_request``), porque la caja es otra sesión.
- :class:`SandboxedExecute` sustituye al preprocesador ``Execute`` de nbgrader en la calificación:

  * tiempo máximo por celda (el de nbgrader, ``Execute.timeout``): la celda se interrumpe, se anota
    el error y el cuaderno sigue;
  * presupuesto de tiempo para el cuaderno entero (``total_budget``): al agotarse, la celda en curso
    se interrumpe y las siguientes no se ejecutan;
  * si el núcleo muere (``os._exit``, falta de memoria), se conservan las celdas ya ejecutadas;
    un ``MemoryError`` (o un «can't allocate memory» de torch) sin capturar se anota aparte;
  * antes de cada celda de pruebas, la guardia del núcleo restaura lo que usan las pruebas y dice
    qué había cambiado (se anota como posible manipulación);
  * una celda que no llegó a ejecutarse recibe una salida de error, porque nbgrader daría la nota
    máxima a una celda de pruebas sin errores... aunque no se haya ejecutado;
  * las celdas de pruebas solo cuentan por sus errores: un resultado numérico (la nota parcial de
    nbgrader) se descarta, porque en este curso las pruebas solo usan ``assert``;
  * la salida de cada celda se corta a partir de ``max_output_chars`` caracteres.

El calificador fija el estado de cada entrega con :func:`configure` antes de llamar a nbgrader
(un proceso califica una entrega cada vez), y lee el informe que deja :class:`SandboxedExecute`.
"""
from __future__ import annotations

import ast
import asyncio
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path
from queue import Empty

from jupyter_client.manager import AsyncKernelManager
from nbclient.exceptions import CellTimeoutError, DeadKernelError
from nbclient.util import run_sync
from nbformat.notebooknode import NotebookNode
from nbgrader import utils as nbutils
from nbgrader.preprocessors import Execute
from traitlets import Integer

# Estado de la entrega en curso (lo fija el trabajador con configure()).
_STATE: dict = {"spec_path": None, "info_path": None, "report_path": None, "log_path": None}

TIMEOUT_ENAME = "CellTimeoutError"
NOT_RUN_ENAME = "CeldaNoEjecutada"
MEMORY_ERROR = re.compile(r"MemoryError|can't allocate memory|Cannot allocate memory|out of memory", re.I)
START_TIMEOUT = 60
GUARD_TIMEOUT = 30


def die_with_parent() -> None:
    """Pide al núcleo de Linux que este proceso reciba SIGKILL si muere su proceso padre."""
    import ctypes
    import signal

    ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL, 0, 0, 0)  # PR_SET_PDEATHSIG


def configure(*, spec_path: str | None, info_path: str | None, report_path: str | None,
              log_path: str | None = None) -> None:
    """Fija la caja de arena (o ninguna, con ``None``), dónde escribe bubblewrap el PID de la caja,
    dónde va el informe de ejecución y dónde los errores de arranque del núcleo."""
    _STATE.update(spec_path=spec_path, info_path=info_path, report_path=report_path, log_path=log_path)


class SandboxKernelManager(AsyncKernelManager):
    """Gestor de núcleo que arranca el núcleo (con la guardia) dentro de la caja de bubblewrap."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        from . import sandbox

        self.transport = "ipc"
        self.ip = sandbox.SOCKET_DIR + "/k"  # la ruta dentro de la caja (la escribe el archivo de conexión)
        self.connection_file = os.path.join(os.path.dirname(_STATE["spec_path"]), "conexion.json")

    def format_kernel_cmd(self, extra_arguments=None):
        from . import guard, sandbox

        return [sys.executable, sandbox.__file__, _STATE["spec_path"], "--", *guard.boot_command(sys.executable),
                "-f", self.connection_file]

    async def _async_launch_kernel(self, kernel_cmd, **kw):
        # Nada de la caja va a la salida del calificador: los errores de arranque, a un archivo
        # (acotado por el límite de tamaño de archivo de la caja).
        kw["stdout"] = subprocess.DEVNULL
        Path(_STATE["info_path"]).unlink(missing_ok=True)  # nada de un PID de otra vez
        kw["stderr"] = open(_STATE["log_path"], "ab") if _STATE["log_path"] else subprocess.DEVNULL
        try:
            await super()._async_launch_kernel(kernel_cmd, **kw)
        finally:
            if kw["stderr"] is not subprocess.DEVNULL:
                kw["stderr"].close()
        pid = await self._sandbox_pid()
        from . import sandbox

        # Los sockets están en el tmpfs de la caja: se llega a ellos por la raíz de su proceso.
        self.ip = f"/proc/{pid}/root{sandbox.SOCKET_DIR}/k"

    async def _sandbox_pid(self) -> int:
        deadline = time.monotonic() + START_TIMEOUT
        path = Path(_STATE["info_path"])
        while time.monotonic() < deadline:
            try:
                return int(json.loads(path.read_text(encoding="utf-8"))["child-pid"])
            except (OSError, ValueError, KeyError):
                pass
            if self.provisioner is not None and self.provisioner.process is not None \
                    and self.provisioner.process.poll() is not None:
                break
            await asyncio.sleep(0.05)
        tail = ""
        if _STATE["log_path"] and os.path.exists(_STATE["log_path"]):
            with open(_STATE["log_path"], "rb") as handle:
                handle.seek(max(0, os.path.getsize(_STATE["log_path"]) - 2000))
                tail = handle.read().decode("utf-8", "replace")
        raise RuntimeError(f"la caja de arena no arrancó: {tail.strip()[-500:] or 'sin mensaje'}")

    async def _async_interrupt_kernel(self) -> None:
        # La caja es otra sesión (--new-session): la señal no llegaría; se pide por mensaje.
        msg = self.session.msg("interrupt_request", content={})
        self._connect_control_socket()
        self.session.send(self._control_socket, msg)

    interrupt_kernel = _async_interrupt_kernel

    def cleanup_ipc_files(self, restart: bool = False) -> None:
        """Los sockets viven en el tmpfs de la caja y desaparecen con ella: no se borra nada."""


def _error_output(ename: str, evalue: str) -> NotebookNode:
    return NotebookNode(output_type="error", ename=ename, evalue=evalue, traceback=[f"{ename}: {evalue}"])


class SandboxedExecute(Execute):
    """``Execute`` de nbgrader con caja de arena, presupuesto total y cortes de salida."""

    total_budget = Integer(0, help="Segundos para el cuaderno entero (0: sin límite).").tag(config=True)
    max_output_chars = Integer(2_000_000, help="Caracteres de salida que se guardan por celda.").tag(config=True)

    def __init__(self, *args, **kwargs):
        kwargs["kernel_manager_class"] = SandboxKernelManager if _STATE["spec_path"] else AsyncKernelManager
        self._guarded = bool(_STATE["spec_path"])
        super().__init__(*args, **kwargs)
        self._report = self._new_report()
        self._start = time.monotonic()
        self._stop_reason: str | None = None
        self._output_chars: dict[int, int] = {}

    @staticmethod
    def _new_report() -> dict:
        return {"timeouts": [], "dead_kernel": None, "budget_exhausted": None, "truncated": [],
                "ignored_results": [], "memory": None, "tampering": [], "guard_unchecked": [], "seconds": 0.0}

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
        is_test = nbutils.is_grade(cell) and not nbutils.is_solution(cell)
        if is_test and self._guarded:
            await self._restore_guard(cell_index)
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
        if self._report["memory"] is None and any(
                o.get("output_type") == "error" and MEMORY_ERROR.search(f"{o.get('ename')}: {o.get('evalue')}")
                for o in cell.outputs):
            self._report["memory"] = cell_index
        if is_test:
            kept = [o for o in cell.outputs if o.get("output_type") != "execute_result"]
            if len(kept) != len(cell.outputs):
                self._report["ignored_results"].append(cell_index)
                cell.outputs = kept
        return cell

    async def _restore_guard(self, cell_index: int) -> None:
        """Pide a la guardia del núcleo que restaure lo que usan las pruebas; anota qué cambió."""
        from .guard import RESTORE_EXPRESSION

        found: list[str] = []
        try:
            msg_id = self.kc.execute("", silent=True, store_history=False, user_expressions={"g": RESTORE_EXPRESSION})
            reply = await self._reply(msg_id, min(GUARD_TIMEOUT, self.timeout or GUARD_TIMEOUT))
        except Exception:  # noqa: BLE001 - un núcleo muerto se detecta al ejecutar la celda
            return
        if reply is None:
            # El núcleo sigue ocupado (p. ej. un bucle que no se dejó interrumpir): la celda de
            # pruebas tampoco se ejecutará a tiempo. Se anota sin acusar a nadie.
            self._report["guard_unchecked"].append(cell_index)
            return
        content = reply.get("content", {})
        value = content.get("user_expressions", {}).get("g", {})
        try:
            answer = json.loads(ast.literal_eval(value["data"]["text/plain"]))
            assert answer["guardia"] == "ok"
            found = [str(x)[:120] for x in answer["cambios"]]
        except Exception:  # noqa: BLE001 - cualquier respuesta rara es manipulación
            found = ["la guardia del núcleo no respondió como debe (¿se cambió el núcleo?)"]
        for item in found:
            if item not in self._report["tampering"]:
                self._report["tampering"].append(item)

    async def _reply(self, msg_id: str, timeout: float):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                msg = await self.kc.shell_channel.get_msg(timeout=1)
            except Empty:
                continue
            if msg["parent_header"].get("msg_id") == msg_id:
                return msg
        return None

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
