"""Examen del cuaderno 01: lo que decide la nota de cada celda de pruebas (nunca se publica).

Lo lee el examinador del calificador (``helpers.classroom.examiner``, ver docs/examinador.md): el
núcleo del alumnado solo contesta estas preguntas con datos, y lo esperado sale de ejecutar las
celdas de solución de este cuaderno con las mismas entradas. ``rng`` tiene una semilla secreta por
clase y entrega, así que las entradas no se conocen de antemano. Los mensajes (``what``) dicen qué
caso falló sin revelar sus datos.
"""

from helpers.classroom.examiner import Ask, Model, Question


def _tied_net(rng, frozen):
    """Embeddings atados a la cabeza y el mismo bloque dos veces (pesos compartidos)."""
    vocab, dim = rng.randint(5, 40), rng.randint(3, 12)
    layers = [
        ["embedding", vocab, dim],
        ["layernorm", dim],
        ["linear", dim, dim],
        ["same", 2],
        ["linear", dim, vocab, False],
    ]
    return Model("red", capas=layers, atadas=[["4.weight", "0.weight"]], congeladas=frozen, semilla=rng.randint(0, 999))


def _mlp(rng, frozen):
    sizes = [rng.randint(2, 16) for _ in range(4)]
    layers = [["linear", sizes[0], sizes[1]], ["relu"], ["linear", sizes[1], sizes[2], False], ["layernorm", sizes[2]]]
    layers.append(["linear", sizes[2], sizes[3], rng.random() < 0.5])
    return Model("red", capas=layers, congeladas=frozen, semilla=rng.randint(0, 999))


def _mixed_net(rng, frozen):
    """Tipos mezclados (una capa bf16), embeddings atados a la cabeza y una parte congelada."""
    vocab, dim = rng.randint(5, 30), rng.randint(2, 10)
    layers = [["embedding", vocab, dim], ["linear", dim, dim], ["layernorm", dim], ["linear", dim, vocab, False]]
    return Model(
        "red",
        capas=layers,
        tipos={"1": "bfloat16"},
        atadas=[["3.weight", "0.weight"]],
        congeladas=frozen,
        semilla=rng.randint(0, 999),
    )


def _half(rng, frozen):
    a, b, c = (rng.randint(2, 12) for _ in range(3))
    layers = [["linear", a, b], ["linear", b, c]]
    return Model(
        "red", capas=layers, tipos={"0": "bfloat16", "1": "bfloat16"}, congeladas=frozen, semilla=rng.randint(0, 999)
    )


def questions(rng):
    layer = rng.randint(0, 1)  # el diminuto tiene 2 bloques
    unknown = rng.choice(["rmsprop", "adam8bit", "adagrad", "lion"])
    count = [
        Ask("count_params", [Model("tiny")], what="con el modelo diminuto del curso (pesos atados)"),
        Ask(
            "count_params",
            [Model("tiny", congeladas=["model.norm", f"model.layers.{layer}.mlp"])],
            what="con el modelo diminuto con partes congeladas",
        ),
        Ask("count_params", [_tied_net(rng, [])], what="con un modelo con pesos atados y un módulo repetido"),
        Ask("count_params", [_tied_net(rng, ["0"])], what="con un modelo con los pesos atados congelados"),
        Ask("count_params", [_mlp(rng, ["0"])], what="con un modelo con la primera capa congelada"),
        Ask("count_params", [_mlp(rng, ["0", "2", "3", "4"])], what="con un modelo entero congelado"),
    ]
    n = [rng.randint(1, 10**10) for _ in range(4)]
    full = [
        Ask("full_ft_memory_bytes", [n[0]], what="con AdamW y pesos de 4 bytes"),
        Ask("full_ft_memory_bytes", [n[1]], {"bytes_per_weight": 2}, what="con AdamW y pesos de 2 bytes"),
        Ask("full_ft_memory_bytes", [n[2]], {"optimizer": "sgd"}, what="con SGD"),
        Ask(
            "full_ft_memory_bytes",
            [n[3]],
            {"bytes_per_weight": 2, "optimizer": "sgd"},
            what="con SGD y pesos de 2 bytes",
        ),
        Ask("full_ft_memory_bytes", [0], what="con cero parámetros"),
        Ask(
            "full_ft_memory_bytes",
            [rng.randint(1, 1000)],
            {"optimizer": unknown},
            what="con un optimizador desconocido",
        ),
    ]
    last_q = f"model.layers.{layer}.self_attn.q_proj.weight"
    freeze = [
        Ask(
            "freeze_all_but",
            [Model("tiny"), ["model.norm.weight", last_q]],
            then="requires_grad",
            what="con el modelo diminuto",
        ),
        Ask(
            "freeze_all_but",
            [_mlp(rng, ["0"]), ["0.weight", "3.weight", "4.weight"]],
            then="requires_grad",
            what="con un modelo que llegaba con parámetros congelados",
        ),
        Ask("freeze_all_but", [_mlp(rng, []), []], then="requires_grad", what="con una lista vacía"),
        Ask(
            "freeze_all_but",
            [_mlp(rng, []), ["2.weight", "2.wieght"]],
            then="requires_grad",
            what="con un nombre que no existe (debe lanzar ValueError sin tocar el modelo)",
        ),
    ]
    memory = [
        Ask("training_memory_bytes", [Model("tiny")], what="con el modelo diminuto, todo entrenable, AdamW"),
        Ask(
            "training_memory_bytes",
            [Model("tiny", congeladas=["model.embed_tokens", f"model.layers.{layer}"])],
            {"optimizer": "sgd"},
            what="con el modelo diminuto con partes congeladas, SGD",
        ),
        Ask(
            "training_memory_bytes",
            [_mixed_net(rng, ["2"])],
            what="con tipos mezclados, pesos atados y una parte congelada, AdamW",
        ),
        Ask("training_memory_bytes", [_mixed_net(rng, ["2"])], {"optimizer": "sgd"}, what="con tipos mezclados, SGD"),
        Ask("training_memory_bytes", [_mixed_net(rng, ["0"])], what="con los pesos atados congelados"),
        Ask("training_memory_bytes", [_half(rng, ["0"])], what="con un modelo en bf16"),
        Ask("training_memory_bytes", [_half(rng, [])], {"optimizer": unknown}, what="con un optimizador desconocido"),
    ]
    return [
        Question("test_count_params", "count_params", count),
        Question("test_full_ft_memory_bytes", "full_ft_memory_bytes", full),
        Question("test_freeze_all_but", "freeze_all_but", freeze),
        Question("test_training_memory_bytes", "training_memory_bytes", memory),
    ]
