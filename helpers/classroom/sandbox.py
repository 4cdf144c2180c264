"""Caja de arena (*sandbox*) del código del alumnado, hecha con **bubblewrap** (``bwrap``).

``python -m helpers.classroom.sandbox ESPEC.json -- orden [args...]`` (o ``python sandbox.py ...``)
prepara los descriptores de archivo y los límites y se **sustituye** (``exec``) por ``bwrap``, que
ejecuta ``orden`` (el núcleo de Jupyter) así:

1. en espacios de nombres nuevos (``--unshare-all``): montajes, procesos, red (sin red: solo
   ``lo``), IPC, nombre de máquina y, sin root, usuario (bubblewrap usa los espacios de nombres de
   usuario sin privilegios: no hace falta ser root);
2. con una raíz nueva en la que solo existen, de solo lectura, el sistema (``/usr``, ``/etc``...),
   el Python del curso, el paquete ``helpers`` y los modelos. Con escritura solo hay *tmpfs*
   de tamaño limitado (``/tmp``, ``/dev/shm``, la carpeta de trabajo y la de los sockets): lo que
   escribe el núcleo vive en memoria, tiene un tope y desaparece con él. La carpeta de trabajo es
   una **copia** de lo que entregó el alumno/a (sin pruebas ocultas); las soluciones, el libro de
   notas, las carpetas de nbgrader y las demás entregas no existen dentro;
3. ``--die-with-parent`` (si muere el calificador, muere la caja) y ``--new-session`` (sin acceso
   a la terminal); sin capacidades; con límites de memoria, procesos y tamaño de archivo que pone
   ``prlimit`` **dentro** de la caja (los heredan todos sus procesos; con ``systemd-run --scope``
   además un cgroup de memoria donde systemd lo permite). Dentro y no antes de ``bwrap``: el límite
   de procesos cuenta por usuario *y espacio de nombres de usuario* (``ucounts``, Linux ≥ 5.14), y
   el tope que hereda un espacio de nombres nuevo es el del proceso que lo crea: puesto antes, los
   procesos de otra caja del mismo usuario gastarían el presupuesto de esta;
4. un filtro *seccomp* niega las llamadas del llavero del núcleo (``add_key``, ``keyctl``,
   ``request_key``), como el perfil por defecto de Docker: el llavero de un usuario no tiene
   espacio de nombres propio sin root y sobrevive a la caja, así que sería un buzón entre entregas;
5. ``bwrap`` arranca con un entorno mínimo (``PATH`` y ``LANG``): su proceso 1 dentro de la caja
   enseña su entorno en ``/proc/1/environ``, así que nunca recibe el del calificador (ni
   ``HF_TOKEN``); el núcleo recibe solo ``spec["env"]`` (``--clearenv`` + ``--setenv``);
6. si el calificador es root, el núcleo corre igualmente como un usuario sin privilegios, uno
   distinto por entrega (``setpriv`` dentro de la caja, sin grupos suplementarios).

bubblewrap escribe el PID del proceso de la caja en ``info_path`` (``--info-fd``): el calificador
se conecta a los sockets del núcleo a través de ``/proc/<pid>/root`` (ver :mod:`.kernel`).

Solo usa la biblioteca estándar (se ejecuta como programa, sin importar ``helpers``).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

# Lo del sistema que se ve dentro (de solo lectura). Los enlaces simbólicos (usr fusionado) se copian.
SYSTEM_DIRS = ("usr", "bin", "sbin", "lib", "lib32", "lib64", "libx32", "etc")
# Dentro de la caja: el archivo de conexión del núcleo y la carpeta de sus sockets.
RUN_DIR = "/run/curso-peft"
CONNECTION_FILE = RUN_DIR + "/conexion.json"
SOCKET_DIR = RUN_DIR + "/k"
HOME = "/home/alumno"
# Variables de entorno del calificador que pasan a la caja (el resto no: ni rutas ni secretos como
# HF_TOKEN). Los ajustes del núcleo los pone el calificador en spec["env"].
ENV_PASSTHROUGH = ("LANG", "LC_ALL", "TZ", "PYTHONHASHSEED", "CURSO_PEFT_LOTE")
# Límites que pone prlimit dentro de la caja (nombre del límite → opción de prlimit).
RLIMITS = {"as": "--as", "nproc": "--nproc", "fsize": "--fsize", "nofile": "--nofile", "core": "--core"}
# Lo único que recibe bwrap del entorno del calificador (systemd-run --user necesita las dos últimas).
OUTER_ENV = ("PATH", "LANG", "XDG_RUNTIME_DIR", "DBUS_SESSION_BUS_ADDRESS")
# seccomp: llamadas del llavero del núcleo por arquitectura (AUDIT_ARCH_*) → números de llamada.
KEYRING_SYSCALLS = {
    0xC000003E: (248, 249, 250),  # x86_64: add_key, request_key, keyctl
    0x40000003: (286, 287, 288),  # i386 (también programas de 32 bits en x86_64)
    0xC00000B7: (217, 218, 219),  # aarch64
    0x40000028: (309, 310, 311),  # arm de 32 bits
}
X32_SYSCALL_BIT = 0x40000000  # ABI x32 en x86_64: se niega entera
HOW_TO_ENABLE = (
    "actívalos (como root, una vez) con «sysctl -w kernel.unprivileged_userns_clone=1» y "
    "«sysctl -w user.max_user_namespaces=10000»; en Ubuntu 24.04 o posterior además "
    "«sysctl -w kernel.apparmor_restrict_unprivileged_userns=0»; en un contenedor Docker, "
    "arráncalo con «--security-opt seccomp=unconfined --security-opt apparmor=unconfined»"
)


class SandboxError(RuntimeError):
    """No se pudo preparar la caja de arena."""


def bwrap_path() -> str | None:
    return shutil.which("bwrap") or next((p for p in ("/usr/bin/bwrap", "/bin/bwrap") if os.access(p, os.X_OK)), None)


def _system_args() -> list[str]:
    args = []
    for name in SYSTEM_DIRS:
        host = "/" + name
        if os.path.islink(host):
            args += ["--symlink", os.readlink(host), host]
        elif os.path.isdir(host):
            args += ["--ro-bind", host, host]
    return args


def _namespaces(as_root: bool) -> list[str]:
    if as_root:
        # root no necesita el espacio de usuario: monta como root y el núcleo baja a un uid sin
        # privilegios con setpriv (un espacio de usuario haría que el uid de fuera fuese 0).
        return [
            "--unshare-ipc",
            "--unshare-pid",
            "--unshare-net",
            "--unshare-uts",
            "--unshare-cgroup-try",
            "--cap-add",
            "CAP_SETUID",
            "--cap-add",
            "CAP_SETGID",
        ]
    return ["--unshare-all"]


def _parents(targets: list[str]) -> list[str]:
    """Crea con permisos 0755 las carpetas que contienen los montajes (bwrap las haría 0700 y el
    usuario de la caja no podría atravesarlas)."""
    system = tuple("/" + name for name in SYSTEM_DIRS)
    inside = lambda path: any(path == t or path.startswith(t.rstrip("/") + "/") for t in targets + list(system))  # noqa: E731
    parents = []
    for target in targets:
        parts = Path(target).parts
        for i in range(2, len(parts)):
            parent = str(Path(*parts[:i]))
            if parent not in parents and not inside(parent):
                parents.append(parent)
    args = []
    for parent in sorted(parents, key=lambda p: p.count("/")):
        args += ["--perms", "0755", "--dir", parent]
    return args


def _writable(path: str, size: int) -> list[str]:
    """Un tmpfs de ``size`` bytes en ``path`` en el que el usuario de la caja puede escribir."""
    return ["--size", str(int(size)), "--tmpfs", path, "--chmod", "1777", path]


def seccomp_program() -> bytes:
    """Programa BPF (``struct sock_filter[]``) que niega con EPERM las llamadas del llavero."""
    import struct

    ld_abs, jeq, jge, ret = 0x20, 0x15, 0x35, 0x06
    allow, deny = 0x7FFF0000, 0x00050000 | 1  # SECCOMP_RET_ALLOW, SECCOMP_RET_ERRNO | EPERM
    code: list[tuple[int, int, int, int]] = []
    to_deny: list[int] = []  # instrucciones cuyo salto «sí» va a la de negar (se resuelve al final)
    for arch, numbers in KEYRING_SYSCALLS.items():
        block = [(ld_abs, 0, 0, 0)] + ([(jge, 0, 0, X32_SYSCALL_BIT)] if arch == 0xC000003E else [])
        block += [(jeq, 0, 0, n) for n in numbers] + [(ret, 0, 0, allow)]
        code.append((jeq, 0, len(block), arch))  # ¿es esta arquitectura? si no, al bloque siguiente
        start = len(code)
        code += block
        to_deny += [start + i for i, ins in enumerate(block) if ins[0] in (jeq, jge)]
    code.insert(0, (ld_abs, 0, 0, 4))  # seccomp_data.arch
    to_deny = [i + 1 for i in to_deny]
    code.append((ret, 0, 0, allow))  # otra arquitectura
    code.append((ret, 0, 0, deny))
    out = []
    for i, (op, jt, jf, k) in enumerate(code):
        if i in to_deny:
            jt = len(code) - 1 - (i + 1)
        out.append(struct.pack("=HBBI", op, jt, jf, k))
    return b"".join(out)


def _seccomp_fd() -> int:
    """Descriptor (de lectura) con el programa seccomp, para ``bwrap --seccomp``."""
    import tempfile

    handle = tempfile.TemporaryFile()
    handle.write(seccomp_program())
    handle.flush()
    fd = os.dup(handle.fileno())
    handle.close()
    os.lseek(fd, 0, os.SEEK_SET)
    return fd


def _limits_prefix(limits: dict) -> list[str]:
    """``prlimit --nproc=N:N ... --``: los límites, puestos ya dentro de la caja."""
    args = [f"{RLIMITS[key]}={int(value)}:{int(value)}" for key, value in sorted(limits.items()) if value is not None]
    return [shutil.which("prlimit") or "/usr/bin/prlimit", *args, "--"] if args else []


def build_argv(spec: dict, command: list[str], pass_fds: list[int]) -> list[str]:
    """La orden ``bwrap`` completa; abre (y añade a ``pass_fds``) los archivos que se copian dentro."""
    as_root = os.geteuid() == 0
    sizes = spec.get("sizes", {})
    argv = [bwrap_path() or "bwrap", *_namespaces(as_root), "--die-with-parent", "--new-session"]
    argv += _system_args()
    # /tmp antes que los montajes del curso: si el curso (o su .venv) vive bajo /tmp, el tmpfs
    # montado después lo taparía y el núcleo no encontraría su Python.
    argv += _writable("/tmp", sizes.get("tmp", 256 << 20))
    binds = sorted(spec.get("ro_binds", []), key=lambda p: p[1])
    argv += _parents([dst for _, dst in binds])
    for src, dst in binds:
        argv += ["--ro-bind", src, dst]
    argv += [
        "--proc",
        "/proc",
        "--dev",
        "/dev",
        *_writable("/dev/shm", sizes.get("shm", 64 << 20)),
        "--remount-ro",
        "/dev",
        *_writable(HOME, sizes.get("home", 256 << 20)),
        "--perms",
        "0755",
        "--dir",
        RUN_DIR,
        *_writable(SOCKET_DIR, 1 << 20),
    ]
    cwd = spec.get("cwd") or HOME
    for path in spec.get("dirs", []) + [cwd]:
        argv += ["--dir", path, "--chmod", "0777", path]
    for src, dst in spec.get("files", []):
        fd = os.open(src, os.O_RDONLY | os.O_NOFOLLOW)
        pass_fds.append(fd)
        argv += ["--file", str(fd), dst]
    if spec.get("connection_file"):
        # Una copia de solo lectura (el original es del calificador, 0600).
        fd = os.open(spec["connection_file"], os.O_RDONLY | os.O_NOFOLLOW)
        pass_fds.append(fd)
        argv += ["--perms", "0444", "--ro-bind-data", str(fd), CONNECTION_FILE]
    if spec.get("info_path"):
        fd = os.open(spec["info_path"], os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o600)
        pass_fds.append(fd)
        argv += ["--info-fd", str(fd)]
    fd = _seccomp_fd()
    pass_fds.append(fd)
    argv += ["--seccomp", str(fd)]
    argv += ["--remount-ro", "/", "--chdir", cwd, "--clearenv"]
    env = {k: v for k, v in os.environ.items() if k.startswith(ENV_PASSTHROUGH)}
    env.update(spec.get("env", {}))
    env.setdefault("PATH", "/usr/local/bin:/usr/bin:/bin")
    for key, value in sorted(env.items()):
        argv += ["--setenv", key, str(value)]
    argv.append("--")
    argv += _limits_prefix(spec.get("rlimits", {}))
    if as_root:
        uid = int(spec.get("uid", 65534))
        argv += [
            shutil.which("setpriv") or "/usr/bin/setpriv",
            "--reuid",
            str(uid),
            "--regid",
            str(uid),
            "--clear-groups",
            "--inh-caps",
            "-all",
            "--",
        ]
    return argv + list(command)


def memory_scope(memory_bytes: int | None) -> list[str]:
    """Prefijo ``systemd-run --scope`` con un cgroup de memoria si systemd lo permite aquí; si no, []."""
    tool = shutil.which("systemd-run")
    if not tool or not memory_bytes:
        return []
    prefix = [tool, "--scope", "--quiet", "--collect", "-p", f"MemoryMax={int(memory_bytes)}", "-p", "MemorySwapMax=0"]
    if os.geteuid() != 0:
        prefix.insert(1, "--user")
    try:
        ok = subprocess.run(prefix + ["true"], capture_output=True, timeout=20).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        ok = False
    return prefix if ok else []


def exec_sandbox(spec: dict, command: list[str]) -> None:
    """Se sustituye por bubblewrap (no vuelve). Lanza :class:`SandboxError` si no puede."""
    if not bwrap_path():
        raise SandboxError("falta bubblewrap (bwrap): instálalo con «apt-get install bubblewrap» (o «make install»)")
    pass_fds: list[int] = []
    argv = spec.get("scope", []) + build_argv(spec, command, pass_fds)
    for fd in pass_fds:
        os.set_inheritable(fd, True)
    os.execve(argv[0], argv, outer_env())


def outer_env() -> dict[str, str]:
    """El entorno con el que arranca bwrap: el mínimo, sin nada del calificador (ni secretos)."""
    env = {k: os.environ[k] for k in OUTER_ENV if k in os.environ}
    env.setdefault("PATH", "/usr/bin:/bin")
    env.setdefault("LANG", "C.UTF-8")
    return env


def run(spec: dict, command: list[str], **popen) -> subprocess.CompletedProcess:
    """Ejecuta ``command`` en la caja y espera (lo usan la sonda y las pruebas)."""
    return subprocess.run([sys.executable, os.path.abspath(__file__), json.dumps(spec), "--", *command], **popen)


_AVAILABLE: tuple[bool, str] | None = None


def available() -> tuple[bool, str]:
    """¿Se puede crear la caja aquí? Lo prueba de verdad y devuelve (sí/no, motivo en español)."""
    global _AVAILABLE
    if _AVAILABLE is not None:
        return _AVAILABLE
    if sys.platform != "linux":
        _AVAILABLE = (False, "la caja de arena solo funciona en Linux")
    elif not bwrap_path():
        _AVAILABLE = (False, "falta bubblewrap (bwrap): instálalo con «apt-get install bubblewrap» (o «make install»)")
    elif os.geteuid() == 0 and not shutil.which("setpriv"):
        _AVAILABLE = (False, "falta setpriv (paquete util-linux), que baja el núcleo a un usuario sin privilegios")
    elif not shutil.which("prlimit"):
        _AVAILABLE = (False, "falta prlimit (paquete util-linux), que pone los límites de la caja")
    else:
        try:
            proc = run({"cwd": HOME}, ["/bin/sh", "-c", "id -u"], capture_output=True, text=True, timeout=60)
            ok, detail = proc.returncode == 0, (proc.stderr or proc.stdout).strip()[-300:]
        except (OSError, subprocess.TimeoutExpired) as exc:
            ok, detail = False, str(exc)
        _AVAILABLE = (
            ok,
            ""
            if ok
            else "este sistema no deja a bubblewrap crear espacios de nombres de usuario sin "
            f"privilegios ({detail}); {HOW_TO_ENABLE}",
        )
    return _AVAILABLE


def main(args: list[str]) -> int:
    if len(args) < 3 or args[1] != "--":
        print("uso: python -m helpers.classroom.sandbox ESPEC.json -- orden [argumentos...]", file=sys.stderr)
        return 2
    text = args[0] if args[0].lstrip().startswith("{") else Path(args[0]).read_text(encoding="utf-8")
    command = args[2:]
    spec = json.loads(text)
    # El núcleo de Jupyter lee su archivo de conexión: dentro de la caja está en CONNECTION_FILE.
    if spec.get("connection_file"):
        command = [CONNECTION_FILE if a == spec["connection_file"] else a for a in command]
    try:
        exec_sandbox(spec, command)
    except (SandboxError, OSError) as exc:
        print(f"[caja de arena] no se pudo iniciar: {exc}", file=sys.stderr, flush=True)
        return 125
    return 126  # no se llega: exec no vuelve


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
