"""Calificación de una clase con nbgrader: importar, calificar aislado, retroalimentar y exportar.

Orden principal (ver ``python -m helpers.classroom --help`` y el README)::

    python -m helpers.classroom calificar --entregas descargas.zip --tarea 01_introduccion_peft

Módulos:

- :mod:`.lms_import`  importa el zip de Moodle o una carpeta ``<alumno>/<cuaderno>.ipynb``;
- :mod:`.repair`      lee cada entrega y repara su estructura frente al cuaderno publicado;
- :mod:`.sandbox`     caja de arena del núcleo con bubblewrap (sin root; sin red; solo tmpfs acotados);
- :mod:`.kernel`      ejecución dentro de nbgrader: núcleo aislado, tiempos máximos, salida acotada;
- :mod:`.guard`       guardia dentro del núcleo: restaura lo que usan las pruebas antes de cada una;
- :mod:`.tamper`      examen del código entregado en busca de trucos contra las pruebas;
- :mod:`.nbgrader_api` la API de nbgrader sobre un curso, en este proceso;
- :mod:`.grading`     califica una entrega en su propio curso temporal de nbgrader;
- :mod:`.batch`       el lote con trabajadores en paralelo, reanudable;
- :mod:`.feedback`    retroalimentación HTML en español sin pruebas ocultas;
- :mod:`.export`      CSV de notas y libro de notas maestro;
- :mod:`.copies`      informe de copias (winnowing) contra la solución publicada y entre entregas;
- :mod:`.bench`       segundos por entrega con 1 y 2 trabajadores.
"""
