"""``argparse`` en español para las órdenes del curso (``python -m helpers.classroom``, ``pins``...).

argparse escribe en inglés sus textos fijos («usage:», «options:», los errores). Sus textos pasan
por ``gettext``, pero un catálogo de ``gettext`` cambia el dominio de todo el proceso y necesita un
``.mo`` compilado; y sustituir ``argparse._`` es tocar un nombre privado. Aquí se usa solo la API
pública que la documentación de argparse deja redefinir: :meth:`~argparse.ArgumentParser.format_usage`,
:meth:`~argparse.ArgumentParser.format_help` y :meth:`~argparse.ArgumentParser.error`, que traducen
el texto que produce argparse. Si una versión nueva de Python cambia alguna frase, la prueba
``tests/test_cli.py`` lo detecta (la frase saldría en inglés).
"""

from __future__ import annotations

import argparse
import re
import sys

# Frases fijas de argparse (Python 3.10–3.13) → español. Las de los errores llevan grupos.
_HELP = [
    (re.compile(r"^usage: ", re.M), "uso: "),
    (re.compile(r"^options:$", re.M), "opciones:"),
    (re.compile(r"^optional arguments:$", re.M), "opciones:"),  # Python 3.9
    (re.compile(r"^positional arguments:$", re.M), "argumentos:"),
    (re.compile(r"show this help message and exit"), "muestra esta ayuda y termina"),
    (re.compile(r"\(default: (.*?)\)"), r"(por defecto: \1)"),
]
_ERRORS = [
    (re.compile(r"the following arguments are required: "), "faltan estos argumentos: "),
    (re.compile(r"unrecognized arguments: "), "argumentos no reconocidos: "),
    (re.compile(r"^argument (\S+): "), r"argumento \1: "),
    (re.compile(r"invalid choice: (.*) \(choose from (.*)\)"), r"opción no válida: \1 (elige entre \2)"),
    (re.compile(r"invalid (\w+) value: "), r"valor no válido (\1): "),
    (re.compile(r"expected one argument"), "falta el valor"),
    (re.compile(r"expected at least one argument"), "falta al menos un valor"),
    (re.compile(r"not allowed with argument "), "no se puede usar con "),
    (re.compile(r"ignored explicit argument "), "sobra el valor "),
]


def translate(text: str, table=_HELP) -> str:
    """``text`` con las frases fijas de argparse en español (``table``: las de la ayuda o las de error)."""
    for pattern, spanish in table:
        text = pattern.sub(spanish, text)
    return text


class ArgumentParser(argparse.ArgumentParser):
    """``argparse.ArgumentParser`` que escribe la ayuda, el uso y los errores en español.

    Sus subórdenes (``add_subparsers().add_parser``) son de la misma clase, así que también salen en
    español.
    """

    def format_usage(self) -> str:
        return translate(super().format_usage())

    def format_help(self) -> str:
        return translate(super().format_help())

    def error(self, message: str):
        """Como la de argparse (uso y error en stderr, código 2), con el mensaje en español."""
        self.print_usage(sys.stderr)
        self.exit(2, f"{self.prog}: error: {translate(message, _ERRORS)}\n")
