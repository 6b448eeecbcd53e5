"""The review queue with pair items, pairwise ratings in the store, migration m002, and the
agreement check that decides which ratings train (``tuneloop.consensus``)."""

from __future__ import annotations

import sqlite3

import pytest

from tuneloop import Example, Prediction, Rating, ReviewCandidate
from tuneloop.config import ReviewConfig
from tuneloop.consensus import agreed_ratings, agreement_by_item, send_back_to_queue
from tuneloop.pairing import attach_previous, queue_pairs
from tuneloop.store import Store
from tuneloop.store.migrations import MIGRATIONS


def make_cycle(store: Store, parent_id: int | None = None) -> int:
    return store.create_cycle(project="p", task="classification", seed=1, config={},
                              plugins=[], base_model="m", start_model="m", parent_id=parent_id)


def add(store: Store, cycle_id: int, answers: dict[str, tuple[str, float]],
        scores: dict[str, dict[str, float]] | None = None) -> dict[str, int]:
    """Outputs for inputs → (answer, confidence); returns input → output id."""
    examples = [Example(input=text, target=None) for text in answers]
    predictions = [Prediction(e.id, answer, confidence, (scores or {}).get(e.input))
                   for e, (answer, confidence) in zip(examples, answers.values())]
    return dict(zip(answers, store.add_outputs(cycle_id, predictions, examples)))


@pytest.fixture
def store(tmp_path):
    with Store(tmp_path / "queue.db") as store:
        yield store


@pytest.fixture
def two_cycles(store):
    first = make_cycle(store)
    old = add(store, first, {"q1": ("billing", 0.9), "q2": ("refund", 0.4), "q3": ("a", 0.5),
                             "q4": ("same", 0.5)},
              scores={"q1": {"billing": 0.9, "refund": 0.1}})
    second = make_cycle(store, first)
    new = add(store, second, {"q1": ("refund", 0.6), "q2": ("billing", 0.3), "q4": ("same", 0.2),
                              "q5": ("x", 0.1)})
    ann = store.add_reviewer("ann", "hash", "expert")
    bob = store.add_reviewer("bob", "hash", "expert")
    return first, second, old, new, ann, bob


def test_m002_keeps_an_existing_queue_and_ratings(tmp_path):
    path = tmp_path / "old.db"
    store = Store(path, migrate=False)
    with store.write() as db:
        db.execute("CREATE TABLE _migrations (name TEXT PRIMARY KEY, applied_at TEXT NOT NULL)")
        MIGRATIONS[0](db)
        db["_migrations"].insert({"name": MIGRATIONS[0].__name__, "applied_at": "then"})
    cycle = make_cycle(store)
    outputs = add(store, cycle, {"a": ("x", 0.1), "b": ("y", 0.2)})
    with store.write() as db:  # the m001 way: output_id only
        db["review_queue"].insert_all([
            {"output_id": outputs["a"], "cycle_id": cycle, "priority": 0, "sampler": "s",
             "ratings_needed": 2, "status": "open", "created_at": "then"},
            {"output_id": outputs["b"], "cycle_id": cycle, "priority": 1, "sampler": "s",
             "ratings_needed": 1, "status": "done", "created_at": "then"}])
        reviewer = db["reviewers"].insert({"name": "ann", "password_hash": "h", "role": "expert",
                                           "created_at": "then"}).last_pk
        db["ratings"].insert({"output_id": outputs["b"], "reviewer_id": reviewer,
                              "verdict": "approve", "created_at": "then"})
    store.close()
    with Store(path) as migrated:
        assert migrated.applied_migrations()[:2] == ["m001_initial", "m002_review_loop"]
        assert migrated.query("SELECT output_id, pair_output_id, priority, ratings_needed, status "
                              "FROM review_queue ORDER BY id") == [
            {"output_id": outputs["a"], "pair_output_id": None, "priority": 0,
             "ratings_needed": 2, "status": "open"},
            {"output_id": outputs["b"], "pair_output_id": None, "priority": 1,
             "ratings_needed": 1, "status": "done"}]
        (rating,) = migrated.current_ratings(unused_only=False)
        assert (rating.output_id, rating.verdict, rating.pair_output_id) == (outputs["b"],
                                                                             "approve", None)
        assert migrated.conn.execute("PRAGMA integrity_check").fetchone() == ("ok",)
        assert migrated.conn.execute("PRAGMA foreign_key_check").fetchall() == []
        plan = " ".join(row[3] for row in migrated.conn.execute(
            "EXPLAIN QUERY PLAN SELECT id FROM review_queue WHERE status = 'open' "
            "ORDER BY cycle_id DESC, priority LIMIT 1"))
        assert "review_queue_next" in plan and "TEMP B-TREE" not in plan


