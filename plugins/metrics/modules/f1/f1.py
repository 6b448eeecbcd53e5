"""Macro-averaged f1 (a local ``evaluate`` module, computed with scikit-learn)."""

import datasets
import evaluate
from sklearn.metrics import f1_score

_DESCRIPTION = (
    "The harmonic mean of precision and recall, computed per label and averaged over labels "
    "with equal weight (macro), so rare labels count as much as common ones. A label never "
    "predicted scores 0, not an error."
)
_KWARGS_DESCRIPTION = """
Args:
    predictions (list of int): predicted label ids.
    references (list of int): reference label ids.
    average (str): scikit-learn's average, "macro" by default.
Returns:
    f1 (float): between 0 and 1.
"""


class F1(evaluate.Metric):
    def _info(self):
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation="",
            inputs_description=_KWARGS_DESCRIPTION,
            features=datasets.Features({"predictions": datasets.Value("int32"),
                                        "references": datasets.Value("int32")}),
        )

    def _compute(self, predictions, references, average="macro"):
        value = f1_score(references, predictions, average=average, zero_division=0)
        return {"f1": float(value)}
