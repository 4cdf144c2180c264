"""Núcleos de Jupyter «en caliente» para las pruebas: cada núcleo nace de un proceso que ya importó
torch, transformers y peft, en vez de importarlos de cero.

Solo lo usan las pruebas (el arnés de nbgrader, ``tests/autograde.py``): el calificador de la clase
no, porque allí cada núcleo arranca dentro de su caja de arena, y ``make curso`` tampoco.

Por qué: cada ejecución de un cuaderno en las pruebas arrancaba un núcleo que pasaba ~10 s de CPU
importando lo mismo (unas treinta ejecuciones por ``make test``). Ahora:

- un **zigoto** por proceso de pytest (``serve``) importa ipykernel y la pila pesada una vez, congela
  esos objetos para el recolector (``gc.freeze``, como :func:`helpers.measure.settle_imports`) y
  escucha en un socket de Unix;
- la especificación del núcleo ``python3`` que ven los nbgrader de las pruebas (``JUPYTER_PATH``)
  lanza este mismo archivo como **cliente** (``client``, solo biblioteca estándar): le pasa al zigoto
  sus argumentos, su entorno, su carpeta y sus descriptores 0, 1 y 2; el zigoto hace ``fork`` y el
  hijo, con ese entorno y esa carpeta, arranca ipykernel como lo haría ``python -m ipykernel_launcher``;
- el cliente reenvía al hijo las señales que le manda jupyter_client (interrumpir, terminar) y sale
  con su mismo código; si al cliente lo matan (``SIGKILL``, el cierre inmediato), el zigoto ve el
  socket cerrado y mata el grupo de procesos del hijo.

Lo que se hereda del zigoto son módulos de terceros ya importados; los módulos de ``helpers`` se
importan en el hijo, con el entorno de cada prueba (perfil, T4 simulada...).
"""

from __future__ import annotations

import json
import os
import signal
import socket
import struct
import sys
import tempfile
import time
from pathlib import Path

# Lo que importa el zigoto antes de esperar peticiones (lo que todos los cuadernos importan).
WARM_MODULES = ("ipykernel.kernelapp", "torch", "transformers", "peft")
_SERVER = None  # (proceso, carpeta) del zigoto de este proceso de pytest


def _send(sock, payload: dict, fds=()) -> None:
    data = json.dumps(payload).encode()
    header = struct.pack("!I", len(data))
    if fds:
        socket.send_fds(sock, [header + data], list(fds))
    else:
        sock.sendall(header + data)


def _recv_exact(sock, size: int) -> bytes:
    chunks = b""
    while len(chunks) < size:
        part = sock.recv(size - len(chunks))
        if not part:
            raise EOFError
        chunks += part
    return chunks


def _recv(sock, with_fds: int = 0):
    if with_fds:
        first, fds, _, _ = socket.recv_fds(sock, 4, with_fds)
        if len(first) < 4:
            first += _recv_exact(sock, 4 - len(first))
        (size,) = struct.unpack("!I", first[:4])
        return json.loads(_recv_exact(sock, size)), fds
    (size,) = struct.unpack("!I", _recv_exact(sock, 4))
    return json.loads(_recv_exact(sock, size)), []


# --- el zigoto ---------------------------------------------------------------------------------


def _child(request: dict, fds: list[int]) -> None:
    """En el hijo: entorno, carpeta y descriptores del cliente; luego ipykernel. No vuelve."""
    import ctypes

    try:
        ctypes.CDLL("libc.so.6").prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG: muere con el zigoto
    except OSError:
        pass
    os.setsid()
    for target, fd in zip((0, 1, 2), fds):
        os.dup2(fd, target)
        os.close(fd)
    os.environ.clear()
    os.environ.update(request["env"])
    os.chdir(request["cwd"])
    import torch

    threads = request["env"].get("OMP_NUM_THREADS")
    torch.set_num_threads(int(threads) if threads and threads.isdigit() else os.cpu_count() or 1)
    sys.argv = ["ipykernel_launcher", *request["argv"]]
    sys.path[0] = request["cwd"]  # como `python -m ipykernel_launcher`: la carpeta de trabajo, no tests/
    for name in [m for m in sys.modules if m == "helpers" or m.startswith("helpers.")]:
        del sys.modules[name]  # nada de helpers heredado: se importa con el entorno de la prueba
    status = 0
    try:
        from ipykernel import kernelapp

        kernelapp.launch_new_instance()
    except SystemExit as exc:
        status = exc.code if isinstance(exc.code, int) else 0
    except BaseException:
        import traceback

        traceback.print_exc()
        status = 1
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
    os._exit(status)


