"""Corpus BLEU with sacrebleu (a local ``evaluate`` module), on sacrebleu's 0-100 scale."""

import datasets
import evaluate
import sacrebleu

_DESCRIPTION = (
    "BLEU: the geometric mean of 1- to 4-gram precisions of the outputs against the references, "
    "times a brevity penalty, over the whole corpus (sacrebleu, 13a tokenisation by default)."
)
_KWARGS_DESCRIPTION = """
Args:
    predictions (list of str): generated texts.
    references (list of str): one reference text each.
    tokenize (str): sacrebleu's tokeniser, "13a" by default.
    lowercase (bool): compare lowercased, False by default.
Returns:
    bleu (float): between 0 and 100.
"""


class Bleu(evaluate.Metric):
    def _info(self):
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation="",
            inputs_description=_KWARGS_DESCRIPTION,
            features=datasets.Features({"predictions": datasets.Value("string"),
                                        "references": datasets.Value("string")}),
        )

    def _compute(self, predictions, references, tokenize="13a", lowercase=False):
        result = sacrebleu.corpus_bleu(predictions, [references], tokenize=tokenize,
                                       lowercase=lowercase)
        return {"bleu": float(result.score)}
