"""Resuming an interrupted cycle: ``tuneloop run --resume`` (``run_cycle(..., resume=True)``).

A cycle can stop anywhere: an error (status ``failed``), or a kill, a power cut, a preempted machine
(status left at ``running``). Resuming continues the project's latest cycle in its own row and run
folder: the data is prepared again and must be the data the cycle started with; training continues
from the last complete checkpoint (model, optimizer, scheduler, RNG states, position in the data),
or is skipped when the cycle had already saved its model; evaluation, review and promotion run
again after the partial records of the interrupted attempt are cleared. The result is the one an
uninterrupted run would have given, within numerical noise.
"""

from __future__ import annotations

import json
import os
import socket
from pathlib import Path
from typing import Any

from tuneloop.components import Example
from tuneloop.errors import TuneloopError
from tuneloop.store import Store


def process_record() -> dict[str, Any]:
    """Which process runs a cycle, so a resume can tell a killed cycle from a running one."""
    return {"host": socket.gethostname(), "pid": os.getpid()}


def cycle_to_resume(store: Store, project: str) -> dict[str, Any]:
    """The project's latest cycle, if it was interrupted; marked ``failed`` if it was killed.

    A killed cycle is marked failed before the data is prepared again, so the ratings it had taken
    are offered again, exactly as they were when it started.
    """
    cycle = store.one("SELECT * FROM cycles WHERE project = ? ORDER BY id DESC LIMIT 1", [project])
    if cycle is None or cycle["status"] not in ("running", "failed"):
        state = f"cycle {cycle['id']} is {cycle['status']}" if cycle else "there are no cycles"
        raise TuneloopError(f'project "{project}": nothing to resume ({state}); run without '
                            f"--resume")
    if cycle["status"] == "running":
        if still_running(cycle):
            raise TuneloopError(f"cycle {cycle['id']} is still running (process "
                                f"{_process(cycle).get('pid')} on this machine); stop it before "
                                f"resuming")
        store.update_cycle(cycle["id"], status="failed", error="interrupted while running")
    return cycle


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


def check_same_data(store: Store, cycle_id: int, splits: dict[str, list[Example]]) -> None:
    """Refuse to resume on data other than the data the cycle started with."""
    stored = {(row["split"], row["id"]) for row in
              store.query("SELECT split, id FROM examples WHERE cycle_id = ?", [cycle_id])}
    prepared = {(split, example.id) for split, examples in splits.items() for example in examples}
    if stored != prepared:
        changed = len(stored ^ prepared)
        raise TuneloopError(f"cycle {cycle_id}: the data changed since it started ({changed} "
                            f"examples differ), so it cannot be resumed; run without --resume "
                            f"for a new cycle")


def reopen(store: Store, cycle: dict[str, Any]) -> None:
    stats = json.loads(cycle["stats"]) if cycle.get("stats") else {}
    stats["process"] = process_record()
    stats["resumed"] = stats.get("resumed", 0) + 1
    store.update_cycle(cycle["id"], status="running", error=None, finished_at=None, stats=stats)


def trained_model(cycle: dict[str, Any]) -> str | None:
    """The model the cycle saved before it was interrupted, if it got that far."""
    path = cycle.get("model_path")
    return path if path and Path(path).is_dir() else None


def clear_after_training(store: Store, cycle_id: int) -> None:
    """Remove what an interrupted attempt recorded after training (final figures, predictions,
    outputs and their queue items, the model record), so the stages after training run again
    into a clean slate. Outputs an expert has already rated are never removed: such a cycle is
    refused."""
    rated = store.one("SELECT COUNT(*) AS n FROM ratings r JOIN outputs o ON o.id = r.output_id "
                      "WHERE o.cycle_id = ?", [cycle_id])
    if rated and rated["n"]:
        raise TuneloopError(f"cycle {cycle_id}: experts have rated its outputs, so its stages "
                            f"after training cannot run again; run without --resume")
    tables = set(store.db.table_names())
    with store.write() as db:
        db.execute("DELETE FROM metrics WHERE cycle_id = ? AND step IS NULL", [cycle_id])
        db.execute("DELETE FROM review_queue WHERE cycle_id = ?", [cycle_id])
        db.execute("DELETE FROM review_queue WHERE output_id IN (SELECT id FROM outputs WHERE "
                   "cycle_id = ?)", [cycle_id])
        if "predictions" in tables:
            db.execute("DELETE FROM predictions WHERE cycle_id = ?", [cycle_id])
        db.execute("DELETE FROM outputs WHERE cycle_id = ?", [cycle_id])
        db.execute("DELETE FROM models WHERE cycle_id = ?", [cycle_id])
