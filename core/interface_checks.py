"""Checks on what a plugin's component hands back, made where the cycle receives it.

A component that breaks its interface (a source yielding dicts, a sampler returning outputs it was
not given, a trainer answering out of order, a penalty that is a Python float) would otherwise
fail far from its cause: in the store, deep inside training, or not at all while the figures come
out quietly wrong. Each check here runs right where the cycle gets the value and raises a
``PluginError`` naming the plugin and the component, in the words of the interface it broke.

The checks are cheap (type tests and id comparisons, no copies), so they always run.
"""

from __future__ import annotations

import math
import os
from typing import Any, Sequence

from tuneloop.components import Example, Prediction, Rating, ReviewCandidate, TrainResult
from tuneloop.errors import PluginError, TuneloopError


def _owner(found: Any, kind: str, name: str) -> tuple[str, str]:
    """The plugin that registered a component, and the component as messages name it."""
    registry = found[kind]
    return registry.entry(name).plugin, f'{registry.label} "{name}"'


def _a(value: Any) -> str:
    """``a str``, ``an int``, ``None``: what a value is, for a message."""
    if value is None:
        return "None"
    name = type(value).__name__
    return f"{'an' if name[:1].lower() in 'aeiou' else 'a'} {name}"


def _is_number(value: Any) -> bool:
    if isinstance(value, bool):
        return False
    if isinstance(value, (int, float)):
        return True
    try:  # numpy and torch scalars
        float(value)
    except (TypeError, ValueError):
        return False
    return not hasattr(value, "__len__")


# --------------------------------------------------------------------------------------------------
# Examples: data sources, cleaners and augmenters (checked as they stream, in
# tuneloop.data_pipeline.checked), feedback policies
# --------------------------------------------------------------------------------------------------


def example_problem(value: Any) -> str | None:
    """Why ``value`` is not a usable ``Example``, or ``None`` when it is."""
    if not isinstance(value, Example):
        return f"{_a(value)}, not a tuneloop.Example"
    if not isinstance(value.input, str):
        return f"an Example whose input is {_a(value.input)}, not a str"
    if value.target is not None and not isinstance(value.target, str):
        return f"an Example whose target is {_a(value.target)}, not a str or None"
    weight = value.weight
    if not _is_number(weight) or not math.isfinite(float(weight)) or float(weight) < 0:
        return f"an Example whose weight is {weight!r}, not a finite number >= 0"
    if not isinstance(value.provenance, dict):
        return f"an Example whose provenance is {_a(value.provenance)}, not a dict"
    return None


def expect_feedback(found: Any, name: str, pairs: Sequence[Any],
                    ratings: Sequence[Rating]) -> None:
    """A feedback policy yields ``(rating id, Example)`` pairs, for ratings it was given."""
    given = {rating.id for rating in ratings}
    for number, pair in enumerate(pairs, 1):
        problem = None
        if not isinstance(pair, (tuple, list)) or len(pair) != 2:
            problem = f"{_a(pair)}, not a (rating id, tuneloop.Example) pair"
        elif not isinstance(pair[0], int) or isinstance(pair[0], bool):
            problem = f"a pair whose rating id is {_a(pair[0])}, not an int"
        elif pair[0] not in given:
            problem = f"rating id {pair[0]}, which is not one of the ratings it was given"
        else:
            problem = example_problem(pair[1])
        if problem:
            plugin, component = _owner(found, "feedback_policies", name)
            raise PluginError(plugin, f"{component} examples yielded {problem} (item {number})")


# --------------------------------------------------------------------------------------------------
# Trainers
# --------------------------------------------------------------------------------------------------


def expect_train_result(found: Any, name: str, result: Any) -> None:
    """``Trainer.train`` returns a ``TrainResult`` whose ``model_dir`` is a saved model's folder."""
    plugin, component = _owner(found, "trainers", name)
    if not isinstance(result, TrainResult):
        raise PluginError(plugin, f"{component} train returned {_a(result)}, "
                                  f"not a tuneloop.TrainResult")
    if not isinstance(result.model_dir, (str, os.PathLike)) or not os.path.isdir(result.model_dir):
        raise PluginError(plugin, f"{component} train returned model_dir {result.model_dir!r}, "
                                  f"which is not a folder: save the model and return its folder")


def expect_predictions(found: Any, name: str, predictions: Any,
                       examples: Sequence[Example]) -> None:
    """``Trainer.predict`` answers each example once, in order, with a ``Prediction``."""
    plugin, component = _owner(found, "trainers", name)

    def refuse(problem: str) -> PluginError:
        return PluginError(plugin, f"{component} predict {problem}")

    if not isinstance(predictions, (list, tuple)):
        raise refuse(f"returned {_a(predictions)}, not a list of tuneloop.Prediction")
    if len(predictions) != len(examples):
        raise refuse(f"returned {len(predictions)} predictions for {len(examples)} examples")
    for number, (prediction, example) in enumerate(zip(predictions, examples), 1):
        if not isinstance(prediction, Prediction):
            raise refuse(f"returned {_a(prediction)} as prediction {number}, "
                         f"not a tuneloop.Prediction")
        if prediction.example_id != example.id:
            raise refuse(f"returned prediction {number} for example {prediction.example_id!r}, "
                         f"but example {number} is {example.id!r}: answer in the examples' order")
        if not isinstance(prediction.output, str):
            raise refuse(f"returned prediction {number} with output {_a(prediction.output)}, "
                         f"not a str")
        if prediction.confidence is not None and not _is_number(prediction.confidence):
            raise refuse(f"returned prediction {number} with confidence "
                         f"{_a(prediction.confidence)}, not a number or None")
        for candidate in prediction.candidates:
            if not isinstance(candidate, Prediction) or not isinstance(candidate.output, str) \
                    or candidate.example_id != example.id:
                raise refuse(f"returned prediction {number} with a candidate that is not a "
                             f"tuneloop.Prediction with a str output for the same example")


