"""``tuneloop run`` under torchrun: two processes train one cycle with DDP (gloo on the CPU); the
main process records it once."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from tuneloop import distributed
from tuneloop.store import Store
from tuneloop.testing import tiny_bert
from training_data import numbered_vocabulary, sentiment_project


def test_two_processes_train_one_cycle_recorded_once(tmp_path):
    path = sentiment_project(tmp_path, tiny_bert(tmp_path / "bert", numbered_vocabulary()),
                             epochs=2, eval_every=4)
    environment = {**os.environ, "OMP_NUM_THREADS": "1", "TUNELOOP_LOAD_PLUGINS": ""}
    for name in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT"):
        environment.pop(name, None)
    run = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2",
         "-m", "tuneloop.cli", "run", str(path), "--quiet"],
        env=environment, capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert run.returncode == 0, run.stderr[-3000:]
    assert run.stdout.count("Cycle 1: done") == 1  # the main process reports; the other is quiet

    with Store(tmp_path / "tuneloop.db") as store:
        cycles = store.cycles()
        assert [(cycle["id"], cycle["status"]) for cycle in cycles] == [(1, "done")]
        training = json.loads(cycles[0]["stats"])["training"]
        final = store.query("SELECT split, name, COUNT(*) AS n FROM metrics WHERE step IS NULL "
                            "GROUP BY split, name")
        assert final and all(row["n"] == 1 for row in final)
        queued = store.one("SELECT COUNT(*) AS n FROM review_queue")["n"]
        steps = [row["step"] for row in store.query(
            "SELECT step FROM metrics WHERE split = 'validation' AND name = 'loss' "
            "AND step IS NOT NULL ORDER BY step")]
    assert queued == 5
    # each process took half of every batch of 8, as one process would with batches of 16:
    # validation every 4 steps, each logged once
    assert steps == list(range(4, 2 * -(-training["train_examples"] // 16) + 1, 4))


def test_who_is_who_comes_from_the_launcher(monkeypatch):
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    monkeypatch.delenv("RANK", raising=False)
    assert not distributed.is_distributed() and distributed.is_main_process()
    assert distributed.agree(lambda: 7) == 7 and distributed.broadcast("x") == "x"
    monkeypatch.setenv("WORLD_SIZE", "4")
    monkeypatch.setenv("RANK", "3")
    assert distributed.is_distributed() and not distributed.is_main_process()


@pytest.mark.parametrize("rank", ["0", "1"])
def test_only_the_main_process_writes_the_model(rank, monkeypatch, tmp_path):
    from tuneloop.plugins.trainers import callbacks
    from tuneloop.testing import cycle_context

    monkeypatch.setenv("RANK", rank)
    monkeypatch.setenv("WORLD_SIZE", "1")  # no process group: the helpers only read the rank
    context = cycle_context(tmp_path, task="classification", start_model="unused")

    class Recording:
        writes = 0

        def write(self):
            Recording.writes += 1
            raise RuntimeError("a write")

    context.store = Recording()
    if rank == "0":
        with pytest.raises(RuntimeError, match="a write"):
            callbacks.forget_logs_after(context, 3)
    else:
        callbacks.forget_logs_after(context, 3)
        assert Recording.writes == 0
