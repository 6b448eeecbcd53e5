"""Cycles side by side: a cycle's figures beside its parent's and the best cycle's, and two
cycles compared example by example.

What ``tuneloop status``, ``tuneloop cycles show``, ``tuneloop compare`` and the HTML report read.
Every figure keeps its split (``validation.f1``, ``test.f1``, ``benchmark.lm_eval.x.acc``,
``human.approval_rate``), so a test figure is never mistaken for the one that selected the model.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from tuneloop.errors import TuneloopError

if TYPE_CHECKING:  # pragma: no cover
    from tuneloop.config import ProjectConfig
    from tuneloop.store import Store

SPLIT_ORDER = ("validation", "test", "benchmark", "human")
LOWER_IS_BETTER = {"loss", "perplexity", "ece", "empty_rate"}
COUNTS = {"ratings", "rated_outputs", "reviewers", "agreement_items"}  # neither better nor worse


def lower_is_better(name: str) -> bool:
    """Whether a smaller value of a figure is an improvement (losses, perplexity, calibration
    error, stderr of a benchmark)."""
    return name in LOWER_IS_BETTER or name.endswith(("_loss", "_stderr"))


def improvement(name: str, delta: float) -> float:
    """``delta`` signed so that positive is better, whatever the figure's direction; 0 for
    counts (more ratings is not a better model)."""
    if name in COUNTS or name.startswith("support["):
        return 0.0
    return -delta if lower_is_better(name) else delta


def final_figures(store: "Store", cycle_id: int) -> dict[str, float]:
    """A cycle's figures after training as ``{"validation.f1": 0.9, ...}``, in split order."""
    by_split = store.final_metrics(cycle_id)
    flat = {}
    for split in sorted(by_split, key=lambda s: (SPLIT_ORDER.index(s)
                                                 if s in SPLIT_ORDER else len(SPLIT_ORDER), s)):
        for name, value in by_split[split].items():
            flat[f"{split}.{name}"] = value
    return flat


def require_cycle(store: "Store", project: str, cycle_id: int) -> dict[str, Any]:
    cycle = store.cycle(cycle_id)
    if cycle is None or cycle["project"] != project:
        known = ", ".join(str(c["id"]) for c in store.cycles(project)) or "none yet"
        raise TuneloopError(f"project {project} has no cycle {cycle_id} (cycles: {known})")
    return cycle


def best_cycle(store: "Store", config: "ProjectConfig") -> dict[str, Any] | None:
    """The best cycle by the validation selection metric: among promoted cycles (what the gate
    calls best), or among finished ones when none was promoted."""
    metric = config.select_metric
    lower = lower_is_better(metric)
    promoted = {model["cycle_id"] for model in store.promoted_models(config.project)}
    done = [cycle for cycle in store.cycles(config.project) if cycle["status"] == "done"]
    candidates = [cycle for cycle in done if cycle["id"] in promoted] or done
    scored = [(store.final_metrics(cycle["id"]).get("validation", {}).get(metric), cycle)
              for cycle in candidates]
    scored = [(value, cycle) for value, cycle in scored if value is not None]
    if not scored:
        return None
    # the best value; among equals the earliest cycle (it got there first)
    return min(scored, key=lambda pair: (pair[0] if lower else -pair[0], pair[1]["id"]))[1]


@dataclass
class Beside:
    """One cycle's figures with its parent's and the best cycle's."""

    cycle: dict[str, Any]
    previous: dict[str, Any] | None
    best: dict[str, Any] | None
    rows: list[tuple[str, float | None, float | None, float | None]] = field(default_factory=list)


def metrics_beside(store: "Store", config: "ProjectConfig", cycle_id: int,
                   per_label: bool = False) -> Beside:
    """``cycle_id``'s figures beside the previous (parent) and best cycles' (``per_label``: also
    the figures of single labels, such as ``f1[billing]``)."""
    cycle = require_cycle(store, config.project, cycle_id)
    previous = store.cycle(cycle["parent_id"]) if cycle["parent_id"] else None
    best = best_cycle(store, config)
    mine = final_figures(store, cycle_id)
    theirs = final_figures(store, previous["id"]) if previous else {}
    top = final_figures(store, best["id"]) if best else {}
    names = list(dict.fromkeys([*mine, *theirs, *top]))
    if not per_label:
        names = [name for name in names if "[" not in name]
    rows = [(name, mine.get(name), theirs.get(name), top.get(name)) for name in names]
    return Beside(cycle, previous, best, rows)


