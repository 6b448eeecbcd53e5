"""``validate`` refuses configs that can never work, and errors blame the right thing (issue 11,
classes 3 and 4). The one-line CLI contract for each is in the bad-input corpus
(``tests/bad_inputs/config``); these tests pin the checks themselves."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from projects import classification_rows, stub_model, write_jsonl
from tuneloop import Example, Metric, Prediction, hookimpl
from tuneloop.config import load_config
from tuneloop.config_checks import check_model, layer_count
from tuneloop.errors import ConfigError, PluginError
from tuneloop.yaml_loader import UniqueKeyLoader


def write(tmp_path: Path, text: str) -> Path:
    write_jsonl(tmp_path / "data.jsonl", classification_rows(per_label=4))
    path = tmp_path / "tuneloop.yaml"
    path.write_text(text.replace("MODEL", stub_model(tmp_path)), encoding="utf-8")
    return path


BASE = """\
project: toy
task: classification
model: {name: MODEL}
data:
  sources: [{type: jsonl, path: data.jsonl, fields: {input: text, target: intent}}]
"""


# ---- duplicated keys ----------------------------------------------------------------------------


def test_a_key_given_twice_is_refused_with_both_lines(tmp_path):
    path = write(tmp_path, BASE + "training:\n  epochs: 2\n  learning_rate: 0.1\n  epochs: 5\n")
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    assert str(caught.value) == (f"{path}:9: invalid YAML: key 'epochs' given twice (first on "
                                 f"line 7)")


def test_a_key_may_override_one_merged_in_from_an_anchor():
    text = "base: &b {epochs: 2, seed: 1}\ntraining:\n  <<: *b\n  epochs: 4\n"
    assert yaml.load(text, Loader=UniqueKeyLoader)["training"] == {"epochs": 4, "seed": 1}


def test_the_loader_reads_what_safe_load_reads():
    text = (Path(__file__).parent.parent / "core" / "demo_data" / "tuneloop.yaml").read_text()
    assert yaml.load(text, Loader=UniqueKeyLoader) == yaml.safe_load(text)


# ---- figures ------------------------------------------------------------------------------------


def problems(tmp_path: Path, extra: str) -> str:
    with pytest.raises(ConfigError) as caught:
        load_config(write(tmp_path, BASE + extra))
    return str(caught.value)


def test_select_metric_must_be_a_validation_figure(tmp_path):
    assert 'training.select_metric: metric "bleu" does not measure classification' in \
        problems(tmp_path, "training: {select_metric: bleu}\n")


def test_select_metric_follows_the_metric_options(tmp_path):
    # f1 averaged micro gives f1_micro: selecting "f1" would fail at the first evaluation
    message = problems(tmp_path, "training: {select_metric: f1}\n"
                                 "evaluation: {metrics: [{name: f1, average: micro}]}\n")
    assert "line 6: training.select_metric" in message and "f1_micro" in message
    load_config(write(tmp_path, BASE + "training: {select_metric: f1_micro}\n"
                                       "evaluation: {metrics: [{name: f1, average: micro}]}\n"))


def test_a_gate_on_a_figure_nothing_measures_is_refused(tmp_path):
    message = problems(tmp_path, "promotion:\n  rules:\n    - {metric: validation.f1}\n"
                                 "    - {metric: human.approval}\n")
    assert "line 9: promotion.rules[1].metric" in message and "human.approval" in message
    load_config(write(tmp_path, BASE + "promotion:\n  rules:\n    - {metric: validation.f*}\n"
                                       "    - {metric: human.approval_rate}\n"))


def test_a_metric_that_cannot_name_its_figures_turns_the_check_off(tmp_path):
    # per_class figures depend on the labels: no figure check is made, none is refused
    load_config(write(tmp_path, BASE + "evaluation: {metrics: [per_class]}\n"
                                       "training: {select_metric: 'f1[billing]'}\n"))


def test_human_figures_listed_for_checks_are_those_human_metrics_gives(tmp_path):
    from tuneloop.human_metrics import FIGURES, human_metrics
    from tuneloop.store import Store

    with Store(tmp_path / "t.db") as store:
        cycle = store.create_cycle(project="p", task="classification", seed=1, config={},
                                   plugins=[], base_model="m", start_model="m", parent_id=None)
        examples = [Example(input=f"x {n}", target="a") for n in range(2)]
        outputs = store.add_outputs(cycle, [Prediction(example_id=e.id, output="a")
                                            for e in examples], examples)
        for name in ("ann", "bob", "cy"):
            reviewer = store.add_reviewer(name, "h", "expert")
            for number, output in enumerate(outputs):
                store.add_rating(reviewer_id=reviewer, output_id=output, score=4,
                                 verdict="approve" if number or name == "ann" else "reject")
        given = human_metrics(store, cycle)
    assert set(given) <= set(FIGURES) and len(given) >= 8


@pytest.mark.slow
def test_builtin_metrics_name_exactly_the_figures_they_compute():
    """``figure_names`` must agree with ``compute``, or validate would refuse good configs."""
    from tuneloop import registries

    found = registries.build()
    labels = [Example(input=f"in {n}", target=label) for n, label in enumerate("abab")]
    texts = [Example(input=f"in {n}", target=f"the answer {n}") for n in range(4)]
    cases = [("accuracy", {}), ("precision", {}), ("recall", {"average": "weighted"}),
             ("f1", {"average": "micro"}), ("ece", {}), ("top_k_accuracy", {"k": 2}),
             ("exact_match", {}), ("bleu", {}), ("chrf", {}), ("rouge", {}), ("length", {}),
             ("perplexity", {})]
    for name, options in cases:
        component = found["metrics"].get(name)
        metric = component(component.Options.model_validate(options))
        references = labels if "classification" in component.tasks else texts
        predictions = [Prediction(example_id=e.id, output=e.target or "", confidence=0.8,
                                  scores={"a": 0.8, "b": 0.2}, extra={"nll": 1.0, "tokens": 2})
                       for e in references]
        assert sorted(metric.compute(predictions, references)) == sorted(metric.figure_names()), \
            name


# ---- the model and its layers -------------------------------------------------------------------


def test_a_missing_model_is_blamed_on_model_name_with_its_line(tmp_path):
    config = load_config(write(tmp_path, BASE.replace("MODEL", str(tmp_path / "nothing"))))
    with pytest.raises(ConfigError, match=r"line 3: model.name: .*no such folder"):
        check_model(config)
    config = load_config(write(tmp_path, BASE.replace("MODEL", str(tmp_path))))
    with pytest.raises(ConfigError, match=r"line 3: model.name: .*not a model folder"):
        check_model(config)


def test_an_uncached_hub_id_offline_is_named(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    config = load_config(write(tmp_path, BASE.replace("MODEL", "no-org/surely-not-cached")))
    with pytest.raises(ConfigError, match="model.name: .*Hugging Face cache.*offline"):
        check_model(config)


@pytest.mark.slow
def test_freeze_layers_is_checked_against_the_model_config(tmp_path):
    from tuneloop.testing import tiny_gpt2

    model = tiny_gpt2(tmp_path / "gpt2", ["a b c"])
    assert layer_count(model) == 2  # GPT-2 calls it n_layer
    text = BASE.replace("MODEL", model)
    check_model(load_config(write(tmp_path, text + "training: {freeze_layers: 2}\n")))
    with pytest.raises(ConfigError, match="line 6: training.freeze_layers: 3 layers, but model "
                                          ".* has 2"):
        check_model(load_config(write(tmp_path, text + "training: {freeze_layers: 3}\n")))


def test_run_blames_a_missing_model_before_any_cycle_row(tmp_path):
    from click.testing import CliRunner

    from tuneloop.cli import cli

    path = write(tmp_path, BASE.replace("MODEL", str(tmp_path / "typo-model")))
    result = CliRunner().invoke(cli, ["run", str(path), "--quiet"])
    assert result.exit_code == 2
    assert "model.name" in result.output and "line 3" in result.output
    assert "tuneloop.plugins.trainers" not in result.output
    assert not (tmp_path / "tuneloop.db").exists()


# ---- the search space ----------------------------------------------------------------------------


@pytest.mark.parametrize("key, extra, expected", [
    ("lora.r", "", "training.lora is not configured"),
    ("lora.rank", "  lora: {r: 4}\n", 'training.lora has no option "rank"'),
    ("learning_rate.low", "", "training.learning_rate is a single value"),
    ("regularizers.dropout.q", "", 'regularizer "dropout" has no option "q"'),
    ("regularizers.nope.p", "", 'no regularizer "nope"'),
    ("trainer.nope", "", 'trainer "sequence_classification" has no option "nope"'),
    ("lora", "  lora: {r: 4}\n", "training.lora is a section"),
])
def test_a_search_key_must_reach_a_configured_option(tmp_path, key, extra, expected):
    message = problems(tmp_path, f"training:\n{extra}  search_space:\n    {key}: [1, 2]\n")
    assert f"training.search_space.{key}: {expected}" in message


def test_search_keys_that_reach_options_pass(tmp_path):
    load_config(write(tmp_path, BASE + "training:\n  lora: {r: 4}\n  search_space:\n"
                                       "    lora.r: [4, 8]\n    learning_rate: [0.1, 0.01]\n"
                                       "    regularizers.dropout.p: [0.1]\n"
                                       "    step_decay.gamma: [0.5]\n"))


# ---- a metric that breaks its interface during training -----------------------------------------


class Stringy(Metric):
    name = "stringy"
    tasks = ("classification",)

    def compute(self, predictions, references):
        return "0.9"


class StringyPlugin:
    @hookimpl
    def register_metrics(self, register):
        register(Stringy)


@pytest.mark.slow
def test_a_metric_returning_a_string_during_training_names_the_metric_plugin(tmp_path):
    from tuneloop.testing import run_tiny_cycle

    with pytest.raises(PluginError) as caught:
        run_tiny_cycle(tmp_path, plugins=[StringyPlugin()],
                       config={"evaluation": {"metrics": ["accuracy", "stringy"]},
                               "training": {"select_metric": "accuracy"}})
    message = str(caught.value)
    assert message.startswith('plugin "')
    assert 'metric "stringy" compute returned a str during training' in message
    assert "tuneloop.plugins.trainers" not in message


def test_a_metric_called_by_a_trainer_is_checked_and_blamed_on_its_plugin():
    from tuneloop.interface_checks import metric_figures
    from tuneloop.testing import register_plugin

    class Raising(Stringy):
        name = "raising"

        def compute(self, predictions, references):
            raise KeyError("label")

    class Numbers(Stringy):
        name = "numbers"

        def compute(self, predictions, references):
            return {"numbers": 1, "half": 0.5}

    class Plugin:
        @hookimpl
        def register_metrics(self, register):
            register(Stringy)
            register(Raising)

    with register_plugin(Plugin(), name="my-metrics"):
        with pytest.raises(PluginError, match='plugin "my-metrics": metric "stringy" compute '
                                              'returned a str during training'):
            metric_figures(Stringy(Stringy.Options()), [], [])
        with pytest.raises(PluginError, match='plugin "my-metrics": metric "raising" compute '
                                              r"\(during training\): KeyError"):
            metric_figures(Raising(Raising.Options()), [], [])
    assert metric_figures(Numbers(Numbers.Options()), [], []) == {"numbers": 1.0, "half": 0.5}
