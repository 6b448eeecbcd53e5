"""A component that breaks its interface fails where the cycle receives its value, naming the
plugin and the component; a class that cannot meet its interface fails at `tuneloop validate`.

Most cycles here use a fake trainer (no torch, milliseconds): the checks are about what crosses
the interface, not about training. The penalty check needs real training steps.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import tuneloop
from tuneloop import Example, Prediction, ReviewCandidate, TrainResult, hookimpl, registries
from tuneloop.config import load_config
from tuneloop.errors import ConfigError, PluginError
from tuneloop.interface_checks import (example_problem, expect_predictions, expect_selection,
                                       regularizer_penalty)
from tuneloop.plugin_checks import component_problems
from tuneloop.store import Store
from tuneloop.testing import register_plugin, run_tiny_cycle


class FakeTrainer(tuneloop.Trainer):
    """Answers the first label of the label set, with confidence falling along the examples."""

    name = "fake"
    tasks = ("classification",)

    def train(self, context, splits, regularizers):
        model_dir = Path(context.run_dir) / "model"
        model_dir.mkdir(parents=True, exist_ok=True)
        (model_dir / "labels.json").write_text(json.dumps(context.labels))
        return TrainResult(model_dir=str(model_dir))

    def predict(self, model_dir, examples, context):
        label = json.loads((Path(model_dir) / "labels.json").read_text())[0]
        return [Prediction(example.id, label, confidence=1 / (number + 2))
                for number, example in enumerate(examples)]


def plugin_with(*components):
    """A plugin object registering the given component classes under their kinds' hooks."""

    class Plugin:
        pass

    hooks = {tuneloop.DataSource: "register_data_sources", tuneloop.Cleaner: "register_cleaners",
             tuneloop.Augmenter: "register_augmenters", tuneloop.Trainer: "register_trainers",
             tuneloop.Metric: "register_metrics", tuneloop.Regularizer: "register_regularizers",
             tuneloop.FeedbackPolicy: "register_feedback_policies",
             tuneloop.ReviewSampler: "register_review_samplers"}
    for hook_name in set(hooks.values()):
        chosen = [c for c in components if hooks[next(b for b in hooks if issubclass(c, b))]
                  == hook_name]
        if chosen:
            def implementation(register, chosen=chosen):
                for component in chosen:
                    register(component)
            setattr(Plugin, hook_name, staticmethod(hookimpl(implementation)))
    return Plugin()


def failed_cycle(tmp_path, *components, name="bad", config=None, trainer="fake"):
    """Run a tiny cycle with a plugin ``name`` giving ``components``; return the PluginError."""
    settings = {"training": {"trainer": trainer}} if trainer else {}
    for key, value in (config or {}).items():
        settings.setdefault(key, {}).update(value)
    with register_plugin(plugin_with(FakeTrainer, *components), name=name):
        with pytest.raises(PluginError) as raised:
            run_tiny_cycle(tmp_path, config=settings)
    return raised.value


def cycle_rows(tmp_path):
    database = tmp_path / "tuneloop.db"
    if not database.exists():
        return []
    with Store(database) as store:
        return store.cycles()


# --------------------------------------------------------------------------------------------------
# Data: sources, cleaners, augmenters (before the cycle row exists: nothing is written)
# --------------------------------------------------------------------------------------------------


class DictSource(tuneloop.DataSource):
    name = "dicts"

    def load(self):
        yield Example("fine", "billing")
        yield {"input": "a dict", "target": "billing"}


class StringCleaner(tuneloop.Cleaner):
    name = "stringly"

    def clean(self, examples, removed):
        for example in examples:
            yield example.input


class IntLabelAugmenter(tuneloop.Augmenter):
    name = "int_labels"

    def augment(self, examples, rng):
        yield Example("variant", 3)


def test_a_source_yielding_non_examples_is_named_and_nothing_is_written(tmp_path):
    error = failed_cycle(tmp_path, DictSource, config={
        "data": {"sources": [{"type": "dicts", "path": "unused"}]}})
    assert str(error) == ('plugin "bad": data source "dicts" load yielded a dict, '
                          "not a tuneloop.Example (item 2)")
    assert cycle_rows(tmp_path) == []


def test_a_cleaner_yielding_strings_is_named(tmp_path):
    error = failed_cycle(tmp_path, StringCleaner, config={"data": {"cleaners": ["stringly"]}})
    assert str(error) == ('plugin "bad": cleaner "stringly" clean yielded a str, '
                          "not a tuneloop.Example (item 1)")


def test_an_augmenter_yielding_a_bad_example_is_named(tmp_path):
    error = failed_cycle(tmp_path, IntLabelAugmenter,
                         config={"data": {"augmenters": ["int_labels"]}})
    assert str(error) == ('plugin "bad": augmenter "int_labels" augment yielded an Example whose '
                          "target is an int, not a str or None (item 1)")


