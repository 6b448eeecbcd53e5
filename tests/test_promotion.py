"""The promotion gate and the model registry: rules against numbers, the best promoted cycle, the
previous cycle and the base model; a failed gate keeps the previous model current; promotion by
hand rolls back."""

from __future__ import annotations

import json

import pytest
from pydantic import ValidationError

from projects import classification_project, vocabulary_texts
from tuneloop.config import PromotionRule, load_config
from tuneloop.cycle import choose_start_model, run_cycle
from tuneloop.errors import TuneloopError
from tuneloop.promotion import check_rule, current_model, decide, promote_by_hand
from tuneloop.store import Store


@pytest.fixture
def store(tmp_path):
    with Store(tmp_path / "gate.db") as opened:
        yield opened


def add_cycle(store: Store, figures: dict, stage: str | None = None,
              parent: int | None = None) -> int:
    """A finished cycle with stored figures and, if ``stage``, a registered model."""
    cycle = store.create_cycle(project="p", task="classification", seed=1, config={}, plugins=[],
                               base_model="base", start_model="base", parent_id=parent)
    for split, values in figures.items():
        store.add_metrics(cycle, split, values)
    store.update_cycle(cycle, status="done", model_path=f"/models/{cycle}")
    if stage:
        store.add_model(cycle, f"/models/{cycle}", figures, stage, [])
    return cycle


def rule(**fields) -> PromotionRule:
    return PromotionRule.model_validate(fields)


def test_a_number_with_tolerance(store):
    cycle = store.cycle(add_cycle(store, {}))
    figures = {"validation": {"f1": 0.78}}
    assert check_rule(rule(metric="validation.f1", at_least=0.8), store, "p", cycle, figures) == \
        (False, "validation.f1 = 0.7800 < 0.8000, the configured threshold")
    assert check_rule(rule(metric="validation.f1", at_least=0.8, tolerance=0.03), store, "p",
                      cycle, figures)[0]
    loss = rule(metric="validation.loss", at_least=0.5, lower_is_better=True)
    assert check_rule(loss, store, "p", cycle, {"validation": {"loss": 0.4}})[0]
    assert not check_rule(loss, store, "p", cycle, {"validation": {"loss": 0.6}})[0]
    assert check_rule(loss, store, "p", cycle, {}) == (False, "validation.loss was not measured")


def test_best_is_the_best_promoted_cycle_not_the_best_rejected_one(store):
    add_cycle(store, {"validation": {"f1": 0.7}}, "promoted")
    add_cycle(store, {"validation": {"f1": 0.9}}, "rejected")  # never promoted: does not count
    third = add_cycle(store, {"validation": {"f1": 0.8}}, "promoted")
    cycle = store.cycle(add_cycle(store, {}))
    ok, reason = check_rule(rule(metric="validation.f1"), store, "p", cycle,
                            {"validation": {"f1": 0.79}})
    assert not ok and reason == f"validation.f1 = 0.7900 < 0.8000, best promoted cycle {third}"


def test_previous_is_the_parent_cycle_and_human_figures_are_the_parents(store):
    grandparent = add_cycle(store, {"human": {"approval_rate": 0.6}}, "promoted")
    parent = add_cycle(store, {"human": {"approval_rate": 0.5}}, "promoted", parent=grandparent)
    cycle = store.cycle(add_cycle(store, {}, parent=parent))
    # experts rate a cycle after it is done: the gate reads the parent's figure, against its own
    # parent's (human approval did not drop below the previous cycle's)
    ok, reason = check_rule(rule(metric="human.approval_rate", at_least="previous"), store, "p",
                            cycle, {})
    assert not ok and reason == f"human.approval_rate = 0.5000 < 0.6000, cycle {grandparent}"
    unrated = store.cycle(add_cycle(store, {}, parent=add_cycle(store, {}, parent=parent)))
    assert check_rule(rule(metric="human.approval_rate", at_least="previous"), store, "p",
                      unrated, {}) == (False, "human.approval_rate was not measured")
    first = store.cycle(grandparent)
    assert check_rule(rule(metric="validation.f1", at_least="previous"), store, "p", first,
                      {"validation": {"f1": 0.1}}) == \
        (True, "validation.f1 = 0.1000; nothing to compare with (first cycle)")


