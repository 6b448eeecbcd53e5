"""Built-in metrics: accuracy, precision, recall, f1 (macro), exact_match and perplexity.

All but perplexity are local ``evaluate`` modules shipped in ``modules/<name>/<name>.py``: the hub's
``evaluate.load("accuracy")`` needs a network, a path does not. ``evaluate`` takes seconds to
import, so it is imported on the first ``compute`` and each module is loaded once per process.
Perplexity is arithmetic on what the causal-LM trainer's ``predict`` already measured.

Every metric scores the examples that have a target and returns ``{name: value}``, or ``{}`` when
none has one (nothing to score is not a score of 0).
"""

from __future__ import annotations

import math
import threading
from pathlib import Path
from typing import Any

from tuneloop import Example, Metric, Prediction, hookimpl

MODULES_DIR = Path(__file__).parent / "modules"

_modules: dict[str, Any] = {}
_modules_lock = threading.Lock()


def load_module(name: str) -> Any:
    """The local ``evaluate`` module ``modules/<name>``, loaded on first use and then reused."""
    with _modules_lock:
        if name not in _modules:
            import evaluate

            _modules[name] = evaluate.load(str(MODULES_DIR / name), keep_in_memory=True)
        return _modules[name]


def scored_pairs(predictions: list[Prediction], references: list[Example]) -> tuple[list[str],
                                                                                      list[str]]:
    """The outputs and targets of the references that have a target.

    ``predictions[i]`` must answer ``references[i]``: a misaligned pair would score the wrong
    answer silently, so it is an error.
    """
    if len(predictions) != len(references):
        raise ValueError(f"{len(predictions)} predictions for {len(references)} references")
    outputs, targets = [], []
    for prediction, reference in zip(predictions, references):
        if prediction.example_id != reference.id:
            raise ValueError(f"prediction for example {prediction.example_id} is paired with "
                             f"example {reference.id}: predictions must follow the references' "
                             f"order")
        if reference.target is not None:
            outputs.append(prediction.output)
            targets.append(reference.target)
    return outputs, targets


class EvaluateModuleMetric(Metric):
    """A metric computed by the local ``evaluate`` module of the same name."""

    def compute(self, predictions: list[Prediction], references: list[Example]) -> dict[str, float]:
        outputs, targets = scored_pairs(predictions, references)
        if not targets:
            return {}
        result = load_module(self.name).compute(**self.module_inputs(outputs, targets))
        return {self.name: float(result[self.name])}

    def module_inputs(self, outputs: list[str], targets: list[str]) -> dict[str, list[Any]]:
        return {"predictions": outputs, "references": targets}


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


class Precision(LabelMetric):
    """Macro-averaged precision: per label, the fraction of its predictions that were right."""

    name = "precision"


class Recall(LabelMetric):
    """Macro-averaged recall: per label, the fraction of its examples that were found."""

    name = "recall"


class F1(LabelMetric):
    """Macro-averaged F1: per label, the harmonic mean of precision and recall."""

    name = "f1"


class ExactMatch(EvaluateModuleMetric):
    """The fraction of outputs equal to the reference, ignoring case and whitespace."""

    name = "exact_match"
    tasks = ("classification", "causal-lm")


class Perplexity(Metric):
    """``exp(total nll / total tokens)`` of the reference completions, from ``Prediction.extra``.

    Token-weighted over the whole split (not a mean of per-example perplexities), so it equals
    ``exp`` of the validation loss the trainer reports on the same examples.
    """

    name = "perplexity"
    tasks = ("causal-lm",)
    higher_is_better = False

    def compute(self, predictions: list[Prediction], references: list[Example]) -> dict[str, float]:
        scored_pairs(predictions, references)  # alignment check
        measured = [prediction.extra for prediction in predictions
                    if "nll" in prediction.extra and "tokens" in prediction.extra]
        tokens = sum(extra["tokens"] for extra in measured)
        if not tokens:
            return {}
        mean_nll = sum(extra["nll"] for extra in measured) / tokens
        try:
            return {"perplexity": math.exp(mean_nll)}
        except OverflowError:
            return {"perplexity": math.inf}


@hookimpl
def register_metrics(register):
    for metric in (Accuracy, Precision, Recall, F1, ExactMatch, Perplexity):
        register(metric)
