"""Expected calibration error (a local ``evaluate`` module).

Confidences are put in ``bins`` equal-width bins over [0, 1] (a confidence of exactly 1 goes in the
last bin); ECE is the mean, weighted by the bins' sizes, of the gap between each bin's accuracy and
its mean confidence. 0 is perfectly calibrated: answers given with 80% confidence are right 80% of
the time.
"""

import datasets
import evaluate

_DESCRIPTION = "Expected calibration error: how far confidence is from accuracy, on average."
_KWARGS_DESCRIPTION = """
Args:
    predictions (list of float): the confidence of each answer, between 0 and 1.
    references (list of int): 1 where the answer was right, 0 where it was wrong.
    bins (int): the number of equal-width confidence bins, 10 by default.
Returns:
    ece (float): between 0 and 1; lower is better.
    bin_count, bin_accuracy, bin_confidence (lists): per bin; empty bins have 0 accuracy and
        confidence.
"""


class Calibration(evaluate.Metric):
    def _info(self):
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation="",
            inputs_description=_KWARGS_DESCRIPTION,
            features=datasets.Features({"predictions": datasets.Value("float64"),
                                        "references": datasets.Value("int32")}),
        )

    def _compute(self, predictions, references, bins=10):
        count = [0] * bins
        right = [0] * bins
        confidence = [0.0] * bins
        for value, correct in zip(predictions, references):
            index = min(int(value * bins), bins - 1)
            count[index] += 1
            right[index] += int(correct)
            confidence[index] += value
        total = len(predictions)
        accuracy = [r / n if n else 0.0 for r, n in zip(right, count)]
        mean_confidence = [c / n if n else 0.0 for c, n in zip(confidence, count)]
        ece = sum(n / total * abs(a - c) for n, a, c in zip(count, accuracy, mean_confidence))
        return {"ece": ece, "bin_count": count, "bin_accuracy": accuracy,
                "bin_confidence": mean_confidence}
