"""Every hook has a ``test_hook_<name>`` here (``test_every_hook_has_a_test`` checks it).

One recording plugin registers a component of every kind and watches every lifecycle hook while
two real cycles run on a tiny model, with an expert's ratings in between.
"""

from __future__ import annotations

import random
import sys
from typing import Any, Iterator

import click
import pytest
from click.testing import CliRunner

import tuneloop
from projects import classification_project, classification_rows, vocabulary_texts
from tuneloop import Example, Options, hookimpl
from tuneloop.auth import create_reviewer
from tuneloop.config import load_config
from tuneloop.cycle import run_cycle
from tuneloop.errors import PluginError
from tuneloop.hookspecs import HOOK_NAMES
from tuneloop.store import Store
from tuneloop.testing import register_plugin

CALLS: dict[str, list[Any]] = {}


def record(name: str, value: Any = None) -> None:
    CALLS.setdefault(name, []).append(value)


class InlineRows(tuneloop.DataSource):
    """Rows made in memory: proves a plugin data source feeds a cycle."""

    name = "inline_rows"

    class Options(Options):
        per_label: int = 24

    def load(self) -> Iterator[Example]:
        record("source.load")
        for row in classification_rows(self.options.per_label):
            yield Example(input=row["text"], target=row["intent"], source="inline")


class DropContaining(tuneloop.Cleaner):
    name = "drop_containing"

    class Options(Options):
        word: str

    def clean(self, examples, removed):
        for example in examples:
            if self.options.word in example.input.split():
                removed(example, f"contains {self.options.word!r}")
                record("cleaner.removed", example.input)
            else:
                yield example


class Reverse(tuneloop.Augmenter):
    name = "reverse_words"

    def augment(self, examples, rng: random.Random):
        for example in examples[:5]:
            record("augmenter.split", example.split)
            yield Example(input=" ".join(reversed(example.input.split())), target=example.target,
                          provenance={"kind": "augmented", "from": example.id})


class Recording(tuneloop.Regularizer):
    name = "recording"

    def configure(self, args):
        record("regularizer.configure", sorted(args))
        args["weight_decay"] = 0.02

    def prepare(self, model):
        record("regularizer.prepare", type(model).__name__)
        return model

    def penalty(self, model):
        import torch

        record("regularizer.penalty")
        return torch.zeros((), requires_grad=False)

    def callbacks(self):
        record("regularizer.callbacks")
        return []


class MeanConfidence(tuneloop.Metric):
    name = "mean_confidence"

    def compute(self, predictions, references):
        record("metric.compute", len(predictions))
        return {"mean_confidence": sum(p.confidence or 0 for p in predictions) / len(predictions)}


class EverythingApproved(tuneloop.FeedbackPolicy):
    name = "approved_as_is"

    def examples(self, ratings, task):
        record("policy.ratings", [rating.verdict for rating in ratings])
        for rating in ratings:
            if rating.verdict == "approve":
                yield rating.id, Example(input=rating.input, target=rating.output,
                                         source="feedback")


class NewestFirst(tuneloop.ReviewSampler):
    name = "newest_first"

    def select(self, candidates, k, rng):
        record("sampler.select", len(candidates))
        return sorted(candidates, key=lambda c: -c.output_id)[:k]


def recording_trainer_class():
    from tuneloop.plugins.trainers.classification import SequenceClassificationTrainer

    class RecordingTrainer(SequenceClassificationTrainer):
        name = "recording_trainer"

        def train(self, context, splits, regularizers):
            record("trainer.train", {split: len(rows) for split, rows in splits.items()})
            return super().train(context, splits, regularizers)

    return RecordingTrainer


