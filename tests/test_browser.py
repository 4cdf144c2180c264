"""Prueba de punta a punta en un navegador de verdad.

Arranca un servidor JupyterLab en 127.0.0.1 con una copia de notebooks/ (para que el autoguardado
no toque el repositorio), abre el cuaderno 01 en Chromium sin ventana (el del sistema, manejado
con playwright), ejecuta sus primeras celdas desde la interfaz (teclado: Mayús+Intro) y comprueba
lo que muestra la página: la interfaz en español (menú «Archivo», del paquete de idioma que
instala `make install`), el título, la insignia de Colab y la salida de la celda de preparación
(``helpers.show_environment()``). Después añade una celda nueva, la escribe y la ejecuta (y en
ella ``helpers.validar`` encuentra el archivo del cuaderno de la sesión).

Deja una captura en build/pruebas/navegador/ (carpeta ignorada por git). Todo tiene tiempos
máximos y el servidor, sus núcleos y el navegador se cierran siempre.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import nbformat
import pytest

from helpers.maintainers.release import SETUP_TAG

ROOT = Path(__file__).resolve().parent.parent
NAME = "01_introduccion_peft"
NOTEBOOK = ROOT / "notebooks" / NAME / f"{NAME}.ipynb"
ARTIFACTS = ROOT / "build" / "pruebas" / "navegador"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--headless",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    # Solo 127.0.0.1: cualquier otro nombre (p. ej. la imagen de la insignia de Colab) no se resuelve.
    "--host-resolver-rules=MAP * ~NOTFOUND , EXCLUDE 127.0.0.1",
]
SERVER_TIMEOUT = 90  # s para que el servidor responda
UI_TIMEOUT = 90_000  # ms para cada espera en la página (la máquina puede estar ocupada)


def chromium_path() -> str | None:
    """Chromium del sistema (o el de CURSO_PEFT_CHROMIUM); playwright nunca descarga navegadores."""
    for candidate in (os.environ.get("CURSO_PEFT_CHROMIUM"), "chromium", "chromium-browser"):
        if candidate and shutil.which(candidate):
            return shutil.which(candidate)
    return None


@contextlib.contextmanager
def chromium_page(executable: str, failure_shot: Path):
    """Una página de Chromium sin ventana (solo ve 127.0.0.1); si algo falla, deja ``failure_shot``."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=executable, headless=True, args=CHROMIUM_ARGS, timeout=60_000)
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            page.set_default_timeout(UI_TIMEOUT)
            try:
                yield page
            except Exception:
                page.screenshot(path=str(failure_shot))
                raise
        finally:
            browser.close()


def _missing(reason: str):
    """En CI falta algo que el Makefile instala: es un fallo. En tu máquina, se salta con aviso."""
    if os.environ.get("CI"):
        pytest.fail(reason)
    pytest.skip(reason)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _get(url: str, token: str, timeout: float = 5):
    request = urllib.request.Request(url, headers={"Authorization": f"token {token}"})
    with urllib.request.urlopen(request, timeout=timeout) as response:
        return json.loads(response.read() or b"null")


