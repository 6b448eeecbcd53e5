"""tuneloop-keyword-coverage: a tuneloop metric, ``keyword_coverage``.

How much of the reference a generation mentions: the share of the reference's words that appear
in the output, averaged over examples. For a support bot it answers "did the reply mention the
order number, the refund, the deadline?", which exact match (too strict) and perplexity (not about
content) do not::

    evaluation:
      metrics: [exact_match, keyword_coverage]

tuneloop finds this module through the entry point ``keyword-coverage`` in the group ``tuneloop``.
"""

from __future__ import annotations

import re

from tuneloop import Example, Metric, Prediction, hookimpl

__version__ = "0.1.0"

# tuneloop refuses to load this plugin, naming it and saying why, when its version is outside this.
TUNELOOP_REQUIRES = ">=0.1,<1"

_WORD = re.compile(r"\w+")


def words(text: str) -> set[str]:
    """The distinct lowercased words of ``text`` (runs of letters, digits and underscores)."""
    return set(_WORD.findall(text.lower()))


class KeywordCoverage(Metric):
    """The fraction of the reference's words that appear in the output, averaged over examples.

    Words are lowercased runs of letters and digits; each distinct reference word counts once, and
    word order does not matter. A generation that mentions every word of the reference scores 1.0
    whatever else it says, so read it next to a precision-like metric (exact match, for example).

    Examples without a reference (``target`` is ``None``) or whose reference has no words are left
    out of the mean; when none is left, the metric returns no figure (an empty dict).
    Predictions and references are matched by position and must be about the same examples.
    """

    name = "keyword_coverage"
    tasks = ("causal-lm", "classification")
    higher_is_better = True

    def compute(self, predictions: list[Prediction],
                references: list[Example]) -> dict[str, float]:
        if len(predictions) != len(references):
            raise ValueError(f"{len(predictions)} predictions for {len(references)} references")
        scores = []
        for prediction, reference in zip(predictions, references):
            if prediction.example_id != reference.id:
                raise ValueError(f"prediction for example {prediction.example_id} paired with "
                                 f"reference {reference.id}: they must come in the same order")
            if reference.target is None:
                continue
            wanted = words(reference.target)
            if not wanted:
                continue
            scores.append(len(wanted & words(prediction.output)) / len(wanted))
        if not scores:
            return {}
        return {self.name: sum(scores) / len(scores)}


@hookimpl
def register_metrics(register):
    register(KeywordCoverage)
