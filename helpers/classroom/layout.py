"""Dónde guarda cada cosa la carpeta de una clase (fuera del repositorio, la elige el profesorado).

::

    CLASE/                        (<id>: el identificador de nbgrader de cada persona, ver slug())
      calificaciones.csv          una fila por alumno/a y cuaderno (nota, máximo, estado, observaciones)
      retroalimentacion/<id>/<cuaderno>.html
      entregas/<id>/<cuaderno>.ipynb   copia exacta de lo que se entregó (nunca se modifica)
      entregas/indice.json        quién entregó qué, de dónde salió y qué se decidió al importar
      entregas/anteriores/        entregas sustituidas por una importación posterior
      curso/                      curso de nbgrader: libro de notas (gradebook.db), calificados...
      resultados/<cuaderno>/<id>/   resultado de cada calificación (se reutiliza al repetir)
      registro.txt                lo que ha hecho cada ejecución
      tiempos.json                segundos por entrega de la última ejecución
      copias.csv                  parecido del código de cada entrega con la solución publicada y las demás
      .plantillas/ .modelos/ .trabajo/  internos (cuaderno de referencia, modelos, temporales)
"""

from __future__ import annotations

import json
import os
import re
import tempfile
import unicodedata
from datetime import datetime
from pathlib import Path

MARKER = ".curso-peft-clase"


class ClassDir:
    """Rutas de la carpeta de una clase."""

    def __init__(self, root: os.PathLike | str):
        self.root = Path(root).expanduser().resolve()
        self.submissions = self.root / "entregas"
        self.index = self.submissions / "indice.json"
        self.previous = self.submissions / "anteriores"
        self.course = self.root / "curso"
        self.results = self.root / "resultados"
        self.feedback = self.root / "retroalimentacion"
        self.csv = self.root / "calificaciones.csv"
        self.log_file = self.root / "registro.txt"
        self.timings = self.root / "tiempos.json"
        self.copies_csv = self.root / "copias.csv"
        self.copies_json = self.root / ".copias.json"
        self.templates = self.root / ".plantillas"
        self.models = self.root / ".modelos"
        self.work = self.root / ".trabajo"
        self.lock = self.root / ".bloqueo"
        self.marker = self.root / MARKER

    def is_class(self) -> bool:
        """¿Es ya la carpeta de una clase? (la marca, o las carpetas de una versión anterior)."""
        return self.marker.is_file() or (self.submissions.is_dir() and self.course.is_dir())

    def create(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        if not self.marker.exists():
            self.marker.write_text(
                "Carpeta de una clase de curso-peft (python -m helpers.classroom).\n", encoding="utf-8"
            )
        # Solo quien califica entra: aquí están las entregas de toda la clase y el libro de notas.
        os.chmod(self.root, 0o700)
        for path in (
            self.submissions,
            self.course,
            self.results,
            self.feedback,
            self.templates,
            self.models,
            self.work,
        ):
            path.mkdir(parents=True, exist_ok=True)

    def submission(self, student: str, notebook: str) -> Path:
        return self.submissions / student / f"{notebook}.ipynb"

    def template(self, notebook: str) -> Path:
        return self.templates / notebook

    def result_dir(self, notebook: str, student: str) -> Path:
        return self.results / notebook / student

    def feedback_file(self, student: str, notebook: str) -> Path:
        return self.feedback / student / f"{notebook}.html"

    def log(self, message: str) -> None:
        stamp = datetime.now().strftime("%Y-%m-%d %H:%M:%S")
        with open(self.log_file, "a", encoding="utf-8") as handle:
            handle.write(f"[{stamp}] {message}\n")


def slug(text: str) -> str:
    """Identificador de alumno/a apto para nbgrader y para nombres de carpeta: ``ana-garcia``."""
    ascii_text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()
    out = re.sub(r"[^a-z0-9]+", "-", ascii_text.lower()).strip("-")
    return out or "alumno"


def write_atomic(path: Path, data: bytes | str) -> None:
    """Escribe un archivo entero o nada (archivo temporal + ``os.replace``)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    raw = data.encode("utf-8") if isinstance(data, str) else data
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(raw)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def write_json(path: Path, data) -> None:
    write_atomic(path, json.dumps(data, ensure_ascii=False, indent=1, sort_keys=True) + "\n")


def read_json(path: Path, default=None):
    try:
        return json.loads(Path(path).read_text(encoding="utf-8"))
    except (FileNotFoundError, json.JSONDecodeError):
        return default
