"""Macro-averaged recall (a local ``evaluate`` module, computed with scikit-learn)."""

import datasets
import evaluate
from sklearn.metrics import recall_score

_DESCRIPTION = (
    "Of the examples that have a label, the fraction predicted as it, computed per label and "
    "averaged over labels with equal weight (macro), so rare labels count as much as common "
    "ones. A label never predicted scores 0, not an error."
)
_KWARGS_DESCRIPTION = """
Args:
    predictions (list of int): predicted label ids.
    references (list of int): reference label ids.
    average (str): scikit-learn's average, "macro" by default.
Returns:
    recall (float): between 0 and 1.
"""


class Recall(evaluate.Metric):
    def _info(self):
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation="",
            inputs_description=_KWARGS_DESCRIPTION,
            features=datasets.Features({"predictions": datasets.Value("int32"),
                                        "references": datasets.Value("int32")}),
        )

    def _compute(self, predictions, references, average="macro"):
        value = recall_score(references, predictions, average=average, zero_division=0)
        return {"recall": float(value)}
