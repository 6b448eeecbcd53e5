"""A small project with two finished cycles and expert ratings in between, for the tests of the
model registry, ``predict`` and the reports."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from projects import classification_project
from tuneloop.config import load_config
from tuneloop.cycle import run_cycle
from tuneloop.store import Store


def add_reviewer(store: Store, name: str) -> int:
    """A reviewer row without an Argon2 hash (no login in these tests)."""
    with store.write() as db:
        table = db["reviewers"]
        table.insert({"name": name, "password_hash": "-", "role": "expert",
                      "created_at": "2026-01-01T00:00:00"})
        return int(table.last_pk)


def rate_cycle(store: Store, cycle_id: int, reviewers: list[int], correct: int,
               approve: int) -> list[int]:
    """Every reviewer corrects the first ``correct`` queued outputs of the cycle to "account"
    and approves the next ``approve``; returns the rating ids."""
    queued = store.query("SELECT output_id FROM review_queue WHERE cycle_id = ? "
                         "ORDER BY priority", [cycle_id])
    ratings = []
    for reviewer in reviewers:
        for position, row in enumerate(queued[:correct + approve]):
            if position < correct:
                ratings.append(store.add_rating(reviewer_id=reviewer, output_id=row["output_id"],
                                                verdict="reject", corrected="account", score=2))
            else:
                ratings.append(store.add_rating(reviewer_id=reviewer, output_id=row["output_id"],
                                                verdict="approve", score=4))
    return ratings


def two_rated_cycles(directory: Path, model_dir: str, **overrides: Any) -> dict[str, Any]:
    """Cycle 1, two experts rate five of its outputs, cycle 2 trains on the ratings."""
    overrides.setdefault("evaluation", {"metrics": ["accuracy", "f1", "per_class", "ece"]})
    overrides.setdefault("training", {"epochs": 3, "learning_rate": 0.005, "batch_size": 8,
                                      "seed": 1})
    config = load_config(classification_project(directory, model_dir, **overrides))
    first = run_cycle(config, quiet=True)
    with Store(config.database_path) as store:
        reviewers = [add_reviewer(store, "ann"), add_reviewer(store, "bob")]
        ratings = rate_cycle(store, first.cycle_id, reviewers, correct=2, approve=3)
    second = run_cycle(config, quiet=True)
    return {"config": config, "first": first, "second": second, "ratings": ratings}
