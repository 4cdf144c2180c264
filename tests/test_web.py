"""El sitio web del curso (Jupyter Book 1), construido de verdad y abierto en un navegador.

Las primeras pruebas miran lo que se escribe para cada página, sin construir nada. Las demás
comparten un sitio (fixture de módulo, en un solo trabajador de xdist): ejecutan el cuaderno 03
con el perfil diminuto (``python -m helpers.maintainers.course --perfil tiny --solo 03``, como
``make curso`` pero rápido), construyen el sitio con ``helpers.maintainers.web`` (el mismo código
que ``make web``; los demás cuadernos salen sin salidas) y comprueban:

- que ni las soluciones ni las pruebas ocultas llegan al sitio (marcas de nbgrader y líneas de las
  soluciones del cuaderno 03);
- que todos los enlaces internos de todas las páginas llevan a un archivo del sitio;
- en Chromium sin ventana, servido desde 127.0.0.1: de la portada al cuaderno 03 y al glosario por
  el menú, con el título, una figura de la ejecución, el recuadro de un ejercicio con su nivel, la
  insignia de Colab, la descarga del cuaderno, el buscador y la interfaz en español; sin una sola
  petición fuera de 127.0.0.1 ni una respuesta de error.

Deja las capturas en build/pruebas/web/ (carpeta ignorada por git).
"""

from __future__ import annotations

import functools
import html.parser
import json
import os
import re
import subprocess
import sys
import threading
import urllib.parse
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import nbformat
import pytest

from helpers.maintainers import web
from tests.test_browser import _missing, chromium_page, chromium_path

ROOT = Path(__file__).resolve().parent.parent
NAME = "03_lora_sft"
ARTIFACTS = ROOT / "build" / "pruebas" / "web"
STUDENT = ROOT / "notebooks" / NAME / f"{NAME}.ipynb"
# Todas en el mismo trabajador de xdist: el sitio (fixture de módulo) se construye una sola vez.
pytestmark = pytest.mark.xdist_group("web")


def _fake_run(name: str, folder: Path) -> None:
    """Un «cuaderno ejecutado» de la solución: cada celda de código con una salida que dice cuál es.

    Las celdas calificadas llevan además la marca SECRETO: no debe llegar nunca a la página.
    """
    nb = nbformat.read(ROOT / "solutions" / name / f"{name}.ipynb", as_version=4)
    for index, cell in enumerate(nb.cells):
        if cell.cell_type == "code":
            secret = " SECRETO" if web.is_graded(cell) else ""
            cell.execution_count = index
            cell.outputs = [
                nbformat.v4.new_output("stream", name="stdout", text=f"salida {index}{secret}\n"),
                nbformat.v4.new_output("stream", name="stderr", text="AVISO de una biblioteca\n"),
            ]
    (folder / name).mkdir(parents=True)
    nbformat.write(nb, folder / name / f"{name}.ipynb")


def test_paginas_del_alumnado_con_salidas(tmp_path):
    """Sin construir el sitio: lo que se escribe para cada página."""
    for name in (NAME, "01_introduccion_peft"):
        _fake_run(name, tmp_path / "curso")
    rows = web.prepare_project(tmp_path / "curso", tmp_path / "fuente", allow_unexecuted=True)
    assert [r["cuaderno"] for r in rows] == sorted(p.parent.name for p in (ROOT / "notebooks").glob("*/*.ipynb"))
    assert {r["cuaderno"] for r in rows if r["ejecutado"]} == {NAME, "01_introduccion_peft"}
    assert web.leaked_markers(tmp_path / "fuente") == []
    page = nbformat.read(tmp_path / "fuente" / "cuadernos" / f"{NAME}.ipynb", as_version=4)
    student = nbformat.read(STUDENT, as_version=4)
    code = [c for c in page.cells if c.cell_type == "code"]
    assert [c.source for c in code] == [c.source for c in student.cells if c.cell_type == "code"]
    for cell in code:
        text = "".join(o.get("text", "") for o in cell.outputs)
        if web.is_graded(cell):
            assert cell.outputs == [], cell.source[:80]
        else:
            assert text.startswith("salida ") and "SECRETO" not in text and "AVISO" not in text, text
    # Los ejercicios, en un recuadro con su nivel; el título, lo primero (Sphinx lo toma de ahí).
    headings = sum(1 for c in student.cells if c.cell_type == "markdown" and web.split_exercise(c.source))
    boxes = [c.source for c in page.cells if "{admonition}" in c.source]
    assert headings >= 3 and len(boxes) == headings
    assert all(re.search(r"· nivel (básico|intermedio|avanzado)", box) for box in boxes)
    assert page.cells[0].source.startswith("# 03 ·")
    assert f"</descargas/{NAME}.ipynb>`" in page.cells[0].source
    assert (tmp_path / "fuente" / "descargas" / f"{NAME}.ipynb").read_bytes() == STUDENT.read_bytes()
    unexecuted = nbformat.read(tmp_path / "fuente" / "cuadernos" / "02_lora_matematicas.ipynb", as_version=4)
    assert all(c.outputs == [] for c in unexecuted.cells if c.cell_type == "code")
    index = (tmp_path / "fuente" / "index.md").read_text(encoding="utf-8")
    assert f"(cuadernos/{NAME}.ipynb)" in index and "{{" not in index
    assert "02_lora_matematicas" in index.split("Sin salidas")[1]  # dice qué cuadernos no llevan salidas
    assert "adaptación de bajo rango (LoRA)" in (tmp_path / "fuente" / "glosario.md").read_text(encoding="utf-8")