# --------------------------------------------------------------------------------------------------
# Two cycles, example by example
# --------------------------------------------------------------------------------------------------


@dataclass
class ExampleChange:
    example_id: str
    input: str
    reference: str | None
    before: str
    after: str
    confidence_before: float | None
    confidence_after: float | None


@dataclass
class Comparison:
    """Cycle ``a`` against cycle ``b``: figure deltas (b - a) and what changed per example on
    one split. ``broken`` (right in a, wrong in b) is sorted most confident first: a model that
    is sure of a new mistake is the regression to look at."""

    a: int
    b: int
    split: str
    deltas: list[tuple[str, float | None, float | None]]
    fixed: list[ExampleChange]
    broken: list[ExampleChange]
    still_wrong: list[ExampleChange]
    still_right: int
    only_in_one: int

    def as_json(self, limit: int | None = None) -> dict[str, Any]:
        def rows(changes: list[ExampleChange]) -> list[dict[str, Any]]:
            return [vars(change) for change in changes[:limit]]

        return {
            "a": self.a, "b": self.b, "split": self.split,
            "deltas": [{"figure": name, "a": a, "b": b,
                        "delta": None if a is None or b is None else b - a}
                       for name, a, b in self.deltas],
            "counts": {"fixed": len(self.fixed), "broken": len(self.broken),
                       "still_wrong": len(self.still_wrong), "still_right": self.still_right,
                       "only_in_one": self.only_in_one},
            "broken": rows(self.broken), "fixed": rows(self.fixed),
            "still_wrong": rows(self.still_wrong),
        }


def compare_cycles(store: "Store", project: str, a: int, b: int,
                   split: str = "validation") -> Comparison:
    """Compare cycle ``a`` with cycle ``b`` on ``split`` (validation or test)."""
    from tuneloop.evaluation import stored_predictions

    if split not in ("validation", "test"):
        raise TuneloopError(f"--split must be validation or test, not {split}")
    for cycle_id in (a, b):
        require_cycle(store, project, cycle_id)
    first, second = final_figures(store, a), final_figures(store, b)
    deltas = [(name, first.get(name), second.get(name))
              for name in dict.fromkeys([*first, *second]) if "[" not in name]
    before = {row["example_id"]: row for row in stored_predictions(store, a, split)}
    after = {row["example_id"]: row for row in stored_predictions(store, b, split)}
    if not before or not after:
        missing = a if not before else b
        raise TuneloopError(f"cycle {missing} has no stored {split} predictions (cycles before "
                            f"this version of tuneloop, or no {split} split)")
    fixed, broken, still_wrong = [], [], []
    still_right = 0
    for example_id in before.keys() & after.keys():
        old, new = before[example_id], after[example_id]
        if old["correct"] is None or new["correct"] is None:
            continue
        change = ExampleChange(example_id, new["input"], new["reference"], old["output"],
                               new["output"], old["confidence"], new["confidence"])
        if old["correct"] and new["correct"]:
            still_right += 1
        elif new["correct"]:
            fixed.append(change)
        elif old["correct"]:
            broken.append(change)
        else:
            still_wrong.append(change)

    def surest(change: ExampleChange) -> float:
        value = change.confidence_after
        return -value if value is not None and math.isfinite(value) else 0.0

    broken.sort(key=lambda change: (surest(change), change.example_id))
    fixed.sort(key=lambda change: (-(change.confidence_before or 0.0), change.example_id))
    still_wrong.sort(key=lambda change: (surest(change), change.example_id))
    only_in_one = len(before.keys() ^ after.keys())
    return Comparison(a, b, split, deltas, fixed, broken, still_wrong, still_right, only_in_one)
