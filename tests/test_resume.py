"""Resuming interrupted cycles: killed at a random step, a cycle resumed with ``--resume`` ends
where an uninterrupted one does; checkpoints are whole or absent; resuming refuses what it
cannot do honestly."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
from pathlib import Path

import pytest

import kill_switch
from tuneloop import hookimpl as tuneloop_hookimpl
from tuneloop.config import load_config
from tuneloop.cycle import run_cycle
from tuneloop.errors import TuneloopError
from tuneloop.store import Store
from tuneloop.testing import register_plugin, tiny_bert
from training_data import numbered_vocabulary, sentiment_project

TESTS = Path(__file__).parent


@pytest.fixture(scope="module")
def base(tmp_path_factory):
    return tiny_bert(tmp_path_factory.mktemp("bert"), numbered_vocabulary())


def project(directory: Path, base: str) -> Path:
    # dropout on, so the resumed run must restore the RNG state to match
    return sentiment_project(directory, base, epochs=3, eval_every=5,
                             regularizers=["kill_switch", {"name": "dropout", "p": 0.2}])


def weights(model_dir: str):
    from safetensors.torch import load_file

    return load_file(str(Path(model_dir) / "model.safetensors"))


def figures(path: Path, cycle_id: int) -> dict:
    """The cycle's stored figures by (split, name, step); each must be stored once."""
    with Store(path.parent / "tuneloop.db") as store:
        rows = store.query("SELECT split, name, value, step FROM metrics WHERE cycle_id = ? "
                           "AND name NOT LIKE '%runtime%' AND name NOT LIKE '%per_second%' "
                           "ORDER BY split, name, step", [cycle_id])
    # "epoch" comes with both the training and the validation log line of a step; the rest once
    rows = [row for row in rows if row["name"] != "epoch"]
    found = {(row["split"], row["name"], row["step"]): row["value"] for row in rows}
    assert len(found) == len(rows), "a figure was stored twice"
    return found


