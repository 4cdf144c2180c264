"""Entregas de prueba para el calificador de la clase, construidas desde los cuadernos publicados.

Se generan en cada ejecución a partir de ``solutions/`` (nunca se quedan desfasadas): ver
:mod:`fixtures_classroom.casos`.
"""
