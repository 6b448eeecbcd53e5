"""Macro-averaged precision (a local ``evaluate`` module, computed with scikit-learn)."""

import datasets
import evaluate
from sklearn.metrics import precision_score

_DESCRIPTION = (
    "Of the examples predicted as a label, the fraction that have it, computed per label and "
    "averaged over labels with equal weight (macro), so rare labels count as much as common "
    "ones. A label never predicted scores 0, not an error."
)
_KWARGS_DESCRIPTION = """
Args:
    predictions (list of int): predicted label ids.
    references (list of int): reference label ids.
    average (str): scikit-learn's average, "macro" by default.
Returns:
    precision (float): between 0 and 1.
"""


class Precision(evaluate.Metric):
    def _info(self):
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation="",
            inputs_description=_KWARGS_DESCRIPTION,
            features=datasets.Features({"predictions": datasets.Value("int32"),
                                        "references": datasets.Value("int32")}),
        )

    def _compute(self, predictions, references, average="macro"):
        value = precision_score(references, predictions, average=average, zero_division=0)
        return {"precision": float(value)}