def test_example_problems_cover_each_field():
    assert example_problem(Example("x", "y")) is None
    assert example_problem(Example("x", None, weight=0)) is None
    assert "input is None" in example_problem(Example(None, "y"))
    assert "weight is -1" in example_problem(Example("x", "y", weight=-1))
    assert "weight is nan" in example_problem(Example("x", "y", weight=float("nan")))
    assert "weight is True" in example_problem(Example("x", "y", weight=True))
    assert "provenance is a list" in example_problem(Example("x", "y", provenance=[]))


# --------------------------------------------------------------------------------------------------
# Trainers: after the row exists, a failure marks the cycle failed with the message
# --------------------------------------------------------------------------------------------------


class DictTrainer(FakeTrainer):
    name = "dict_trainer"

    def train(self, context, splits, regularizers):
        return {"model_dir": "somewhere"}


class ShuffledTrainer(FakeTrainer):
    name = "shuffled"

    def predict(self, model_dir, examples, context):
        return list(reversed(super().predict(model_dir, examples, context)))


def test_a_trainer_returning_no_train_result_fails_the_cycle_naming_it(tmp_path):
    error = failed_cycle(tmp_path, DictTrainer, trainer="dict_trainer")
    assert str(error) == ('plugin "bad": trainer "dict_trainer" train returned a dict, '
                          "not a tuneloop.TrainResult")
    [row] = cycle_rows(tmp_path)
    assert row["status"] == "failed" and row["error"] == str(error)


def test_predictions_out_of_order_are_refused(tmp_path):
    error = failed_cycle(tmp_path, ShuffledTrainer, trainer="shuffled")
    assert str(error).startswith('plugin "bad": trainer "shuffled" predict returned prediction 1 '
                                 "for example ")
    assert str(error).endswith("answer in the examples' order")


def test_prediction_checks_name_each_problem():
    found = registries.build()
    trainer = found.trainers.names()[0]
    examples = [Example("a", "x"), Example("b", "x")]
    good = [Prediction(example.id, "x", confidence=0.5) for example in examples]
    expect_predictions(found, trainer, good, examples)
    cases = [
        ({"a": 1}, "returned a dict, not a list of tuneloop.Prediction"),
        (good[:1], "returned 1 predictions for 2 examples"),
        ([good[0], "x"], "returned a str as prediction 2, not a tuneloop.Prediction"),
        ([good[0], Prediction(examples[1].id, 7)], "prediction 2 with output an int, not a str"),
        ([good[0], Prediction(examples[1].id, "x", confidence="high")],
         "prediction 2 with confidence a str, not a number or None"),
    ]
    for predictions, message in cases:
        with pytest.raises(PluginError, match=message.replace("(", r"\(").replace(")", r"\)")):
            expect_predictions(found, trainer, predictions, examples)


# --------------------------------------------------------------------------------------------------
# Review samplers and feedback policies
# --------------------------------------------------------------------------------------------------


class InventingSampler(tuneloop.ReviewSampler):
    name = "inventing"

    def select(self, candidates, k, rng):
        return candidates[:1] + [ReviewCandidate(output_id=999, example_id="x", input="made up",
                                                 output="billing")]


def test_a_sampler_returning_outputs_it_was_not_given_is_named(tmp_path):
    error = failed_cycle(tmp_path, InventingSampler, config={"review": {"sampler": "inventing"}})
    assert str(error) == ('plugin "bad": review sampler "inventing" select returned output 999 '
                          "(item 2), which is not one of the candidates it was given")
    [row] = cycle_rows(tmp_path)
    assert row["status"] == "failed"


def test_selection_checks_name_each_problem():
    found = registries.build()
    candidates = [ReviewCandidate(output_id=n, example_id=str(n), input="i", output="o")
                  for n in range(3)]
    expect_selection(found, "random", candidates[:2], candidates, 2)
    cases = [
        ((c for c in candidates), 3, "returned a generator, not a list of the candidates"),
        (candidates, 2, "returned 3 candidates, more than k=2"),
        ([candidates[0], candidates[0]], 3, "returned output 0 twice"),
        ([candidates[0], 1], 3, r"returned an int \(item 2\), not a tuneloop.ReviewCandidate"),
    ]
    for chosen, k, message in cases:
        with pytest.raises(PluginError, match=r'plugin "tuneloop.plugins.samplers": review '
                                              r'sampler "random" select ' + message):
            expect_selection(found, "random", chosen, candidates, k)


class ForgetfulPolicy(tuneloop.FeedbackPolicy):
    name = "forgetful"

    def examples(self, ratings, task):
        for rating in ratings:
            yield Example(rating.input, rating.output)  # forgot the rating id


def test_a_feedback_policy_yielding_bare_examples_is_named(tmp_path):
    config = {"training": {"trainer": "fake"}, "feedback": {"policies": ["forgetful"]}}
    with register_plugin(plugin_with(FakeTrainer, ForgetfulPolicy), name="bad"):
        first = run_tiny_cycle(tmp_path, config=config)
        first.rate(first.queue()[0]["output_id"], "approve")
        with pytest.raises(PluginError) as raised:
            run_tiny_cycle(tmp_path, config=config)
    assert str(raised.value) == ('plugin "bad": feedback policy "forgetful" examples yielded an '
                                 "Example, not a (rating id, tuneloop.Example) pair (item 1)")
    assert [row["status"] for row in cycle_rows(tmp_path)] == ["done"]  # nothing half-written


