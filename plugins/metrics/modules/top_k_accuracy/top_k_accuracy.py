"""Top-k accuracy (a local ``evaluate`` module): the reference is among the k likeliest labels."""

import datasets
import evaluate

_DESCRIPTION = (
    "The fraction of examples whose reference label is among the k labels the model scored "
    "highest. A tie with the k-th score counts in the reference's favour."
)
_KWARGS_DESCRIPTION = """
Args:
    predictions (list of list of float): each example's score for every label (same order).
    references (list of int): the index of each example's reference label; -1 when the model has
        no score for it (always a miss).
    k (int): how many of the top labels count, 3 by default.
Returns:
    top_k_accuracy (float): between 0 and 1.
"""


class TopKAccuracy(evaluate.Metric):
    def _info(self):
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation="",
            inputs_description=_KWARGS_DESCRIPTION,
            features=datasets.Features({"predictions": datasets.Sequence(datasets.Value("float64")),
                                        "references": datasets.Value("int32")}),
        )

    def _compute(self, predictions, references, k=3):
        hits = 0
        for scores, target in zip(predictions, references):
            if target < 0:
                continue
            higher = sum(score > scores[target] for score in scores)
            hits += higher < k
        return {"top_k_accuracy": hits / len(references) if references else 0.0}
