"""ROUGE-1, ROUGE-2 and ROUGE-L F-measures with rouge-score (a local ``evaluate`` module)."""

import datasets
import evaluate
from rouge_score import rouge_scorer

_DESCRIPTION = (
    "ROUGE: overlap of unigrams (rouge1), bigrams (rouge2) and the longest common subsequence "
    "(rougeL) between each output and its reference, as an F-measure averaged over examples."
)
_KWARGS_DESCRIPTION = """
Args:
    predictions (list of str): generated texts.
    references (list of str): one reference text each.
    rouge_types (list of str): ["rouge1", "rouge2", "rougeL"] by default.
    use_stemmer (bool): Porter-stem words before matching, False by default.
Returns:
    one float per rouge type, between 0 and 1.
"""


class Rouge(evaluate.Metric):
    def _info(self):
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation="",
            inputs_description=_KWARGS_DESCRIPTION,
            features=datasets.Features({"predictions": datasets.Value("string"),
                                        "references": datasets.Value("string")}),
        )

    def _compute(self, predictions, references, rouge_types=("rouge1", "rouge2", "rougeL"),
                 use_stemmer=False):
        scorer = rouge_scorer.RougeScorer(list(rouge_types), use_stemmer=use_stemmer)
        totals = {name: 0.0 for name in rouge_types}
        for prediction, reference in zip(predictions, references):
            scores = scorer.score(reference, prediction)
            for name in rouge_types:
                totals[name] += scores[name].fmeasure
        count = max(len(predictions), 1)
        return {name: total / count for name, total in totals.items()}
