"""Every hook a tuneloop plugin can implement.

Plugins write ``from tuneloop import hookimpl`` and implement any of these by name, with any subset
of the parameters. All hooks are called with keyword arguments. ``docs/plugin_hooks.md`` documents
each one under its exact signature; ``tests/test_docs.py`` fails when one is missing there.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Callable

import pluggy

if TYPE_CHECKING:  # pragma: no cover
    import click

    from tuneloop.components import Component, Example, Prediction, TrainResult
    from tuneloop.context import CycleContext

hookspec = pluggy.HookspecMarker("tuneloop")
hookimpl = pluggy.HookimplMarker("tuneloop")

Register = Callable[[type["Component"]], None]


# --------------------------------------------------------------------------------------------------
# Registration hooks: called each time the registries are built (once per command or cycle),
# each with a ``register(component_class)`` callable.
# --------------------------------------------------------------------------------------------------


@hookspec
def register_data_sources(register: Register) -> None:
    """Register data sources (``tuneloop.DataSource`` subclasses) that yield examples.

    :param register: call with each component class; duplicates are rejected naming both plugins.
    """


@hookspec
def register_cleaners(register: Register) -> None:
    """Register cleaners (``tuneloop.Cleaner`` subclasses) that drop or fix examples.

    :param register: call with each component class.
    """


@hookspec
def register_augmenters(register: Register) -> None:
    """Register augmenters (``tuneloop.Augmenter`` subclasses) that add training variants.

    :param register: call with each component class.
    """


@hookspec
def register_regularizers(register: Register) -> None:
    """Register regularizers (``tuneloop.Regularizer`` subclasses) that shape training.

    :param register: call with each component class.
    """


@hookspec
def register_trainers(register: Register) -> None:
    """Register trainers (``tuneloop.Trainer`` subclasses) that finetune and predict.

    :param register: call with each component class.
    """


@hookspec
def register_metrics(register: Register) -> None:
    """Register metrics (``tuneloop.Metric`` subclasses) that score predictions.

    :param register: call with each component class.
    """


@hookspec
def register_feedback_policies(register: Register) -> None:
    """Register feedback policies (``tuneloop.FeedbackPolicy`` subclasses): ratings to examples.

    :param register: call with each component class.
    """


@hookspec
def register_review_samplers(register: Register) -> None:
    """Register review samplers (``tuneloop.ReviewSampler`` subclasses) that order the queue.

    :param register: call with each component class.
    """


@hookspec
def register_commands(cli: "click.Group") -> None:
    """Add commands to the ``tuneloop`` CLI.

    :param cli: the top-level click group; use ``@cli.command()`` or ``cli.add_command``.
    """


# --------------------------------------------------------------------------------------------------
# Lifecycle hooks: fired around every stage of a cycle. They watch or extend; they own no step.
# An exception raised here fails the cycle with an error naming the plugin and the hook.
# --------------------------------------------------------------------------------------------------


@hookspec
def cycle_started(cycle: "CycleContext") -> None:
    """A cycle row exists with status ``running``; training has not started.

    Data is read, cleaned and split before the row is written, so bad input never leaves a
    cycle behind; ``data_prepared`` follows immediately with the prepared splits.

    :param cycle: the cycle's context (id, config, store, run folder).
    """


@hookspec
def data_prepared(cycle: "CycleContext", splits: dict[str, list["Example"]]) -> None:
    """Data is loaded, cleaned, split, augmented and enriched with feedback; training comes next.

    :param cycle: the cycle's context.
    :param splits: examples by split name (``train``, ``validation``, ``test``, ``review``).
    """


@hookspec
def training_log(cycle: "CycleContext", step: int, logs: dict[str, float]) -> None:
    """Training logged figures (loss, learning rate, validation metrics) at ``step``.

    :param cycle: the cycle's context.
    :param step: the optimizer step the figures belong to.
    :param logs: figure name to value, as the trainer logged them.
    """


@hookspec
def training_finished(cycle: "CycleContext", result: "TrainResult") -> None:
    """The trainer returned; the best model is saved at ``result.model_dir``.

    :param cycle: the cycle's context; its status is now ``trained``.
    :param result: the trainer's result.
    """


@hookspec
def evaluation_finished(cycle: "CycleContext", metrics: dict[str, dict[str, float]]) -> None:
    """Metrics were computed on validation and test and stored.

    :param cycle: the cycle's context; its status is now ``evaluated``.
    :param metrics: split name to ``{metric: value}``.
    """


@hookspec
def outputs_stored(cycle: "CycleContext", predictions: list["Prediction"]) -> None:
    """The model's outputs on the review split are in the store and the review queue is filled.

    :param cycle: the cycle's context.
    :param predictions: the stored predictions, in review-split order.
    """


@hookspec
def cycle_finished(cycle: "CycleContext", promoted: bool) -> None:
    """The cycle is ``done``; the promotion gate has decided.

    :param cycle: the cycle's context.
    :param promoted: whether this cycle's model was promoted.
    """


@hookspec
def cycle_failed(cycle: "CycleContext", error: BaseException) -> None:
    """The cycle failed; the error propagates after this hook returns. The row is ``failed``.

    :param cycle: the cycle's context.
    :param error: the exception that ended the cycle.
    """


HOOK_NAMES: tuple[str, ...] = tuple(
    name for name, value in list(globals().items())
    if callable(value) and hasattr(value, "tuneloop_spec")
)
REGISTRATION_HOOKS: dict[str, str] = {
    "register_data_sources": "data_sources",
    "register_cleaners": "cleaners",
    "register_augmenters": "augmenters",
    "register_regularizers": "regularizers",
    "register_trainers": "trainers",
    "register_metrics": "metrics",
    "register_feedback_policies": "feedback_policies",
    "register_review_samplers": "review_samplers",
}
