"""Accuracy: the fraction of predictions equal to their reference (a local ``evaluate`` module)."""

import datasets
import evaluate
from sklearn.metrics import accuracy_score

_DESCRIPTION = "The fraction of predictions that equal their reference label."
_KWARGS_DESCRIPTION = """
Args:
    predictions (list of int): predicted label ids.
    references (list of int): reference label ids.
Returns:
    accuracy (float): between 0 and 1.
"""


class Accuracy(evaluate.Metric):
    def _info(self):
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation="",
            inputs_description=_KWARGS_DESCRIPTION,
            features=datasets.Features({"predictions": datasets.Value("int32"),
                                        "references": datasets.Value("int32")}),
        )

    def _compute(self, predictions, references):
        return {"accuracy": float(accuracy_score(references, predictions))}
