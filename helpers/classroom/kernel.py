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
  * la salida (texto, imágenes, errores, actualizaciones de ``display`` y estado de *widgets*) se
    corta a partir de ``max_output_chars`` caracteres por celda y ``NOTEBOOK_OUTPUT_FACTOR`` veces
    eso en el **cuaderno entero**, en memoria, antes de que nbgrader escriba nada: el cuaderno
    ejecutado, el calificado y la retroalimentación quedan acotados (con una nota en español donde
    se cortó); una celda muy habladora no deja sin salida a las siguientes;
  * un vigilante mira cada ``MONITOR_SECONDS`` la memoria residente privada de **todos** los procesos
    del núcleo juntos (``RLIMIT_AS`` es por proceso: cien procesos de 1 GiB no lo notarían); si pasa
    de ``memory_limit``, mata la caja entera y la entrega queda «memoria agotada»;
  * si una celda supera su tiempo y el núcleo no atiende la interrupción en ``INTERRUPT_GRACE``
    segundos (un bucle en C no la ve), se mata el núcleo y las celdas siguientes no se ejecutan
    («núcleo bloqueado»), en vez de esperar el tiempo máximo de cada celda que queda.

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

# Estado de la entrega en curso (lo fija el trabajador con configure()). ``exam``: preguntas del
# examinador por celda de pruebas (JSON), o None si el cuaderno no tiene examen; ``answers``: lo que
# contestó el núcleo a cada una (solo en memoria de este proceso, nunca en un archivo de la caja).
_STATE: dict = {
    "spec_path": None,
    "info_path": None,
    "report_path": None,
    "log_path": None,
    "exam": None,
    "answers": {},
}

TIMEOUT_ENAME = "CellTimeoutError"
NOT_RUN_ENAME = "CeldaNoEjecutada"
MEMORY_ERROR = re.compile(r"MemoryError|can't allocate memory|Cannot allocate memory|out of memory", re.I)
START_TIMEOUT = 60
GUARD_TIMEOUT = 30
# El vigilante de memoria mira cada tanto; tras interrumpir una celda, lo que se espera al núcleo.
MONITOR_SECONDS = 1.0
INTERRUPT_GRACE = 10
# Tope de salida del cuaderno entero, en veces el de una celda.
NOTEBOOK_OUTPUT_FACTOR = 2
TRUNCATED_TEXT = "\n... salida recortada por el calificador (el cuaderno ya había escrito demasiado) ...\n"


def die_with_parent() -> None:
    """Pide al núcleo de Linux que este proceso reciba SIGKILL si muere su proceso padre."""
    import ctypes
    import signal

    ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL, 0, 0, 0)  # PR_SET_PDEATHSIG


def configure(
    *,
    spec_path: str | None,
    info_path: str | None,
    report_path: str | None,
    log_path: str | None = None,
    exam: dict | None = None,
) -> None:
    """Fija la caja de arena (o ninguna, con ``None``), dónde escribe bubblewrap el PID de la caja,
    dónde va el informe de ejecución, dónde los errores de arranque del núcleo y, con ``exam``
    (``{celda de pruebas: preguntas en JSON}``), que las celdas de pruebas no se ejecuten: en su
    lugar se hacen esas preguntas al recogedor del núcleo (:mod:`helpers.classroom.collector`)."""
    _STATE.update(
        spec_path=spec_path, info_path=info_path, report_path=report_path, log_path=log_path, exam=exam, answers={}
    )


def answers() -> dict:
    """``{celda de pruebas: [respuestas del recogedor]}`` de la última entrega (solo las celdas a las
    que se llegó a preguntar)."""
    return dict(_STATE["answers"])


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

        return [
            sys.executable,
            sandbox.__file__,
            _STATE["spec_path"],
            "--",
            *guard.boot_command(sys.executable),
            "-f",
            self.connection_file,
        ]

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
        self.sandbox_pid = pid
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
            if (
                self.provisioner is not None
                and self.provisioner.process is not None
                and self.provisioner.process.poll() is not None
            ):
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


