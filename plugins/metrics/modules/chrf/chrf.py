"""Corpus chrF with sacrebleu (a local ``evaluate`` module), on sacrebleu's 0-100 scale."""

import datasets
import evaluate
import sacrebleu

_DESCRIPTION = (
    "chrF: the F-score (beta 2) of character 6-gram precision and recall against the references, "
    "over the whole corpus; word_order=2 gives chrF++ (adds word bigrams)."
)
_KWARGS_DESCRIPTION = """
Args:
    predictions (list of str): generated texts.
    references (list of str): one reference text each.
    word_order (int): word n-gram order, 0 by default (chrF); 2 gives chrF++.
Returns:
    chrf (float): between 0 and 100.
"""


class Chrf(evaluate.Metric):
    def _info(self):
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation="",
            inputs_description=_KWARGS_DESCRIPTION,
            features=datasets.Features({"predictions": datasets.Value("string"),
                                        "references": datasets.Value("string")}),
        )

    def _compute(self, predictions, references, word_order=0):
        result = sacrebleu.corpus_chrf(predictions, [references], word_order=word_order)
        return {"chrf": float(result.score)}
