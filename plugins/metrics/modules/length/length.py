"""Length statistics of outputs and references, in whitespace-separated words (a local
``evaluate`` module). A model that rambles or stops short shows here before it shows in BLEU."""

import datasets
import evaluate

_DESCRIPTION = "Mean and maximum output length, mean reference length, their ratio, empty outputs."
_KWARGS_DESCRIPTION = """
Args:
    predictions (list of str): generated texts.
    references (list of str): one reference text each.
Returns:
    output_words_mean, output_words_max, reference_words_mean (float): in words.
    length_ratio (float): total output words / total reference words (1: as long as the
        references; 0 when the references are all empty).
    empty_rate (float): the fraction of outputs with no words.
"""


class Length(evaluate.Metric):
    def _info(self):
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation="",
            inputs_description=_KWARGS_DESCRIPTION,
            features=datasets.Features({"predictions": datasets.Value("string"),
                                        "references": datasets.Value("string")}),
        )

    def _compute(self, predictions, references):
        outputs = [len(text.split()) for text in predictions]
        targets = [len(text.split()) for text in references]
        count = max(len(outputs), 1)
        return {
            "output_words_mean": sum(outputs) / count,
            "output_words_max": float(max(outputs, default=0)),
            "reference_words_mean": sum(targets) / count,
            "length_ratio": sum(outputs) / sum(targets) if sum(targets) else 0.0,
            "empty_rate": sum(n == 0 for n in outputs) / count,
        }
