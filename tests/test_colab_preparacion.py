"""La celda de preparación en Colab: pide reiniciar la sesión solo si la instalación cambió un paquete
que la sesión ya tenía importado (:mod:`helpers.colab`), y entonces no sigue."""

from helpers import colab
from helpers.maintainers.release import setup_cell_source

TOP_LEVELS = {"numpy": ["numpy"], "PIL": ["Pillow"], "peft": ["peft"], "yaml": ["PyYAML"]}


def test_pide_reiniciar_solo_si_cambio_algo_importado(capsys):
    before = {"numpy": "2.1.3", "Pillow": "11.3.0", "peft": "0.20.0", "PyYAML": "6.0.3"}
    after = {"numpy": "2.5.5", "pillow": "11.3.0", "peft": "0.21.2", "pyyaml": "6.0.4"}
    # numpy y PIL importados; peft cambió pero nadie lo había importado; PyYAML no cambió de lo importado.
    modules = {"numpy": None, "numpy.linalg": None, "PIL.Image": None, "json": None}
    assert colab.changed_imported(before, after, modules, TOP_LEVELS) == [("numpy", "2.1.3", "2.5.5")]
    assert colab.restart_notice(before, after=after, modules=modules, top_levels=TOP_LEVELS) is True
    out = capsys.readouterr().out
    assert "REINICIA LA SESIÓN" in out and "numpy 2.1.3 → 2.5.5" in out and "Reiniciar sesión" in out
    # Nada importado cambió (p. ej. la segunda vez, tras reiniciar): ni una palabra.
    assert colab.restart_notice(after, after=after, modules=modules, top_levels=TOP_LEVELS) is False
    modules = {"json": None, "peft": None}
    assert (
        colab.restart_notice(before, after=dict(before, **{"numpy": "9"}), modules=modules, top_levels=TOP_LEVELS)
        is False
    )
    assert capsys.readouterr().out == ""


def test_con_el_entorno_real_no_hay_cambios():
    now = colab.installed_versions()
    assert now and colab.changed_imported(now) == []
    assert colab.changed_imported(dict(now, **{"pytest": "0.0.1"})) == [("pytest", "0.0.1", now["pytest"])]


def test_la_celda_no_sigue_si_hay_que_reiniciar(tmp_path):
    """La celda de preparación con un google.colab de mentira y un pip que «cambia» numpy: avisa y
    no llega a importar helpers ni a mostrar el entorno."""
    import subprocess
    import sys

    cell = setup_cell_source()
    assert "restart_notice(antes)" in cell and "if not reiniciar:" in cell
    fake = (
        "import sys, types, subprocess\n"
        "sys.modules['google.colab'] = types.ModuleType('google.colab')\n"
        "import numpy\n"
        "subprocess.run = lambda *a, **k: None\n"
        "import helpers.colab as hc\n"
        "real = hc.installed_versions\n"
        "hc.installed_versions = lambda: dict(real(), numpy='0.0.0-otra')\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", fake + cell + "\nprint('ENTORNO' if not reiniciar else 'PARADO')"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr
    assert "REINICIA LA SESIÓN" in result.stdout and "numpy" in result.stdout and "PARADO" in result.stdout
