"""Respuestas erróneas del cuaderno 04 (QLoRA)."""

# Error típico: con doble cuantización, olvidar la constante fp32 de segundo nivel (32 / (B·B2)).
WRONG = {
    "nf4_bytes_per_param": '''def nf4_bytes_per_param(blocksize=64, double_quant=True, absmax_bits=32, dq_blocksize=256, dq_bits=8):
    """Bytes por parámetro (versión errónea: falta la constante de segundo nivel)."""
    bits = 4.0
    if double_quant:
        bits += dq_bits / blocksize
    else:
        bits += absmax_bits / blocksize
    return bits / 8
''',
}
