"""Las órdenes del curso hablan español con la API pública de argparse (``helpers.cli``), sin tocar
``argparse._``; y las tres que antes leían ``sys.argv`` a mano van con argparse."""

import argparse
import re

import pytest

from helpers import cli
from helpers.maintainers import import_graph, pins, release

# Frases de argparse que no deben llegar a quien lee: si una versión nueva de Python las cambia,
# la traducción deja de aplicarse y esta lista lo detecta.
ENGLISH = (
    "usage:",
    "options:",
    "positional arguments",
    "show this help message",
    "the following arguments",
    "unrecognized arguments",
    "invalid choice",
    "choose from",
    "invalid int value",
    "expected one argument",
    "argument --",
)


def _parser() -> cli.ArgumentParser:
    parser = cli.ArgumentParser(prog="orden", description="Una orden de prueba.")
    parser.add_argument("tarea")
    parser.add_argument("--perfil", choices=["tiny", "embedded"], default="tiny")
    parser.add_argument("--trabajadores", type=int, default=1, help="cuántos (default: %(default)s)")
    sub = parser.add_subparsers(dest="orden")
    sub.add_parser("calificar").add_argument("--entregas", required=True)
    return parser


def _error(parser, argv, capsys) -> str:
    with pytest.raises(SystemExit) as exit_info:
        parser.parse_args(argv)
    assert exit_info.value.code == 2
    return capsys.readouterr().err


def _no_english(text: str) -> None:
    left = [phrase for phrase in ENGLISH if phrase in text]
    assert not left, f"argparse sigue en inglés ({left}):\n{text}"


def test_ayuda_en_espanol(capsys):
    with pytest.raises(SystemExit):
        _parser().parse_args(["--help"])
    text = capsys.readouterr().out
    assert text.startswith("uso: orden") and "\nargumentos:\n" in text and "\nopciones:\n" in text
    assert "muestra esta ayuda y termina" in text
    _no_english(text)


@pytest.mark.parametrize(
    ("argv", "spanish"),
    [
        ([], "faltan estos argumentos: tarea"),
        (["x", "--sobra"], "argumentos no reconocidos: --sobra"),
        (["x", "--perfil", "grande"], "argumento --perfil: opción no válida: 'grande' (elige entre"),
        (["x", "--trabajadores", "dos"], "argumento --trabajadores: valor no válido (int): 'dos'"),
        (["x", "--perfil"], "argumento --perfil: falta el valor"),
        (["x", "calificar"], "faltan estos argumentos: --entregas"),
    ],
)
def test_errores_en_espanol(argv, spanish, capsys):
    err = _error(_parser(), argv, capsys)
    assert spanish in err, err
    assert re.search(r"^uso: orden", err, re.M) and "error: " in err
    _no_english(err)


def test_sin_parches_privados_de_argparse():
    """Nada del curso sustituye ``argparse._`` (lo hacía ``helpers.classroom``)."""
    import helpers.classroom.__main__  # noqa: F401

    assert argparse._.__module__ == "gettext"


def test_pins_con_argparse(capsys):
    assert pins.main(["installer"]) == 0
    assert capsys.readouterr().out.strip() == pins.installer_requirement()
    with pytest.raises(SystemExit) as exit_info:
        pins.main(["otra"])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert "opción no válida: 'otra'" in err and "no-deps" in err


def test_import_graph_con_argparse(tmp_path, capsys):
    package = tmp_path / "helpers"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "a.py").write_text("from . import b\n")
    (package / "b.py").write_text("from . import a\n")
    assert import_graph.main([str(package)]) == 1
    assert "Ciclos: 1" in capsys.readouterr().out


def test_release_con_argparse(capsys):
    """Un cuaderno que no existe se rechaza antes de generar nada; ``--ref`` sin valor, en español."""
    with pytest.raises(SystemExit) as exit_info:
        release.main(["--ref"])
    assert exit_info.value.code == 2
    assert "argumento --ref: falta el valor" in capsys.readouterr().err
