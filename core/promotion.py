"""The promotion gate: a cycle's model is promoted only if it passes every configured rule.

A rule compares one figure (``validation.f1``, ``test.accuracy``, ``human.approval_rate``) with a
number, with the best promoted cycle (``best``) or with the parent cycle (``previous``). The first
cycle has nothing to compare with and passes relative rules. Every decision keeps its reasons, so
``tuneloop models`` can say why a model was or was not promoted.
"""

from __future__ import annotations

import json
from typing import Any

from tuneloop.config import ProjectConfig, PromotionRule
from tuneloop.store import Store


def decide(config: ProjectConfig, store: Store, cycle_id: int,
           figures: dict[str, dict[str, float]]) -> tuple[bool, list[str]]:
    """Apply every rule; return whether the cycle is promoted and one reason per rule."""
    cycle = store.cycle(cycle_id) or {}
    reasons = []
    passed = True
    for rule in config.promotion_rules:
        ok, reason = check_rule(rule, store, config.project, cycle, figures)
        passed = passed and ok
        reasons.append(("pass: " if ok else "fail: ") + reason)
    return passed, reasons


def check_rule(rule: PromotionRule, store: Store, project: str, cycle: dict[str, Any],
               figures: dict[str, dict[str, float]]) -> tuple[bool, str]:
    split, _, name = rule.metric.partition(".")
    if split == "human":
        # experts rate a cycle after it finished: the freshest human figure is the parent's
        value = _stored_value(store, cycle.get("parent_id"), split, name)
    else:
        value = figures.get(split, {}).get(name)
    if value is None:
        return False, f"{rule.metric} was not measured"
    threshold, against = _threshold(rule, store, project, cycle, split, name)
    if threshold is None:
        return True, f"{rule.metric} = {value:.4f}; nothing to compare with ({against})"
    if rule.lower_is_better:
        ok = value <= threshold + rule.tolerance
        relation = "<=" if ok else ">"
    else:
        ok = value >= threshold - rule.tolerance
        relation = ">=" if ok else "<"
    tolerance = f" (tolerance {rule.tolerance:g})" if rule.tolerance else ""
    return ok, f"{rule.metric} = {value:.4f} {relation} {threshold:.4f}, {against}{tolerance}"


def _threshold(rule: PromotionRule, store: Store, project: str, cycle: dict[str, Any],
               split: str, name: str) -> tuple[float | None, str]:
    if isinstance(rule.at_least, (int, float)):
        return float(rule.at_least), "the configured threshold"
    if rule.at_least == "previous":
        parent = cycle.get("parent_id")
        if parent is None:
            return None, "first cycle"
        return _stored_value(store, parent, split, name), f"cycle {parent}"
    best: tuple[float, int] | None = None
    for model in store.promoted_models(project):
        value = json.loads(model["metrics"]).get(split, {}).get(name)
        if split == "human":
            value = _stored_value(store, model["cycle_id"], split, name)
        if value is None:
            continue
        better = best is None or (value < best[0] if rule.lower_is_better else value > best[0])
        if better:
            best = (value, model["cycle_id"])
    if best is None:
        return None, "no promoted model yet"
    return best[0], f"best promoted cycle {best[1]}"


def _stored_value(store: Store, cycle_id: int | None, split: str, name: str) -> float | None:
    if cycle_id is None:
        return None
    return store.final_metrics(cycle_id).get(split, {}).get(name)
