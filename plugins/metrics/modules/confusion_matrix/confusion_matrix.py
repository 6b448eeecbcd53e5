"""The confusion matrix of predicted against reference labels (a local ``evaluate`` module)."""

import datasets
import evaluate
from sklearn.metrics import confusion_matrix

_DESCRIPTION = "How often each reference label was predicted as each label."
_KWARGS_DESCRIPTION = """
Args:
    predictions (list of str): predicted labels.
    references (list of str): reference labels.
Returns:
    labels (list of str): every label either side mentions, sorted.
    matrix (list of list of int): matrix[i][j] counts examples with reference labels[i] that were
        predicted as labels[j]; the diagonal holds the right answers.
"""


class ConfusionMatrix(evaluate.Metric):
    def _info(self):
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation="",
            inputs_description=_KWARGS_DESCRIPTION,
            features=datasets.Features({"predictions": datasets.Value("string"),
                                        "references": datasets.Value("string")}),
        )

    def _compute(self, predictions, references):
        labels = sorted(set(predictions) | set(references))
        matrix = confusion_matrix(references, predictions, labels=labels)
        return {"labels": labels, "matrix": [[int(n) for n in row] for row in matrix]}
