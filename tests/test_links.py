"""Enlaces del curso, comprobados sin red: README.md, docs/*.md y las celdas Markdown de los cuadernos
(solutions/ y notebooks/).

- Toda URL está bien formada: http o https, con un nombre de máquina válido y sin espacios.
- Todo enlace relativo apunta a un archivo del repositorio (y, si lleva #ancla a un .md, a un
  título que existe).
- Toda insignia «Abrir en Colab» (y todo enlace a archivos de este repositorio en GitHub) apunta a
  este repositorio, a la rama fijada en pyproject.toml y a un archivo que existe.
"""

from __future__ import annotations

import json
import re
import unicodedata
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote, urlsplit

import pytest

from helpers.maintainers.pins import read_pyproject, repository_url

ROOT = Path(__file__).resolve().parent.parent
COLAB_HOST = "colab.research.google.com"
HOSTNAME = re.compile(r"^(?:[a-z0-9](?:[a-z0-9-]*[a-z0-9])?\.)+[a-z]{2,}$|^localhost$|^127\.0\.0\.1$")

FENCE = re.compile(r"^(```|~~~).*?^\1[^\n]*$", re.M | re.S)
CODE_SPAN = re.compile(r"(`+)(?:(?!\1).)+?\1", re.S)
DISPLAY_MATH = re.compile(r"\$\$.+?\$\$", re.S)
INLINE_MATH = re.compile(r"\$[^$\n]+\$")
# [texto](destino) e ![alt](destino), con un nivel de corchetes anidados (la insignia de Colab).
LINK = re.compile(r"!?\[((?:[^\[\]]|\[[^\[\]]*\])*)\]\(((?:[^()\n]|\([^()\n]*\))*)\)")
REFERENCE = re.compile(r"^ {0,3}\[[^\]]+\]:[ \t]*(\S.*?)\s*$", re.M)
AUTOLINK = re.compile(r"<((?:https?|mailto):[^>]*)>")
HTML_ATTR = re.compile(r"""<(?:a|img)\b[^>]*?\b(?:href|src)\s*=\s*["']([^"']*)["']""", re.I)
BARE_URL = re.compile(r"(?<![(<\"'=\w])https?://[^\s<>()\[\]\"'`]+")
TITLE = re.compile(r"""^(\S+)\s+("[^"]*"|'[^']*'|\([^)]*\))$""")


@dataclass(frozen=True)
class Link:
    target: str
    source: Path  # archivo que contiene el enlace
    where: str  # "README.md" o "solutions/.../x.ipynb, celda 3"
    attachments: frozenset[str] = frozenset()


def _strip_code(text: str, math: bool) -> str:
    text = FENCE.sub("", text)
    text = CODE_SPAN.sub("código", text)
    if math:
        text = INLINE_MATH.sub("", DISPLAY_MATH.sub("", text))
    return text


def extract(text: str, math: bool = False) -> list[str]:
    """Destinos de todos los enlaces de un texto Markdown (fuera de bloques de código)."""
    text = _strip_code(text, math)
    targets: list[str] = []

    def scan(chunk: str) -> str:
        def repl(match: re.Match) -> str:
            scan(match.group(1))  # enlaces dentro del texto del enlace (imagen dentro de enlace)
            targets.append(match.group(2).strip())
            return " "

        return LINK.sub(repl, chunk)

    rest = scan(text)
    targets += [m.group(1) for m in REFERENCE.finditer(rest)]
    targets += [m.group(1) for m in AUTOLINK.finditer(rest)]
    targets += [m.group(1) for m in HTML_ATTR.finditer(rest)]
    rest = AUTOLINK.sub(" ", HTML_ATTR.sub(" ", REFERENCE.sub(" ", rest)))
    targets += [m.group(0).rstrip(".,;:!?") for m in BARE_URL.finditer(rest)]
    return targets


def heading_slugs(markdown: str) -> set[str]:
    """Anclas de los títulos de un .md, como las genera GitHub."""
    slugs: set[str] = set()
    for line in _strip_code(markdown, math=False).splitlines():
        match = re.match(r"^ {0,3}#{1,6}\s+(.*?)\s*#*\s*$", line)
        if not match:
            continue
        text = re.sub(r"[*_`]|\[([^\]]*)\]\([^)]*\)", lambda m: m.group(1) or "", match.group(1)).strip().lower()
        base = "".join(ch for ch in text if ch in " -_" or unicodedata.category(ch)[0] in "LN").replace(" ", "-")
        slug, n = base, 0
        while slug in slugs:
            n += 1
            slug = f"{base}-{n}"
        slugs.add(slug)
    return slugs


