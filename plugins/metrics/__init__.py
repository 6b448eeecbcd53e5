"""Built-in metrics, each scoring predictions against reference examples.

Classification (``classification``): accuracy; precision, recall and f1 (``average``: macro, the
default, micro or weighted); ``per_class`` (every label's precision, recall, f1, support);
``confusion_matrix``; ``ece`` (expected calibration error); ``top_k_accuracy``.
Generation (``generation``): exact_match, bleu, chrf, rouge, perplexity, length.
Anything else: ``evaluate`` loads a hub module by name (online) or a local one by path (``hub``).

All but perplexity are local ``evaluate`` modules shipped in ``modules/<name>/<name>.py``: the hub's
``evaluate.load("accuracy")`` needs a network, a path does not. Perplexity is arithmetic on what the
causal-LM trainer's ``predict`` already measured. Every metric scores the examples that have a
target and returns ``{name: value}``, or ``{}`` when none has one (nothing to score is not a score
of 0).
"""

from __future__ import annotations

from tuneloop import hookimpl
from tuneloop.plugins.metrics.base import (MODULES_DIR, EvaluateModuleMetric, is_correct,
                                           load_module, scored, scored_pairs)
from tuneloop.plugins.metrics.classification import (F1, Accuracy, ConfusionMatrix,
                                                     ExpectedCalibrationError, LabelMetric,
                                                     PerClass, Precision, Recall, TopKAccuracy)
from tuneloop.plugins.metrics.generation import (Bleu, Chrf, ExactMatch, Length, Perplexity,
                                                 Rouge)
from tuneloop.plugins.metrics.hub import EvaluateModule

BUILTIN_METRICS = (Accuracy, Precision, Recall, F1, PerClass, ConfusionMatrix,
                   ExpectedCalibrationError, TopKAccuracy, ExactMatch, Bleu, Chrf, Rouge, Length,
                   Perplexity, EvaluateModule)

__all__ = [
    "MODULES_DIR", "BUILTIN_METRICS", "EvaluateModuleMetric", "LabelMetric", "load_module",
    "scored", "scored_pairs", "is_correct", "register_metrics",
    *(metric.__name__ for metric in BUILTIN_METRICS),
]


@hookimpl
def register_metrics(register):
    for metric in BUILTIN_METRICS:
        register(metric)
