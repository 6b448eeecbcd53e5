"""The store: migrations on a blank database, pragmas, append-only ratings, atomic writes."""

from __future__ import annotations

import sqlite3

import pytest

from tuneloop import Example, Prediction
from tuneloop.store import Store
from tuneloop.store.migrations import MIGRATIONS


def make_cycle(store: Store) -> int:
    return store.create_cycle(project="p", task="classification", seed=1, config={}, plugins=[],
                              base_model="base", start_model="base", parent_id=None)


def add_outputs(store: Store, cycle_id: int, texts: list[str]) -> list[int]:
    examples = [Example(input=text, target="a") for text in texts]
    predictions = [Prediction(example_id=e.id, output="a", confidence=0.5) for e in examples]
    return store.add_outputs(cycle_id, predictions, examples)


def test_migrations_apply_to_a_blank_database_and_are_recorded(tmp_path):
    store = Store(tmp_path / "blank.db")
    assert store.applied_migrations() == [m.__name__ for m in MIGRATIONS]
    tables = set(store.db.table_names())
    assert {"cycles", "examples", "metrics", "outputs", "review_queue", "reviewers", "ratings",
            "feedback_usage", "models", "split_assignments", "_migrations"} <= tables
    store.close()
    # Opening again applies nothing twice.
    again = Store(tmp_path / "blank.db")
    assert again.migrate() == []
    again.close()


def test_wal_busy_timeout_and_foreign_keys(tmp_path):
    with Store(tmp_path / "x.db") as store:
        assert store.conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert store.conn.execute("PRAGMA busy_timeout").fetchone()[0] >= 5000
        assert store.conn.execute("PRAGMA foreign_keys").fetchone()[0] == 1


def test_ratings_are_append_only_and_edits_supersede(tmp_path):
    with Store(tmp_path / "x.db") as store:
        cycle_id = make_cycle(store)
        (output_id,) = add_outputs(store, cycle_id, ["hello"])
        reviewer = store.add_reviewer("ann", "hash", "expert")
        first = store.add_rating(reviewer_id=reviewer, output_id=output_id, verdict="approve")
        second = store.add_rating(reviewer_id=reviewer, output_id=output_id, verdict="reject",
                                  corrected="b")
        rows = store.query("SELECT id, verdict, supersedes_id FROM ratings ORDER BY id")
        assert rows == [{"id": first, "verdict": "approve", "supersedes_id": None},
                        {"id": second, "verdict": "reject", "supersedes_id": first}]
        current = store.current_ratings(unused_only=False)
        assert [rating.id for rating in current] == [second]
        with pytest.raises(sqlite3.IntegrityError, match="append-only"):
            store.conn.execute("UPDATE ratings SET verdict = 'approve'")
        with pytest.raises(sqlite3.IntegrityError, match="append-only"):
            store.conn.execute("DELETE FROM ratings")


def test_a_failed_write_leaves_nothing_behind(tmp_path):
    with Store(tmp_path / "x.db") as store:
        with pytest.raises(RuntimeError):
            with store.write() as db:
                db["reviewers"].insert({"name": "x", "password_hash": "h", "role": "expert",
                                        "created_at": "now"})
                raise RuntimeError("boom")
        assert store.reviewers() == []
        assert not store.conn.in_transaction


def test_queue_item_closes_after_enough_ratings_and_is_not_shown_twice(tmp_path):
    with Store(tmp_path / "x.db") as store:
        cycle_id = make_cycle(store)
        first, second = add_outputs(store, cycle_id, ["one", "two"])
        store.enqueue(cycle_id, [second, first], "least_confident", ratings_needed=2)
        ann = store.add_reviewer("ann", "h", "expert")
        bob = store.add_reviewer("bob", "h", "expert")
        assert store.next_queue_item(ann)["id"] == second  # priority order
        store.add_rating(reviewer_id=ann, output_id=second, verdict="approve")
        assert store.next_queue_item(ann)["id"] == first  # ann rated `second` already
        assert store.next_queue_item(bob)["id"] == second  # still needs a second rating
        store.add_rating(reviewer_id=bob, output_id=second, verdict="skip")
        assert store.queue_progress()["done"] == 0  # a skip is not a rating that counts
        store.add_rating(reviewer_id=bob, output_id=second, verdict="approve")
        assert store.queue_progress() == {"total": 2, "done": 1, "open": 1}


def test_unused_ratings_ignore_uses_by_failed_cycles(tmp_path):
    with Store(tmp_path / "x.db") as store:
        cycle_id = make_cycle(store)
        (output_id,) = add_outputs(store, cycle_id, ["one"])
        ann = store.add_reviewer("ann", "h", "expert")
        rating = store.add_rating(reviewer_id=ann, output_id=output_id, verdict="approve")
        failed = make_cycle(store)
        store.record_feedback_usage(failed, [(rating, "approvals", "x")])
        store.update_cycle(failed, status="failed")
        assert [r.id for r in store.current_ratings(unused_only=True)] == [rating]
        done = make_cycle(store)
        store.record_feedback_usage(done, [(rating, "approvals", "x")])
        assert store.current_ratings(unused_only=True) == []


def test_m007_indexes_the_loop_queries_on_a_blank_and_on_a_previous_release_database(
        tmp_path, monkeypatch):
    """m007 adds the indexes the review step needs, to a new database and to one made before it
    (the data kept); the previous-outputs self-join then looks each input up in the index."""
    import tuneloop.store as store_module

    sql = ("EXPLAIN QUERY PLAN SELECT new.id, old.id FROM outputs new JOIN outputs old "
           "ON old.input = new.input AND old.cycle_id = ? WHERE new.cycle_id = ?")
    wanted = {"outputs_input", "feedback_usage_cycle", "review_queue_cycle"}

    def indexes(store: Store) -> set[str]:
        return {row["name"] for row in store.query(
            "SELECT name FROM sqlite_master WHERE type = 'index'")}

    with Store(tmp_path / "blank.db") as store:
        assert wanted <= indexes(store)
        plan = " | ".join(row["detail"] for row in store.query(sql, [1, 2]))
        assert "INDEX outputs_input (input=? AND cycle_id=?)" in plan
    before = [migration for migration in MIGRATIONS if migration.__name__ < "m007"]
    monkeypatch.setattr(store_module, "MIGRATIONS", before)  # the previous release's schema
    with Store(tmp_path / "old.db") as old:
        assert not wanted & indexes(old)
        first = make_cycle(old)
        ids = add_outputs(old, first, ["same question", "other question"])
    monkeypatch.undo()
    with Store(tmp_path / "old.db") as upgraded:
        assert "m007_loop_indexes" in upgraded.applied_migrations()
        assert wanted <= indexes(upgraded)
        assert [row["id"] for row in upgraded.outputs(first)] == ids
        plan = " | ".join(row["detail"] for row in upgraded.query(sql, [1, 2]))
        assert "INDEX outputs_input (input=? AND cycle_id=?)" in plan