def _own_repo() -> tuple[str, str]:
    return repository_url().removeprefix("https://github.com/").strip("/"), read_pyproject()["tool"]["curso-peft"][
        "branch"
    ]


def _repo_file(relative: str) -> str | None:
    """None si ``relative`` (ruta desde la raíz del repositorio) es un archivo que existe."""
    path = (ROOT / unquote(relative)).resolve()
    if not path.is_relative_to(ROOT):
        return f"sale del repositorio: {relative}"
    if not path.exists():
        return f"no existe en el repositorio: {relative}"
    return None


def check_link(link: Link) -> str | None:
    """Un problema del enlace, en español, o None si está bien."""
    raw = link.target
    if raw.startswith("<") and raw.endswith(">"):
        raw = raw[1:-1]
    else:
        titled = TITLE.match(raw)
        if titled:
            raw = titled.group(1)
    if not raw:
        return "enlace vacío"
    if re.search(r"\s", raw):
        return f"tiene espacios: {raw!r}"
    try:
        parts = urlsplit(raw)
        _ = parts.port  # valida el puerto (lanza ValueError si no es un número)
    except ValueError as exc:
        return f"URL mal formada ({exc}): {raw}"
    scheme = parts.scheme.lower()
    if scheme in ("http", "https"):
        host = (parts.hostname or "").lower()
        if not HOSTNAME.match(host):
            return f"URL sin un nombre de máquina válido: {raw}"
        repo, branch = _own_repo()
        if host == COLAB_HOST and parts.path.startswith("/github/"):
            match = re.match(r"^/github/([^/]+/[^/]+)/blob/([^/]+)/(.+)$", parts.path)
            if not match:
                return f"insignia de Colab mal formada: {raw}"
            if match.group(1) != repo or match.group(2) != branch:
                return f"la insignia de Colab apunta a {match.group(1)}@{match.group(2)}, no a {repo}@{branch}: {raw}"
            return _repo_file(match.group(3))
        if host == "github.com":
            match = re.match(rf"^/{re.escape(repo)}/(?:blob|tree)/([^/]+)/(.+)$", parts.path)
            if match:
                return _repo_file(match.group(2))
        return None
    if scheme == "mailto":
        return None if re.match(r"^[^@\s]+@[^@\s]+\.[a-z]{2,}$", parts.path) else f"correo mal formado: {raw}"
    if scheme == "attachment":
        return None if unquote(parts.path) in link.attachments else f"adjunto inexistente: {raw}"
    if scheme or raw.startswith("//"):
        return f"esquema no permitido (usa http o https): {raw}"
    # Enlace relativo: al archivo del propio documento si solo lleva #ancla.
    target = link.source if not parts.path else (link.source.parent / unquote(parts.path)).resolve()
    if not target.is_relative_to(ROOT):
        return f"sale del repositorio: {raw}"
    if not target.exists():
        return f"no existe en el repositorio: {raw} (buscado en {target.relative_to(ROOT)})"
    if parts.fragment and target.suffix == ".md":
        if unquote(parts.fragment).lower() not in heading_slugs(target.read_text(encoding="utf-8")):
            return f"el ancla #{parts.fragment} no es ningún título de {target.relative_to(ROOT)}"
    return None


def links_in(path: Path) -> list[Link]:
    relative = str(path.relative_to(ROOT))
    if path.suffix == ".md":
        return [Link(t, path, relative) for t in extract(path.read_text(encoding="utf-8"))]
    links = []
    for index, cell in enumerate(json.loads(path.read_text(encoding="utf-8"))["cells"]):
        if cell["cell_type"] != "markdown":
            continue
        source = "".join(cell["source"]) if isinstance(cell["source"], list) else cell["source"]
        attachments = frozenset(cell.get("attachments", {}))
        links += [Link(t, path, f"{relative}, celda {index}", attachments) for t in extract(source, math=True)]
    return links


def documents() -> list[Path]:
    docs = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
    return docs + sorted(ROOT.glob("solutions/*/*.ipynb")) + sorted(ROOT.glob("notebooks/*/*.ipynb"))


