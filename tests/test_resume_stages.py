"""Kill at every stage, resume, compare: a cycle killed with SIGKILL anywhere (while recording its
data, training, after training, evaluating, after evaluating, storing outputs, queueing, pairing,
promoting) and resumed with ``tuneloop run --resume`` ends with every figure and record an
uninterrupted run stores: metrics, predictions, outputs, the review queue, the model record and
promotion, feedback usage.

The cycle killed is a second cycle, so that every record exists: feedback from two experts'
ratings of the first cycle (one item they disagree on, sent back to the queue), the parent's human
figures, pairwise review items against the parent's outputs, and a promotion decided against the
parent's figures. Every project starts as a copy of the same first cycle.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

import kill_switch
from tuneloop.store import Store
from tuneloop.testing import register_plugin, tiny_bert
from training_data import numbered_vocabulary, sentiment_project

TESTS = Path(__file__).parent
KILL_STEP = 6  # training checkpoints every 4 steps: a resume continues from step 4


def run_cli(*arguments: str):
    from click.testing import CliRunner

    from tuneloop.cli import cli

    with register_plugin(kill_switch, name="kill_switch"):
        result = CliRunner().invoke(cli, list(arguments))
    assert result.exit_code == 0, result.output + repr(result.exception)
    return result


@pytest.fixture(scope="module")
def origin(tmp_path_factory) -> Path:
    """A project after its first cycle, with two experts' ratings of its review queue."""
    from tuneloop.auth import create_reviewer

    root = tmp_path_factory.mktemp("stages")
    base = tiny_bert(root / "bert", numbered_vocabulary())
    directory = root / "origin"
    path = sentiment_project(directory, base, epochs=1, eval_every=4,
                             regularizers=["kill_switch"])
    config = yaml.safe_load(path.read_text())
    config["review"] = {"size": 6, "ratings_per_item": 2, "pairwise": True, "pair_size": 4}
    config["feedback"] = {"on_disagreement": "requeue"}
    # a review split large enough that inputs nobody rated remain for pairs in cycle 2
    config["data"]["split"] = {"train": 0.5, "validation": 0.15, "test": 0.1, "review": 0.25,
                               "seed": 3}
    config["training"]["learning_rate"] = 1e-5
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    run_cli("run", str(path), "--quiet")
    # the first cycle barely learns, the second learns: their outputs differ, so pairs queue
    config["training"].update(learning_rate=0.01, epochs=4)
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    with Store(directory / "tuneloop.db") as store:
        experts = [create_reviewer(store, name, "not-a-secret-stages") for name in ("ann", "bob")]
        queued = store.query("SELECT o.id, o.output, o.reference FROM review_queue q JOIN "
                             "outputs o ON o.id = q.output_id WHERE q.cycle_id = 1 "
                             "ORDER BY q.priority")
        assert len(queued) >= 4
        for number, row in enumerate(queued):
            for expert in experts:
                right = row["output"] == row["reference"]
                if number == 0 and expert == experts[1]:
                    right = not right  # the experts disagree on this one: it is requeued
                store.add_rating(reviewer_id=expert, output_id=row["id"],
                                 verdict="approve" if right else "reject",
                                 corrected=None if right else row["reference"],
                                 score=4 if right else 2)
    return directory


def copy_project(origin: Path, directory: Path) -> Path:
    """A copy of the first cycle's project (the database and run folders; the first cycle's model
    is referenced where it lies, so every copy starts cycle 2 from the same weights)."""
    shutil.copytree(origin, directory)
    return directory / "tuneloop.yaml"


@pytest.fixture(scope="module")
def whole(origin, tmp_path_factory) -> dict[str, Any]:
    path = copy_project(origin, tmp_path_factory.mktemp("whole") / "project")
    run_cli("run", str(path), "--quiet")
    return records(path.parent)


def records(directory: Path) -> dict[str, Any]:
    """Everything the project's database holds that a cycle wrote, without what differs by
    nature between two runs (times, the process, the folder, the resume count)."""
    folder = str(directory)

    def local(value: Any) -> Any:
        return value.replace(folder, "<project>") if isinstance(value, str) else value

    with Store(directory / "tuneloop.db") as store:
        cycles = []
        for row in store.cycles():
            stats = json.loads(row["stats"] or "{}")
            for key in ("process", "resumed", "interrupted_at", "threads"):
                stats.pop(key, None)
            stats.get("training", {}).pop("resumed_from_step", None)
            cycles.append({"id": row["id"], "status": row["status"], "error": row["error"],
                           "parent_id": row["parent_id"], "start_model": row["start_model"],
                           "model_path": local(row["model_path"]), "stats": stats,
                           "components": json.loads(row["components"] or "{}")})

        def rows(sql: str) -> list[dict[str, Any]]:
            return [{key: local(value) for key, value in row.items()} for row in store.query(sql)]

        return {
            "cycles": cycles,
            "final metrics": rows("SELECT cycle_id, split, name, value FROM metrics WHERE step "
                                  "IS NULL ORDER BY cycle_id, split, name"),
            "training log": rows("SELECT cycle_id, split, name, step, value FROM metrics WHERE "
                                 "step IS NOT NULL AND name NOT LIKE '%runtime%' AND name NOT "
                                 "LIKE '%per_second%' ORDER BY cycle_id, split, name, step"),
            "predictions": rows("SELECT id, cycle_id, split, example_id, input, reference, "
                                "output, confidence, correct, extra FROM predictions "
                                "ORDER BY id"),
            "outputs": rows("SELECT id, cycle_id, example_id, input, output, reference, "
                            "confidence, scores FROM outputs ORDER BY id"),
            "queue": rows("SELECT id, output_id, pair_output_id, cycle_id, priority, sampler, "
                          "ratings_needed, status FROM review_queue ORDER BY id"),
            "models": rows("SELECT id, cycle_id, path, metrics, stage, reasons FROM models "
                           "ORDER BY id"),
            "feedback usage": rows("SELECT id, rating_id, cycle_id, policy, example_id FROM "
                                   "feedback_usage ORDER BY id"),
            "examples": rows("SELECT cycle_id, id, split, input, target, weight, source, "
                             "provenance FROM examples ORDER BY cycle_id, split, id"),
            "split assignments": rows("SELECT * FROM split_assignments ORDER BY split_key"),
            "ratings": rows("SELECT id, output_id, reviewer_id, verdict FROM ratings "
                            "ORDER BY id"),
        }


