"""Conjuntos de datos del curso (JSONL) y el script que los genera: ``build_datasets``."""