DOCUMENTS = documents()


@pytest.mark.parametrize("path", DOCUMENTS, ids=[str(p.relative_to(ROOT)) for p in DOCUMENTS])
def test_enlaces_bien_formados_y_locales_existentes(path):
    links = links_in(path)
    problems = [f"{link.where}: {problem}" for link in links if (problem := check_link(link))]
    assert not problems, "Enlaces rotos o mal formados:\n" + "\n".join(problems)


def test_cada_cuaderno_tiene_su_insignia_de_colab():
    notebooks = sorted(ROOT.glob("notebooks/*/*.ipynb"))
    assert notebooks
    for path in notebooks:
        badges = [
            link.target
            for link in links_in(path)
            if urlsplit(link.target).hostname == COLAB_HOST and "/github/" in link.target
        ]
        assert any(b.endswith(str(path.relative_to(ROOT))) for b in badges), f"{path.name}: sin insignia hacia sí mismo"


def test_el_readme_enlaza_cosas_que_existen():
    targets = [link.target for link in links_in(ROOT / "README.md")]
    relative = [t for t in targets if not urlsplit(t).scheme]
    assert "docs/multi_gpu.md" in relative
    assert any(t.startswith("notebooks/") for t in relative)


def test_el_readme_enlaza_cada_cuaderno():
    """La tabla «Los cuadernos» del README tiene una fila por cada cuaderno de solutions/."""
    from helpers.course_files import notebook_names

    targets = {link.target for link in links_in(ROOT / "README.md")}
    missing = [n for n in notebook_names() if f"notebooks/{n}/{n}.ipynb" not in targets]
    assert missing == [], f"el README no enlaza estos cuadernos: {missing}"


# --- el comprobador detecta lo que debe ------------------------------------------------------
BAD = """
# Título con acento: ¿Por qué PEFT?

[espacios](https://huggingface.co/docs/peft/una página)
[sin máquina](https://)
[máquina rara](http://localhost_/x)
[ftp](ftp://ejemplo.org/archivo)
[relativo roto](docs/no_existe.md)
[ancla rota](README.md#no-hay-tal-titulo)
[![Abrir en Colab](https://colab.research.google.com/assets/colab-badge.svg)](https://colab.research.google.com/github/curso-peft/curso-peft/blob/main/notebooks/99_no/99_no.ipynb)
[![Abrir en Colab](https://colab.research.google.com/assets/colab-badge.svg)](https://colab.research.google.com/github/otro/repo/blob/main/README.md)
Texto con https://sin-punto/ suelto.

```
[en un bloque de código](no/cuenta.md)
```
`[en código](tampoco.md)`
"""

GOOD = """
# Título con acento: ¿Por qué PEFT?

[paper](https://arxiv.org/abs/2106.09685 "LoRA") y <https://huggingface.co/docs/peft>, [yo](#licencia),
[readme](README.md#licencia), [carpeta](helpers/), [![Abrir en Colab](https://colab.research.google.com/assets/colab-badge.svg)](https://colab.research.google.com/github/curso-peft/curso-peft/blob/main/README.md)
y https://pytorch.org/docs/stable/index.html. $[a, b)$ no es un enlace.
"""


def _problems(text: str) -> list[str]:
    doc = ROOT / "README.md"  # se resuelve como si estuviera en la raíz del repositorio
    return [p for t in extract(text, math=True) if (p := check_link(Link(t, doc, "prueba")))]


def test_el_comprobador_encuentra_cada_error():
    problems = _problems(BAD)
    expected = [
        "tiene espacios",
        "sin un nombre de máquina",
        "sin un nombre de máquina",
        "esquema no permitido",
        "no existe en el repositorio: docs/no_existe.md",
        "el ancla #no-hay-tal-titulo",
        "no existe en el repositorio: notebooks/99_no",
        "apunta a otro/repo@main",
        "sin un nombre de máquina",
    ]
    assert len(problems) == len(expected), "\n".join(problems)
    for needle, problem in zip(expected, problems):
        assert needle in problem, (needle, problem)


def test_el_comprobador_acepta_enlaces_correctos():
    assert _problems(GOOD) == []
    assert "título-con-acento-por-qué-peft" in heading_slugs(GOOD)
