"""Métrica de exactitud (*accuracy*) local para ``evaluate``.

``evaluate.load("accuracy")`` la descarga del Hub; este módulo es equivalente y se carga sin
internet con ``helpers.load_accuracy()`` (o ``evaluate.load(ruta_de_este_archivo)``).
"""

import datasets
import evaluate

_DESCRIPTION = "Exactitud: proporción de predicciones iguales a la etiqueta correcta."
_KWARGS_DESCRIPTION = """
Args:
    predictions (list[int]): etiquetas predichas.
    references (list[int]): etiquetas correctas.
    normalize (bool): si es False devuelve el número de aciertos en vez de la proporción.
    sample_weight (list[float]): pesos de cada ejemplo (opcional).
Returns:
    accuracy (float): proporción de aciertos (o número de aciertos si normalize=False).
"""


@evaluate.utils.file_utils.add_start_docstrings(_DESCRIPTION, _KWARGS_DESCRIPTION)
class Accuracy(evaluate.Metric):
    def _info(self):
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation="",
            inputs_description=_KWARGS_DESCRIPTION,
            features=datasets.Features({"predictions": datasets.Value("int32"), "references": datasets.Value("int32")}),
        )

    def _compute(self, predictions, references, normalize=True, sample_weight=None):
        if len(predictions) != len(references):
            raise ValueError("predictions y references deben tener la misma longitud.")
        weights = sample_weight if sample_weight is not None else [1.0] * len(predictions)
        hits = sum(w for p, r, w in zip(predictions, references, weights) if int(p) == int(r))
        total = sum(weights)
        value = hits / total if normalize else hits
        return {"accuracy": float(value)}