def test_base_compares_benchmarks_with_the_base_model(store):
    cycle = store.cycle(add_cycle(store, {}))
    guard = rule(metric="benchmark.lm_eval.capitals.acc", at_least="base", tolerance=0.02)
    figures = {"benchmark": {"lm_eval.capitals.acc": 0.575}}
    base = {"lm_eval.capitals.acc": 0.6}
    assert check_rule(guard, store, "p", cycle, figures, base) == (
        False, "benchmark.lm_eval.capitals.acc = 0.5750 < 0.6000, the base model "
               "(tolerance 0.02)")
    figures["benchmark"]["lm_eval.capitals.acc"] = 0.585
    assert check_rule(guard, store, "p", cycle, figures, base)[0]
    assert check_rule(guard, store, "p", cycle, figures, {}) == (
        True, "benchmark.lm_eval.capitals.acc = 0.5850; nothing to compare with (the base "
              "model was not measured)")


def test_decide_needs_every_rule(tmp_path, store):
    config = load_config(classification_project(tmp_path, "unused", promotion={"rules": [
        {"metric": "validation.f1", "at_least": 0.5},
        {"metric": "benchmark.lm_eval.capitals.acc", "at_least": "base"}]}),
        check_components=False)
    config.project = "p"
    cycle = add_cycle(store, {})
    passed, reasons = decide(config, store, cycle, {"validation": {"f1": 0.7},
                                                    "benchmark": {"lm_eval.capitals.acc": 0.4}},
                             base={"lm_eval.capitals.acc": 0.5})
    assert not passed
    assert [reason.split(":")[0] for reason in reasons] == ["pass", "fail"]


@pytest.mark.parametrize("fields, message", [
    ({"metric": "test.f1"}, "the test split is reported, never used to decide"),
    ({"metric": "validation.f1", "at_least": "base"}, "at_least: base compares with the base"),
    ({"metric": "training.loss"}, "metric must be <split>.<name>"),
    ({"metric": "validation"}, "metric must be <split>.<name>"),
])
def test_rules_that_the_config_refuses(fields, message):
    with pytest.raises(ValidationError, match=message):
        PromotionRule.model_validate(fields)


def test_a_test_rule_in_a_config_file_names_its_line(tmp_path):
    from tuneloop.errors import ConfigError

    path = classification_project(tmp_path, "unused",
                                  promotion={"rules": [{"metric": "test.accuracy"}]})
    with pytest.raises(ConfigError, match=r"line \d+: promotion.rules\[0\].metric: the test "
                                          r"split is reported"):
        load_config(path, check_components=False)


# --------------------------------------------------------------------------------------------------
# The registry across real cycles
# --------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def bert_dir(tmp_path_factory):
    from tuneloop.testing import tiny_bert

    return tiny_bert(tmp_path_factory.mktemp("bert"), vocabulary_texts())


def test_a_failed_gate_keeps_the_previous_model_current(tmp_path, bert_dir):
    path = classification_project(tmp_path, bert_dir, training={"epochs": 1})
    first = run_cycle(load_config(path), quiet=True)
    assert first.promoted
    # a stricter gate the next cycle cannot pass
    strict = load_config(classification_project(tmp_path, bert_dir, training={"epochs": 1},
                                                promotion={"rules": [
                                                    {"metric": "validation.f1", "at_least": 1.5}]}))
    second = run_cycle(strict, quiet=True)
    assert not second.promoted and second.status == "done"
    assert second.reasons == [f"fail: validation.f1 = {second.metrics['validation']['f1']:.4f} "
                              f"< 1.5000, the configured threshold"]
    with Store(strict.database_path) as store:
        stages = {model["cycle_id"]: model["stage"] for model in store.models("toy")}
        assert stages == {first.cycle_id: "promoted", second.cycle_id: "rejected"}
        assert json.loads(store.one("SELECT reasons FROM models WHERE cycle_id = ?",
                                    [second.cycle_id])["reasons"]) == second.reasons
        assert current_model(store, "toy")["cycle_id"] == first.cycle_id
        # the rejected model is kept, and the next cycle continues from the promoted one
        assert second.model_path and (tmp_path / "runs" / f"cycle-{second.cycle_id}").exists()
        assert choose_start_model(strict, store) == first.model_path
    third = run_cycle(strict, quiet=True)
    with Store(strict.database_path) as store:
        assert store.cycle(third.cycle_id)["start_model"] == first.model_path