class RecordingPlugin:
    """Implements every hook; lifecycle hooks record what they were given."""

    @hookimpl
    def register_data_sources(self, register):
        register(InlineRows)

    @hookimpl
    def register_cleaners(self, register):
        register(DropContaining)

    @hookimpl
    def register_augmenters(self, register):
        register(Reverse)

    @hookimpl
    def register_regularizers(self, register):
        register(Recording)

    @hookimpl
    def register_trainers(self, register):
        register(recording_trainer_class())

    @hookimpl
    def register_metrics(self, register):
        register(MeanConfidence)

    @hookimpl
    def register_feedback_policies(self, register):
        register(EverythingApproved)

    @hookimpl
    def register_review_samplers(self, register):
        register(NewestFirst)

    @hookimpl
    def register_commands(self, cli):
        @cli.command(name="hello-plugin")
        def hello_plugin():
            click.echo("hello from a plugin")

    @hookimpl
    def cycle_started(self, cycle):
        record("cycle_started", (cycle.cycle_id, cycle.store.cycle(cycle.cycle_id)["status"]))

    @hookimpl
    def data_prepared(self, cycle, splits):
        record("data_prepared", {split: len(rows) for split, rows in splits.items()})

    @hookimpl
    def training_log(self, cycle, step, logs):
        record("training_log", (step, dict(logs)))

    @hookimpl
    def training_finished(self, cycle, result):
        record("training_finished", (cycle.store.cycle(cycle.cycle_id)["status"],
                                     result.model_dir))

    @hookimpl
    def evaluation_finished(self, cycle, metrics):
        record("evaluation_finished", metrics)

    @hookimpl
    def outputs_stored(self, cycle, predictions):
        record("outputs_stored", len(predictions))

    @hookimpl
    def cycle_finished(self, cycle, promoted):
        record("cycle_finished", (cycle.cycle_id, promoted))


@pytest.fixture(scope="module")
def two_cycles(tmp_path_factory):
    """Cycle 1 with every plugin component, two ratings, then cycle 2 (which uses them)."""
    from tuneloop import plugin_manager
    from tuneloop.testing import tiny_bert

    CALLS.clear()
    directory = tmp_path_factory.mktemp("hooks")
    model = tiny_bert(directory / "model", vocabulary_texts())
    config_path = classification_project(directory, model, data={
        "sources": [{"type": "inline_rows", "per_label": 20}],
        "cleaners": ["drop_empty", {"name": "drop_containing", "word": "urgent"}],
        "augmenters": ["reverse_words"],
    }, training={"trainer": "recording_trainer", "regularizers": ["recording"], "epochs": 1},
        evaluation={"metrics": ["accuracy", "f1", "mean_confidence"]},
        review={"size": 4, "sampler": "newest_first"},
        feedback={"policies": ["approved_as_is"]})
    plugin_manager.reset_for_tests()
    with register_plugin(RecordingPlugin(), name="recording-plugin"):
        config = load_config(config_path)
        first = run_cycle(config, quiet=True)
        with Store(config.database_path) as store:
            reviewer_id = create_reviewer(store, "ann", "correct horse battery")
            for verdict in ("approve", "reject"):
                item = store.next_queue_item(reviewer_id)
                store.add_rating(reviewer_id=reviewer_id, output_id=item["id"],
                                 verdict=verdict)
        second = run_cycle(config, quiet=True)
    plugin_manager.reset_for_tests()
    return {"first": first, "second": second, "config": config, "calls": dict(CALLS)}


def test_every_hook_has_a_test():
    tested = {name.removeprefix("test_hook_") for name in dir(sys.modules[__name__])
              if name.startswith("test_hook_")}
    assert set(HOOK_NAMES) - tested == set()


def test_hook_register_data_sources(two_cycles):
    assert two_cycles["calls"]["source.load"] == [None, None]  # once per cycle
    assert two_cycles["first"].status == "done"


def test_hook_register_cleaners(two_cycles):
    removed = two_cycles["calls"]["cleaner.removed"]
    assert removed and all("urgent" in text.split() for text in removed)


def test_hook_register_augmenters(two_cycles):
    assert set(two_cycles["calls"]["augmenter.split"]) == {"train"}
    with Store(two_cycles["config"].database_path) as store:
        augmented = store.query("SELECT split FROM examples WHERE provenance LIKE "
                                "'%\"augmented\"%' AND cycle_id = ?",
                                [two_cycles["first"].cycle_id])
    assert len(augmented) == 5 and {row["split"] for row in augmented} == {"train"}


def test_hook_register_regularizers(two_cycles):
    calls = two_cycles["calls"]
    assert "learning_rate" in calls["regularizer.configure"][0]
    assert calls["regularizer.prepare"] and calls["regularizer.callbacks"]
    assert len(calls["regularizer.penalty"]) >= 2  # every training step


