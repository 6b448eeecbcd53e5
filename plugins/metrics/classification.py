"""Classification metrics: accuracy; precision, recall and f1 (macro, micro or weighted); a
per-class report; the confusion matrix; expected calibration error; top-k accuracy.

Labels are compared as strings. Figures that belong to one label are named ``<figure>[<label>]``
(``f1[billing]``), and confusion-matrix cells ``confusion[<reference>][<predicted>]``, so a label
containing dots still reads unambiguously in a promotion rule such as ``validation.f1[billing]``.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field

from tuneloop import Example, Options, Prediction
from tuneloop.plugins.metrics.base import EvaluateModuleMetric, is_correct, load_module, scored


class LabelMetric(EvaluateModuleMetric):
    """A classification metric whose module takes label ids: names are numbered consistently for
    predictions and references (sorted, over the labels either side mentions)."""

    tasks = ("classification",)

    def module_inputs(self, outputs: list[str], targets: list[str]) -> dict[str, list[Any]]:
        ids = {label: number for number, label in enumerate(sorted(set(outputs) | set(targets)))}
        return {"predictions": [ids[output] for output in outputs],
                "references": [ids[target] for target in targets]}


class Accuracy(LabelMetric):
    """The fraction of examples given their reference label."""

    name = "accuracy"


class AverageOptions(Options):
    """``average``: how per-label figures combine. ``macro`` weighs every label equally (rare ones
    count as much as common ones), ``weighted`` by each label's support, ``micro`` counts every
    example equally (for single-label classification it equals accuracy)."""

    average: Literal["macro", "micro", "weighted"] = "macro"


class AveragedLabelMetric(LabelMetric):
    """Precision, recall or f1 averaged over labels. The figure is the metric's name for
    ``macro`` (the default) and ``<name>_<average>`` otherwise (``f1_weighted``)."""

    Options = AverageOptions

    def module_options(self) -> dict[str, Any]:
        return {"average": self.options.average}

    def figures(self, result: dict[str, Any]) -> dict[str, float]:
        average = self.options.average
        figure = self.name if average == "macro" else f"{self.name}_{average}"
        return {figure: float(result[self.name])}

    def figure_names(self) -> list[str] | None:
        average = self.options.average
        return [self.name if average == "macro" else f"{self.name}_{average}"]


class Precision(AveragedLabelMetric):
    """Precision per label (of its predictions, the fraction that were right), averaged."""

    name = "precision"


class Recall(AveragedLabelMetric):
    """Recall per label (of its examples, the fraction found), averaged."""

    name = "recall"


class F1(AveragedLabelMetric):
    """F1 per label (the harmonic mean of precision and recall), averaged."""

    name = "f1"


class PerClass(EvaluateModuleMetric):
    """Precision, recall, f1 and support of every label: ``f1[billing]``, ``support[billing]``...
    The figures the averages hide: which labels the model gets wrong."""

    name = "per_class"
    module = "classification_report"
    tasks = ("classification",)

    def figures(self, result: dict[str, Any]) -> dict[str, float]:
        figures = {}
        for index, label in enumerate(result["labels"]):
            for figure in ("precision", "recall", "f1", "support"):
                figures[f"{figure}[{label}]"] = float(result[figure][index])
        return figures

    def figure_names(self) -> list[str] | None:
        return None  # one per label: known from the data only


class ConfusionMatrix(EvaluateModuleMetric):
    """The confusion matrix as counts: ``confusion[<reference>][<predicted>]``, the cells that are
    not zero. (``tuneloop report`` draws the matrix from the stored predictions either way.)"""

    name = "confusion_matrix"
    tasks = ("classification",)

    def figures(self, result: dict[str, Any]) -> dict[str, float]:
        labels = result["labels"]
        return {f"confusion[{labels[i]}][{labels[j]}]": float(count)
                for i, row in enumerate(result["matrix"]) for j, count in enumerate(row) if count}

    def figure_names(self) -> list[str] | None:
        return None  # one per pair of labels: known from the data only


class CalibrationOptions(Options):
    bins: int = Field(10, ge=1, le=1000, description="equal-width confidence bins over [0, 1]")


class ExpectedCalibrationError(EvaluateModuleMetric):
    """Expected calibration error (``ece``): how far the model's confidence is from its accuracy.

    Uses each prediction's ``confidence`` (the predicted label's probability, or a generation's
    mean token probability) and whether it was right; predictions without a confidence are left
    out. Works for causal LMs too (right means an exact match, ignoring case and whitespace).
    """

    name = "ece"
    module = "calibration"
    tasks = ("classification", "causal-lm")
    higher_is_better = False
    Options = CalibrationOptions

    def compute(self, predictions: list[Prediction], references: list[Example]) -> dict[str, float]:
        pairs = [(prediction, reference)
                 for prediction, reference in scored(predictions, references)
                 if prediction.confidence is not None]
        if not pairs:
            return {}
        result = load_module(self.module).compute(
            predictions=[min(max(float(prediction.confidence), 0.0), 1.0)
                         for prediction, _ in pairs],
            references=[int(is_correct(prediction, reference)) for prediction, reference in pairs],
            bins=self.options.bins)
        return {"ece": float(result["ece"])}

    def figure_names(self) -> list[str] | None:
        return ["ece"]


class TopKOptions(Options):
    k: int = Field(3, ge=1, description="how many of the highest-scored labels count as a hit")


class TopKAccuracy(EvaluateModuleMetric):
    """The fraction of examples whose reference label is among the ``k`` highest-scored labels
    (``top_3_accuracy`` for k=3), from each prediction's ``scores``. A prediction without scores
    counts as a hit only if its single answer is right."""

    name = "top_k_accuracy"
    tasks = ("classification",)
    Options = TopKOptions

    def compute(self, predictions: list[Prediction], references: list[Example]) -> dict[str, float]:
        pairs = scored(predictions, references)
        if not pairs:
            return {}
        labels = sorted({label for prediction, _ in pairs for label in (prediction.scores or {})} |
                        {prediction.output for prediction, _ in pairs})
        rows, targets = [], []
        for prediction, reference in pairs:
            scores = prediction.scores or {prediction.output: 1.0}
            rows.append([float(scores.get(label, 0.0)) for label in labels])
            targets.append(labels.index(reference.target) if reference.target in scores else -1)
        result = load_module(self.name).compute(predictions=rows, references=targets,
                                                k=self.options.k)
        return {f"top_{self.options.k}_accuracy": float(result["top_k_accuracy"])}

    def figure_names(self) -> list[str] | None:
        return [f"top_{self.options.k}_accuracy"]