# --------------------------------------------------------------------------------------------------
# Regularizer penalties: checked at every step, blamed on the regularizer's plugin
# --------------------------------------------------------------------------------------------------


class FloatPenalty(tuneloop.Regularizer):
    name = "float_penalty"

    def penalty(self, model):
        return 0.5


class VectorPenalty(tuneloop.Regularizer):
    name = "vector_penalty"

    def penalty(self, model):
        return next(model.parameters()).flatten()[:3] ** 2


class RaisingPenalty(tuneloop.Regularizer):
    name = "raising_penalty"

    def penalty(self, model):
        raise KeyError("start")


@pytest.mark.parametrize("regularizer, message", [
    (FloatPenalty, 'regularizer "float_penalty" penalty returned a float (a number has no '
                   "gradient), not a scalar float tensor on the model's device (or None for no "
                   "term)"),
    (VectorPenalty, 'regularizer "vector_penalty" penalty returned a tensor of shape (3,), not a '
                    "scalar float tensor"),
    (RaisingPenalty, "regularizer \"raising_penalty\" penalty: KeyError: 'start'"),
])
def test_a_bad_penalty_names_the_regularizer_and_its_plugin_not_the_trainer(
        tmp_path, regularizer, message):
    error = failed_cycle(tmp_path, regularizer, name="reg-plugin", trainer=None,
                         config={"training": {"regularizers": [regularizer.name]}})
    assert str(error).startswith(f'plugin "reg-plugin": {message}')
    [row] = cycle_rows(tmp_path)
    assert row["status"] == "failed" and "reg-plugin" in row["error"]


def test_penalty_check_accepts_none_and_scalars_and_refuses_integer_tensors():
    import torch

    model = torch.nn.Linear(2, 1)

    class Returns(tuneloop.Regularizer):
        name = "returns"

        def __init__(self, value):
            super().__init__()
            self.value = value

        def penalty(self, model):
            return self.value

    assert regularizer_penalty(Returns(None), model) is None
    scalar = torch.tensor(0.25)
    assert regularizer_penalty(Returns(scalar), model) is scalar
    with pytest.raises(PluginError, match=r"returned a torch.int64 tensor"):
        regularizer_penalty(Returns(torch.tensor(3)), model)
    with pytest.raises(PluginError, match=r"returned a str, not a scalar"):
        regularizer_penalty(Returns("0.1"), model)


# --------------------------------------------------------------------------------------------------
# Classes that cannot meet their interface: refused by `tuneloop validate`, before anything runs
# --------------------------------------------------------------------------------------------------


class NoCompute(tuneloop.Metric):
    name = "no_compute"


class OneArgument(tuneloop.Metric):
    name = "one_argument"

    def compute(self, predictions):
        return {}


class StaticSelect(tuneloop.ReviewSampler):
    name = "static_select"

    @staticmethod
    def select(candidates, k, rng):
        return candidates[:k]


class BadTasks(tuneloop.Cleaner):
    name = "bad_tasks"
    tasks = ["classification"]

    def clean(self, examples, removed, *, strict=False):
        yield from examples


def test_component_problems_name_what_the_cycle_could_not_call():
    assert component_problems("metrics", NoCompute) == [
        'metric "no_compute" does not implement compute(predictions, references)']
    assert component_problems("metrics", OneArgument) == [
        'metric "one_argument": compute(predictions) cannot be called as '
        "compute(predictions, references)"]
    assert component_problems("review_samplers", StaticSelect) == []
    assert component_problems("cleaners", BadTasks) == [
        "cleaner \"bad_tasks\": tasks must be a tuple of classification, causal-lm; "
        "got ['classification']"]
    assert component_problems("regularizers", tuneloop.Regularizer) == []  # all four optional
    found = registries.build()
    for kind, registry in found.by_kind.items():  # every built-in passes
        for entry in registry:
            assert component_problems(kind, entry.component) == [], entry.component


def test_validate_refuses_a_metric_without_compute_naming_plugin_and_line(tmp_path):
    config = tmp_path / "tuneloop.yaml"
    config.write_text("project: p\ntask: classification\nmodel: {name: m}\n"
                      "data:\n  sources: [{type: jsonl, path: d.jsonl}]\n"
                      "evaluation:\n  metrics: [accuracy, no_compute]\n")
    with register_plugin(plugin_with(NoCompute), name="half-done"):
        with pytest.raises(ConfigError) as raised:
            load_config(config)
    assert str(raised.value) == (
        f'{config}: line 7: evaluation.metrics[1]: plugin "half-done": metric "no_compute" does '
        "not implement compute(predictions, references)")


def test_a_good_tiny_cycle_passes_every_check(tmp_path):
    """The checks do not refuse the built-ins: a whole cycle with a real model goes through."""
    cycle = run_tiny_cycle(tmp_path, config={
        "data": {"augmenters": [{"name": "char_noise", "probability": 0.5}]},
        "training": {"regularizers": [{"name": "weight_decay", "value": 0.01}]}})
    assert cycle.result.status == "done" and cycle.queue()
