"""Hyperparameter search (``tuneloop tune``): strategies, pruning, the trials table, the test
split kept out, and ``--apply`` writing the best values into the config."""

from __future__ import annotations

import json

import pytest
import yaml
from click.testing import CliRunner

from tuneloop import hookimpl, tuning
from tuneloop.config import SearchParameter, load_config
from tuneloop.config_writer import edit_text
from tuneloop.errors import ConfigError
from tuneloop.plugins.trainers.classification import SequenceClassificationTrainer
from tuneloop.store import Store
from tuneloop.testing import register_plugin, tiny_bert
from training_data import numbered_vocabulary, sentiment_project


@pytest.fixture(scope="module")
def base(tmp_path_factory):
    return tiny_bert(tmp_path_factory.mktemp("bert"), numbered_vocabulary())


class SeenSplits:
    """A trainer plugin that records the examples each trial trains and validates on."""

    seen: list[dict[str, set[str]]] = []

    @hookimpl
    def register_trainers(self, register):
        class Spy(SequenceClassificationTrainer):
            name = "spy"

            def train(self, context, splits, regularizers):
                SeenSplits.seen.append({name: {example.input for example in examples}
                                        for name, examples in splits.items()})
                return super().train(context, splits, regularizers)

        register(Spy)


def trials_table(path):
    with Store(load_config(path, check_components=False).database_path) as store:
        return store.query("SELECT * FROM trials ORDER BY id")


def test_a_random_search_prunes_hopeless_trials_and_stores_every_trial(base, tmp_path):
    path = sentiment_project(tmp_path, base, epochs=6, eval_every=8, trainer="spy", search_space={
        "learning_rate": [5e-3, 1e-7], "regularizers.dropout.p": [0.0, 0.1]})
    SeenSplits.seen = []
    with register_plugin(SeenSplits(), name="spy"):
        # seed 4 draws a learning rate of 5e-3 for trials 0 and 1, then 1e-7 (which learns
        # nothing) for trials 2 to 4: the median rule compares those with the first two
        result = tuning.tune(load_config(path), trials=5, strategy="random", seed=4)

    states = {trial.number: trial.state for trial in result.trials}
    assert len(states) == 5 and result.direction == "maximize" and result.metric == "f1"
    assert [trial.params["learning_rate"] for trial in result.trials] == [5e-3] * 2 + [1e-7] * 3
    assert [trial.state for trial in result.trials] == ["complete"] * 2 + ["pruned"] * 3
    evaluations = len(result.trials[0].intermediate)
    assert all(len(trial.intermediate) < evaluations for trial in result.trials[2:])
    best = result.best
    assert best.params["learning_rate"] == 5e-3 and best.value >= 0.9

    rows = trials_table(path)
    assert [row["number"] for row in rows] == list(range(5))
    assert {row["state"] for row in rows} == {"complete", "pruned"}
    assert all(row["study"] == result.study and row["strategy"] == "random" for row in rows)
    complete = [row for row in rows if row["state"] == "complete"]
    assert all(row["value"] == pytest.approx(json.loads(row["intermediate"])[-1][2]) or
               row["value"] >= max(value for _, _, value in json.loads(row["intermediate"]))
               for row in complete)
    assert json.loads(rows[best.number]["params"]) == best.params

    # the search never saw the test split (nor the review split)
    with Store(tmp_path / "tuneloop.db") as store:
        assert not store.query("SELECT * FROM cycles")  # a search is not a cycle
    config = load_config(path, check_components=False)
    from tuneloop import registries
    from tuneloop.cycle import prepare_data

    with Store(config.database_path) as store:
        prepared = prepare_data(config, registries.build(), store)
    test_inputs = {example.input for example in prepared.splits["test"]}
    assert SeenSplits.seen and all(set(seen) == {"train", "validation"} for seen in SeenSplits.seen)
    assert not any(test_inputs & (seen["train"] | seen["validation"]) for seen in SeenSplits.seen)


def test_a_grid_search_tries_every_combination_once(base, tmp_path):
    path = sentiment_project(tmp_path, base, epochs=1, search_space={
        "learning_rate": {"low": 1e-3, "high": 1e-2, "log": True, "grid_points": 2},
        "batch_size": [8, 16]})
    result = tuning.tune(load_config(path), trials=50, strategy="grid", pruning=False)
    tried = sorted((round(trial.params["learning_rate"], 9), trial.params["batch_size"])
                   for trial in result.trials)
    assert tried == [(1e-3, 8), (1e-3, 16), (1e-2, 8), (1e-2, 16)]
    assert all(trial.state == "complete" for trial in result.trials)


def test_a_bayes_search_uses_tpe_and_minimises_a_loss(base, tmp_path):
    import optuna

    path = sentiment_project(tmp_path, base, epochs=1, select_metric="loss", search_space={
        "warmup_ratio": {"low": 0.0, "high": 0.5}, "epochs": {"low": 1, "high": 2,
                                                              "integer": True}})
    assert isinstance(tuning.make_sampler("bayes", {}, 0), optuna.samplers.TPESampler)
    result = tuning.tune(load_config(path), trials=3, strategy="bayes")
    assert result.direction == "minimize" and len(result.trials) == 3
    assert all(isinstance(trial.params["epochs"], int) for trial in result.trials)
    assert result.best.value == min(trial.value for trial in result.trials
                                    if trial.state == "complete")


