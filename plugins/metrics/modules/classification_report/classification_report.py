"""Per-class precision, recall, f1 and support (a local ``evaluate`` module, with scikit-learn)."""

import datasets
import evaluate
from sklearn.metrics import precision_recall_fscore_support

_DESCRIPTION = (
    "For each label: precision (of the examples predicted as it, the fraction that have it), "
    "recall (of the examples that have it, the fraction predicted as it), their harmonic mean f1, "
    "and support (how many examples have it). A label never predicted has precision 0."
)
_KWARGS_DESCRIPTION = """
Args:
    predictions (list of str): predicted labels.
    references (list of str): reference labels.
Returns:
    labels (list of str): every label either side mentions, sorted.
    precision, recall, f1 (list of float), support (list of int): one per label, in that order.
"""


class ClassificationReport(evaluate.Metric):
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
        precision, recall, f1, support = precision_recall_fscore_support(
            references, predictions, labels=labels, average=None, zero_division=0)
        return {"labels": labels, "precision": [float(v) for v in precision],
                "recall": [float(v) for v in recall], "f1": [float(v) for v in f1],
                "support": [int(v) for v in support]}
