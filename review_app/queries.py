"""Reads the review app needs that ``Store`` does not offer (yet).

Each is a thin function over ``store.query``/``store.one``, so the app still reaches the database
only through the store; they are candidates to move into ``Store`` as methods.
"""

from __future__ import annotations

import json
from typing import Any

from tuneloop.store import CURRENT_RATINGS, Store


def review_item(store: Store, output_id: int) -> dict[str, Any] | None:
    """One stored output with what the rating screen needs from its cycle (task, config)."""
    return store.one(
        "SELECT o.*, c.task, c.config AS cycle_config FROM outputs o "
        "JOIN cycles c ON c.id = o.cycle_id WHERE o.id = ?", [output_id])


def label_set(store: Store, cycle_id: int, config_json: str | None = None) -> list[str]:
    """The labels an expert may choose from for a classification cycle.

    The config's ``data.labels`` where it has them, plus every label the cycle's outputs use as
    reference or prediction, so a label that only the data knows is still offered.
    """
    labels: set[str] = set()
    if config_json:
        try:
            configured = (json.loads(config_json).get("data") or {}).get("labels") or []
        except (ValueError, AttributeError):
            configured = []
        labels.update(str(label) for label in configured)
    for row in store.query(
            "SELECT reference AS label FROM outputs WHERE cycle_id = ? AND reference IS NOT NULL "
            "UNION SELECT output FROM outputs WHERE cycle_id = ?", [cycle_id, cycle_id]):
        labels.add(row["label"])
    return sorted(labels)


def current_rating(store: Store, reviewer_id: int, output_id: int) -> dict[str, Any] | None:
    """This reviewer's current (not superseded) rating of the output, if any."""
    return store.one(CURRENT_RATINGS + " AND r.output_id = ? AND r.reviewer_id = ?",
                     [output_id, reviewer_id])
