"""Sonda de aislamiento: código que intenta leer, escribir y conectarse adonde no debe.

La usan ``python -m helpers.classroom comprobar-aislamiento`` y las pruebas (dentro de la caja de
arena directamente y dentro de un cuaderno que califica nbgrader). Imprime una línea
``RESULTADO_SONDA={json}`` con, para cada intento, ``"permitido"`` o el nombre del error.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import tempfile
from pathlib import Path

from ..course_files import ROOT
from .layout import ClassDir

MARKER = "RESULTADO_SONDA="

_TEMPLATE = r"""
import json, os, socket
lecturas = {reads!r}
escrituras = {writes!r}
conexiones = {connects!r}
r = {{"leer": {{}}, "escribir": {{}}, "red": {{}}}}
for p in lecturas:
    try:
        if os.path.isdir(p):
            os.listdir(p)
        else:
            with open(p, "rb") as f:
                f.read(16)
        r["leer"][p] = "permitido"
    except Exception as e:
        r["leer"][p] = type(e).__name__
for p in escrituras:
    try:
        with open(p, "w") as f:
            f.write("escrito desde la entrega\n")
        r["escribir"][p] = "permitido"
    except Exception as e:
        r["escribir"][p] = type(e).__name__
for host, port in conexiones:
    try:
        socket.create_connection((host, port), timeout=3).close()
        r["red"]["%s:%d" % (host, port)] = "permitido"
    except Exception as e:
        r["red"]["%s:%d" % (host, port)] = type(e).__name__
r["uid"] = os.getuid()
r["procesos_visibles"] = len([x for x in os.listdir("/proc") if x.isdigit()])
print({marker!r} + json.dumps(r))
"""


def probe_source(reads: list[str], writes: list[str], connects: list[tuple[str, int]]) -> str:
    """Código Python de la sonda (cabe en una celda de cuaderno)."""
    return (
        _TEMPLATE.format(
            reads=list(reads), writes=list(writes), connects=[list(c) for c in connects], marker=MARKER
        ).strip()
        + "\n"
    )


def parse(text: str) -> dict | None:
    """Resultado de la sonda dentro de ``text`` (la marca puede ir a mitad de línea)."""
    for line in text.splitlines():
        at = line.find(MARKER)
        if at >= 0:
            return json.loads(line[at + len(MARKER) :])
    return None


def run_in_sandbox(cd: ClassDir, code: str, *, slot: int = 90, python: str | None = None) -> tuple[dict | None, str]:
    """Ejecuta ``code`` en la caja de arena (la misma que usa un núcleo) como ``sonda.py`` en su
    carpeta de trabajo. Devuelve (resultado de la sonda, salida completa)."""
    from . import sandbox
    from .grading import Settings, prepare_models, sandbox_spec

    cd.create()
    prepare_models(cd, "tiny")
    workdir = Path(tempfile.mkdtemp(prefix="sonda-", dir=cd.work))
    try:
        own = workdir / "entrega"
        own.mkdir()
        (own / "sonda.py").write_text(code, encoding="utf-8")
        spec = sandbox_spec(cd, Settings(class_dir=str(cd.root)), slot, own, "sonda", workdir)
        spec.pop("connection_file")
        proc = sandbox.run(spec, [python or sys.executable, "sonda.py"], capture_output=True, text=True, timeout=300)
        return parse(proc.stdout), proc.stdout + proc.stderr
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def default_targets(cd: ClassDir, own: str = ".") -> tuple[list[str], list[str], list[tuple[str, int]]]:
    reads = [
        str(ROOT / "solutions"),
        str(ROOT / ".git"),
        str(cd.course / "gradebook.db"),
        str(cd.submissions),
        str(cd.templates),
        "/root/.cache",
        "/etc/shadow",
    ]
    writes = [
        str(ROOT / "helpers" / ".sonda"),
        str(cd.root / ".sonda"),
        str(cd.course / "gradebook.db"),
        "/etc/.sonda",
        os.path.join(own, "permitido.txt"),
    ]
    return reads, writes, [("1.1.1.1", 53), ("127.0.0.1", 22)]


def main(class_dir: Path) -> int:
    """Orden ``comprobar-aislamiento``: informa en español y devuelve 0 si todo está cerrado."""
    from . import sandbox

    ok, why = sandbox.available()
    if not ok:
        print(f"No se puede crear la caja de arena: {why}.")
        return 1
    cd = ClassDir(class_dir)
    reads, writes, connects = default_targets(cd)
    result, output = run_in_sandbox(cd, probe_source(reads, writes, connects))
    if result is None:
        print("La sonda no llegó a ejecutarse en la caja de arena:\n" + output[-2000:])
        return 1
    good = True
    print(f"Usuario dentro de la caja: uid {result['uid']} · procesos visibles: {result['procesos_visibles']}")
    for kind, title in (("leer", "Leer"), ("escribir", "Escribir"), ("red", "Conectarse a")):
        for target, outcome in result[kind].items():
            allowed = outcome == "permitido"
            expected = target.endswith("permitido.txt")
            good &= allowed == expected
            mark = "bien" if allowed == expected else "MAL"
            print(f"  [{mark}] {title} {target}: {'permitido' if allowed else 'denegado (' + outcome + ')'}")
    print(
        "La caja de arena aísla bien el código del alumnado."
        if good
        else "ATENCIÓN: la caja de arena deja hacer algo que no debería."
    )
    return 0 if good else 1
