"""The shared body of the local ``evaluate`` modules for label-averaged scikit-learn scores
(precision, recall, f1): each module names its score function, its figure and its description.

Modules import this module, not the class: ``evaluate`` takes the first ``evaluate.Metric``
subclass it finds in a module's namespace as the module's metric, so the base class must not be
a name there. Imported only when a module loads, so ``evaluate`` stays off the CLI start-up path.
"""

from __future__ import annotations

from typing import Any, Callable, ClassVar

import datasets
import evaluate

ARGUMENTS = """
Args:
    predictions (list of int): predicted label ids.
    references (list of int): reference label ids.
    average (str): scikit-learn's average, "macro" by default.
Returns:
    {figure} (float): between 0 and 1.
"""


class AveragedScore(evaluate.Metric):
    """A scikit-learn score averaged over labels; a label never predicted scores 0."""

    figure: ClassVar[str] = ""
    description: ClassVar[str] = ""
    score: ClassVar[Callable[..., Any]]

    def _info(self) -> evaluate.MetricInfo:
        return evaluate.MetricInfo(
            description=self.description,
            citation="",
            inputs_description=ARGUMENTS.format(figure=self.figure),
            features=datasets.Features({"predictions": datasets.Value("int32"),
                                        "references": datasets.Value("int32")}),
        )

    def _compute(self, predictions: list[int], references: list[int],
                 average: str = "macro") -> dict[str, float]:
        value = type(self).score(references, predictions, average=average, zero_division=0)
        return {self.figure: float(value)}
