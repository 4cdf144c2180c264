"""Importar entregas: el zip de Moodle («Descargar todas las entregas») o una carpeta normal.

Formatos admitidos (en zip o ya descomprimidos en una carpeta):

- Moodle: una carpeta por alumno/a y tipo de envío, ``Nombre Apellido_<id>_assignsubmission_file_/``,
  con los archivos dentro (a cualquier profundidad);
- carpeta normal: ``<alumno>/<cuaderno>.ipynb``.

Para cada alumno/a se decide qué archivo corresponde a cada cuaderno pedido:

1. el nombre exacto (``01_introduccion_peft.ipynb``);
2. el mismo nombre con ruido habitual: mayúsculas, tildes, ``(1)``, «copia de», espacios...;
3. por el contenido: el cuaderno que tiene las celdas calificadas (``grade_id``) de ese cuaderno;
4. si solo falta un cuaderno y queda un solo archivo, ese.

Si hay varias subidas para el mismo cuaderno se queda la más reciente y se anota la decisión.
Los archivos se copian tal cual (byte a byte) en ``CLASE/entregas/<alumno>/<cuaderno>.ipynb``; nunca
se borra una entrega: la que se sustituye pasa a ``entregas/anteriores/``.

Seguridad: del zip solo se leen los ``.ipynb`` (sin extraer rutas, así que ``../`` no escapa), con
un límite de tamaño; en una carpeta no se siguen enlaces simbólicos (un enlace a un archivo del
sistema copiaría su contenido dentro de la entrega).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import stat
import time
import unicodedata
import zipfile
import zlib
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from ..repair import MAX_BYTES
from .layout import ClassDir, read_json, slug, write_atomic, write_json

MOODLE_FOLDER = re.compile(r"^(?P<name>.+?)_(?P<id>\d+)_assign(?:submission|feedback)_(?P<plugin>[a-z]+)_?$")
ZIP_TOTAL_LIMIT = 4 * 1024**3


@dataclass
class Upload:
    """Un archivo ``.ipynb`` subido por un alumno/a."""

    label: str  # ruta dentro de la exportación (para las observaciones)
    data: bytes
    mtime: float  # fecha de la subida (segundos); decide entre dos subidas

    @property
    def filename(self) -> str:
        return PurePosixPath(self.label).name


@dataclass
class Student:
    student_id: str
    name: str
    lms_id: str | None = None  # el id de Moodle: no cambia aunque cambie el nombre
    uploads: list[Upload] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)


# Lo que añaden el sistema o Jupyter (no lo sube nadie): nunca es una entrega. Cualquier otra
# carpeta, aunque empiece por punto («.oculto»), es la de un alumno/a y tiene su fila.
JUNK = {"__MACOSX", ".ipynb_checkpoints", ".DS_Store", ".git", ".Trashes", ".Spotlight-V100", ".fseventsd"}


def _skip_part(part: str) -> bool:
    return part in JUNK or part.startswith(("._", ".Trash-"))


def _zip_mtime(info: zipfile.ZipInfo) -> float:
    try:
        return time.mktime(info.date_time + (0, 0, -1))
    except (OverflowError, ValueError):
        return 0.0


def _read_entry(zf: zipfile.ZipFile, info: zipfile.ZipInfo, room: int) -> tuple[bytes, str]:
    """(contenido, "") o (b"", motivo en español) si la entrada está dañada o es desmesurada.

    Se lee como mucho ``MAX_BYTES + 1`` bytes (lo que diga la cabecera no importa: una bomba de
    descompresión se corta ahí) y nunca más de ``room`` en total."""
    if info.file_size > MAX_BYTES:
        return b"", f"dice ocupar {info.file_size / 1e9:.1f} GB descomprimido (el máximo es {MAX_BYTES // 2**20} MiB)"
    if room <= 0:
        return b"", f"no cabe: el zip descomprimido pasa de {ZIP_TOTAL_LIMIT / 1e9:.1f} GB"
    try:
        with zf.open(info) as handle:
            data = handle.read(min(MAX_BYTES, room) + 1)
    except zipfile.BadZipFile as exc:
        why = "está dañado (la suma de comprobación CRC no coincide)" if "CRC" in str(exc) else "está dañado"
        return b"", why
    except RuntimeError:  # zipfile: «File is encrypted, password required»
        return b"", "está cifrado con contraseña"
    except NotImplementedError:
        return b"", "usa un método de compresión que no se puede leer"
    except (OSError, EOFError, ValueError, OverflowError, zlib.error):
        return b"", "está dañado"
    if len(data) > room:
        return b"", f"no cabe: el zip descomprimido pasa de {ZIP_TOTAL_LIMIT / 1e9:.1f} GB"
    return data, ""


def _group(entries: list[tuple[list[str], Upload | None, str]]) -> dict[str, Student]:
    """Agrupa archivos por alumno/a según la primera carpeta de su ruta."""
    moodle = any(MOODLE_FOLDER.match(p) for parts, _, _ in entries for p in parts[:-1])
    students: dict[str, Student] = {}
    for parts, upload, reason in entries:
        if moodle:
            idx = next((i for i, p in enumerate(parts[:-1]) if MOODLE_FOLDER.match(p)), None)
            if idx is None:
                continue
            m = MOODLE_FOLDER.match(parts[idx])
            key = f"{slug(m.group('name'))}-{m.group('id')}"
            name = m.group("name").strip()
            # Una persona es su id de Moodle (dos carpetas con el mismo id son la misma persona).
            same = next((st for st in students.values() if st.lms_id == m.group("id")), None)
            if same is not None:
                key = same.student_id
        else:
            if len(parts) < 2:
                continue
            name = parts[0]
            key = name
        student = students.setdefault(key, Student(student_id=key, name=name, lms_id=m.group("id") if moodle else None))
        if upload is not None:
            student.uploads.append(upload)
        elif reason:
            student.skipped.append(reason)
    if not moodle:
        # Identificadores válidos para nbgrader, únicos y siempre los mismos (orden alfabético).
        renamed: dict[str, Student] = {}
        for key in sorted(students):
            base = slug(key)
            sid, n = base, 2
            while sid in renamed:
                sid, n = f"{base}-{n}", n + 1
            students[key].student_id = sid
            renamed[sid] = students[key]
        students = renamed
    return students


def _strip_wrapper(entries):
    """Quita una carpeta que envuelve todo el zip (``entregas/ana/01.ipynb`` → ``ana/01.ipynb``)."""
    while entries:
        firsts = {parts[0] for parts, _, _ in entries}
        if len(firsts) != 1 or MOODLE_FOLDER.match(next(iter(firsts))):
            break
        if any(len(parts) < 3 for parts, _, _ in entries if parts[-1]):
            break
        entries = [(parts[1:], up, why) for parts, up, why in entries if len(parts) > 1]
    return entries


def read_export(path: os.PathLike | str) -> dict[str, Student]:
    """Lee un zip o una carpeta de entregas y devuelve ``{id_alumno: Student}``."""
    path = Path(path)
    entries: list[tuple[list[str], Upload | None, str]] = []
    if path.is_file() and zipfile.is_zipfile(path):
        total = 0
        with zipfile.ZipFile(path) as zf:
            for info in zf.infolist():
                parts = [p for p in PurePosixPath(info.filename.replace("\\", "/")).parts if p not in ("", "/")]
                if not parts or any(_skip_part(p) or p == ".." for p in parts):
                    continue
                if info.is_dir():
                    entries.append((parts + [""], None, ""))  # carpeta de alumno/a quizá vacía
                    continue
                if not parts[-1].lower().endswith(".ipynb"):
                    continue
                if stat.S_ISLNK(info.external_attr >> 16):
                    entries.append((parts, None, f"«{info.filename}» es un enlace simbólico: se ignora"))
                    continue
                data, problem = _read_entry(zf, info, ZIP_TOTAL_LIMIT - total)
                if problem:
                    # Una entrada dañada no para la importación: esa persona queda sin ese archivo
                    # (su fila lo dice) y el resto se califica.
                    entries.append(
                        (parts, None, f"«{info.filename}» {problem}: no se puede leer; pide que lo vuelva a subir")
                    )
                    continue
                total += len(data)
                entries.append((parts, Upload("/".join(parts), data, _zip_mtime(info)), ""))
    elif path.is_dir():
        for dirpath, dirnames, filenames in os.walk(path, followlinks=False):
            dirnames[:] = sorted(d for d in dirnames if not _skip_part(d))
            for fname in sorted(filenames):
                full = Path(dirpath) / fname
                parts = list(full.relative_to(path).parts)
                if _skip_part(fname) or not fname.lower().endswith(".ipynb"):
                    continue
                if full.is_symlink() or not full.is_file():
                    entries.append((parts, None, f"«{'/'.join(parts)}» es un enlace simbólico: se ignora"))
                    continue
                with open(full, "rb") as handle:
                    data = handle.read(MAX_BYTES + 1)
                entries.append((parts, Upload("/".join(parts), data, full.stat().st_mtime), ""))
        # Las carpetas de alumnos sin ningún cuaderno también cuentan (entrega vacía).
        for child in sorted(path.iterdir()):
            if child.is_dir() and not child.is_symlink() and not _skip_part(child.name):
                entries.append(([child.name, ""], None, ""))
    else:
        raise FileNotFoundError(f"No encuentro las entregas en {path} (debe ser un .zip o una carpeta).")
    return _group(_strip_wrapper(entries))


# --- emparejar archivos con cuadernos -----------------------------------------------------------
def normalize_name(stem: str) -> str:
    """``"Copia de 01_Introducción PEFT (1)"`` → ``"01_introduccion_peft"``."""
    text = unicodedata.normalize("NFKD", stem).encode("ascii", "ignore").decode().lower().strip()
    text = re.sub(r"^(copia de|copy of)\s+", "", text)
    for _ in range(3):
        text = re.sub(r"\s*\(\d+\)\s*$", "", text)
        text = re.sub(r"[\s_-]*(copia|copy|final|entrega)(\s*\d+)?\s*$", "", text)
    return re.sub(r"[^a-z0-9]+", "_", text).strip("_")


def _content_ids(data: bytes) -> set[str]:
    try:
        raw = json.loads(data.decode("utf-8-sig"))
        return {
            c["metadata"]["nbgrader"]["grade_id"]
            for c in raw.get("cells", [])
            if isinstance(c, dict)
            and isinstance(c.get("metadata", {}).get("nbgrader"), dict)
            and c["metadata"]["nbgrader"].get("grade_id")
        }
    except Exception:  # noqa: BLE001 - un archivo dañado simplemente no se empareja por contenido
        return set()


def _fmt_time(seconds: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M", time.localtime(seconds)) if seconds else "fecha desconocida"


def match_uploads(
    uploads: list[Upload], notebooks: dict[str, set[str]]
) -> tuple[dict[str, tuple[Upload, list[str]]], list[str]]:
    """Empareja subidas con cuadernos. ``notebooks``: ``{nombre: grade_ids del publicado}``.

    Devuelve ``({cuaderno: (subida elegida, observaciones)}, observaciones sueltas)``.
    """
    candidates: dict[str, list[tuple[Upload, str]]] = {nb: [] for nb in notebooks}
    free = []
    for up in uploads:
        stem = up.filename[: -len(".ipynb")]
        if stem in notebooks:
            candidates[stem].append((up, "exacto"))
            continue
        norm = normalize_name(stem)
        hit = next(
            (nb for nb in notebooks if norm == normalize_name(nb) or norm.startswith(normalize_name(nb) + "_")), None
        )
        if hit:
            candidates[hit].append((up, "nombre"))
        else:
            free.append(up)
    still = []
    for up in free:
        ids = _content_ids(up.data)
        best = max(notebooks, key=lambda nb: len(ids & notebooks[nb]), default=None)
        if best is not None and ids & notebooks[best]:
            candidates[best].append((up, "contenido"))
        else:
            still.append(up)
    empty = [nb for nb, c in candidates.items() if not c]
    if len(empty) == 1 and len(still) == 1:
        candidates[empty[0]].append((still.pop(), "único"))
    chosen: dict[str, tuple[Upload, list[str]]] = {}
    for nb, cands in candidates.items():
        if not cands:
            continue
        order = {"exacto": 0, "nombre": 1, "contenido": 2, "único": 3}
        cands.sort(key=lambda uc: (-uc[0].mtime, order[uc[1]], uc[0].label))
        up, how = cands[0]
        notes = []
        if how != "exacto":
            why = {
                "nombre": "por su nombre",
                "contenido": "por su contenido",
                "único": "por ser el único archivo que quedaba",
            }[how]
            notes.append(f"revisar: el archivo se llamaba «{up.filename}»; se asocia a {nb} {why}")
        if len(cands) > 1:
            rest = ", ".join(f"«{u.label}» ({_fmt_time(u.mtime)})" for u, _ in cands[1:])
            notes.append(
                f"{len(cands)} subidas para {nb}: se califica la más reciente, «{up.label}» "
                f"({_fmt_time(up.mtime)}); se descarta {rest}"
            )
        chosen[nb] = (up, notes)
    loose = [f"archivo sin asociar a ningún cuaderno: «{up.label}»" for up in still]
    return chosen, loose


def import_submissions(cd: ClassDir, source: os.PathLike | str, notebooks: dict[str, set[str]]) -> dict:
    """Importa ``source`` en la carpeta de la clase y devuelve el índice actualizado."""
    students = read_export(source)
    index = read_json(cd.index, {}) or {}
    index.setdefault("alumnos", {})
    index.setdefault("entregas", {})
    known = index.setdefault("moodle", {})  # id de Moodle -> identificador del alumno/a
    for sid, data in index["alumnos"].items():  # índices de versiones anteriores
        if data.get("moodle"):
            known.setdefault(data["moodle"], sid)
    cuadernos = set(index.get("cuadernos", [])) | set(notebooks)
    index["cuadernos"] = sorted(cuadernos)
    for key in sorted(students):
        st = students[key]
        sid = key
        if st.lms_id:
            # Quien cambió de nombre en Moodle sigue siendo la misma fila (el primer identificador).
            sid = known.setdefault(st.lms_id, key)
            if sid != key:
                cd.log(f"importación · {sid}: el id de Moodle {st.lms_id} ahora se llama «{st.name}»")
        if sid not in index["alumnos"] or st.name != sid:  # una carpeta con el id no borra el nombre
            index["alumnos"][sid] = {"nombre": st.name, **({"moodle": st.lms_id} if st.lms_id else {})}
        record = index["entregas"].setdefault(sid, {})
        chosen, loose = match_uploads(st.uploads, notebooks)
        for line in loose + st.skipped:
            cd.log(f"importación · {sid}: {line}")
        # Lo que no se pudo leer de esta persona (archivo dañado, enlace...): sale en su fila del CSV.
        if st.skipped:
            index["alumnos"][sid]["avisos"] = list(st.skipped)
        else:
            index["alumnos"][sid].pop("avisos", None)
        for nb, (up, notes) in sorted(chosen.items()):
            digest = hashlib.sha256(up.data).hexdigest()
            target = cd.submission(sid, nb)
            if target.exists():
                old = target.read_bytes()
                if hashlib.sha256(old).hexdigest() != digest:
                    keep = cd.previous / sid / f"{nb}-{hashlib.sha256(old).hexdigest()[:12]}.ipynb"
                    write_atomic(keep, old)
                    cd.log(f"importación · {sid} · {nb}: la entrega anterior se guarda en {keep}")
            write_atomic(target, up.data)
            record[nb] = {"archivo": up.label, "sha256": digest, "notas": notes}
            for note in notes:
                cd.log(f"importación · {sid} · {nb}: {note}")
    write_json(cd.index, index)
    return index