def test_promotion_by_hand_rolls_back(store):
    first = add_cycle(store, {"validation": {"f1": 0.5}}, "promoted")
    second = add_cycle(store, {"validation": {"f1": 0.6}}, "rejected")
    third = add_cycle(store, {"validation": {"f1": 0.7}}, "promoted")
    assert current_model(store, "p")["cycle_id"] == third
    assert promote_by_hand(store, "p", first, "cycle 3 answers rudely") == [third]
    stages = {model["cycle_id"]: model["stage"] for model in store.models("p")}
    assert stages == {first: "promoted", second: "rejected", third: "archived"}
    assert current_model(store, "p")["cycle_id"] == first
    reasons = json.loads(store.one("SELECT reasons FROM models WHERE cycle_id = ?",
                                   [first])["reasons"])
    assert reasons[-1] == "promoted by hand: cycle 3 answers rudely"
    # a rejected later model can be promoted too; nothing later to archive
    assert promote_by_hand(store, "p", second, "the gate was too strict") == []
    assert current_model(store, "p")["cycle_id"] == second
    with pytest.raises(TuneloopError, match="already the current model"):
        promote_by_hand(store, "p", second, "again")
    with pytest.raises(TuneloopError, match="has no model"):
        promote_by_hand(store, "p", 99, "no such cycle")


def test_a_benchmark_rule_without_a_benchmark_metric_is_a_config_error(tmp_path):
    from projects import causal_project

    from tuneloop.errors import ConfigError

    rules = {"rules": [{"metric": "benchmark.lm_eval.tuneloop_capitals.acc", "at_least": "base"}]}
    path = causal_project(tmp_path, "unused", promotion=rules)
    with pytest.raises(ConfigError, match=r"line \d+: promotion.rules\[0\].metric: benchmark "
                                          r"figures come from a metric that measures the model"):
        load_config(path)
    fine = causal_project(tmp_path, "unused", promotion=rules, evaluation={
        "metrics": ["exact_match", {"name": "lm_eval", "tasks": ["tuneloop_capitals"]}]})
    assert load_config(fine).promotion_rules[0].at_least == "base"


def test_a_pattern_rule_guards_every_benchmark_task(store):
    cycle = store.cycle(add_cycle(store, {}))
    every_task = rule(metric="benchmark.lm_eval.*.acc", at_least="base", tolerance=0.02)
    base = {"lm_eval.capitals.acc": 0.6, "lm_eval.colours.acc": 0.5}
    figures = {"benchmark": {"lm_eval.capitals.acc": 0.59, "lm_eval.capitals.acc_stderr": 0.05,
                             "lm_eval.colours.acc": 0.47, "lm_eval.colours.acc_norm": 0.1}}
    ok, reason = check_rule(every_task, store, "p", cycle, figures, base)
    assert not ok and reason == ("benchmark.lm_eval.colours.acc = 0.4700 < 0.5000, the base "
                                 "model (tolerance 0.02)")  # only the task that forgot
    figures["benchmark"]["lm_eval.colours.acc"] = 0.49
    ok, reason = check_rule(every_task, store, "p", cycle, figures, base)
    assert ok and reason.startswith("benchmark.lm_eval.*.acc: all 2 pass")
    assert check_rule(rule(metric="benchmark.lm_eval.*.f1"), store, "p", cycle, figures) == \
        (False, "benchmark.lm_eval.*.f1 matched no measured figure")
