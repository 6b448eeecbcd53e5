"""``evaluate``: any ``evaluate`` module by name (from the Hugging Face hub, when online) or path.

The built-in metrics ship as local modules because ``evaluate.load("accuracy")`` needs the hub.
This metric is the way to everything else the hub has (``bertscore``, ``meteor``, ``mauve``...):

    evaluation:
      metrics: [exact_match, {name: evaluate, module: meteor}]

Offline, a hub name fails with one line saying so, instead of evaluate's "doesn't exist on the
Hugging Face Hub". A local folder or ``.py`` file works offline.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path
from typing import Any

from pydantic import Field

from tuneloop import Example, Metric, Options, Prediction, TuneloopError
from tuneloop.plugins.metrics.base import scored_pairs

_loaded: dict[str, Any] = {}
_lock = threading.Lock()


class EvaluateOptions(Options):
    module: str = Field(min_length=1,
                        description="a hub module name (e.g. meteor), or a local folder or .py")
    keys: list[str] | None = Field(
        None, description="which numeric results to keep (default: every numeric one)")
    labels_as_ids: bool = Field(
        False, description="number the labels (for modules whose inputs are class ids)")
    options: dict[str, Any] = Field(default_factory=dict,
                                    description="keyword arguments for the module's compute")


class EvaluateModule(Metric):
    """Runs an ``evaluate`` module; each numeric result becomes a figure named ``<module>.<key>``
    (``meteor.meteor``), lists are averaged (``bertscore.f1``)."""

    name = "evaluate"
    Options = EvaluateOptions

    def compute(self, predictions: list[Prediction], references: list[Example]) -> dict[str, float]:
        outputs, targets = scored_pairs(predictions, references)
        if not targets:
            return {}
        inputs: dict[str, list[Any]] = {"predictions": outputs, "references": targets}
        if self.options.labels_as_ids:
            ids = {label: n for n, label in enumerate(sorted(set(outputs) | set(targets)))}
            inputs = {key: [ids[value] for value in values] for key, values in inputs.items()}
        result = load_evaluate_module(self.options.module).compute(**inputs, **self.options.options)
        prefix = Path(self.options.module).stem if is_local(self.options.module) \
            else self.options.module.rsplit("/", 1)[-1]
        figures = {}
        for key, value in (result or {}).items():
            if self.options.keys is not None and key not in self.options.keys:
                continue
            number = as_number(value)
            if number is not None:
                figures[f"{prefix}.{key}"] = number
        missing = sorted(set(self.options.keys or []) - {name.split(".", 1)[1] for name in figures})
        if missing:
            gave = ", ".join(result or {}) or "none"
            raise TuneloopError(f'metric "evaluate": module {self.options.module} gave no numeric '
                                f"{', '.join(missing)} (it gave {gave})")
        return figures


def as_number(value: Any) -> float | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        return float(value)
    if isinstance(value, (list, tuple)) and value and all(
            isinstance(item, (int, float)) and not isinstance(item, bool) for item in value):
        return sum(value) / len(value)
    try:
        return float(value)  # numpy scalars
    except (TypeError, ValueError):
        return None


def is_local(module: str) -> bool:
    """A path (as ``evaluate.load`` sees it: a ``.py`` file or an existing folder), not a hub
    name."""
    return module.endswith(".py") or Path(module).exists()


def hub_is_offline() -> bool:
    truthy = ("1", "ON", "YES", "TRUE")
    return any(os.environ.get(name, "").upper() in truthy
               for name in ("HF_HUB_OFFLINE", "HF_EVALUATE_OFFLINE", "TRANSFORMERS_OFFLINE"))


def load_evaluate_module(module: str) -> Any:
    """``evaluate.load(module)`` once per process, with errors a person can act on."""
    with _lock:
        if module in _loaded:
            return _loaded[module]
        if not is_local(module) and hub_is_offline():
            raise TuneloopError(f'metric "evaluate": module "{module}" is on the Hugging Face hub '
                                f"and this machine is offline (HF_HUB_OFFLINE is set); use a "
                                f"built-in metric or a local module folder")
        import evaluate

        try:
            loaded = evaluate.load(module, keep_in_memory=True)
        except (FileNotFoundError, ConnectionError, OSError) as error:
            if is_local(module):
                raise TuneloopError(f'metric "evaluate": cannot load local module {module}: '
                                    f"{error}") from error
            raise TuneloopError(f'metric "evaluate": cannot load "{module}" from the Hugging Face '
                                f"hub: no network, or no such module ({error})") from error
        _loaded[module] = loaded
        return loaded
