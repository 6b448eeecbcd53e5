"""``tuneloop models list|show|promote|export`` and ``tuneloop predict``: the registry from the
command line, and export → predict giving the answers the cycle measured."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from evaluated import two_rated_cycles
from projects import causal_project, vocabulary_texts, write_jsonl
from tuneloop.cli import cli
from tuneloop.config import load_config
from tuneloop.cycle import run_cycle
from tuneloop.evaluation import stored_predictions
from tuneloop.store import Store


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    from tuneloop.testing import tiny_bert

    directory = tmp_path_factory.mktemp("registry")
    model = tiny_bert(directory / "bert", vocabulary_texts())
    return two_rated_cycles(directory, model)


def invoke(*args: str):
    return CliRunner(env={"COLUMNS": "200"}).invoke(cli, list(args))  # no wrapped tables


def test_models_list_shows_stages_and_the_current_model(project):
    config = str(project["config"].config_path)
    first, second = project["first"], project["second"]
    listed = invoke("models", "list", "--json", "--config", config)
    assert listed.exit_code == 0, listed.output
    rows = {row["cycle"]: row for row in json.loads(listed.output)}
    assert rows[first.cycle_id]["stage"] == "promoted"  # the first cycle passes relative rules
    assert rows[second.cycle_id]["stage"] == ("promoted" if second.promoted else "rejected")
    current = second.cycle_id if second.promoted else first.cycle_id
    assert [cycle for cycle, row in rows.items() if row["current"]] == [current]
    assert rows[second.cycle_id]["reasons"] == second.reasons
    assert rows[first.cycle_id]["metrics"]["validation"]["f1"] == pytest.approx(
        first.metrics["validation"]["f1"])
    table = invoke("models", "list", "--config", config)
    assert table.exit_code == 0 and "(current)" in table.output and "promoted" in table.output


def test_models_show_lists_figures_lineage_and_ratings(project):
    config = str(project["config"].config_path)
    second = project["second"]
    result = invoke("models", "show", str(second.cycle_id), "--config", config)
    assert result.exit_code == 0, result.output
    assert f"Lineage: cycle {second.cycle_id} <- cycle {project['first'].cycle_id}" in \
        result.output
    assert f"Ratings that trained it: {second.ratings_used}" in result.output
    assert "validation" in result.output and "f1[" not in result.output
    missing = invoke("models", "show", "99", "--config", config)
    assert missing.exit_code == 2 and "has no model for cycle 99" in missing.output


def test_export_writes_a_transformers_folder_with_a_model_card(project, tmp_path):
    from transformers import AutoConfig

    config = project["config"]
    second = project["second"]
    destination = tmp_path / "exported"
    result = invoke("models", "export", str(destination), "--cycle", str(second.cycle_id),
                    "--config", str(config.config_path))
    assert result.exit_code == 0, result.output
    assert {"config.json", "model.safetensors", "tokenizer.json", "README.md",
            "tuneloop.json"} <= {path.name for path in destination.iterdir()}
    labels = ["account", "billing", "shipping"]
    loaded = AutoConfig.from_pretrained(destination)
    assert [loaded.id2label[index] for index in range(3)] == labels
    manifest = json.loads((destination / "tuneloop.json").read_text())
    with Store(config.database_path) as store:
        used = {row["rating_id"] for row in store.feedback_usage(second.cycle_id)}
    assert used and {row["rating_id"] for row in manifest["ratings"]} == used
    assert manifest["labels"] == labels and manifest["task"] == "classification"
    assert manifest["metrics"]["validation"]["f1"] == pytest.approx(
        second.metrics["validation"]["f1"])
    assert manifest["lineage"] == [second.cycle_id, project["first"].cycle_id]
    card = (destination / "README.md").read_text()
    assert card.startswith("---\nlibrary_name: transformers\npipeline_tag: text-classification")
    for needle in ("## Data", "## Metrics", "## Expert ratings that trained it",
                   f"{len(used)} ratings", "reviewer `ann`", "reviewer `bob`",
                   f"| validation | f1 | {second.metrics['validation']['f1']:.4f} |",
                   "`account`, `billing`, `shipping`", "The test split is held out"):
        assert needle in card
    again = invoke("models", "export", str(destination), "--config", str(config.config_path))
    assert again.exit_code == 2 and "not empty" in again.output


def test_export_then_predict_gives_the_answers_the_cycle_measured(project, tmp_path):
    config = project["config"]
    second = project["second"]
    destination = tmp_path / "model"
    assert invoke("models", "export", str(destination), "--cycle", str(second.cycle_id),
                  "--config", str(config.config_path)).exit_code == 0
    with Store(config.database_path) as store:
        measured = stored_predictions(store, second.cycle_id, "validation")
    inputs = write_jsonl(tmp_path / "inputs.jsonl",
                         [{"id": row["example_id"], "input": row["input"]} for row in measured])
    result = invoke("predict", str(destination), "--input", str(inputs), "--output",
                    str(tmp_path / "answers.jsonl"), "--batch-size", "4", "--scores")
    assert result.exit_code == 0, result.output
    answers = [json.loads(line) for line in (tmp_path / "answers.jsonl").read_text().splitlines()]
    assert [answer["id"] for answer in answers] == [row["example_id"] for row in measured]
    for answer, row in zip(answers, measured):
        assert answer["output"] == row["output"]
        assert answer["confidence"] == pytest.approx(row["confidence"], abs=1e-5)
        assert set(answer["scores"]) == {"account", "billing", "shipping"}
        assert sum(answer["scores"].values()) == pytest.approx(1.0)


def test_predict_a_registered_model_to_standard_output(project, tmp_path):
    config = project["config"]
    inputs = tmp_path / "inputs.jsonl"
    inputs.write_text('"where is my parcel delivery"\n{"input": "my invoice fee"}\n')
    result = invoke("predict", "current", "--input", str(inputs), "--config",
                    str(config.config_path))
    assert result.exit_code == 0, result.output
    answers = [json.loads(line) for line in result.output.splitlines()]
    assert [answer["input"] for answer in answers] == ["where is my parcel delivery",
                                                        "my invoice fee"]
    assert all(answer["output"] in {"account", "billing", "shipping"} for answer in answers)


def test_predict_names_the_bad_line(project, tmp_path):
    inputs = tmp_path / "bad.jsonl"
    inputs.write_text('{"input": "fine"}\n{"text": "no input field"}\n')
    result = invoke("predict", "1", "--input", str(inputs), "--config",
                    str(project["config"].config_path))
    assert result.exit_code == 2
    assert f'{inputs}:2: expected an object with a text field "input"' in result.output
    nowhere = invoke("predict", str(tmp_path / "nothing"), "--input", str(inputs))
    assert nowhere.exit_code == 2 and "no such model folder" in nowhere.output


def test_promote_by_hand_from_the_command_line(project, tmp_path):
    import shutil

    # a copy of the project database, so the other tests keep their registry
    config = project["config"]
    copy = tmp_path / "copy.yaml"
    text = config.config_path.read_text().replace("database: tuneloop.db", "")
    shutil.copy(config.database_path, tmp_path / "tuneloop.db")
    shutil.copy(config.config_path.parent / "data.jsonl", tmp_path / "data.jsonl")
    copy.write_text(text)
    first = project["first"].cycle_id
    with Store(tmp_path / "tuneloop.db") as store:
        before = store.promoted_models("toy")[-1]["cycle_id"]
    if before == first:  # cycle 2 was rejected: promote it instead
        target, archived = project["second"].cycle_id, []
    else:
        target, archived = first, [before]
    result = invoke("models", "promote", str(target), "--reason", "the experts prefer it",
                    "--config", str(copy))
    assert result.exit_code == 0, result.output
    assert f"Cycle {target}'s model is now the current model" in result.output
    with Store(tmp_path / "tuneloop.db") as store:
        stages = {model["cycle_id"]: model["stage"] for model in store.models("toy")}
    assert stages[target] == "promoted"
    assert all(stages[cycle] == "archived" for cycle in archived)
    missing_reason = invoke("models", "promote", str(target), "--config", str(copy))
    assert missing_reason.exit_code == 2


def test_a_causal_lm_round_trips_too(tmp_path):
    from tuneloop.testing import tiny_gpt2

    model = tiny_gpt2(tmp_path / "gpt2", vocabulary_texts())
    config = load_config(causal_project(tmp_path, model, training={"epochs": 1}))
    result = run_cycle(config, quiet=True)
    destination = tmp_path / "exported"
    exported = invoke("models", "export", str(destination), "--cycle", str(result.cycle_id),
                      "--config", str(config.config_path))
    assert exported.exit_code == 0, exported.output
    assert "pipeline_tag: text-generation" in (destination / "README.md").read_text()
    with Store(config.database_path) as store:
        measured = stored_predictions(store, result.cycle_id, "test")
    inputs = write_jsonl(tmp_path / "prompts.jsonl", [{"input": row["input"]} for row in measured])
    answered = invoke("predict", str(destination), "--input", str(inputs), "--output",
                      str(tmp_path / "out.jsonl"))
    assert answered.exit_code == 0, answered.output
    outputs = [json.loads(line)["output"] for line in
               (tmp_path / "out.jsonl").read_text().splitlines()]
    assert outputs == [row["output"] for row in measured]
