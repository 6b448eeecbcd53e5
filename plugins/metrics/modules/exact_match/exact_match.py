"""Exact match after normalisation (a local ``evaluate`` module).

Case and whitespace do not count: both sides are lowercased, stripped and have runs of whitespace
collapsed to one space, so "Paris " matches "paris" but "Paris." does not.
"""

import datasets
import evaluate

_DESCRIPTION = "The fraction of predictions equal to their reference, ignoring case and whitespace."
_KWARGS_DESCRIPTION = """
Args:
    predictions (list of str): predicted texts or labels.
    references (list of str): reference texts or labels.
Returns:
    exact_match (float): between 0 and 1.
"""


def normalise(text):
    return " ".join(text.lower().split())


class ExactMatch(evaluate.Metric):
    def _info(self):
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation="",
            inputs_description=_KWARGS_DESCRIPTION,
            features=datasets.Features({"predictions": datasets.Value("string"),
                                        "references": datasets.Value("string")}),
        )

    def _compute(self, predictions, references):
        matches = [normalise(p) == normalise(r) for p, r in zip(predictions, references)]
        return {"exact_match": sum(matches) / len(matches) if matches else 0.0}