class LabServer:
    """Un servidor JupyterLab propio: solo 127.0.0.1, token aleatorio, configuración aislada."""

    def __init__(self, root_dir: Path, home: Path) -> None:
        self.port = free_port()
        self.token = secrets.token_hex(16)
        self.url = f"http://127.0.0.1:{self.port}"
        env = dict(os.environ)
        env.update(
            JUPYTER_CONFIG_DIR=str(home / "config"),
            JUPYTER_DATA_DIR=str(home / "data"),
            JUPYTER_RUNTIME_DIR=str(home / "runtime"),
            IPYTHONDIR=str(home / "ipython"),
            CURSO_PEFT_PROFILE="tiny",
            MPLBACKEND="Agg",
            OMP_NUM_THREADS="1",
        )
        # Sin noticias ni comprobación de versiones: JupyterLab no pregunta ni sale a internet.
        settings = home / "config" / "lab" / "user-settings" / "@jupyterlab" / "apputils-extension"
        settings.mkdir(parents=True, exist_ok=True)
        (settings / "notification.jupyterlab-settings").write_text(
            json.dumps({"fetchNews": "false", "checkForUpdates": False}), encoding="utf-8"
        )
        env.pop("NBGRADER_EXECUTION", None)
        env.pop("COLAB_RELEASE_TAG", None)
        self.log = open(home / "servidor.log", "w")
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "jupyterlab",
                "--no-browser",
                "--ServerApp.ip=127.0.0.1",
                f"--ServerApp.port={self.port}",
                "--ServerApp.port_retries=0",
                f"--IdentityProvider.token={self.token}",
                f"--ServerApp.root_dir={root_dir}",
                "--ServerApp.terminals_enabled=False",
                "--LabApp.news_url=",
                "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate",
                "--LabApp.extension_manager=readonly",
            ]
            + (["--allow-root"] if os.geteuid() == 0 else []),
            cwd=root_dir,
            env=env,
            stdout=self.log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        self.children: set[int] = set()
        self.log_path = home / "servidor.log"

    def log_tail(self, lines: int = 15) -> str:
        self.log.flush()
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])

    def wait_ready(self) -> None:
        deadline = time.monotonic() + SERVER_TIMEOUT
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(
                    f"JupyterLab terminó al arrancar (código {self.process.returncode}):\n{self.log_tail()}"
                )
            try:
                _get(f"{self.url}/api/status", self.token, timeout=2)
                return
            except OSError:
                time.sleep(0.5)
        raise TimeoutError(f"JupyterLab no respondió en {SERVER_TIMEOUT} s:\n{self.log_tail()}")

    def wait_kernel_idle(self, sleep, timeout: float = UI_TIMEOUT / 1000) -> None:
        """Espera a que la sesión del cuaderno tenga su núcleo arrancado y en reposo.

        ``sleep(ms)`` debe ser ``page.wait_for_timeout``: así la página sigue atendida mientras.
        """
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            sessions = _get(f"{self.url}/api/sessions", self.token)
            if sessions and all(s["kernel"]["execution_state"] == "idle" for s in sessions):
                return
            sleep(500)
        raise TimeoutError(f"El núcleo no quedó listo en {timeout:.0f} s:\n{self.log_tail()}")

    def remember_children(self) -> None:
        """Anota los procesos que ha lanzado el servidor (núcleos), para cerrarlos seguro."""
        import psutil

        try:
            self.children |= {p.pid for p in psutil.Process(self.process.pid).children(recursive=True)}
        except psutil.NoSuchProcess:
            pass

    def stop(self) -> None:
        """Apaga el servidor (y sus núcleos) por la API; si no basta, lo termina por su pid."""
        import psutil

        self.remember_children()
        if self.process.poll() is None:
            try:
                request = urllib.request.Request(
                    f"{self.url}/api/shutdown", method="POST", headers={"Authorization": f"token {self.token}"}
                )
                urllib.request.urlopen(request, timeout=5).close()
            except OSError:
                pass
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGTERM)
                try:
                    self.process.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    os.killpg(self.process.pid, signal.SIGKILL)
                    self.process.wait(timeout=10)
        for pid in self.children:  # núcleos huérfanos (se lanzan en su propia sesión)
            try:
                child = psutil.Process(pid)
                child.terminate()
                child.wait(timeout=10)
            except psutil.NoSuchProcess:
                pass
            except psutil.TimeoutExpired:
                child.kill()
        self.log.close()


