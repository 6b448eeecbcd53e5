"""What every built-in metric shares: loading the local ``evaluate`` modules, and pairing each
prediction with its reference.

``evaluate`` takes seconds to import, so it is imported on the first ``compute`` and each module is
loaded once per process.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any, ClassVar

from tuneloop import Example, Metric, Prediction

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


def scored(predictions: list[Prediction],
           references: list[Example]) -> list[tuple[Prediction, Example]]:
    """The (prediction, reference) pairs whose reference has a target.

    ``predictions[i]`` must answer ``references[i]``: a misaligned pair would score the wrong
    answer silently, so it is an error.
    """
    if len(predictions) != len(references):
        raise ValueError(f"{len(predictions)} predictions for {len(references)} references")
    pairs = []
    for prediction, reference in zip(predictions, references):
        if prediction.example_id != reference.id:
            raise ValueError(f"prediction for example {prediction.example_id} is paired with "
                             f"example {reference.id}: predictions must follow the references' "
                             f"order")
        if reference.target is not None:
            pairs.append((prediction, reference))
    return pairs


def scored_pairs(predictions: list[Prediction],
                 references: list[Example]) -> tuple[list[str], list[str]]:
    """The outputs and targets of the references that have a target (see ``scored``)."""
    pairs = scored(predictions, references)
    return ([prediction.output for prediction, _ in pairs],
            [str(reference.target) for _, reference in pairs])


def is_correct(prediction: Prediction, reference: Example) -> bool:
    """Right or wrong, as the cycle records it per example (``tuneloop.evaluation.is_correct``):
    the same label, or the same text ignoring case and runs of whitespace."""
    from tuneloop.evaluation import is_correct as same_answer

    return bool(same_answer(prediction.output, reference.target))


class EvaluateModuleMetric(Metric):
    """A metric computed by a local ``evaluate`` module (``module``, by default the metric's name).

    Subclasses shape the module's inputs (``module_inputs``), pass its options
    (``module_options``) and pick the figures from its result (``figures``).
    """

    module: ClassVar[str] = ""

    def compute(self, predictions: list[Prediction], references: list[Example]) -> dict[str, float]:
        outputs, targets = scored_pairs(predictions, references)
        if not targets:
            return {}
        result = load_module(self.module or self.name).compute(
            **self.module_inputs(outputs, targets), **self.module_options())
        return self.figures(result)

    def module_inputs(self, outputs: list[str], targets: list[str]) -> dict[str, list[Any]]:
        return {"predictions": outputs, "references": targets}

    def module_options(self) -> dict[str, Any]:
        return {}

    def figures(self, result: dict[str, Any]) -> dict[str, float]:
        return {self.name: float(result[self.module or self.name])}

    def figure_names(self) -> list[str] | None:
        """The figure ``figures`` gives by default: the metric's name (subclasses that override
        ``figures`` override this too)."""
        return [self.name]