def test_the_search_space_paths_reach_training_regularizers_and_the_trainer(base, tmp_path):
    config = load_config(sentiment_project(tmp_path, base, regularizers=[
        {"name": "weight_decay", "value": 0.01}]))
    updated = tuning.with_values(config, {"lora.r": 4, "regularizers.weight_decay.value": 0.1,
                                          "regularizers.dropout.p": 0.3,
                                          "trainer.class_weights": "balanced",
                                          "step_decay.gamma": 0.25})
    assert updated.training.lora.r == 4
    assert [(ref.name, ref.options) for ref in updated.training.regularizers] == [
        ("weight_decay", {"value": 0.1}), ("dropout", {"p": 0.3})]
    assert updated.trainer_ref.name == "sequence_classification"
    assert updated.trainer_ref.options == {"class_weights": "balanced"}
    assert updated.training.step_decay.gamma == 0.25
    assert config.training.lora is None  # the original is untouched
    with pytest.raises(ConfigError, match="regularizers"):
        tuning.with_values(config, {"regularizers.dropout.p": 2.0})
    with pytest.raises(ConfigError, match="search_space"):
        load_config(sentiment_project(tmp_path / "bad", base, search_space={"lr": [1]}))


def test_grid_values_spread_a_range_evenly_or_in_the_logarithm():
    assert tuning.grid_values(SearchParameter(low=0.0, high=0.2, grid_points=3)) == \
        pytest.approx([0.0, 0.1, 0.2])
    assert tuning.grid_values(SearchParameter(low=1e-4, high=1e-2, log=True)) == \
        pytest.approx([1e-4, 1e-3, 1e-2])
    assert tuning.grid_values(SearchParameter(low=1, high=4, integer=True, grid_points=4)) == \
        [1, 2, 3, 4]
    assert tuning.grid_size({"a": SearchParameter(choices=[1, 2, 3]),
                             "b": SearchParameter(low=0, high=1, grid_points=2)}) == 6
    with pytest.raises(ValueError, match="low must be below high"):
        SearchParameter(low=1, high=1)


def test_apply_writes_the_best_values_and_keeps_the_comments(base, tmp_path):
    path = sentiment_project(tmp_path, base, epochs=1, regularizers=[
        {"name": "weight_decay", "value": 0.0}], search_space={
        "learning_rate": [4e-3], "regularizers.weight_decay.value": [0.05],
        "warmup_ratio": [0.1]})
    path.write_text("# my project\n" + path.read_text().replace(
        "learning_rate: 0.005", "learning_rate: 0.005  # tuned by hand"))
    runner = CliRunner()
    result = runner.invoke(__import__("tuneloop.cli", fromlist=["cli"]).cli,
                           ["tune", str(path), "--trials", "1", "--strategy", "grid",
                            "--apply", "--quiet"])
    assert result.exit_code == 0, result.output
    assert "Study sentiment-" in result.output and "Best: trial" in result.output
    text = path.read_text()
    assert text.startswith("# my project\n") and "# tuned by hand" in text
    loaded = load_config(path)
    assert loaded.training.learning_rate == 4e-3 and loaded.training.warmup_ratio == 0.1
    assert loaded.training.regularizers[0].options == {"value": 0.05}
    assert [row["applied"] for row in trials_table(path)] == [1]


def test_apply_rewrites_the_file_when_a_component_needs_options_and_keeps_a_copy(base, tmp_path):
    path = sentiment_project(tmp_path, base, epochs=1, regularizers=["dropout"],
                             search_space={"regularizers.dropout.p": [0.2]})
    config = load_config(path)
    result = tuning.tune(config, trials=1, strategy="grid")
    params, in_place = tuning.apply_best(config, result)
    assert params == {"regularizers.dropout.p": 0.2} and not in_place
    assert (tmp_path / "tuneloop.yaml.bak").exists()
    assert load_config(path).training.regularizers[0].options == {"p": 0.2}


def test_editing_yaml_text_replaces_values_in_place_and_adds_missing_keys():
    text = ("project: x  # the project\n"
            "training:\n"
            "  epochs: 4           # keep\n"
            "  regularizers: [{name: dropout, p: 0.1}]\n"
            "  lora:\n"
            "    r: 4\n"
            "review: {size: 3}\n")
    edited = edit_text(text, {("training", "epochs"): 6, ("training", "regularizers", 0, "p"): 0.2,
                              ("training", "lora", "alpha"): 8.0,
                              ("training", "step_decay", "gamma"): 0.5})
    assert "epochs: 6           # keep" in edited and "{name: dropout, p: 0.2}" in edited
    assert yaml.safe_load(edited)["training"] == {
        "epochs": 6, "regularizers": [{"name": "dropout", "p": 0.2}],
        "lora": {"r": 4, "alpha": 8.0}, "step_decay": {"gamma": 0.5}}
    assert edit_text("training: {epochs: 2}\n", {("training", "seed"): 3}) is None  # flow style


def test_an_empty_search_space_is_a_config_error(base, tmp_path):
    with pytest.raises(ConfigError, match="training.search_space: empty"):
        tuning.tune(load_config(sentiment_project(tmp_path, base)), trials=2, strategy="random")
