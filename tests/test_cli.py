"""The CLI: one-line errors with exit code 2 for bad input, nothing written, fast start-up."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
import yaml
from click.testing import CliRunner

from projects import classification_project, stub_model
from tuneloop.cli import cli
from tuneloop.store import Store


@pytest.fixture
def runner():
    return CliRunner()


def cycle_count(config_path) -> int:
    database = config_path.parent / "tuneloop.db"
    if not database.exists():
        return 0
    with Store(database) as store:
        return len(store.cycles())


def error_line(result) -> str:
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1, result.output
    return lines[0]


def test_help_imports_neither_torch_transformers_nor_evaluate():
    code = ("import sys; from click.testing import CliRunner; from tuneloop.cli import cli; "
            "r = CliRunner().invoke(cli, ['--help']); assert r.exit_code == 0, r.output; "
            "heavy = [m for m in ('torch', 'transformers', 'evaluate', 'streamlit') "
            "if m in sys.modules]; print(heavy)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_malformed_yaml_names_file_and_line(runner, tmp_path):
    config = tmp_path / "tuneloop.yaml"
    config.write_text("project: x\ntask: classification\nmodel: [unclosed\n")
    result = runner.invoke(cli, ["validate", str(config)])
    assert result.exit_code == 2
    assert f"{config}:" in error_line(result) and "invalid YAML" in result.output


def test_config_errors_are_reported_together_with_field_paths(runner, tmp_path):
    config = tmp_path / "tuneloop.yaml"
    config.write_text(yaml.safe_dump({
        "project": "x", "task": "regression", "model": {"name": "m"},
        "data": {"sources": [{"type": "jsonl", "path": "d.jsonl"}],
                 "split": {"train": 0.9, "validation": 0.5, "test": 0.1}},
        "training": {"epochs": -1},
    }))
    result = runner.invoke(cli, ["validate", str(config)])
    assert result.exit_code == 2
    line = error_line(result)
    assert "task" in line and "data.split" in line and "training.epochs" in line
    assert "line " in line


def test_unknown_component_suggests_the_closest_name_and_writes_nothing(runner, tmp_path):
    config = classification_project(tmp_path, "unused-model",
                                    data={"cleaners": ["drop_empty", "drop_duplicate"]})
    result = runner.invoke(cli, ["run", str(config), "--quiet"])
    assert result.exit_code == 2
    line = error_line(result)
    assert 'unknown cleaner "drop_duplicate"' in line and 'did you mean "drop_duplicates"' in line
    assert "data.cleaners[1]" in line
    assert cycle_count(config) == 0


def test_bad_option_of_a_component_names_the_option(runner, tmp_path):
    config = classification_project(tmp_path, "unused-model",
                                    feedback={"policies": [{"name": "corrections", "wieght": 2}]})
    result = runner.invoke(cli, ["validate", str(config)])
    assert result.exit_code == 2
    assert "feedback.policies[0].wieght" in error_line(result)


def test_broken_jsonl_line_names_file_and_line_and_leaves_database_unchanged(runner, tmp_path):
    config = classification_project(tmp_path, stub_model(tmp_path))
    data = tmp_path / "data.jsonl"
    lines = data.read_text().splitlines()
    lines[2] = '{"text": "broken'
    data.write_text("\n".join(lines) + "\n")
    with Store(tmp_path / "tuneloop.db") as store:  # a database that already has content
        store.add_reviewer("ann", "h", "expert")
    result = runner.invoke(cli, ["run", str(config), "--quiet"])
    assert result.exit_code == 2
    assert f"{data}:3" in error_line(result)
    assert cycle_count(config) == 0
    with Store(tmp_path / "tuneloop.db") as store:
        assert [r["name"] for r in store.reviewers()] == ["ann"]
        assert store.query("SELECT COUNT(*) AS n FROM examples")[0]["n"] == 0


def test_debug_shows_the_traceback(tmp_path):
    config = tmp_path / "tuneloop.yaml"
    config.write_text("project: [")
    env_code = ("import os, sys; os.environ['TUNELOOP_DEBUG'] = '1'; "
                "sys.argv = ['tuneloop', 'validate', sys.argv[1]]; "
                "from tuneloop.cli import main; main()")
    out = subprocess.run([sys.executable, "-c", env_code, str(config)], capture_output=True,
                         text=True)
    assert out.returncode != 0 and "Traceback" in out.stderr


def test_init_then_validate(runner, tmp_path):
    result = runner.invoke(cli, ["init", str(tmp_path / "proj")])
    assert result.exit_code == 0, result.output
    # the labelled examples and the unlabelled pool the experts review
    assert {"intents.jsonl", "unlabeled.jsonl"} <= {p.name for p in (tmp_path / "proj").iterdir()}
    result = runner.invoke(cli, ["validate", str(tmp_path / "proj" / "tuneloop.yaml")])
    assert result.exit_code == 0, result.output
    again = runner.invoke(cli, ["init", str(tmp_path / "proj")])
    assert again.exit_code == 2 and "already exists" in again.output


def test_plugins_list_shows_builtins_with_their_components(runner):
    result = runner.invoke(cli, ["plugins", "list", "--json"])
    assert result.exit_code == 0, result.output
    rows = {row["name"]: row for row in json.loads(result.output)}
    assert rows["tuneloop.plugins.sources"]["components"]["data_sources"] == [
        "alpaca", "csv", "dataset_info", "hf_dataset", "json", "jsonl", "parquet", "sharegpt",
        "sqlite", "tsv"]
    assert "register_trainers" in rows["tuneloop.plugins.trainers"]["hooks"]


def test_status_before_and_after_a_cycle_is_readable(runner, tmp_path):
    config = classification_project(tmp_path, "unused-model")
    result = runner.invoke(cli, ["status", str(config)])
    assert result.exit_code == 0 and "No cycles yet" in result.output