# --------------------------------------------------------------------------------------------------
# Review samplers
# --------------------------------------------------------------------------------------------------


def expect_selection(found: Any, name: str, chosen: Any,
                     candidates: Sequence[ReviewCandidate], k: int) -> None:
    """A sampler returns at most ``k`` of the candidates it was given, each at most once."""
    plugin, component = _owner(found, "review_samplers", name)

    def refuse(problem: str) -> PluginError:
        return PluginError(plugin, f"{component} select {problem}")

    if not isinstance(chosen, (list, tuple)):
        raise refuse(f"returned {_a(chosen)}, not a list of the candidates it was given")
    if len(chosen) > k:
        raise refuse(f"returned {len(chosen)} candidates, more than k={k}")
    given = {candidate.output_id for candidate in candidates}
    seen: set[int] = set()
    for number, candidate in enumerate(chosen, 1):
        if not isinstance(candidate, ReviewCandidate):
            raise refuse(f"returned {_a(candidate)} (item {number}), not a "
                         f"tuneloop.ReviewCandidate")
        if candidate.output_id not in given:
            raise refuse(f"returned output {candidate.output_id} (item {number}), which is not "
                         f"one of the candidates it was given")
        if candidate.output_id in seen:
            raise refuse(f"returned output {candidate.output_id} twice")
        seen.add(candidate.output_id)


# --------------------------------------------------------------------------------------------------
# Metrics computed during training (the cycle checks its own calls in tuneloop.cycle)
# --------------------------------------------------------------------------------------------------


def metric_figures(metric: Any, predictions: list[Prediction],
                   references: list[Example]) -> dict[str, float]:
    """Call ``metric.compute`` for a trainer (validation during training) and check what comes
    back: a dict of numbers, returned as floats.

    Trainers call this instead of ``compute`` directly, so a metric that raises or returns a
    string is reported as the metric's plugin's fault, not as the trainer's AttributeError deep
    inside transformers' evaluation loop.
    """
    where = f'metric "{getattr(metric, "name", type(metric).__name__)}" compute'
    try:
        values = metric.compute(predictions, references)
    except TuneloopError:
        raise
    except Exception as error:  # the owner is looked up on the way to an error only
        raise PluginError(component_owner(metric), f"{where} (during training): "
                                                   f"{type(error).__name__}: {error}") from error
    if not isinstance(values, dict):
        raise PluginError(component_owner(metric), f"{where} returned {_a(values)} during "
                                                   f"training, not a dict of numbers")
    figures: dict[str, float] = {}
    for name, value in values.items():
        if not isinstance(name, str) or not _is_number(value):
            raise PluginError(component_owner(metric), f"{where} returned {name!r}: "
                                                       f"{_a(value)} during training, not a number")
        figures[name] = float(value)
    return figures


# --------------------------------------------------------------------------------------------------
# Regularizers: called by trainers, at every training step
# --------------------------------------------------------------------------------------------------


def regularizer_penalty(regularizer: Any, model: Any) -> Any:
    """Call ``regularizer.penalty(model)``; return a scalar tensor to add to the loss, or ``None``.

    Trainers call this instead of ``penalty`` directly, so an exception or a wrong value names
    the regularizer's plugin rather than the trainer's. A Python number is refused too: adding it
    to the loss changes the figure but has no gradient, so it would silently do nothing.
    """
    try:
        value = regularizer.penalty(model)
    except TuneloopError:
        raise
    except Exception as error:
        raise PluginError(component_owner(regularizer),
                          f'regularizer "{regularizer.name}" penalty: '
                          f"{type(error).__name__}: {error}") from error
    if value is None:
        return None
    import torch

    problem = None
    if not isinstance(value, torch.Tensor):
        problem = _a(value) + (" (a number has no gradient)" if _is_number(value) else "")
    elif value.ndim != 0:
        problem = f"a tensor of shape {tuple(value.shape)}"
    elif not value.is_floating_point():
        problem = f"a {value.dtype} tensor"
    else:
        parameter = next(iter(model.parameters()), None) if hasattr(model, "parameters") else None
        if parameter is not None and value.device != parameter.device:
            problem = f"a tensor on {value.device} while the model is on {parameter.device}"
    if problem:
        raise PluginError(component_owner(regularizer),
                          f'regularizer "{regularizer.name}" penalty returned {problem}, not a '
                          f"scalar float tensor on the model's device (or None for no term)")
    return value


def component_owner(component: Any) -> str:
    """The plugin that registered a component's class; its module when no plugin did.

    Used where a component is reached without the registry at hand (inside a trainer). The
    registries are rebuilt here, which is cheap, and only on the way to an error.
    """
    from tuneloop import registries

    cls = component if isinstance(component, type) else type(component)
    try:
        found = registries.build()
    except TuneloopError:
        found = None
    if found is not None:
        for registry in found.by_kind.values():
            for entry in registry:
                if entry.component is cls:
                    return entry.plugin
    return cls.__module__
