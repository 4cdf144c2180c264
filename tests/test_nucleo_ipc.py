"""Sin «Kernel is running over TCP without encryption» en lo que imprimen `make curso`, el
calificador y ``helpers.validar``: sus núcleos hablan por sockets de Unix (transporte ``ipc``,
:func:`helpers.course_files.ipc_kernel_settings`). La misma ejecución por TCP sí lo escribe."""

import nbformat
from nbclient import NotebookClient
from traitlets.config import Config

from helpers.course_files import ipc_kernel_settings

WARNING = "running over TCP without encryption"


def _run(tmp_path, config):
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("print(6 * 7)")])
    NotebookClient(
        nb, timeout=120, kernel_name="python3", config=config, resources={"metadata": {"path": str(tmp_path)}}
    ).execute()
    return nb.cells[0].outputs[0]["text"]


def test_nucleo_por_ipc_sin_aviso_de_tcp(tmp_path, capfd):
    settings = ipc_kernel_settings()
    assert settings["transport"] == "ipc" and settings["ip"].startswith("/")
    assert _run(tmp_path, Config({"KernelManager": settings})) == "42\n"
    ipc = capfd.readouterr()
    assert WARNING not in ipc.err + ipc.out
    assert _run(tmp_path, Config()) == "42\n"
    tcp = capfd.readouterr()
    assert WARNING in tcp.err + tcp.out, "por TCP el aviso debía salir (si no, esta prueba no prueba nada)"