def process_tree(root: int) -> list[int]:
    """``root`` y todos sus descendientes (leídos de ``/proc/*/stat``)."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", "rb") as handle:
                stat = handle.read()
        except OSError:
            continue
        ppid = int(stat[stat.rfind(b")") + 2 :].split()[1])
        children.setdefault(ppid, []).append(int(entry))
    out, todo = [], [root]
    while todo:
        pid = todo.pop()
        out.append(pid)
        todo += children.get(pid, [])
    return out


def private_memory(pids: list[int]) -> int:
    """Bytes de memoria residente que no es de archivos compartidos (``statm``: residente − compartida)."""
    page = os.sysconf("SC_PAGE_SIZE")
    total = 0
    for pid in pids:
        try:
            with open(f"/proc/{pid}/statm", "rb") as handle:
                fields = handle.read().split()
            total += max(0, int(fields[1]) - int(fields[2])) * page
        except (OSError, IndexError, ValueError):
            continue
    return total


def _short_error(content: dict) -> dict:
    """Un error acortado (tipo y principio del mensaje) cuando ya no cabe más salida."""
    ename, evalue = str(content.get("ename", "Error"))[:200], str(content.get("evalue", ""))[:500]
    return dict(content, ename=ename, evalue=evalue, traceback=[f"{ename}: {evalue} (recortado)"])


def _error_output(ename: str, evalue: str) -> NotebookNode:
    return NotebookNode(output_type="error", ename=ename, evalue=evalue, traceback=[f"{ename}: {evalue}"])


class SandboxedExecute(Execute):
    """``Execute`` de nbgrader con caja de arena, presupuesto total y cortes de salida."""

    total_budget = Integer(0, help="Segundos para el cuaderno entero (0: sin límite).").tag(config=True)
    max_output_chars = Integer(
        2_000_000,
        help="Caracteres de salida que se guardan por celda (y NOTEBOOK_OUTPUT_FACTOR veces eso en el cuaderno).",
    ).tag(config=True)
    memory_limit = Integer(
        0, help="Bytes de memoria privada para todos los procesos del núcleo juntos (0: sin límite)."
    ).tag(config=True)

    def __init__(self, *args, **kwargs):
        kwargs["kernel_manager_class"] = SandboxKernelManager if _STATE["spec_path"] else AsyncKernelManager
        self._guarded = bool(_STATE["spec_path"])
        super().__init__(*args, **kwargs)
        self._report = self._new_report()
        self._start = time.monotonic()
        self._stop_reason: str | None = None
        self._output_total = 0
        self._output_chars: dict[int, int] = {}

    @staticmethod
    def _new_report() -> dict:
        return {
            "timeouts": [],
            "dead_kernel": None,
            "budget_exhausted": None,
            "truncated": [],
            "ignored_results": [],
            "memory": None,
            "memory_watchdog": None,
            "stuck": None,
            "tampering": [],
            "guard_unchecked": [],
            "seconds": 0.0,
        }

    # --- el cuaderno entero --------------------------------------------------------------
    def preprocess(self, nb, resources=None, km=None):
        self._report = self._new_report()
        self._start = time.monotonic()
        self._stop_reason: str | None = None
        self._output_total = 0
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
        is_test = nbutils.is_grade(cell) and not nbutils.is_solution(cell)
        if is_test and cell.cell_type == "code" and _STATE["exam"] is not None:
            return await self._examine(cell, cell_index, execution_count, store_history)
        return await self._execute(cell, cell_index, execution_count, store_history)

    async def _examine(self, cell, cell_index, execution_count, store_history):
        """En vez de la celda de pruebas (con sus pruebas ocultas, que así nunca llegan al núcleo), se
        ejecuta la llamada al recogedor con las preguntas del examinador, con los mismos límites que
        una celda (tiempo, presupuesto, memoria, tamaño de la salida). Sus respuestas se guardan aquí
        y la celda queda con su parte visible y una salida provisional de 0 puntos: la nota la pone
        después el examinador."""
        from . import collector
        from .examiner import PENDING_MESSAGE, visible_source

        grade_id = cell.metadata["nbgrader"].get("grade_id")
        original = cell.source
        asks = _STATE["exam"].get(grade_id)
        try:
            if asks is not None:
                cell.source = collector.call_source(asks)
                cell = await self._execute(cell, cell_index, execution_count, store_history)
                ran = not any(o.get("ename") == NOT_RUN_ENAME for o in cell.get("outputs", []))
                if ran:
                    _STATE["answers"][grade_id] = [
                        o["data"][collector.MIME]
                        for o in cell.get("outputs", [])
                        if o.get("output_type") == "display_data" and collector.MIME in o.get("data", {})
                    ]
        finally:
            cell.source = visible_source(original)
        cell.outputs = [_error_output("Examinador", PENDING_MESSAGE)]
        cell.execution_count = None
        return cell

    async def _execute(self, cell, cell_index, execution_count=None, store_history=True):
        if cell.cell_type != "code" or not cell.source.strip():
            return await super().async_execute_cell(cell, cell_index, execution_count, store_history)
        remaining = self._remaining()
        if self._stop_reason is None and remaining is not None and remaining <= 0:
            self._stop_reason = "budget"
            self._report["budget_exhausted"] = cell_index
        if self._stop_reason is not None:
            motivo = {
                "dead": "el núcleo había muerto",
                "stuck": "el núcleo no respondía tras interrumpir una celda y se detuvo",
            }.get(self._stop_reason, "se había agotado el tiempo total del cuaderno")
            cell.outputs = [_error_output(NOT_RUN_ENAME, f"esta celda no se ejecutó: {motivo}")]
            return cell
        is_test = nbutils.is_grade(cell) and not nbutils.is_solution(cell)
        if is_test and self._guarded:
            await self._restore_guard(cell_index)
        cell_timeout = self.timeout
        cut_by_budget = remaining is not None and (not cell_timeout or remaining < cell_timeout)
        if cut_by_budget:
            self.timeout = max(1, int(remaining + 0.999))
        watchdog = asyncio.ensure_future(self._watch_memory(cell_index)) if self.memory_limit else None
        try:
            cell = await super().async_execute_cell(cell, cell_index, execution_count, store_history)
        except CellTimeoutError:
            # p. ej. la salida (IOPub) no terminó a tiempo: es un fallo de esta celda, no del cuaderno.
            cell.outputs = list(cell.get("outputs", [])) + [
                _error_output(TIMEOUT_ENAME, "la celda no terminó a tiempo (interrumpida por el calificador)")
            ]
            self._report["timeouts"].append(cell_index)
            await self._stop_if_stuck(cell_index)
            return cell
        except DeadKernelError:
            self._stop_reason = "dead"
            self._report["dead_kernel"] = cell_index
            cell.outputs = list(cell.get("outputs", [])) + [
                _error_output("DeadKernelError", "el núcleo murió mientras se ejecutaba esta celda")
            ]
            return cell
        finally:
            self.timeout = cell_timeout
            if watchdog is not None:
                watchdog.cancel()
        if any(o.get("output_type") == "error" and o.get("ename") == TIMEOUT_ENAME for o in cell.outputs):
            if cut_by_budget:
                self._stop_reason = "budget"
                self._report["budget_exhausted"] = cell_index
            else:
                self._report["timeouts"].append(cell_index)
                await self._stop_if_stuck(cell_index)
        if self._report["memory"] is None and any(
            o.get("output_type") == "error" and MEMORY_ERROR.search(f"{o.get('ename')}: {o.get('evalue')}")
            for o in cell.outputs
        ):
            self._report["memory"] = cell_index
        if is_test:
            kept = [o for o in cell.outputs if o.get("output_type") != "execute_result"]
            if len(kept) != len(cell.outputs):
                self._report["ignored_results"].append(cell_index)
                cell.outputs = kept
        return cell

    # --- vigilantes ------------------------------------------------------------------------
    def _kernel_root(self) -> int | None:
        """PID de la raíz de los procesos del núcleo: el proceso 1 de la caja, o el núcleo sin caja."""
        pid = getattr(self.km, "sandbox_pid", None)
        if pid is None:
            process = getattr(getattr(self.km, "provisioner", None), "process", None)
            pid = getattr(process, "pid", None)
        return pid

    def _kill_kernel(self) -> None:
        """SIGKILL a todos los procesos del núcleo (en la caja basta su proceso 1: muere el espacio de
        nombres de procesos entero; sin caja, a cada proceso del árbol)."""
        import signal

        root = self._kernel_root()
        if root is None:
            return
        for pid in [root] if getattr(self.km, "sandbox_pid", None) else process_tree(root):
            try:
                os.kill(pid, signal.SIGKILL)
            except OSError:
                pass

    async def _watch_memory(self, cell_index: int) -> None:
        """Mientras corre la celda: si los procesos del núcleo juntos pasan de ``memory_limit``, se matan."""
        while True:
            await asyncio.sleep(MONITOR_SECONDS)
            root = self._kernel_root()
            if root is None:
                continue
            used = private_memory(process_tree(root))
            if used > self.memory_limit:
                self._report["memory"] = cell_index
                self._report["memory_watchdog"] = used
                self._kill_kernel()
                return

    async def _stop_if_stuck(self, cell_index: int) -> None:
        """Tras interrumpir una celda: si el núcleo no atiende en ``INTERRUPT_GRACE`` s (un bucle en C
        no ve la interrupción), se mata; esperar el tiempo de cada celda que queda tendría ocupado al
        trabajador sin motivo."""
        if self._stop_reason is None and not await self._responds(INTERRUPT_GRACE):
            self._kill_kernel()
            self._stop_reason = "stuck"
            self._report["stuck"] = cell_index

    async def _responds(self, timeout: float) -> bool:
        """¿Contesta el núcleo a una petición vacía antes de ``timeout`` segundos?"""
        try:
            msg_id = self.kc.execute("", silent=True, store_history=False)
            return await self._reply(msg_id, timeout) is not None
        except Exception:  # noqa: BLE001 - un núcleo muerto se detecta al ejecutar la celda siguiente
            return True

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

    # --- salidas acotadas -------------------------------------------------------------------
    def _fits(self, msg, cell_index: int, outs=None) -> bool:
        """¿Cabe este mensaje en lo que queda de salida del cuaderno? Cuenta su contenido entero
        (texto, datos, trazas de error, metadatos). Si no cabe, la celda lleva una nota (una vez)."""
        size = len(json.dumps(msg.get("content", {}), ensure_ascii=False, default=str))
        cell_used = self._output_chars.get(cell_index, 0)
        if (
            cell_used + size <= self.max_output_chars
            and self._output_total + size <= NOTEBOOK_OUTPUT_FACTOR * self.max_output_chars
        ):
            self._output_total += size
            self._output_chars[cell_index] = cell_used + size
            return True
        if cell_index >= 0 and cell_index not in self._report["truncated"]:
            self._report["truncated"].append(cell_index)
            if outs is not None:
                outs.append(NotebookNode(output_type="stream", name="stdout", text=TRUNCATED_TEXT))
        return False

    def output(self, outs, msg, display_id, cell_index):
        if msg.get("msg_type") == "error":
            # Un error nunca se quita (en una celda de pruebas es el fallo): si no cabe, se acorta.
            msg = (
                dict(msg, content=_short_error(msg.get("content", {})))
                if not self._fits(msg, cell_index, outs)
                else msg
            )
            return super().output(outs, msg, display_id, cell_index)
        if not self._fits(msg, cell_index, outs):
            return None
        return super().output(outs, msg, display_id, cell_index)

    def on_cell_executed(self, **kwargs):
        # nbgrader añade aquí el error de la respuesta si no llegó como salida (p. ej. sin trazas).
        cell = kwargs["cell"]
        before = len(cell.outputs)
        super().on_cell_executed(**kwargs)
        for output in cell.outputs[before:]:
            if output.get("output_type") == "error" and not self._fits({"content": output}, kwargs["cell_index"]):
                output.update(_short_error(output))

    def _update_display_id(self, display_id, msg):
        # Sustituye datos de salidas ya guardadas (de cualquier celda): también cuenta.
        if self._fits(msg, -1):
            super()._update_display_id(display_id, msg)

    def handle_comm_msg(self, outs, msg, cell_index):
        # El estado de los *widgets* acaba en los metadatos del cuaderno.
        if self._fits(msg, cell_index, outs):
            super().handle_comm_msg(outs, msg, cell_index)
