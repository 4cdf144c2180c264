"""Caja de arena (*sandbox*) para ejecutar el código del alumnado.

``python -m helpers.classroom.sandbox ESPEC.json -- orden [args...]`` ejecuta ``orden`` (el núcleo de
Jupyter) así:

1. en espacios de nombres nuevos de Linux: montajes, procesos (PID), red, IPC y nombre de máquina.
   En la red nueva solo existe ``lo`` y está apagada: no hay red;
2. con una raíz nueva (``chroot``) hecha de un *tmpfs* vacío en el que solo se montan, de solo
   lectura, el sistema (``/usr``, ``/etc``...), el Python del curso y el paquete ``helpers`` con los
   modelos; y, con escritura, la carpeta de la entrega y la carpeta de trabajo del núcleo. Las
   soluciones, las pruebas ocultas, el libro de notas, las demás entregas y el resto del disco
   simplemente no existen dentro;
3. como un usuario sin privilegios (uid/gid propios, sin grupos suplementarios, ``no_new_privs``)
   y con límites de recursos (memoria, procesos, tamaño de archivo).

Necesita ejecutarse como root (o con CAP_SYS_ADMIN): lo lanza el calificador, nunca el alumnado.
Solo usa llamadas al sistema (ctypes) y la biblioteca estándar: nada que instalar.
"""
from __future__ import annotations

import ctypes
import ctypes.util
import json
import os
import resource
import signal
import sys
from pathlib import Path

# Constantes de <sched.h> y <sys/mount.h>.
CLONE_NEWNS = 0x00020000
CLONE_NEWUTS = 0x04000000
CLONE_NEWIPC = 0x08000000
CLONE_NEWPID = 0x20000000
CLONE_NEWNET = 0x40000000
MS_RDONLY = 1
MS_NOSUID = 2
MS_NODEV = 4
MS_NOEXEC = 8
MS_REMOUNT = 32
MS_BIND = 4096
MS_REC = 16384
MS_PRIVATE = 1 << 18
PR_SET_PDEATHSIG = 1
PR_SET_NO_NEW_PRIVS = 38

# Lo del sistema que se ve dentro (de solo lectura). Los enlaces simbólicos (usr fusionado) se copian.
SYSTEM_DIRS = ("usr", "bin", "sbin", "lib", "lib32", "lib64", "libx32", "etc")
DEVICES = ("null", "zero", "full", "random", "urandom")
# La pone el proceso calificador: su PID (si ya no es nuestro padre, no se arranca nada).
PARENT_ENV = "CURSO_PEFT_PADRE"
# Variables de entorno del calificador que pasan al núcleo (el resto no: ni rutas ni secretos).
ENV_PASSTHROUGH = ("NBGRADER_", "CURSO_PEFT_", "HF_", "TRANSFORMERS_", "TOKENIZERS_", "MPLBACKEND",
                   "OMP_", "MKL_", "OPENBLAS_", "LANG", "LC_", "TZ", "PYTHONHASHSEED", "PYDEVD_")

_libc = ctypes.CDLL(ctypes.util.find_library("c") or None, use_errno=True)
_libc.mount.argtypes = [ctypes.c_char_p, ctypes.c_char_p, ctypes.c_char_p, ctypes.c_ulong, ctypes.c_void_p]
_libc.unshare.argtypes = [ctypes.c_int]
_libc.prctl.argtypes = [ctypes.c_int, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong]


class SandboxError(RuntimeError):
    """No se pudo preparar la caja de arena."""


def _check(result: int, what: str) -> None:
    if result != 0:
        err = ctypes.get_errno()
        raise SandboxError(f"{what}: {os.strerror(err)} (errno {err})")


def _mount(source: str | None, target: str, fstype: str | None, flags: int, data: str | None = None) -> None:
    enc = lambda s: None if s is None else os.fsencode(s)  # noqa: E731
    _check(_libc.mount(enc(source), enc(target), enc(fstype), flags, enc(data)), f"mount {source} -> {target}")


def _prctl(option: int, value: int) -> None:
    _check(_libc.prctl(option, value, 0, 0, 0), f"prctl({option})")


def _mkdirs(path: str) -> None:
    os.makedirs(path, mode=0o755, exist_ok=True)


def _inside(root: str, path: str) -> str:
    return os.path.join(root, path.lstrip("/"))


def _bind(root: str, src: str, dst: str, *, writable: bool) -> None:
    """Monta ``src`` (carpeta o archivo) en ``dst`` dentro de la raíz nueva."""
    target = _inside(root, dst)
    if os.path.isdir(src):
        _mkdirs(target)
    else:
        _mkdirs(os.path.dirname(target))
        if not os.path.exists(target):
            open(target, "w").close()
    _mount(src, target, None, MS_BIND | MS_REC)
    flags = MS_REMOUNT | MS_BIND | MS_NOSUID
    if not writable:
        flags |= MS_RDONLY
    try:
        _mount(None, target, None, flags)
    except SandboxError:
        # Algunos montajes de origen exigen conservar nodev/noexec: se reintenta con ellos.
        _mount(None, target, None, flags | MS_NODEV | MS_NOEXEC)