def test_cuaderno_01_en_jupyterlab(tmp_path):
    executable = chromium_path()
    if executable is None:
        _missing("No encuentro Chromium (en Debian: apt-get install chromium; lo instala `make install`).")
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        _missing("Falta playwright (pip install playwright==1.65.2; lo instala `make install`).")
    assert NOTEBOOK.exists(), f"Falta {NOTEBOOK.relative_to(ROOT)}: ejecuta `make release`"

    # Lo que el archivo dice que debe verse (vale para cualquier versión del cuaderno 01).
    nb = nbformat.read(NOTEBOOK, as_version=4)
    setup_index = next(i for i, c in enumerate(nb.cells) if SETUP_TAG in c.metadata.get("tags", []))
    title = next(line[2:].strip() for line in nb.cells[0].source.split("\n") if line.startswith("# "))

    course = tmp_path / "curso"
    shutil.copytree(ROOT / "notebooks", course, ignore=shutil.ignore_patterns(".ipynb_checkpoints", "salidas"))
    home = tmp_path / "jupyter"
    home.mkdir()
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    shot = ARTIFACTS / f"{NAME}.png"
    shot.unlink(missing_ok=True)
    (ARTIFACTS / f"{NAME}_fallo.png").unlink(missing_ok=True)

    server = LabServer(course, home)
    timings: dict[str, float] = {}
    start = time.perf_counter()
    try:
        server.wait_ready()
        timings["servidor"] = time.perf_counter() - start
        with chromium_page(executable, ARTIFACTS / f"{NAME}_fallo.png") as page:
            page.goto(f"{server.url}/lab/tree/{NAME}/{NAME}.ipynb?token={server.token}", wait_until="domcontentloaded")
            notebook = page.locator(".jp-NotebookPanel:not(.lm-mod-hidden) .jp-Notebook")
            cells = notebook.locator(".jp-Cell")
            first = cells.nth(0)
            # El Markdown renderizado: insignia de Colab y título.
            badge = first.locator(".jp-RenderedMarkdown img[alt='Abrir en Colab']")
            badge.wait_for()
            # La interfaz en español: el paquete de idioma y el ajuste que deja `make install`.
            menus = page.locator("#jp-MainMenu .lm-MenuBar-itemLabel")
            menus.filter(has_text="Archivo").first.wait_for()
            labels = [label.strip() for label in menus.all_inner_texts()]
            assert "Archivo" in labels and "File" not in labels, labels
            # El núcleo arrancado y en reposo antes de ejecutar nada (API y barra de estado).
            page.locator(".jp-StatusBar-Widget", has_text="Idle").first.wait_for()
            server.wait_kernel_idle(page.wait_for_timeout)
            timings["cuaderno abierto"] = time.perf_counter() - start
            server.remember_children()
            assert badge.count() == 1, "no se ve la insignia «Abrir en Colab»"
            href = first.locator("a:has(img[alt='Abrir en Colab'])").get_attribute("href")
            assert (
                href
                and href.startswith("https://colab.research.google.com/github/")
                and href.endswith(f"notebooks/{NAME}/{NAME}.ipynb")
            )
            assert first.locator("h1").first.inner_text().strip().startswith(title.split("·")[0].strip())
            assert title in first.locator("h1").first.inner_text()

            # Ejecuta desde la primera celda hasta la de preparación, con el teclado.
            first.click()
            page.keyboard.press("Escape")
            for _ in range(setup_index + 1):
                page.keyboard.press("Shift+Enter")
            setup = cells.nth(setup_index)
            output = setup.locator(".jp-OutputArea-output")
            output.filter(has_text="perfil del modelo").first.wait_for()
            setup.locator(".jp-InputPrompt", has_text="[1]").wait_for()
            timings["preparación ejecutada"] = time.perf_counter() - start
            text = "\n".join(output.all_inner_texts())
            lines = {k.strip(): v.strip() for k, _, v in (line.partition(":") for line in text.splitlines()) if v}
            assert lines.get("entorno") == "local", text
            assert lines.get("perfil del modelo", "").startswith("diminuto"), text
            assert lines.get("dispositivo") in ("cpu", "cuda"), text
            assert "Traceback" not in text and "Error" not in text, text

            # Una celda nueva, escrita y ejecutada desde la interfaz: el núcleo conserva el estado.
            page.keyboard.press("Escape")
            setup.locator(".jp-InputPrompt").click()
            page.keyboard.press("b")
            new_cell = cells.nth(setup_index + 1)
            new_cell.locator(".cm-content").click()
            # helpers.validar encuentra solo el archivo de la sesión de JupyterLab (JPY_SESSION_NAME).
            page.keyboard.type(
                "import helpers.validar as v; print(helpers.resolve_profile().name, 6 * 7, v._session_path().name)"
            )
            page.keyboard.press("Shift+Enter")
            new_cell.locator(".jp-OutputArea-output", has_text=f"tiny 42 {NAME}.ipynb").wait_for()
            assert new_cell.locator(".jp-InputPrompt").inner_text().strip() == "[2]:"
            timings["celda nueva ejecutada"] = time.perf_counter() - start
            setup.scroll_into_view_if_needed()
            page.screenshot(path=str(shot))
    finally:
        stopping = time.perf_counter()
        server.stop()
        timings["cierre"] = time.perf_counter() - stopping
    assert shot.exists() and shot.stat().st_size > 10_000
    assert server.process.returncode is not None
    print(
        "Tiempos (s): "
        + ", ".join(f"{k} {v:.1f}" for k, v in timings.items())
        + f"; captura en {shot.relative_to(ROOT)}"
    )