def test_sin_ejecutar_se_niega(tmp_path):
    with pytest.raises(web.WebError, match="make curso"):
        web.prepare_project(tmp_path / "vacia", tmp_path / "fuente")


def test_curso_fallido_se_niega(tmp_path):
    """Un cuaderno que falló en `make curso` no se publica a medias: lo dice una celda con error o resumen.csv."""
    _fake_run(NAME, tmp_path / "curso")
    executed = tmp_path / "curso" / NAME / f"{NAME}.ipynb"
    nb = nbformat.read(executed, as_version=4)
    nb.cells[-1] = nbformat.v4.new_code_cell(
        "1 / 0", outputs=[nbformat.v4.new_output("error", ename="ZeroDivisionError", evalue="", traceback=[])]
    )
    nbformat.write(nb, executed)
    with pytest.raises(web.WebError, match=f"{NAME}: `make curso` falló \\(una celda dio un error\\)"):
        web.prepare_project(tmp_path / "curso", tmp_path / "fuente")
    # Cortado a medias (tiempo agotado, o aún en marcha): celdas sin ejecutar y sin error.
    nb.cells[-1].outputs = []
    nb.cells[-1].execution_count = None
    nbformat.write(nb, executed)
    with pytest.raises(web.WebError, match=f"{NAME}: .* no se ejecutó entero \\(1 celda sin"):
        web.prepare_project(tmp_path / "curso", tmp_path / "fuente")
    (tmp_path / "curso" / "resumen.csv").write_text(
        f"cuaderno,estado,segundos,figuras,perfil\n{NAME},error: AssertionError,1.0,0,tiny\n", encoding="utf-8"
    )
    with pytest.raises(web.WebError, match=f"{NAME}: `make curso` falló"):
        web.prepare_project(tmp_path / "curso", tmp_path / "fuente")
    # Si se permite, sale sin salidas (ni las de antes del fallo) y la portada lo dice.
    rows = web.prepare_project(tmp_path / "curso", tmp_path / "fuente", allow_unexecuted=True)
    assert not any(r["ejecutado"] for r in rows)
    page = nbformat.read(tmp_path / "fuente" / "cuadernos" / f"{NAME}.ipynb", as_version=4)
    assert all(c.outputs == [] for c in page.cells if c.cell_type == "code")
    assert NAME in (tmp_path / "fuente" / "index.md").read_text(encoding="utf-8").split("Sin salidas")[1]


def test_enlaces_del_repositorio(tmp_path):
    """Un enlace a una página del sitio lleva a la página; uno a otro archivo, a GitHub."""
    pages = {(ROOT / "docs" / "glosario.md").resolve(): Path("glosario.md")}
    (tmp_path / "cuadernos").mkdir()
    (tmp_path / "img.png").write_bytes(b"")
    text = (
        "[g](../../docs/glosario.md#rango) [m](../../helpers/models.py) [w](https://example.org/a.md) "
        "[a](#seccion) [i](../img.png)"
    )
    out = web.relink(text, ROOT / "notebooks" / NAME, tmp_path / "cuadernos", tmp_path, pages)
    assert "[g](../glosario.md#rango)" in out
    assert "[m](https://github.com/curso-peft/curso-peft/blob/main/helpers/models.py)" in out
    assert "[w](https://example.org/a.md) [a](#seccion) [i](../img.png)" in out


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    """Un sitio construido con el cuaderno 03 ejecutado (perfil diminuto); devuelve su carpeta."""
    work = tmp_path_factory.mktemp("web")
    env = dict(os.environ)
    # Como en `make curso`: el núcleo dibuja las figuras en línea (con Agg, que fijan las pruebas,
    # no quedaría ninguna en el cuaderno ejecutado).
    for var in ("MPLBACKEND", "NBGRADER_EXECUTION"):
        env.pop(var, None)
    run = subprocess.run(
        [
            sys.executable,
            "-m",
            "helpers.maintainers.course",
            "--perfil",
            "tiny",
            "--solo",
            NAME[:2],
            "--salida",
            str(work / "curso"),
        ],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )
    # Si falla, falla el cuaderno 03 en el perfil diminuto (tests/test_notebooks.py lo ve también).
    assert run.returncode == 0, (
        "el cuaderno 03 falló con el perfil diminuto:\n" + run.stdout[-3000:] + run.stderr[-2000:]
    )
    rows = web.prepare_project(work / "curso", work / "fuente", allow_unexecuted=True)
    assert [r["cuaderno"] for r in rows if r["ejecutado"]] == [NAME]
    seconds = web.build_site(work / "fuente", work / "sitio")
    print(f"Sitio construido en {seconds:.0f} s")
    return work / "sitio"


