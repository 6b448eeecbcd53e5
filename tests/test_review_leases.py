"""Task distribution and stored sessions, at the store and auth level (migration m008).

Claims (leases) keep experts off slots another expert holds; a rating for an item that filled up
meanwhile is refused inside the same transaction as the insert; many processes claiming and
rating at once rate every slot exactly as often as configured. Sessions live in the database as
hashes, a one-time grant yields the cookie token once, and a logout ends the session for every
tab."""

from __future__ import annotations

import multiprocessing
import traceback
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from tuneloop import Example, Prediction, auth
from tuneloop.store import SlotTaken, Store
from tuneloop.store import migrations as migrations_module

T0 = datetime(2026, 1, 1, 12, 0, tzinfo=timezone.utc)
LEASE = timedelta(minutes=5)


def queue(store: Store, items: int, needed: int) -> list[int]:
    cycle = store.create_cycle(project="p", task="classification", seed=1, config={},
                               plugins=[], base_model="m", start_model="m", parent_id=None)
    examples = [Example(input=f"input {n}", target="a") for n in range(items)]
    outputs = store.add_outputs(cycle, [Prediction(e.id, "a", 0.5) for e in examples],
                                examples)
    store.enqueue(cycle, outputs, "least_confident", ratings_needed=needed)
    return [row["id"] for row in store.query("SELECT id FROM review_queue ORDER BY priority")]


@pytest.fixture
def store(tmp_path):
    with Store(tmp_path / "leases.db") as store:
        yield store


def experts(store: Store, *names: str) -> list[int]:
    return [store.add_reviewer(name, "hash", "expert") for name in names]


def claim(store: Store, reviewer: int, at: datetime = T0) -> int | None:
    row = store.claim_next_item(reviewer, now=at, until=at + LEASE)
    return None if row is None else row["queue_id"]


def test_one_rating_per_item_gives_each_expert_another_item(store):
    items = queue(store, 3, needed=1)
    ann, bob, cy, dee = experts(store, "ann", "bob", "cy", "dee")
    assert [claim(store, ann), claim(store, bob), claim(store, cy)] == items
    assert claim(store, dee) is None  # every slot is held
    assert claim(store, ann) == items[0]  # a reload: the item she holds, not a new one


def test_k_ratings_per_item_lets_exactly_k_experts_hold_it(store):
    items = queue(store, 2, needed=2)
    ann, bob, cy = experts(store, "ann", "bob", "cy")
    assert claim(store, ann) == items[0] and claim(store, bob) == items[0]
    assert claim(store, cy) == items[1]


def test_an_expired_claim_frees_the_slot_and_a_release_gives_it_back(store):
    first, second = queue(store, 2, needed=1)
    ann, bob = experts(store, "ann", "bob")
    assert claim(store, ann) == first and claim(store, bob) == second
    store.release_leases(bob, second)
    assert claim(store, experts(store, "cy")[0]) == second
    later = T0 + LEASE + timedelta(seconds=1)
    assert claim(store, bob, later) == first  # ann's claim ran out
    assert store.renew_lease(first, ann, now=later, until=later + LEASE) is False
    assert store.renew_lease(first, bob, now=later, until=later + LEASE) is True


def test_a_rating_for_a_filled_item_is_refused_and_nothing_is_written(store):
    (item,) = queue(store, 1, needed=1)
    (output,) = [row["output_id"] for row in store.query("SELECT output_id FROM review_queue")]
    ann, bob = experts(store, "ann", "bob")
    assert claim(store, ann) == item
    later = T0 + LEASE + timedelta(seconds=1)  # ann's laptop sleeps; bob takes the item over
    assert claim(store, bob, later) == item
    store.rate_queue_item(item, bob, now=later, verdict="reject", corrected="b")
    with pytest.raises(SlotTaken):
        store.rate_queue_item(item, ann, now=later, verdict="approve")
    rows = store.query("SELECT reviewer_id, verdict FROM ratings")
    assert rows == [{"reviewer_id": bob, "verdict": "reject"}]
    assert store.query("SELECT * FROM review_leases") == []
    # bob may still change his own rating; a skip never fills a slot, so it is never refused
    store.rate_queue_item(item, bob, now=later, verdict="approve")
    store.rate_queue_item(item, ann, now=later, verdict="skip")
    assert store.query(f"SELECT COUNT(*) AS n FROM ratings WHERE output_id = {output}")[0]["n"] \
        == 3


def test_a_rating_is_refused_while_others_hold_every_free_slot(store):
    (item,) = queue(store, 1, needed=2)
    ann, bob, cy = experts(store, "ann", "bob", "cy")
    assert claim(store, ann) == item and claim(store, bob) == item
    with pytest.raises(SlotTaken):  # cy was never handed the item: its slots are spoken for
        store.rate_queue_item(item, cy, now=T0, verdict="approve")
    store.rate_queue_item(item, ann, now=T0, verdict="approve")
    store.rate_queue_item(item, bob, now=T0, verdict="approve")
    assert store.query("SELECT status FROM review_queue") == [{"status": "done"}]


def work(path: str, reviewer: int, errors) -> None:
    try:
        with Store(path, migrate=False) as store:
            while True:
                now = datetime.now(timezone.utc)
                row = store.claim_next_item(reviewer, now=now, until=now + LEASE)
                if row is None:
                    return
                store.rate_queue_item(row["queue_id"], reviewer, now=now,
                                      verdict="approve" if reviewer % 2 else "reject")
    except BaseException:
        errors.put(f"reviewer {reviewer}: {traceback.format_exc()}")


