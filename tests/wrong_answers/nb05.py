"""Respuestas erróneas del cuaderno 05 (experimentos de rango)."""

# Error típico: devolver el rango con la menor pérdida, sin mirar la tolerancia.
WRONG = {
    "smallest_good_rank": '''def smallest_good_rank(results, tolerance=0.05):
    """Versión errónea: ignora la tolerancia y devuelve el rango de la mejor pérdida."""
    return min(results, key=lambda x: x["final_loss"])["r"]
''',
}