def test_sin_soluciones_ni_pruebas_ocultas(site):
    # La comprobación de verdad encuentra las marcas: en la fuente del profesorado están.
    solution_nb = (ROOT / "solutions" / NAME / f"{NAME}.ipynb").read_text(encoding="utf-8")
    assert "### BEGIN SOLUTION" in solution_nb and "### BEGIN HIDDEN TESTS" in solution_nb
    assert web.leaked_markers(site) == []
    # Y tampoco el código de las soluciones, aunque alguien quitara las marcas.
    student = STUDENT.read_text(encoding="utf-8")
    hidden = []
    for cell in nbformat.reads(solution_nb, as_version=4).cells:
        block = re.findall(r"### BEGIN (?:SOLUTION|HIDDEN TESTS)\n(.*?)### END", cell.source, flags=re.S)
        hidden += [line.strip() for b in block for line in b.splitlines() if len(line.strip()) > 30]
    hidden = [line for line in hidden if json.dumps(line)[1:-1] not in student]
    assert len(hidden) >= 5, hidden
    # Lo que sale del contenido (en _static/ solo hay el tema y MathJax, que no vienen de los cuadernos).
    files = [
        p
        for p in site.rglob("*")
        if p.suffix in {".html", ".js", ".ipynb", ".txt"} and "_static" not in p.relative_to(site).parts
    ]
    assert any(p.name == "searchindex.js" for p in files)
    text = "\n".join(p.read_text(encoding="utf-8", errors="replace") for p in files)
    plain = html.unescape(text)
    leaked = [line for line in hidden if line in plain or json.dumps(line)[1:-1] in text]
    assert leaked == []


class _Links(html.parser.HTMLParser):
    def __init__(self):
        super().__init__()
        self.urls: list[str] = []

    def handle_starttag(self, tag, attrs):
        for name, value in attrs:
            if value and (name, tag) in {("href", "a"), ("href", "link"), ("src", "img"), ("src", "script")}:
                self.urls.append(value)


def _target(site: Path, page: Path, url: str) -> Path | None:
    """El archivo del sitio al que lleva ``url`` desde ``page`` (None si el enlace es externo)."""
    parts = urllib.parse.urlsplit(url)
    if parts.scheme or parts.netloc:
        return None
    if not parts.path:
        return page
    return (page.parent / urllib.parse.unquote(parts.path)).resolve()


def test_enlaces_internos(site):
    # Las páginas del sitio (en _static/ solo hay plantillas del tema que nadie abre).
    pages = sorted(p for p in site.rglob("*.html") if "_static" not in p.relative_to(site).parts)
    assert len(pages) >= 10, pages
    broken, checked = [], 0
    for page in pages:
        parser = _Links()
        parser.feed(page.read_text(encoding="utf-8"))
        for url in parser.urls:
            target = _target(site, page, url)
            if target is None:
                continue
            checked += 1
            inside = target == site.resolve() or site.resolve() in target.parents
            if not inside or not (target.is_file() or (target / "index.html").is_file()):
                broken.append(f"{page.relative_to(site)} → {url}")
    assert checked > 100
    assert broken == []


@pytest.fixture(scope="module")
def server(site):
    class Quiet(SimpleHTTPRequestHandler):
        def log_message(self, *args):  # sin una línea por petición en la salida de la prueba
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Quiet, directory=str(site)))
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}"
    finally:
        httpd.shutdown()
        httpd.server_close()