def approximately(found: Any, expected: Any, where: str = "") -> None:
    """Equal, numbers within 1e-5 (JSON text holding numbers is compared decoded)."""
    if isinstance(expected, str) and isinstance(found, str) and expected[:1] in "[{":
        try:
            found, expected = json.loads(found), json.loads(expected)
        except ValueError:
            pass
    if isinstance(expected, dict):
        assert isinstance(found, dict) and found.keys() == expected.keys(), where
        for key in expected:
            approximately(found[key], expected[key], f"{where}.{key}")
    elif isinstance(expected, list):
        assert isinstance(found, list), where
        if len(found) != len(expected):  # name the rows one side lacks
            mine, theirs = {repr(row) for row in found}, {repr(row) for row in expected}
            raise AssertionError(f"{where}: {len(found)} rows, not {len(expected)}; only after "
                                 f"the resume: {sorted(mine - theirs)[:5]}; only uninterrupted: "
                                 f"{sorted(theirs - mine)[:5]}")
        for number, (one, other) in enumerate(zip(found, expected)):
            approximately(one, other, f"{where}[{number}]")
    elif isinstance(expected, float) and not isinstance(found, bool):
        assert found == pytest.approx(expected, abs=1e-5), where
    else:
        assert found == expected, where


@pytest.mark.slow  # one subprocess per stage, each importing torch: about 10-20 s a stage
@pytest.mark.parametrize("stage", list(kill_switch.STAGES))
def test_a_cycle_killed_at_any_stage_resumes_to_the_uninterrupted_result(origin, whole, stage,
                                                                        tmp_path):
    path = copy_project(origin, tmp_path / "project")
    environment = {**os.environ, "PYTHONPATH": os.pathsep.join(
        [str(TESTS), os.environ.get("PYTHONPATH", "")])}
    if stage == "training":
        environment[kill_switch.ENVIRONMENT] = str(KILL_STEP)
    else:
        environment[kill_switch.STAGE_ENVIRONMENT] = stage
    killed = subprocess.run([sys.executable, str(TESTS / "kill_switch.py"), str(path)],
                            env=environment, capture_output=True, text=True, timeout=300)
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-2000:]
    left_as = kill_switch.STAGES[stage][1]
    with Store(path.parent / "tuneloop.db") as store:
        assert store.cycle(2)["status"] == left_as  # killed: nothing marked it failed

    # status names the killed cycle and the command that resumes it
    shown = run_cli("status", str(path)).output
    assert f"Cycle 2 was interrupted while {left_as}" in shown
    assert f"tuneloop run {path} --resume" in " ".join(shown.split())

    resumed = run_cli("run", str(path), "--resume", "--quiet")
    assert "Cycle 2: done" in resumed.output
    found = records(path.parent)
    with Store(path.parent / "tuneloop.db") as store:
        stats = json.loads(store.cycle(2)["stats"])
    assert stats["resumed"] == 1
    if stage == "training":  # the training loss is transformers' mean since its last log
        # line, which a resumed run starts counting afresh: the other figures must match
        resumed_from = stats["training"]["resumed_from_step"]
        assert resumed_from == 4
        whole = dict(whole)  # the module's record is shared by every stage: filter a copy
        for table in (found, whole):
            table["training log"] = [row for row in table["training log"]
                                     if not (row["cycle_id"] == 2 and row["split"] == "train"
                                             and row["name"] in ("loss", "train_loss")
                                             and row["step"] > resumed_from)]
    for table in whole:
        approximately(found[table], whole[table], f"{stage}: {table}")
    if stage == "pairing":  # the point exists: pairs were queued
        assert any(row["pair_output_id"] for row in found["queue"])


def test_status_says_nothing_of_a_cycle_whose_process_runs(origin, tmp_path):
    path = copy_project(origin, tmp_path / "project")
    with Store(path.parent / "tuneloop.db") as store:
        stats = json.loads(store.cycle(1)["stats"])
        stats["process"]["pid"] = os.getppid()  # alive: a cycle running now, not a killed one
        store.update_cycle(1, status="trained", stats=stats)
    assert "interrupted" not in run_cli("status", str(path)).output
    with Store(path.parent / "tuneloop.db") as store:
        stats["process"]["pid"] = 2 ** 22 + 12345  # above Linux's pid_max: no such process
        store.update_cycle(1, stats=stats)
    assert "Cycle 1 was interrupted while trained" in run_cli("status", str(path)).output
