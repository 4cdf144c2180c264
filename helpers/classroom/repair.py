"""La lectura y reparación de entregas vive en :mod:`helpers.repair`: la comparten el calificador y
``helpers.validar`` (que el alumnado ejecuta antes de entregar), así los dos ven la misma estructura."""
from ..repair import (FLAG_KEYS, MAX_BYTES, MISSING_SOLUTION_SOURCE, Repaired, Ungradable, grade_ids,  # noqa: F401
                      load_notebook, nbgrader_meta, repair)
