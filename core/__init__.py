"""tuneloop: evaluation-driven finetuning with a human feedback loop.

The public API for plugin authors: ``hookimpl``, the component base classes, the records they
exchange, and the errors to raise. Importing this module never imports torch, transformers or
evaluate.
"""

from tuneloop.components import (
    Augmenter,
    Cleaner,
    Component,
    DataSource,
    Example,
    FeedbackPolicy,
    Metric,
    Options,
    Prediction,
    Rating,
    Regularizer,
    ReviewCandidate,
    ReviewSampler,
    SourceOptions,
    Trainer,
    TrainResult,
)
from tuneloop.errors import ConfigError, DataError, PluginError, TuneloopError
from tuneloop.hookspecs import hookimpl

__all__ = [
    "Augmenter", "Cleaner", "Component", "ConfigError", "DataError", "DataSource", "Example",
    "FeedbackPolicy", "Metric", "Options", "PluginError", "Prediction", "Rating", "Regularizer",
    "ReviewCandidate", "ReviewSampler", "SourceOptions", "Trainer", "TrainResult", "TuneloopError",
    "hookimpl",
]
