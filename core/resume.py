"""Resuming an interrupted cycle: ``tuneloop run --resume`` (``run_cycle(..., resume=True)``).

A cycle can stop anywhere: an error (status ``failed``), or a kill, a power cut, a preempted machine
(status left at ``running``, ``trained`` or ``evaluated``, with a process that is gone). Resuming
continues the project's latest cycle in its own row and run folder, from the stage it had reached:

    status reached     resumes with
    running            training, from the last complete checkpoint (model, optimizer, scheduler,
                       RNG states, position in the data)
    trained            evaluation (the saved model stands)
    evaluated          outputs for review, the review queue and promotion (the stored figures
                       stand)
    done (a hook       promotion
    failed after)

The data is prepared again and must be the data the cycle started with. Each stage's records are
deleted and written again from the stage resumed on (``Store.clear_stage_records``, one
transaction), so a stage killed half way never leaves duplicate figures, outputs or queue items.
The result is the one an uninterrupted run would have given, within numerical noise.
"""

from __future__ import annotations

import json
import os
import socket
from pathlib import Path
from typing import Any

from tuneloop.components import Example, TrainResult
from tuneloop.errors import TuneloopError
from tuneloop.store import Store


def process_record() -> dict[str, Any]:
    """Which process runs a cycle, so a resume can tell a killed cycle from a running one."""
    return {"host": socket.gethostname(), "pid": os.getpid()}


RESUMABLE = ("running", "trained", "evaluated", "failed")
# the status a cycle had reached -> the first stage a resume runs
FIRST_STAGE = {"running": "train", "trained": "evaluate", "evaluated": "review",
               "done": "promote"}


def cycle_to_resume(store: Store, project: str) -> dict[str, Any]:
    """The project's latest cycle, if it was interrupted; marked ``failed`` if it was killed.

    A killed cycle is marked failed before the data is prepared again, so the ratings it had taken
    are offered again, exactly as they were when it started. The returned row is the one read
    before that, with ``resume_stage``: the stage the resume starts with (``FIRST_STAGE``).
    """
    cycle = store.latest_cycle(project)
    if cycle is None or cycle["status"] not in RESUMABLE:
        state = f"cycle {cycle['id']} is {cycle['status']}" if cycle else "there are no cycles"
        raise TuneloopError(f'project "{project}": nothing to resume ({state}); run without '
                            f"--resume")
    if cycle["status"] != "failed":
        if still_running(cycle):
            raise TuneloopError(f"cycle {cycle['id']} is still running (process "
                                f"{_process(cycle).get('pid')} on this machine); stop it before "
                                f"resuming")
        store.mark_interrupted(cycle["id"], f"interrupted while {cycle['status']}")
    cycle["resume_stage"] = resume_stage(cycle)
    return cycle


def resume_stage(cycle: dict[str, Any]) -> str:
    """The first stage to run again: where the cycle had got to, as far as its records show.
    A stage after training needs the saved model; without it training runs again."""
    reached = cycle["status"]
    if reached == "failed":
        stats = json.loads(cycle["stats"]) if cycle.get("stats") else {}
        reached = stats.get("interrupted_at") or ("trained" if cycle.get("model_path")
                                                  else "running")
    stage = FIRST_STAGE.get(reached, "train")
    if stage != "train" and trained_model(cycle) is None:
        return "train"
    return stage


def stale_cycles(store: Store, project: str) -> list[dict[str, Any]]:
    """Cycles left ``running``, ``trained`` or ``evaluated`` whose process is gone: killed, and
    waiting for ``tuneloop run --resume``."""
    return [cycle for cycle in store.unfinished_cycles(project) if not still_running(cycle)]


def describe_stale(cycle: dict[str, Any], config_path: str) -> str:
    """One line for ``tuneloop status``: which cycle was interrupted, and the command that resumes
    it."""
    process = _process(cycle)
    who = (f"process {process['pid']} on {process.get('host', '?')} is gone"
           if process.get("pid") else "its process is not recorded")
    return (f"Cycle {cycle['id']} was interrupted while {cycle['status']} ({who}): resume it with "
            f"tuneloop run {config_path} --resume")


def _process(cycle: dict[str, Any]) -> dict[str, Any]:
    stats = json.loads(cycle["stats"]) if cycle.get("stats") else {}
    return stats.get("process") or {}


def still_running(cycle: dict[str, Any]) -> bool:
    """Whether the process that runs ``cycle`` is alive on this machine (another machine's
    process cannot be checked: it is assumed gone)."""
    process = _process(cycle)
    if process.get("host") != socket.gethostname() or not process.get("pid"):
        return False
    if process["pid"] == os.getpid():
        return False
    try:
        os.kill(int(process["pid"]), 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def check_same_data(store: Store, cycle_id: int, splits: dict[str, list[Example]]) -> bool:
    """Refuse to resume on data other than the data the cycle started with. Returns False when
    the cycle was killed before it recorded its data (nothing to compare: record it now)."""
    stored = store.example_keys(cycle_id)
    if not stored:
        return False
    prepared = {(split, example.id) for split, examples in splits.items() for example in examples}
    if stored != prepared:
        changed = len(stored ^ prepared)
        raise TuneloopError(f"cycle {cycle_id}: the data changed since it started ({changed} "
                            f"examples differ), so it cannot be resumed; run without --resume "
                            f"for a new cycle")
    return True


def reopen(store: Store, cycle: dict[str, Any]) -> None:
    """Back to the status the cycle had reached, run by this process (``status`` tells it from a
    killed one)."""
    stats = json.loads(cycle["stats"]) if cycle.get("stats") else {}
    stats["process"] = process_record()
    stats["resumed"] = stats.get("resumed", 0) + 1
    stats.pop("interrupted_at", None)
    status = {"train": "running", "evaluate": "trained", "review": "evaluated",
              "promote": "evaluated"}[cycle.get("resume_stage") or "train"]
    store.update_cycle(cycle["id"], status=status, error=None, finished_at=None, stats=stats)


def trained_model(cycle: dict[str, Any]) -> str | None:
    """The model the cycle saved before it was interrupted, if it got that far."""
    path = cycle.get("model_path")
    return path if path and Path(path).is_dir() else None


def train_result(cycle: dict[str, Any]) -> TrainResult:
    """The trainer's result as the cycle recorded it when training finished (model folder, best
    figure and step), for a resume that starts after training."""
    stats = json.loads(cycle["stats"]) if cycle.get("stats") else {}
    recorded = stats.get("train_result") or {}
    return TrainResult(model_dir=cycle["model_path"], best_metric=recorded.get("best_metric"),
                       best_step=recorded.get("best_step"),
                       global_step=recorded.get("global_step") or 0)


def clear_from(store: Store, cycle_id: int, stage: str) -> None:
    """Remove what an interrupted attempt recorded from ``stage`` on (``Store.clear_stage_records``)
    so those stages run again into a clean slate. Outputs an expert has already rated are never
    removed: such a cycle is refused."""
    if stage == "train":
        return
    if stage in ("evaluate", "review") and store.rated_outputs(cycle_id):
        raise TuneloopError(f"cycle {cycle_id}: experts have rated its outputs, so its stages "
                            f"after training cannot run again; run without --resume")
    store.clear_stage_records(cycle_id, stage)
