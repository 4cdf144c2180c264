"""Calificación de una clase con nbgrader: importar, calificar aislado, retroalimentar y exportar.

Orden principal (ver ``python -m helpers.classroom --help`` y el README)::

    python -m helpers.classroom calificar --entregas descargas.zip --tarea 01_introduccion_peft

Módulos:

- :mod:`.lms_import`  importa el zip de Moodle o una carpeta ``<alumno>/<cuaderno>.ipynb``;
- :mod:`.repair`      lee cada entrega y repara su estructura frente al cuaderno publicado;
- :mod:`.sandbox`     caja de arena del núcleo (espacios de nombres de Linux, usuario sin privilegios);
- :mod:`.kernel`      ejecución dentro de nbgrader: núcleo aislado, tiempos máximos, salida acotada;
- :mod:`.grading`     califica una entrega en su propio curso temporal de nbgrader;
- :mod:`.batch`       el lote con trabajadores en paralelo, reanudable;
- :mod:`.feedback`    retroalimentación HTML en español sin pruebas ocultas;
- :mod:`.export`      CSV de notas y libro de notas maestro;
- :mod:`.bench`       segundos por entrega con 1 y 2 trabajadores.
"""