def build_root(spec: dict) -> str:
    """Construye la raíz nueva dentro del espacio de montajes actual y devuelve su ruta."""
    root = spec["root_dir"]
    _mount(None, "/", None, MS_REC | MS_PRIVATE)
    _mount("tmpfs", root, "tmpfs", MS_NOSUID | MS_NODEV, "mode=0755,size=16m")
    for name in SYSTEM_DIRS:
        host = "/" + name
        if os.path.islink(host):
            os.symlink(os.readlink(host), _inside(root, host))
        elif os.path.isdir(host):
            _bind(root, host, host, writable=False)
    # /dev mínimo: dispositivos inocuos, /dev/shm privado y los enlaces habituales.
    dev = _inside(root, "/dev")
    _mkdirs(dev)
    for name in DEVICES:
        if os.path.exists("/dev/" + name):
            _bind(root, "/dev/" + name, "/dev/" + name, writable=True)
    _mkdirs(os.path.join(dev, "shm"))
    _mount("tmpfs", os.path.join(dev, "shm"), "tmpfs", MS_NOSUID | MS_NODEV, "mode=1777,size=256m")
    for name, target in (("fd", "/proc/self/fd"), ("stdin", "/proc/self/fd/0"),
                         ("stdout", "/proc/self/fd/1"), ("stderr", "/proc/self/fd/2")):
        os.symlink(target, os.path.join(dev, name))
    # /proc nuevo (solo los procesos de esta caja) y /sys de solo lectura.
    _mkdirs(_inside(root, "/proc"))
    _mount("proc", _inside(root, "/proc"), "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC)
    if os.path.isdir("/sys"):
        _bind(root, "/sys", "/sys", writable=False)
    # /tmp privado (memoria, se pierde al terminar) y /var/tmp inexistente para escribir.
    _mkdirs(_inside(root, "/tmp"))
    _mount("tmpfs", _inside(root, "/tmp"), "tmpfs", MS_NOSUID | MS_NODEV, f"mode=1777,size={spec.get('tmp_size', '512m')}")
    _mkdirs(_inside(root, "/var/tmp"))
    # Lo que pide el calificador: primero lo de solo lectura, luego lo escribible (orden de rutas).
    for src, dst in sorted(spec.get("ro_binds", []), key=lambda p: p[1]):
        if os.path.exists(src):
            _bind(root, src, dst, writable=False)
    for src, dst in sorted(spec.get("rw_binds", []), key=lambda p: p[1]):
        _bind(root, src, dst, writable=True)
    # La raíz en sí queda de solo lectura: nada nuevo fuera de las carpetas escribibles.
    _mount(None, root, None, MS_REMOUNT | MS_RDONLY | MS_NOSUID | MS_NODEV)
    return root


def _chown_tree(path: str, uid: int, gid: int) -> None:
    """Da al usuario de la caja su carpeta (sin seguir enlaces simbólicos)."""
    os.lchown(path, uid, gid)
    for dirpath, dirnames, filenames in os.walk(path):
        for name in dirnames + filenames:
            os.lchown(os.path.join(dirpath, name), uid, gid)


def _set_limits(limits: dict) -> None:
    names = {
        "as": resource.RLIMIT_AS,
        "nproc": resource.RLIMIT_NPROC,
        "fsize": resource.RLIMIT_FSIZE,
        "nofile": resource.RLIMIT_NOFILE,
        "core": resource.RLIMIT_CORE,
    }
    for key, value in limits.items():
        if value is None:
            continue
        resource.setrlimit(names[key], (int(value), int(value)))


def _parent_alive(fd: int) -> bool:
    """El padre guarda abierto el otro extremo de la tubería: fin de archivo = el padre murió."""
    os.set_blocking(fd, False)
    try:
        return os.read(fd, 1) != b""
    except BlockingIOError:
        return True


def _child(spec: dict, argv: list[str], cwd: str, alive_fd: int) -> None:
    """Hijo (PID 1 de la caja): monta la raíz, baja privilegios y ejecuta la orden."""
    try:
        root = build_root(spec)
        uid, gid = int(spec["uid"]), int(spec["gid"])
        _set_limits(spec.get("rlimits", {}))
        os.chroot(root)
        os.chdir(cwd)
        os.setgroups([])
        os.setresgid(gid, gid, gid)
        os.setresuid(uid, uid, uid)
        _prctl(PR_SET_NO_NEW_PRIVS, 1)
        # Tras cambiar de usuario (el núcleo lo borra al cambiar credenciales): si muere el
        # proceso que vigila la caja, este muere también y con él todo el espacio de PID.
        _prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
        if not _parent_alive(alive_fd):  # murió antes de que lo anterior surtiera efecto
            os._exit(1)
        os.close(alive_fd)
        signal.signal(signal.SIGINT, signal.SIG_DFL)
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        env = {k: v for k, v in os.environ.items() if k.startswith(ENV_PASSTHROUGH)}
        env.update(spec.get("env", {}))
        env.setdefault("PATH", "/usr/local/bin:/usr/bin:/bin")
        os.execve(argv[0], argv, env)
    except BaseException as exc:  # noqa: BLE001 - el hijo nunca debe volver al código del padre
        print(f"[caja de arena] no se pudo iniciar: {exc}", file=sys.stderr, flush=True)
        os._exit(126)


def run(spec: dict, argv: list[str]) -> int:
    """Ejecuta ``argv`` en la caja descrita por ``spec`` y devuelve su código de salida."""
    if os.geteuid() != 0:
        raise SandboxError("la caja de arena necesita root (o CAP_SYS_ADMIN) para crear espacios de nombres")
    cwd = os.path.realpath(spec.get("cwd") or os.getcwd())
    uid, gid = int(spec["uid"]), int(spec["gid"])
    # La carpeta de trabajo (la de la entrega) es la única de la caja con escritura, además de
    # las que pida la especificación.
    spec = dict(spec, rw_binds=list(spec.get("rw_binds", [])) + [[cwd, cwd]],
                chown=list(spec.get("chown", [])) + [cwd])
    # Si muere el proceso que nos lanzó (nbgrader), morimos con él (y con nosotros, la caja).
    _prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    expected_parent = os.environ.get(PARENT_ENV)
    if expected_parent and os.getppid() != int(expected_parent):
        raise SandboxError("el proceso calificador ya no existe")
    for path in spec.get("chown", []):
        _chown_tree(path, uid, gid)
    _check(_libc.unshare(CLONE_NEWNS | CLONE_NEWPID | CLONE_NEWNET | CLONE_NEWIPC | CLONE_NEWUTS), "unshare")
    # La interrupción (SIGINT) llega al grupo de procesos entero: el núcleo la recibe directamente.
    signal.signal(signal.SIGINT, lambda *_: None)
    alive_r, alive_w = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(alive_w)
        _child(spec, argv, cwd, alive_r)
    os.close(alive_r)
    signal.signal(signal.SIGTERM, lambda *_: os.kill(pid, signal.SIGKILL))
    while True:
        try:
            _, status = os.waitpid(pid, 0)
            break
        except InterruptedError:
            continue
        except ChildProcessError:
            return 1
    if os.WIFSIGNALED(status):
        return 128 + os.WTERMSIG(status)
    return os.WEXITSTATUS(status)


_AVAILABLE: tuple[bool, str] | None = None


def available() -> tuple[bool, str]:
    """¿Se puede crear la caja aquí? Lo prueba de verdad (en un proceso hijo) y devuelve
    (sí/no, motivo en español)."""
    global _AVAILABLE
    if _AVAILABLE is not None:
        return _AVAILABLE
    if sys.platform != "linux":
        _AVAILABLE = (False, "la caja de arena solo funciona en Linux")
    elif os.geteuid() != 0:
        _AVAILABLE = (False, "hace falta ejecutar el calificador como root (por ejemplo con sudo)")
    else:
        import tempfile

        target = tempfile.mkdtemp(prefix="caja-prueba-")
        pid = os.fork()
        if pid == 0:
            try:
                _check(_libc.unshare(CLONE_NEWNS | CLONE_NEWPID | CLONE_NEWNET | CLONE_NEWIPC | CLONE_NEWUTS), "unshare")
                _mount(None, "/", None, MS_REC | MS_PRIVATE)
                _mount("tmpfs", target, "tmpfs", MS_NOSUID | MS_NODEV, "size=1m")
                os._exit(0)
            except BaseException:  # noqa: BLE001
                os._exit(1)
        _, status = os.waitpid(pid, 0)
        os.rmdir(target)
        ok = os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0
        _AVAILABLE = (ok, "" if ok else "el sistema no deja crear espacios de nombres de Linux (¿un contenedor "
                                        "sin CAP_SYS_ADMIN?)")
    return _AVAILABLE


def main(args: list[str]) -> int:
    if len(args) < 3 or args[1] != "--":
        print("uso: python -m helpers.classroom.sandbox ESPEC.json -- orden [argumentos...]", file=sys.stderr)
        return 2
    spec = json.loads(Path(args[0]).read_text(encoding="utf-8"))
    try:
        return run(spec, args[2:])
    except SandboxError as exc:
        print(f"[caja de arena] {exc}", file=sys.stderr, flush=True)
        return 125


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
