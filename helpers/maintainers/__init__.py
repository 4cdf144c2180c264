"""Herramientas de quien mantiene el curso (no las importa ningún cuaderno).

Cada una se ejecuta con ``python -m helpers.maintainers.<nombre>``: ``release`` (publicar los
cuadernos), ``course`` (ejecutar el curso), ``bench`` (medir), ``api_drift``, ``pins``,
``build_datasets``, ``import_graph``, ``gpu_check`` y ``web``.
No van en el paquete que instala Colab (el diagnóstico, que sí usa el alumnado, es ``helpers.doctor``).
Lee ``docs/arquitectura.md``.
"""