def test_an_output_is_queued_alone_and_in_a_pair_and_each_is_rated_apart(store, two_cycles):
    first, second, old, new, ann, bob = two_cycles
    store.enqueue(second, [new["q1"]], "least_confident", 1)
    store.enqueue(second, [new["q1"]], "pairwise", 1, pair_output_ids=[old["q1"]],
                  priorities=[0])
    with pytest.raises(sqlite3.IntegrityError):  # the same pair twice
        store.enqueue(second, [new["q1"]], "pairwise", 1, pair_output_ids=[old["q1"]])
    single = store.next_queue_item(ann)
    assert (single["id"], single["pair_output_id"]) == (new["q1"], None)
    store.add_rating(reviewer_id=ann, output_id=new["q1"], verdict="approve")
    pair = store.next_queue_item(ann)
    assert (pair["id"], pair["pair_output_id"]) == (new["q1"], old["q1"])
    first_pick = store.add_rating(reviewer_id=ann, output_id=new["q1"], pair_output_id=old["q1"],
                                  verdict="approve", preferred_output_id=old["q1"], score=2,
                                  pair_score=4, left_output_id=new["q1"])
    assert store.next_queue_item(ann) is None
    # changing her mind about the pair supersedes the pair rating, not the single one
    second_pick = store.add_rating(reviewer_id=ann, output_id=new["q1"],
                                   pair_output_id=old["q1"], verdict="approve",
                                   preferred_output_id=new["q1"], left_output_id=old["q1"])
    rows = store.query("SELECT id, pair_output_id, supersedes_id FROM ratings ORDER BY id")
    assert [(r["pair_output_id"], r["supersedes_id"]) for r in rows] == [
        (None, None), (old["q1"], None), (old["q1"], first_pick)]
    current = {rating.id: rating for rating in store.current_ratings(unused_only=False)}
    assert set(current) == {rows[0]["id"], second_pick}
    assert current[second_pick].pair_output == "billing" and current[second_pick].is_pair
    assert current[second_pick].preferred_output_id == new["q1"]
    assert store.query("SELECT status FROM review_queue ORDER BY id") == [{"status": "done"}] * 2


def test_a_skip_reopens_an_item_an_edit_leaves_short(store, two_cycles):
    _, second, _, new, ann, _ = two_cycles
    store.enqueue(second, [new["q2"]], "least_confident", 1)
    store.add_rating(reviewer_id=ann, output_id=new["q2"], verdict="approve")
    assert store.query("SELECT status FROM review_queue") == [{"status": "done"}]
    store.add_rating(reviewer_id=ann, output_id=new["q2"], verdict="skip")
    assert store.query("SELECT status FROM review_queue") == [{"status": "open"}]