def test_hook_register_trainers(two_cycles):
    sizes = two_cycles["calls"]["trainer.train"][0]
    assert sizes["train"] > 0 and sizes["validation"] > 0


def test_hook_register_metrics(two_cycles):
    assert "mean_confidence" in two_cycles["first"].metrics["validation"]
    assert "mean_confidence" in two_cycles["first"].metrics["test"]


def test_hook_register_feedback_policies(two_cycles):
    offered = two_cycles["calls"]["policy.ratings"]
    assert offered[0] == [] and sorted(offered[1]) == ["approve", "reject"]
    assert two_cycles["second"].ratings_used == 1


def test_hook_register_review_samplers(two_cycles):
    assert two_cycles["calls"]["sampler.select"][0] > 4
    with Store(two_cycles["config"].database_path) as store:
        queued = store.query("SELECT output_id FROM review_queue WHERE cycle_id = ? "
                             "ORDER BY priority", [two_cycles["first"].cycle_id])
    ids = [row["output_id"] for row in queued]
    assert len(ids) == 4 and ids == sorted(ids, reverse=True)


def test_hook_register_commands():
    from tuneloop.cli import cli
    from tuneloop.plugin_manager import call_hook

    group = click.Group(commands=dict(cli.commands))
    with register_plugin(RecordingPlugin(), name="recording-plugin"):
        call_hook("register_commands", cli=group)
    result = CliRunner().invoke(group, ["hello-plugin"])
    assert result.exit_code == 0 and "hello from a plugin" in result.output


def test_hook_cycle_started(two_cycles):
    assert two_cycles["calls"]["cycle_started"] == [(two_cycles["first"].cycle_id, "running"),
                                                     (two_cycles["second"].cycle_id, "running")]


def test_hook_data_prepared(two_cycles):
    first = two_cycles["calls"]["data_prepared"][0]
    assert set(first) == {"train", "validation", "test", "review"} and first["train"] > 0


def test_hook_training_log(two_cycles):
    logs = two_cycles["calls"]["training_log"]
    assert any("loss" in figures for _, figures in logs)
    assert all(step >= 0 for step, _ in logs)
    with Store(two_cycles["config"].database_path) as store:
        streamed = store.metric_history(two_cycles["first"].cycle_id)
    assert any(row["name"] == "loss" for row in streamed)


def test_hook_training_finished(two_cycles):
    status, model_dir = two_cycles["calls"]["training_finished"][0]
    assert status == "trained" and model_dir == two_cycles["first"].model_path


def test_hook_evaluation_finished(two_cycles):
    metrics = two_cycles["calls"]["evaluation_finished"][0]
    assert metrics == two_cycles["first"].metrics


def test_hook_outputs_stored(two_cycles):
    assert two_cycles["calls"]["outputs_stored"][0] > 0


def test_hook_cycle_finished(two_cycles):
    assert two_cycles["calls"]["cycle_finished"][0] == (two_cycles["first"].cycle_id, True)


class Exploding:
    @hookimpl
    def data_prepared(self, cycle, splits):
        raise ValueError("kaboom")

    @hookimpl
    def cycle_failed(self, cycle, error):
        record("cycle_failed", (cycle.cycle_id, type(error).__name__, str(error)))


def test_hook_cycle_failed(tmp_path):
    """A plugin raising in a hook: an error naming plugin and hook; the row is 'failed'."""
    from tuneloop.testing import tiny_bert

    CALLS.pop("cycle_failed", None)
    model = tiny_bert(tmp_path / "model", vocabulary_texts())
    config = load_config(classification_project(tmp_path, model))
    with register_plugin(Exploding(), name="exploding-plugin"):
        with pytest.raises(PluginError) as raised:
            run_cycle(config, quiet=True)
    message = str(raised.value)
    assert 'plugin "exploding-plugin"' in message and "data_prepared" in message
    assert "kaboom" in message
    with Store(config.database_path) as store:
        (cycle,) = store.cycles()
    assert cycle["status"] == "failed" and "kaboom" in cycle["error"]
    assert CALLS["cycle_failed"] == [(cycle["id"], "PluginError", message)]
