"""Several experts rating at once while a cycle writes its outputs: nothing lost, nothing locked.

Eight processes, one reviewer each, take items from the queue and rate them (500 each) while a
ninth process stores 50,000 outputs of a new cycle in batches, as a cycle's review stage does.
Every rating must be in the database afterwards, every queue item closed, no process may see an
error ("database is locked" included), and SQLite's integrity check must pass.
"""

from __future__ import annotations

import multiprocessing
import time
import traceback
from pathlib import Path

from tuneloop import Example, Prediction
from tuneloop.store import Store

WRITERS = 8
RATINGS_EACH = 500
NEW_OUTPUTS = 50_000
BATCH = 1_000


def rate(path: str, reviewer_id: int, errors) -> None:
    try:
        with Store(path, migrate=False) as store:
            for number in range(RATINGS_EACH):
                item = store.next_queue_item(reviewer_id)
                if item is None:
                    raise AssertionError(f"reviewer {reviewer_id}: queue empty after {number}")
                verdict = "approve" if (item["id"] + reviewer_id) % 3 else "reject"
                store.add_rating(reviewer_id=reviewer_id, output_id=item["id"], verdict=verdict,
                                 score=1 + (item["id"] + reviewer_id) % 5,
                                 corrected="fixed" if verdict == "reject" else None)
    except BaseException:  # report everything: a person would have seen it
        errors.put(f"reviewer {reviewer_id}: {traceback.format_exc()}")


def write_outputs(path: str, cycle_id: int, errors) -> None:
    try:
        with Store(path, migrate=False) as store:
            for start in range(0, NEW_OUTPUTS, BATCH):
                examples = [Example(input=f"new input {n}", target="a")
                            for n in range(start, start + BATCH)]
                predictions = [Prediction(e.id, "a", 0.5) for e in examples]
                store.add_outputs(cycle_id, predictions, examples)
    except BaseException:
        errors.put(f"output writer: {traceback.format_exc()}")


def test_eight_experts_and_a_cycle_write_at_once_and_nothing_is_lost(tmp_path: Path):
    path = str(tmp_path / "busy.db")
    with Store(path) as store:
        first = store.create_cycle(project="p", task="classification", seed=1, config={},
                                   plugins=[], base_model="m", start_model="m", parent_id=None)
        examples = [Example(input=f"input {n}", target="a") for n in range(RATINGS_EACH)]
        outputs = store.add_outputs(first, [Prediction(e.id, "b", 0.4) for e in examples],
                                    examples)
        store.enqueue(first, outputs, "least_confident", ratings_needed=WRITERS)
        reviewers = [store.add_reviewer(f"expert{n}", "hash", "expert") for n in range(WRITERS)]
        second = store.create_cycle(project="p", task="classification", seed=1, config={},
                                    plugins=[], base_model="m", start_model="m",
                                    parent_id=first)

    context = multiprocessing.get_context("spawn")
    errors = context.Queue()
    processes = [context.Process(target=rate, args=(path, reviewer, errors))
                 for reviewer in reviewers]
    processes.append(context.Process(target=write_outputs, args=(path, second, errors)))
    started = time.perf_counter()
    for process in processes:
        process.start()
    for process in processes:
        process.join(timeout=300)
    elapsed = time.perf_counter() - started
    reported = []
    while not errors.empty():
        reported.append(errors.get())
    assert reported == [], "\n".join(reported)
    assert [process.exitcode for process in processes] == [0] * len(processes)

    with Store(path, migrate=False) as store:
        per_reviewer = store.query("SELECT reviewer_id, COUNT(*) AS n, "
                                   "COUNT(DISTINCT output_id) AS outputs FROM ratings "
                                   "GROUP BY reviewer_id ORDER BY reviewer_id")
        assert per_reviewer == [{"reviewer_id": reviewer, "n": RATINGS_EACH,
                                 "outputs": RATINGS_EACH} for reviewer in reviewers]
        assert len(store.current_ratings(unused_only=False)) == WRITERS * RATINGS_EACH
        assert store.query("SELECT status, COUNT(*) AS n FROM review_queue GROUP BY status") \
            == [{"status": "done", "n": RATINGS_EACH}]
        assert store.one("SELECT COUNT(*) AS n FROM outputs WHERE cycle_id = ?",
                         [second])["n"] == NEW_OUTPUTS
        assert store.conn.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
        assert store.conn.execute("PRAGMA foreign_key_check").fetchall() == []
    print(f"{WRITERS * RATINGS_EACH} ratings and {NEW_OUTPUTS} outputs in {elapsed:.1f} s")