def test_navegar_en_el_navegador(site, server):
    executable = chromium_path()
    if executable is None:
        _missing("No encuentro Chromium (en Debian: apt-get install chromium; lo instala `make install`).")
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    shots = {
        key: ARTIFACTS / f"{key}.png" for key in ("portada", "cuaderno_03", "cuaderno_03_figura", "glosario", "fallo")
    }
    for shot in shots.values():
        shot.unlink(missing_ok=True)
    nb = nbformat.read(STUDENT, as_version=4)
    title = next(line[2:].strip() for c in nb.cells[:3] for line in c.source.splitlines() if line.startswith("# "))
    with chromium_page(executable, shots["fallo"]) as page:
        # Todo lo que pide el sitio es suyo y existe: nada de fuera (el navegador no resuelve otros nombres).
        problems: list[str] = []
        page.on("response", lambda r: problems.append(f"{r.status} {r.url}") if r.status >= 400 else None)
        page.on("requestfailed", lambda r: problems.append(f"falló {r.url}"))
        page.on("request", lambda r: None if r.url.startswith((server, "data:")) else problems.append(f"fuera {r.url}"))
        page.goto(server + "/", wait_until="networkidle")
        assert page.locator("html").get_attribute("lang") == "es"
        assert "PEFT" in page.locator("h1").first.inner_text()
        sidebar = page.locator("nav.bd-docs-nav")
        for label in ("Cuadernos", "Referencia"):
            assert sidebar.get_by_text(label, exact=True).is_visible(), label
        # La interfaz, en español: el salto al contenido, el buscador y el índice de la página.
        assert page.get_by_text("Saltar al contenido principal").count() == 1
        assert page.get_by_text("Búsqueda", exact=True).first.is_visible()
        assert page.locator(".bd-sidebar-secondary").get_by_text("Contenido", exact=True).is_visible()
        body = page.locator("body").inner_text()
        for english in ("Search", "Contents", "Skip to main content", "Next", "By "):
            assert english not in body, english
        page.screenshot(path=str(shots["portada"]))

        # Por el menú: el cuaderno 03.
        sidebar.get_by_role("link", name=re.compile(r"^03 ")).click()
        page.wait_for_url(re.compile(rf"/cuadernos/{NAME}\.html$"))
        heading = page.locator("article h1").first
        assert heading.inner_text().replace("#", "").strip() == title.replace("*", "").replace("`", "")
        figure = page.locator("article img[src$='.png']").first
        figure.scroll_into_view_if_needed()
        page.wait_for_function("img => img.complete && img.naturalWidth > 100", arg=figure.element_handle())
        # La figura es la de la ejecución (la misma imagen que guardó `helpers.maintainers.course`).
        served = page.request.get(urllib.parse.urljoin(page.url, figure.get_attribute("src"))).body()
        executed = sorted((site.parent / "curso" / NAME / "figuras").glob("*.png"))
        assert executed and served in [png.read_bytes() for png in executed]
        page.screenshot(path=str(shots["cuaderno_03_figura"]))
        boxes = page.locator("article .admonition .admonition-title")
        assert boxes.filter(has_text=re.compile(r"Ejercicio · nivel (básico|intermedio|avanzado)")).count() >= 2
        badge = page.locator("article a:has(img[alt='Abrir en Colab'])").first
        assert badge.get_attribute("href").endswith(f"notebooks/{NAME}/{NAME}.ipynb")
        download = page.locator("article a", has_text="Descarga el cuaderno del alumnado")
        served = page.request.get(urllib.parse.urljoin(page.url, download.get_attribute("href"))).body()
        assert served == STUDENT.read_bytes()  # el cuaderno del alumnado tal cual, sin salidas
        heading.scroll_into_view_if_needed()
        page.screenshot(path=str(shots["cuaderno_03"]))
        pager = page.locator(".prev-next-area").inner_text().lower()
        assert "anterior" in pager and "siguiente" in pager, pager

        # Por el menú: el glosario.
        sidebar.get_by_role("link", name="Glosario").click()
        page.wait_for_url(re.compile(r"/glosario\.html$"))
        assert page.locator("article h1").first.inner_text().replace("#", "").strip() == "Glosario"
        assert page.locator("article table").get_by_text("adaptación de bajo rango (LoRA)").count() == 1
        page.screenshot(path=str(shots["glosario"]))

        # El buscador (Ctrl+K), en español y sin servidor: encuentra el cuaderno de la cuantización.
        page.keyboard.press("Control+k")
        page.locator("form.bd-search input").first.fill("cuantización")
        page.keyboard.press("Enter")
        page.wait_for_url(re.compile(r"/search\.html\?q="))
        results = page.locator("#search-results ul.search li a")
        results.first.wait_for()
        # Sphinx escribe el resumen al terminar de listar los resultados, no con el primero: se
        # espera a que aparezca (con la máquina cargada tarda más; el resultado no depende de eso).
        finished = page.get_by_text(re.compile(r"Búsqueda finalizada"))
        finished.wait_for(timeout=120_000)
        assert finished.count() == 1
        assert any("/cuadernos/" in (href or "") for href in results.evaluate_all("els => els.map(e => e.href)"))
        assert problems == [], problems
    for key in ("portada", "cuaderno_03", "glosario"):
        assert shots[key].stat().st_size > 10_000
    print("Capturas en " + ", ".join(str(shots[k].relative_to(ROOT)) for k in ("portada", "cuaderno_03", "glosario")))
