"""``training.report_to``: MLflow (a local file store) and Weights & Biases (offline) receive the
training figures through transformers' integrations; a tracker that is not installed is a
one-line config error naming the field."""

from __future__ import annotations

import importlib.util
import json
import os
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from tuneloop import Example  # noqa: E402
from tuneloop.errors import ConfigError  # noqa: E402
from tuneloop.plugins.trainers import causal_lm  # noqa: E402
from tuneloop.testing import cycle_context, tiny_gpt2  # noqa: E402

needs_trackers = pytest.mark.skipif(
    importlib.util.find_spec("mlflow") is None or importlib.util.find_spec("wandb") is None,
    reason="mlflow and wandb are in the dev extra (pip install -e .[dev])")


def wandb_records(log_file: Path) -> list[bytes]:
    """The records of a ``.wandb`` transaction log (LevelDB's log format behind a 7-byte
    ``:W&B`` header: 32 KiB blocks of chunks, each a 4-byte checksum, 2-byte length and 1-byte
    type: full, first, middle or last). Read here because wandb 0.31 moved its reader into the Go
    core; the test only needs the payloads."""
    data = log_file.read_bytes()
    assert data[:4] == b":W&B"
    block, position, records, pending = 32768, 7, [], b""
    while position + 7 <= len(data):
        if block - position % block < 7:  # a block's tail too short for a chunk header
            position += block - position % block
            continue
        length = int.from_bytes(data[position + 4:position + 6], "little")
        kind = data[position + 6]
        chunk = data[position + 7:position + 7 + length]
        position += 7 + length
        if kind == 0 and length == 0:  # zero padding
            continue
        pending = chunk if kind in (1, 2) else pending + chunk
        if kind in (1, 4):
            records.append(pending)
            pending = b""
    return records


def wandb_history(run_folder: Path) -> list[dict]:
    """The rows an offline W&B run logged, read back from its ``.wandb`` file."""
    from wandb.proto import wandb_internal_pb2

    [log_file] = run_folder.glob("*.wandb")
    rows = []
    for data in wandb_records(log_file):
        record = wandb_internal_pb2.Record()
        record.ParseFromString(data)
        if record.WhichOneof("record_type") == "history":
            rows.append({item.key or "/".join(item.nested_key): json.loads(item.value_json)
                         for item in record.history.item})
    return rows


@pytest.mark.slow
@needs_trackers
def test_mlflow_and_wandb_receive_the_training_figures(tmp_path, monkeypatch):
    import torch
    from mlflow.tracking import MlflowClient

    torch.set_num_threads(1)
    store = tmp_path / "mlruns"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"file:{store}")
    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_SILENT", "true")
    monkeypatch.delenv("WANDB_DIR", raising=False)
    monkeypatch.delenv("MLFLOW_EXPERIMENT_NAME", raising=False)

    train = [Example(f"say {word}", word) for word in ["cat", "dog", "cow", "owl", "fox", "bee"]]
    base = tiny_gpt2(tmp_path / "gpt2", [example.input for example in train])
    logged: list[tuple[int, dict]] = []
    context = cycle_context(tmp_path / "run", task="causal-lm", start_model=base,
                            training={"epochs": 2, "batch_size": 2, "eval_every": 3,
                                      "report_to": ["mlflow", "wandb"]},
                            log=lambda step, logs: logged.append((step, logs)))
    causal_lm.CausalLMTrainer().train(context, {"train": train, "validation": train[:2]}, [])
    ours = {(step, name): value for step, logs in logged for name, value in logs.items()}
    assert any(name == "eval_loss" for _, name in ours) and any(name == "loss" for _, name in ours)

    # MLflow: the project's experiment, a run named cycle-1 with every training figure
    client = MlflowClient(f"file:{store}")
    experiment = client.get_experiment_by_name("test")
    [run] = client.search_runs([experiment.experiment_id])
    assert run.info.run_name == "cycle-1" and run.data.tags["tuneloop.cycle"] == "1"
    for name in ("loss", "eval_loss", "learning_rate"):
        history = {(metric.step, metric.value) for metric in client.get_metric_history(
            run.info.run_id, name)}
        assert history == {(step, value) for (step, figure), value in ours.items()
                           if figure == name}, name

    # W&B: an offline run in the cycle's run folder, with the same figures at the same steps
    [run_folder] = (tmp_path / "run" / "wandb").glob("offline-run-*")
    rows = wandb_history(run_folder)
    seen = {(row["train/global_step"], key): value for row in rows for key, value in row.items()}
    for (step, name), value in ours.items():
        if name in ("loss", "eval_loss", "learning_rate"):
            key = "eval/loss" if name == "eval_loss" else f"train/{name}"
            assert seen[(step, key)] == pytest.approx(value), (step, name)


def test_a_tracker_that_is_not_installed_is_a_config_error_naming_report_to(tmp_path,
                                                                           monkeypatch):
    import importlib.util as util

    from tuneloop.config import load_config

    real = util.find_spec
    monkeypatch.setattr(util, "find_spec",
                        lambda name, *args: None if name == "wandb" else real(name, *args))
    config = tmp_path / "tuneloop.yaml"
    config.write_text("project: p\ntask: causal-lm\nmodel: {name: gpt2}\n"
                      "data: {sources: [{type: jsonl, path: d.jsonl}]}\n"
                      "training:\n  report_to: [tensorboard, wandb]\n", encoding="utf-8")
    with pytest.raises(ConfigError) as raised:
        load_config(config, check_components=False)
    assert str(raised.value).count("\n") == 0
    assert "line 6: training.report_to: wandb is not installed (pip install wandb)" in \
        str(raised.value)


def test_report_to_replaces_tensorboard_and_defaults_to_it(tmp_path):
    def trackers(**training):
        return cycle_context(tmp_path, task="causal-lm", start_model="unused",
                             training=training).config.training.trackers

    assert trackers() == ["tensorboard"]
    assert trackers(tensorboard=False) == []
    assert trackers(report_to=["mlflow"]) == ["mlflow"]
    assert trackers(report_to=[], tensorboard=True) == []