@pytest.mark.parametrize("fields", [
    {"preferred_output_id": "old"},                                  # a preference, no pair
    {"pair_output_id": "new"},                                       # compared with itself
    {"pair_output_id": "old", "preferred_output_id": "other"},       # prefers a third output
    {"pair_output_id": "old", "corrected": "x"},                     # a pair has no correction
    {"pair_output_id": "old", "verdict": "skip", "preferred_output_id": "old"},
    {"pair_output_id": "old", "left_output_id": "other"},
    {"pair_score": 3},
])
def test_the_database_refuses_an_inconsistent_pairwise_rating(store, two_cycles, fields):
    _, _, old, new, ann, _ = two_cycles
    ids = {"old": old["q1"], "new": new["q1"], "other": old["q3"]}
    values = {key: ids.get(value, value) if isinstance(value, str) and key != "verdict"
              and key != "corrected" else value for key, value in fields.items()}
    with pytest.raises(sqlite3.IntegrityError, match="pairwise rating"):
        store.add_rating(reviewer_id=ann, output_id=new["q1"],
                         verdict=values.pop("verdict", "approve"), **values)
    assert store.query("SELECT * FROM ratings") == []


def test_pairs_are_queued_where_two_cycles_answered_differently(store, two_cycles):
    first, second, old, new, _, _ = two_cycles
    store.enqueue(second, [new["q5"], new["q4"], new["q2"], new["q1"]], "least_confident", 2)
    queued = queue_pairs(store, second, first, ReviewConfig(ratings_per_item=2, pair_size=5),
                         singles_queued=4)
    assert queued == 2  # q4 answered the same twice, q5 is new, q3 not answered again
    rows = store.query("SELECT output_id, pair_output_id, priority, ratings_needed, sampler "
                       "FROM review_queue WHERE pair_output_id IS NOT NULL ORDER BY priority")
    assert [(r["output_id"], r["pair_output_id"]) for r in rows] == [
        (new["q2"], old["q2"]), (new["q1"], old["q1"])]  # least confident first
    assert [r["priority"] for r in rows] == [1, 3]  # spread among the four single items
    assert {(r["ratings_needed"], r["sampler"]) for r in rows} == {(2, "pairwise")}
    assert queue_pairs(store, second, None, ReviewConfig(), 4) == 0  # a first cycle has none
    assert queue_pairs(store, second, first, ReviewConfig(pair_size=0), 4) == 0


def test_candidates_learn_what_the_previous_cycle_said(store, two_cycles):
    first, second, old, new, _, _ = two_cycles
    candidates = [ReviewCandidate(new[key], "e", key, "out") for key in ("q1", "q5")]
    attach_previous(store, candidates, second, first)
    assert (candidates[0].previous_output, candidates[0].previous_confidence,
            candidates[0].previous_scores) == ("billing", 0.9, {"billing": 0.9, "refund": 0.1})
    assert candidates[1].previous_output is None


# ---- consensus --------------------------------------------------------------------------------


def vote(id: int, reviewer: str, verdict: str, corrected: str | None = None, output_id: int = 1,
         output: str = "billing", pair: int | None = None,
         preferred: int | None = None) -> Rating:
    return Rating(id=id, output_id=output_id, cycle_id=1, reviewer=reviewer, verdict=verdict,
                  input="q", output=output, corrected=corrected, pair_output_id=pair,
                  preferred_output_id=preferred)


def test_agreement_compares_what_a_policy_would_learn():
    ratings = [vote(1, "ann", "approve"), vote(2, "bob", "reject", "billing"),  # same label
               vote(3, "cy", "reject", "refund"), vote(4, "di", "skip")]
    (item,) = agreement_by_item(ratings, "classification").values()
    assert (item.raters, item.majority, item.share) == (3, ("label", "billing"), 2 / 3)
    # for generation two edits rarely match: the verdict is what is compared
    (text,) = agreement_by_item([vote(1, "ann", "reject", "A"), vote(2, "bob", "reject", "B")],
                                "causal-lm").values()
    assert (text.majority, text.share) == (("reject",), 1.0)
    (pair,) = agreement_by_item([vote(1, "ann", "approve", pair=9, preferred=9),
                                 vote(2, "bob", "approve", pair=9, preferred=1)],
                                "causal-lm").values()
    assert pair.majority is None and pair.share == 0.5  # a tie has no majority


