"""Herramientas de quien mantiene el curso (no las importa ningún cuaderno).

Cada una se ejecuta con ``python -m helpers.maintainers.<nombre>``: ``release`` (publicar los
cuadernos), ``course`` (ejecutar el curso), ``bench`` (medir), ``api_drift``, ``doctor``,
``pins``, ``build_datasets``, ``autograde`` (el arnés de las pruebas) e ``import_graph``.
Lee ``docs/arquitectura.md``.
"""
