"""The promotion gate and the model registry's stages.

A cycle's model is promoted only if it passes every configured rule. A rule compares one figure
(``validation.f1``, ``human.approval_rate``, ``benchmark.lm_eval.tuneloop_capitals.acc``) with a
number, with the best promoted cycle (``best``), with the parent cycle (``previous``) or with the
base model (``base``: benchmark figures, the forgetting guard), less a tolerance; a ``*`` in the
name applies the rule to every figure it matches (``benchmark.lm_eval.*.acc``). The first cycle
has nothing to compare with and passes relative rules. Test figures never decide (the config
refuses a rule on them): they are reported, so they stay an honest estimate.

Every decision keeps its reasons, so ``tuneloop models`` can say why a model was or was not
promoted. A model that fails is kept (stage ``rejected``), and the next cycle continues from the
latest promoted one. ``promote_by_hand`` overrides the gate: it makes an earlier or rejected model
the current one and archives the promoted models of later cycles (a rollback).
"""

from __future__ import annotations

import json
from typing import Any

from tuneloop.config import ProjectConfig, PromotionRule
from tuneloop.errors import TuneloopError
from tuneloop.store import Store


def decide(config: ProjectConfig, store: Store, cycle_id: int,
           figures: dict[str, dict[str, float]],
           base: dict[str, float] | None = None) -> tuple[bool, list[str]]:
    """Apply every rule; return whether the cycle is promoted and one reason per rule.

    ``base`` holds the base model's benchmark figures, for rules with ``at_least: base``.
    """
    cycle = store.cycle(cycle_id) or {}
    reasons = []
    passed = True
    for rule in config.promotion_rules:
        ok, reason = check_rule(rule, store, config.project, cycle, figures, base or {})
        passed = passed and ok
        reasons.append(("pass: " if ok else "fail: ") + reason)
    return passed, reasons


def check_rule(rule: PromotionRule, store: Store, project: str, cycle: dict[str, Any],
               figures: dict[str, dict[str, float]],
               base: dict[str, float] | None = None) -> tuple[bool, str]:
    split, _, name = rule.metric.partition(".")
    if "*" in name:
        return _check_each(rule, store, project, cycle, figures, base)
    if split == "human":
        # experts rate a cycle after it finished: the freshest human figure is the parent's
        value = _stored_value(store, cycle.get("parent_id"), split, name)
    else:
        value = figures.get(split, {}).get(name)
    if value is None:
        return False, f"{rule.metric} was not measured"
    threshold, against = _threshold(rule, store, project, cycle, split, name, base or {})
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


def _check_each(rule: PromotionRule, store: Store, project: str, cycle: dict[str, Any],
                figures: dict[str, dict[str, float]],
                base: dict[str, float] | None) -> tuple[bool, str]:
    """A rule whose name has ``*`` (``benchmark.lm_eval.*.acc``: every lm-eval task) holds when
    it holds for every figure the pattern matches; the reason names those that failed."""
    from fnmatch import fnmatchcase

    split, _, pattern = rule.metric.partition(".")
    names = sorted(name for name in figures.get(split, {})
                   if fnmatchcase(name, pattern) and not name.endswith("_stderr"))
    if not names:
        return False, f"{rule.metric} matched no measured figure"
    results = [check_rule(rule.model_copy(update={"metric": f"{split}.{name}"}), store, project,
                          cycle, figures, base) for name in names]
    failed = [reason for ok, reason in results if not ok]
    if failed:
        return False, "; ".join(failed)
    return True, f"{rule.metric}: all {len(names)} pass ({'; '.join(r for _, r in results)})"


def _threshold(rule: PromotionRule, store: Store, project: str, cycle: dict[str, Any],
               split: str, name: str, base: dict[str, float]) -> tuple[float | None, str]:
    if isinstance(rule.at_least, (int, float)):
        return float(rule.at_least), "the configured threshold"
    if rule.at_least == "base":
        if name not in base:
            return None, "the base model was not measured"
        return base[name], "the base model"
    if rule.at_least == "previous":
        parent = cycle.get("parent_id")
        if split == "human" and parent is not None:
            # the value is already the parent's (experts rate a finished cycle): the previous
            # figure is the parent's parent's
            parent = (store.cycle(parent) or {}).get("parent_id")
        if parent is None:
            return None, "first cycle"
        value = _stored_value(store, parent, split, name)
        if value is None:
            return None, f"cycle {parent} has no {split}.{name}"
        return value, f"cycle {parent}"
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


# --------------------------------------------------------------------------------------------------
# The registry's current model, and promotion by hand
# --------------------------------------------------------------------------------------------------


def current_model(store: Store, project: str) -> dict[str, Any] | None:
    """The model the next cycle continues from (``start_from: promoted``) and ``tuneloop predict``
    uses by default: the latest promoted one."""
    promoted = store.promoted_models(project)
    return promoted[-1] if promoted else None


def promote_by_hand(store: Store, project: str, cycle_id: int, reason: str) -> list[int]:
    """Make ``cycle_id``'s model the current one, overriding the gate; return the cycles whose
    promoted models were archived because they came later (promoting an earlier model is a
    rollback, and the next cycle must continue from it)."""
    model = store.one("SELECT m.*, c.project, c.status FROM models m JOIN cycles c "
                      "ON c.id = m.cycle_id WHERE m.cycle_id = ?", [cycle_id])
    if model is None or model["project"] != project:
        raise TuneloopError(f"cycle {cycle_id} of project {project} has no model "
                            f"(see tuneloop models list)")
    if model["status"] != "done":
        raise TuneloopError(f"cycle {cycle_id} is {model['status']}: only a finished cycle's "
                            f"model can be promoted")
    current = current_model(store, project)
    if current is not None and current["cycle_id"] == cycle_id:
        raise TuneloopError(f"cycle {cycle_id}'s model is already the current model")
    later = [other["cycle_id"] for other in store.promoted_models(project)
             if other["cycle_id"] > cycle_id]
    with store.write() as db:
        for other in later:
            _append_reason(db, other, "archived: cycle "
                           f"{cycle_id} was promoted by hand", stage="archived")
        _append_reason(db, cycle_id, f"promoted by hand: {reason}", stage="promoted")
    return later


def _append_reason(db: Any, cycle_id: int, reason: str, stage: str) -> None:
    db.execute("UPDATE models SET stage = ?, reasons = json_insert(COALESCE(reasons, '[]'), "
               "'$[#]', ?) WHERE cycle_id = ?", [stage, reason, cycle_id])