def _watch(conn, pid: int) -> None:
    """En un hilo del zigoto: espera a que el hijo acabe (y se lo dice al cliente) o a que el cliente muera."""
    import selectors

    with selectors.DefaultSelector() as sel:
        sel.register(conn, selectors.EVENT_READ)
        while True:
            done, status = os.waitpid(pid, os.WNOHANG)
            if done:
                code = os.waitstatus_to_exitcode(status)
                try:
                    _send(conn, {"exit": code})
                except OSError:
                    pass
                break
            if sel.select(timeout=0.2):
                try:
                    gone = conn.recv(1) == b""
                except OSError:
                    gone = True
                if gone:  # el cliente murió (SIGKILL del cierre inmediato): fuera el hijo y su grupo
                    for target in (-pid, pid):
                        try:
                            os.kill(target, signal.SIGKILL)
                        except OSError:
                            pass
                    os.waitpid(pid, 0)
                    break
    conn.close()


def serve(path: str) -> None:
    import ctypes
    import gc
    import importlib
    import threading

    try:  # si muere el proceso de pytest que lo lanzó, el zigoto no se queda huérfano
        ctypes.CDLL("libc.so.6").prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except OSError:
        pass
    for name in WARM_MODULES:
        importlib.import_module(name)
    gc.collect()
    gc.freeze()
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(path)
    server.listen(16)
    Path(path + ".listo").touch()
    while True:
        conn, _ = server.accept()
        try:
            request, fds = _recv(conn, with_fds=3)
        except (EOFError, OSError, ValueError):
            conn.close()
            continue
        pid = os.fork()  # en el hilo principal: el hijo hereda un hilo principal de verdad
        if pid == 0:
            server.close()
            conn.close()
            _child(request, fds)
        for fd in fds:
            os.close(fd)
        _send(conn, {"pid": pid})
        threading.Thread(target=_watch, args=(conn, pid), daemon=True).start()


# --- el cliente (lo que lanza jupyter_client como «núcleo») ------------------------------------------


def client(path: str, argv: list[str]) -> int:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.connect(path)
    _send(sock, {"argv": argv, "env": dict(os.environ), "cwd": os.getcwd()}, fds=(0, 1, 2))
    pid = _recv(sock)[0]["pid"]

    def forward(signum, _frame):
        try:
            os.kill(pid, signum)
        except OSError:
            pass

    for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGQUIT, signal.SIGUSR1):
        signal.signal(signum, forward)
    while True:
        try:
            message, _ = _recv(sock)
            return int(message.get("exit", 1))
        except InterruptedError:
            continue
        except (EOFError, OSError):
            return 1


# --- para el arnés --------------------------------------------------------------------------------


def kernel_path() -> str:
    """Una carpeta para ``JUPYTER_PATH`` con el núcleo ``python3`` que nace del zigoto de este proceso.

    La primera llamada arranca el zigoto (unos segundos) y espera a que esté listo.
    """
    global _SERVER
    import atexit
    import subprocess

    if _SERVER is None:
        folder = Path(tempfile.mkdtemp(prefix="curso-peft-zigoto-"))
        sock = str(folder / "zigoto.sock")
        process = subprocess.Popen([sys.executable, __file__, "serve", sock], stdin=subprocess.DEVNULL)
        spec = folder / "kernels" / "python3"
        spec.mkdir(parents=True)
        argv = [sys.executable, __file__, "client", sock, "-f", "{connection_file}"]
        (spec / "kernel.json").write_text(
            json.dumps({"argv": argv, "display_name": "Python 3 (curso-peft, en caliente)", "language": "python"}),
            encoding="utf-8",
        )
        deadline = time.monotonic() + 600
        while not (folder / "zigoto.sock.listo").exists():
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("el zigoto de núcleos no arrancó")
            time.sleep(0.1)

        def stop():
            process.kill()
            process.wait()
            import shutil

            shutil.rmtree(folder, ignore_errors=True)

        atexit.register(stop)
        _SERVER = (process, folder)
    return str(_SERVER[1])


if __name__ == "__main__":
    if sys.argv[1] == "serve":
        serve(sys.argv[2])
    else:
        sys.exit(client(sys.argv[2], sys.argv[3:]))