def rate(store: Store, reviewer: int, output_id: int, verdict: str, corrected: str | None = None
         ) -> int:
    return store.add_rating(reviewer_id=reviewer, output_id=output_id, verdict=verdict,
                            corrected=corrected)


def test_disagreement_is_held_back_and_the_minority_outvoted(store, two_cycles):
    first, _, old, _, ann, bob = two_cycles
    cy = store.add_reviewer("cy", "hash", "expert")
    split = [rate(store, ann, old["q1"], "approve"), rate(store, bob, old["q1"], "reject", "x")]
    majority = [rate(store, ann, old["q2"], "reject", "billing"),
                rate(store, bob, old["q2"], "reject", "billing")]
    minority = rate(store, cy, old["q2"], "approve")
    alone = rate(store, ann, old["q3"], "approve")
    agreed = agreed_ratings(store, store.current_ratings(unused_only=True),
                            task="classification", min_agreement=0.6, requeue=False)
    assert sorted(r.id for r in agreed.kept) == sorted(majority + [alone])
    assert agreed.outvoted == [minority]
    assert list(agreed.held) == [(old["q1"], None)] and "50% of 2 experts" in agreed.held[
        (old["q1"], None)]
    assert agreed.requeue == [] and not set(split) & {r.id for r in agreed.kept}
    lenient = agreed_ratings(store, store.current_ratings(unused_only=True),
                             task="classification", min_agreement=0.5, requeue=False)
    assert (old["q1"], None) in lenient.held  # a tie never trains, whatever the threshold


def test_an_item_waits_for_the_ratings_it_asked_for_then_requeues_on_disagreement(store,
                                                                                   two_cycles):
    first, _, old, _, ann, bob = two_cycles
    store.enqueue(first, [old["q1"]], "least_confident", ratings_needed=2)
    rate(store, ann, old["q1"], "approve")
    waiting = agreed_ratings(store, store.current_ratings(unused_only=True),
                             task="classification", min_agreement=0.6, requeue=True)
    assert waiting.kept == [] and "waiting for 2 ratings" in waiting.held[(old["q1"], None)]
    assert waiting.requeue == []
    rate(store, bob, old["q1"], "reject", "refund")
    split = agreed_ratings(store, store.current_ratings(unused_only=True),
                           task="classification", min_agreement=0.6, requeue=True)
    assert split.requeue == [((old["q1"], None), 3)]
    assert store.query("SELECT status FROM review_queue") == [{"status": "done"}]
    orphan = rate(store, ann, old["q3"], "approve")  # rated but never queued (imported)
    assert send_back_to_queue(store, split.requeue + [((old["q3"], None), 2)]) == 2
    assert store.query("SELECT output_id, status, ratings_needed, priority FROM review_queue "
                       "ORDER BY id") == [
        {"output_id": old["q1"], "status": "open", "ratings_needed": 3, "priority": 0},
        {"output_id": old["q3"], "status": "open", "ratings_needed": 2, "priority": -1}]
    cy = store.add_reviewer("cy", "hash", "expert")
    assert store.next_queue_item(cy)["id"] == old["q3"]  # newly queued: at the top
    rate(store, cy, old["q3"], "approve")
    assert store.next_queue_item(cy)["id"] == old["q1"]  # a third expert is asked
    assert store.next_queue_item(ann) is None and orphan


def test_nested_writes_are_all_or_nothing(store, two_cycles):
    _, _, old, _, ann, _ = two_cycles
    with pytest.raises(LookupError):
        with store.write():
            rate(store, ann, old["q1"], "approve")
            rate(store, ann, 999_999, "approve")  # no such output: the whole block rolls back
    assert store.query("SELECT * FROM ratings") == []
    with store.write():
        rate(store, ann, old["q1"], "approve")
        rate(store, ann, old["q2"], "approve")
    assert len(store.query("SELECT * FROM ratings")) == 2


