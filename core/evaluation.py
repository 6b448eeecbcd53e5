"""The records the evaluation stage keeps beyond the figures: per-example predictions, and the
benchmark figures of the cycle's model and of the base model.

- ``record_predictions``: every validation and test answer, marked with its split, so
  ``tuneloop compare`` can say which examples a cycle fixed or broke and the report can draw the
  confusion matrix and calibration of any cycle without loading a model again.
- ``measure_model``: metrics that measure the model itself (``Metric.measures_model``, e.g.
  ``lm_eval``) on the cycle's saved model; the figures go to the split ``benchmark``.
- ``measure_base_model``: the same metrics on the base model, once per project, base model and
  metric setup (its options), kept in ``base_metrics``: the reference a forgetting guard compares
  every cycle with (``at_least: base``).

Nothing here imports torch or transformers: the metrics do, inside ``measure``.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any, Sequence

from tuneloop.components import Example, Metric, Prediction
from tuneloop.errors import PluginError
from tuneloop.plugin_manager import blame

if TYPE_CHECKING:  # pragma: no cover
    from tuneloop.context import CycleContext
    from tuneloop.store import Store

BENCHMARK = "benchmark"


def is_correct(output: str, reference: str | None) -> bool | None:
    """Right or wrong: the same label, or the same text ignoring case and runs of whitespace;
    ``None`` without a reference."""
    if reference is None:
        return None
    return " ".join(output.lower().split()) == " ".join(reference.lower().split())


# --------------------------------------------------------------------------------------------------
# Per-example predictions
# --------------------------------------------------------------------------------------------------


def record_predictions(store: "Store", cycle_id: int, split: str, examples: Sequence[Example],
                       predictions: Sequence[Prediction]) -> None:
    """Keep each answer on a validation or test example, with whether it was right."""
    rows = []
    for example, prediction in zip(examples, predictions, strict=True):
        correct = is_correct(prediction.output, example.target)
        rows.append({
            "cycle_id": cycle_id, "split": split, "example_id": example.id,
            "input": example.input, "reference": example.target, "output": prediction.output,
            "confidence": prediction.confidence,
            "correct": None if correct is None else int(correct),
            "extra": json.dumps(prediction.extra) if prediction.extra else None,
        })
    with store.write() as db:
        db["predictions"].insert_all(rows, replace=True, batch_size=1000)


def stored_predictions(store: "Store", cycle_id: int, split: str) -> list[dict[str, Any]]:
    return store.query("SELECT * FROM predictions WHERE cycle_id = ? AND split = ? ORDER BY id",
                       [cycle_id, split])


# --------------------------------------------------------------------------------------------------
# Benchmarks: metrics that measure the model itself
# --------------------------------------------------------------------------------------------------


def measure_model(found: Any, metrics: Sequence[Metric], model_dir: str,
                  context: "CycleContext") -> dict[str, float]:
    """Every model metric's figures on the model in ``model_dir``; a failure names the plugin."""
    figures: dict[str, float] = {}
    for metric in metrics:
        plugin = found["metrics"].entry(metric.name).plugin
        with blame(plugin, f'metric "{metric.name}" measure'):
            values = metric.measure(model_dir, context)
        figures.update(numbers(plugin, metric.name, values))
    return figures


def measure_base_model(found: Any, metrics: Sequence[Metric],
                       context: "CycleContext") -> dict[str, float]:
    """The base model's figures for ``metrics``: measured the first time a project needs them
    (per base model and metric setup), read from ``base_metrics`` after that."""
    store = context.store
    assert store is not None
    config = context.config
    model = config.model_location()
    figures: dict[str, float] = {}
    for metric in metrics:
        setup = metric_setup(metric)
        key = [config.project, model, metric.name, setup]
        rows = store.query("SELECT name, value FROM base_metrics WHERE project = ? AND model = ? "
                           "AND metric = ? AND setup = ? ORDER BY id", key)
        if not rows:
            measured = measure_model(found, [metric], model, context)
            from tuneloop.store import now

            created = now()
            with store.write() as db:
                db["base_metrics"].insert_all(
                    [{"project": config.project, "model": model, "metric": metric.name,
                      "setup": setup, "name": name, "value": value, "created_at": created}
                     for name, value in measured.items()], ignore=True)
            rows = [{"name": name, "value": value} for name, value in measured.items()]
        figures.update({row["name"]: row["value"] for row in rows})
    return figures


def base_figures(store: "Store", project: str, model: str | None = None) -> dict[str, float]:
    """The base model's benchmark figures as stored (the latest measurement of each name)."""
    sql = "SELECT name, value FROM base_metrics WHERE project = ?"
    params: list[Any] = [project]
    if model is not None:
        sql += " AND model = ?"
        params.append(model)
    return {row["name"]: row["value"] for row in store.query(sql + " ORDER BY id", params)}


def metric_setup(metric: Metric) -> str:
    """A metric's options as canonical JSON: the same setup measures the same thing."""
    return json.dumps(metric.options.model_dump(mode="json"), sort_keys=True)


def numbers(plugin: str, metric: str, values: Any) -> dict[str, float]:
    """A metric's result as ``{name: float}``, or an error naming the plugin."""
    if not isinstance(values, dict):
        raise PluginError(plugin, f'metric "{metric}" returned {type(values).__name__}, '
                                  f"not a dict of numbers")
    figures = {}
    for name, value in values.items():
        if isinstance(value, bool):
            raise PluginError(plugin, f'metric "{metric}" value {name!r} is bool, not a number')
        try:
            figures[str(name)] = float(value)
        except (TypeError, ValueError):
            raise PluginError(plugin, f'metric "{metric}" value {name!r} is '
                                      f"{type(value).__name__}, not a number") from None
    return figures
