"""nbgrader en este proceso: la API sobre un curso y un entorno temporal para llamarla."""

from __future__ import annotations

import contextlib
import os
from pathlib import Path


def api(course: Path):
    """``NbGraderAPI`` del curso de nbgrader en ``course`` (con su ``nbgrader_config.py``)."""
    from nbgrader.apps.api import NbGraderAPI
    from nbgrader.coursedir import CourseDirectory
    from traitlets.config.loader import PyFileConfigLoader

    config = PyFileConfigLoader("nbgrader_config.py", path=str(course)).load_config()
    coursedir = CourseDirectory(config=config)
    coursedir.root = str(course)
    return NbGraderAPI(coursedir=coursedir, config=config)


@contextlib.contextmanager
def env(**values: str):
    """Variables de entorno con estos valores mientras dura el bloque."""
    saved = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