def test_the_cycle_trains_only_agreed_ratings_and_requeues_the_rest(tmp_path):
    """``prepare_data`` (the cycle's first stage, no model needed) runs the agreement check."""
    from projects import classification_project

    from tuneloop import registries
    from tuneloop.config import load_config
    from tuneloop.cycle import prepare_data

    config = load_config(classification_project(
        tmp_path, "unused-model", feedback={"policies": ["corrections", "approvals"],
                                            "on_disagreement": "requeue"}))
    with Store(config.database_path) as store:
        cycle = make_cycle(store)
        outputs = add(store, cycle, {"my card was charged twice": ("shipping", 0.3),
                                     "parcel not here yet": ("shipping", 0.9)})
        store.enqueue(cycle, list(outputs.values()), "least_confident", ratings_needed=2)
        ann, bob, cy = (store.add_reviewer(name, "h", "expert") for name in ("ann", "bob", "cy"))
        split = outputs["my card was charged twice"]
        agreed = outputs["parcel not here yet"]
        rate(store, ann, split, "reject", "billing")
        rate(store, bob, split, "reject", "account")
        kept = [rate(store, ann, agreed, "approve"), rate(store, bob, agreed, "approve")]
        outvoted = rate(store, cy, agreed, "reject", "billing")
        prepared = prepare_data(config, registries.build(), store)
    assert sorted(rating_id for rating_id, _, _ in prepared.feedback_uses) == sorted(kept)
    assert prepared.report["feedback"]["held_back_items"] == 1
    assert prepared.report["feedback"]["outvoted_ratings"] == 1 and outvoted not in kept
    assert prepared.requeue == [((split, None), 3)]
    trained = [e for e in prepared.splits["train"] if e.provenance.get("kind") == "feedback"]
    assert {(e.input, e.target) for e in trained} == {("parcel not here yet", "shipping")}


def test_held_back_items_are_counted_with_their_reason(store, two_cycles):
    from tuneloop.consensus import held_back

    first, _, old, _, ann, bob = two_cycles
    assert held_back(store, min_agreement=0.6).line() == \
        "Held back from training: none (every rated item is agreed)"
    store.enqueue(first, [old["q1"], old["q2"]], "least_confident", ratings_needed=2)
    rate(store, ann, old["q1"], "approve")
    rate(store, bob, old["q1"], "reject", "refund")
    rate(store, ann, old["q2"], "approve")  # one of the two ratings it asked for
    summary = held_back(store, min_agreement=0.6)
    assert summary.disagree == [(old["q1"], None)] and summary.waiting == [(old["q2"], None)]
    assert summary.back_in_queue == [] and "50% of 2 experts agree" in \
        summary.reasons[(old["q1"], None)]
    assert summary.line() == ("Held back from training: 2 items (experts disagree on 1 item, "
                              "not requeued yet: the next cycle does, unless "
                              "feedback.on_disagreement is hold; 1 item waiting for more "
                              "ratings)")
    send_back_to_queue(store, [((old["q1"], None), 3)])
    assert held_back(store, min_agreement=0.6).line() == (
        "Held back from training: 2 items (experts disagree on 1 item, 1 back in the queue "
        "for a tie-break; 1 item waiting for more ratings)")


def test_status_says_how_many_items_are_held_back_and_why(tmp_path):
    from click.testing import CliRunner
    from projects import classification_project

    from tuneloop.cli import cli
    from tuneloop.config import load_config

    path = classification_project(tmp_path, "unused-model")
    config = load_config(path, check_components=False)
    with Store(config.database_path) as store:
        cycle = make_cycle(store)
        outputs = add(store, cycle, {"my card was charged twice": ("shipping", 0.3)})
        store.enqueue(cycle, list(outputs.values()), "least_confident", ratings_needed=2)
        ann, bob = (store.add_reviewer(name, "h", "expert") for name in ("ann", "bob"))
        (split,) = outputs.values()
        rate(store, ann, split, "reject", "billing")
        rate(store, bob, split, "reject", "account")
    result = CliRunner().invoke(cli, ["status", str(path)], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    assert ("Held back from training: 1 item (experts disagree on 1 item, not requeued yet"
            in result.output)
