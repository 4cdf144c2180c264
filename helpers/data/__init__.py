"""Conjuntos de datos del curso (JSONL); los genera ``python -m helpers.maintainers.build_datasets``."""