def test_a_cycle_killed_at_a_random_step_resumes_to_the_same_result(base, tmp_path):
    # a random kill step each run; TUNELOOP_TEST_KILL_SEED=<seed from a failure> replays one
    seed = int(os.environ.get("TUNELOOP_TEST_KILL_SEED") or random.randrange(1_000_000))
    with register_plugin(kill_switch, name="kill_switch"):
        whole = run_cycle(load_config(project(tmp_path / "whole", base)), quiet=True)
        path = project(tmp_path / "killed", base)
        total = total_steps(tmp_path / "whole")
        kill_at = random.Random(seed).randrange(1, total)
        environment = {**os.environ, kill_switch.ENVIRONMENT: str(kill_at),
                       "PYTHONPATH": os.pathsep.join([str(TESTS),
                                                      os.environ.get("PYTHONPATH", "")])}
        killed = subprocess.run([sys.executable, str(TESTS / "kill_switch.py"), str(path)],
                                env=environment, capture_output=True, text=True, timeout=300)
        assert killed.returncode == -signal.SIGKILL, (seed, killed.stderr[-2000:])
        with Store(tmp_path / "killed" / "tuneloop.db") as store:
            assert store.cycle(1)["status"] == "running"  # killed: nothing marked it failed

        resumed = run_cycle(load_config(path), quiet=True, resume=True)
    message = f"killed at step {kill_at} of {total} (seed {seed})"
    assert resumed.status == "done" and resumed.cycle_id == 1, message
    with Store(tmp_path / "killed" / "tuneloop.db") as store:
        assert [row["id"] for row in store.cycles()] == [1], message  # the same cycle, once
        stats = json.loads(store.cycle(1)["stats"])
    # checkpoints every 5 steps, saved after the step's end, where the kill strikes
    last_checkpoint = ((kill_at - 1) // 5) * 5
    assert stats["training"].get("resumed_from_step", 0) == last_checkpoint, message
    assert stats["resumed"] == 1
    start, end = weights(whole.model_path), weights(resumed.model_path)
    assert max((start[name] - end[name]).abs().max().item() for name in start) < 1e-5, message
    for split in ("validation", "test"):
        assert resumed.metrics[split] == pytest.approx(whole.metrics[split]), message
    # the figures streamed while training too, each step once although the steps after the
    # checkpoint ran twice; only the training loss differs after the resume, being transformers'
    # mean over the steps since its last log line, which a resumed run starts counting afresh
    def comparable(found: dict) -> dict:
        return {key: value for key, value in found.items()
                if not (key[0] == "train" and key[1] in ("loss", "train_loss")
                        and key[2] > last_checkpoint)}

    assert figures(path, 1).keys() == figures(tmp_path / "whole" / "tuneloop.yaml", 1).keys()
    assert comparable(figures(path, 1)) == pytest.approx(
        comparable(figures(tmp_path / "whole" / "tuneloop.yaml", 1))), message


def total_steps(directory: Path) -> int:
    with Store(directory / "tuneloop.db") as store:
        row = store.one("SELECT MAX(step) AS steps FROM metrics WHERE cycle_id = 1")
    return int(row["steps"])


class FailOnce:
    """A plugin whose ``evaluation_finished`` hook raises the first time: a cycle that fails
    after training, with its figures and predictions already stored."""

    def __init__(self):
        self.failed = False
        self.training_logs = 0

    @tuneloop_hookimpl
    def evaluation_finished(self, cycle, metrics):
        if not self.failed:
            self.failed = True
            raise RuntimeError("disk full")

    @tuneloop_hookimpl
    def training_log(self, cycle, step, logs):
        self.training_logs += 1


def test_a_cycle_that_failed_after_training_resumes_without_training_again(base, tmp_path):
    path = sentiment_project(tmp_path, base, epochs=1)
    plugin = FailOnce()
    with register_plugin(plugin, name="fail_once"):
        with pytest.raises(Exception, match="disk full"):
            run_cycle(load_config(path), quiet=True)
        logged = plugin.training_logs
        resumed = run_cycle(load_config(path), quiet=True, resume=True)
    assert plugin.training_logs == logged  # no second training
    assert resumed.status == "done" and resumed.cycle_id == 1
    with Store(tmp_path / "tuneloop.db") as store:
        final = store.query("SELECT split, name, COUNT(*) AS n FROM metrics WHERE cycle_id = 1 "
                            "AND step IS NULL GROUP BY split, name")
        assert final and all(row["n"] == 1 for row in final)  # the first attempt's are gone
        assert store.one("SELECT COUNT(*) AS n FROM models")["n"] == 1


def test_resume_refuses_what_it_cannot_do_honestly(base, tmp_path):
    path = sentiment_project(tmp_path, base, epochs=1)
    with pytest.raises(TuneloopError, match="nothing to resume.*no cycles"):
        run_cycle(load_config(path), quiet=True, resume=True)
    run_cycle(load_config(path), quiet=True)
    with pytest.raises(TuneloopError, match="nothing to resume.*cycle 1 is done"):
        run_cycle(load_config(path), quiet=True, resume=True)

    with Store(tmp_path / "tuneloop.db") as store:  # a cycle some live process is running
        stats = json.loads(store.cycle(1)["stats"])
        stats["process"]["pid"] = os.getppid()
        store.update_cycle(1, status="running", stats=stats)
    with pytest.raises(TuneloopError, match="cycle 1 is still running"):
        run_cycle(load_config(path), quiet=True, resume=True)

    with Store(tmp_path / "tuneloop.db") as store:
        store.update_cycle(1, status="failed")
    rows = (tmp_path / "data.jsonl").read_text().splitlines()
    (tmp_path / "data.jsonl").write_text("\n".join(rows[:-3]) + "\n")
    with pytest.raises(TuneloopError, match="the data changed since it started"):
        run_cycle(load_config(path), quiet=True, resume=True)


def test_the_run_command_resumes(base, tmp_path):
    from click.testing import CliRunner

    from tuneloop.cli import cli

    path = sentiment_project(tmp_path, base, epochs=1)
    result = CliRunner().invoke(cli, ["run", str(path), "--resume", "--quiet"])
    assert result.exit_code == 2 and "nothing to resume" in result.output