@pytest.mark.slow
def test_many_experts_at_once_rate_every_slot_exactly_as_often_as_configured(tmp_path: Path):
    path = str(tmp_path / "team.db")
    with Store(path) as store:
        queue(store, 60, needed=2)
        reviewers = experts(store, *(f"expert{n}" for n in range(5)))
    context = multiprocessing.get_context("spawn")
    errors = context.Queue()
    processes = [context.Process(target=work, args=(path, reviewer, errors))
                 for reviewer in reviewers]
    for process in processes:
        process.start()
    for process in processes:
        process.join(timeout=120)
    reported = []
    while not errors.empty():
        reported.append(errors.get())
    assert reported == [], "\n".join(reported)
    with Store(path) as store:
        counts = store.query("SELECT output_id, COUNT(*) AS n, COUNT(DISTINCT reviewer_id) AS "
                             "raters FROM ratings GROUP BY output_id")
        assert len(counts) == 60 and all(row["n"] == row["raters"] == 2 for row in counts)
        assert store.query("SELECT COUNT(*) AS n FROM review_queue WHERE status = 'open'") \
            == [{"n": 0}]


# ---- sessions --------------------------------------------------------------------------------


class Clock:
    def __init__(self):
        self.now = T0

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
def ann(store):
    fast = auth.PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1)
    auth.create_reviewer(store, "ann", "correct horse battery", hasher=fast)
    return fast


def test_a_grant_gives_the_cookie_token_once_and_only_hashes_are_stored(store, ann):
    clock = Clock()
    session = auth.login(store, "ann", "correct horse battery", clock=clock, hasher=ann)
    grant = auth.issue_grant(store, session, clock=clock)
    token, max_age = auth.redeem_grant(store, grant, clock=clock)
    assert max_age == int(auth.MAX_SESSION.total_seconds())
    assert auth.redeem_grant(store, grant, clock=clock) is None  # used up
    row = store.review_session(session_id=session.session_id)
    assert token not in str(row) and grant not in str(row) and row["grant_hash"] is None
    resumed = auth.resume_session(store, token, clock=clock)
    assert resumed.session_id == session.session_id and resumed.name == "ann"
    assert auth.resume_session(store, "not a token", clock=clock) is None
    late = auth.issue_grant(store, session, clock=clock)
    clock.now += auth.GRANT_TTL
    assert auth.redeem_grant(store, late, clock=clock) is None  # expired


def test_a_logout_ends_the_session_in_every_tab_and_frees_its_claims(store, ann):
    clock = Clock()
    queue(store, 1, needed=1)
    session = auth.login(store, "ann", "correct horse battery", clock=clock, hasher=ann)
    token, _ = auth.redeem_grant(store, auth.issue_grant(store, session, clock=clock),
                                 clock=clock)
    other_tab = auth.resume_session(store, token, clock=clock)
    assert claim(store, session.reviewer_id, clock.now) is not None
    auth.logout(store, session, clock=clock)
    with pytest.raises(auth.AuthError, match="logged out"):
        auth.current_reviewer(store, other_tab, clock=clock)
    assert auth.resume_session(store, token, clock=clock) is None
    assert store.query("SELECT * FROM review_leases") == []


def test_activity_in_one_tab_keeps_the_other_alive_and_idle_ends_both(store, ann):
    clock = Clock()
    session = auth.login(store, "ann", "correct horse battery", clock=clock, hasher=ann,
                         idle_timeout=timedelta(minutes=30))
    token, _ = auth.redeem_grant(store, auth.issue_grant(store, session, clock=clock),
                                 clock=clock)
    other = auth.resume_session(store, token, clock=clock, idle_timeout=timedelta(minutes=30))
    for _ in range(3):
        clock.now += timedelta(minutes=20)
        auth.current_reviewer(store, session, clock=clock)
    auth.current_reviewer(store, other, clock=clock)  # 60 minutes on: still alive
    clock.now += timedelta(minutes=31)
    assert auth.resume_session(store, token, clock=clock) is None
    with pytest.raises(auth.AuthError, match="expired"):
        auth.current_reviewer(store, other, clock=clock)


def test_disabling_an_account_ends_its_sessions(store, ann):
    session = auth.login(store, "ann", "correct horse battery", hasher=ann)
    assert auth.end_sessions_of(store, session.reviewer_id, "disabled by an admin") == 1
    with pytest.raises(auth.AuthError):
        auth.current_reviewer(store, session)


def test_m008_upgrades_a_database_made_by_the_previous_release(tmp_path, monkeypatch):
    path = tmp_path / "old.db"
    earlier = [m for m in migrations_module.MIGRATIONS if m.__name__ < "m008"]
    monkeypatch.setattr("tuneloop.store.MIGRATIONS", earlier)
    with Store(path) as old:
        items = queue(old, 2, needed=1)
        (bob,) = experts(old, "bob")
        assert "review_leases" not in old.db.table_names()
    monkeypatch.undo()
    with Store(path) as store:
        assert "m008_review_leases_and_sessions" in store.applied_migrations()
        assert claim(store, bob) == items[0]
        assert store.review_session(session_id=1) is None
