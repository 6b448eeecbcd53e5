"""Authorization: reviewers try to read and write across each other, and must fail.

Every read and write of the review app goes through ``tuneloop.review_app.queries`` (and
``stats`` for admin figures) with the reviewer re-read from the server-side session. These tests
call them as one reviewer against another's ratings, and drive the app with forged inputs.
"""

from __future__ import annotations

import inspect
from importlib import resources
from pathlib import Path
from types import SimpleNamespace

import pytest
from argon2 import PasswordHasher
from streamlit.testing.v1 import AppTest

from tuneloop import Example, Prediction, auth
from tuneloop.review_app import queries, stats
from tuneloop.review_app.queries import Forbidden
from tuneloop.store import Store

APP = Path(str(resources.files("tuneloop.review_app") / "app.py"))
PASSWORD = "correct horse"


@pytest.fixture(autouse=True)
def fast_hashes(monkeypatch):
    monkeypatch.setattr(auth, "HASHER", PasswordHasher(time_cost=1, memory_cost=1024,
                                                       parallelism=1))


def make_cycle(store: Store, blind: bool) -> tuple[int, list[int]]:
    cycle_id = store.create_cycle(project="p", task="classification", seed=1,
                                  config={"data": {"labels": ["a", "b"]},
                                          "review": {"blind": blind}},
                                  plugins=[], base_model="m", start_model="m", parent_id=None)
    examples = [Example(input=f"text {n} of cycle {cycle_id}", target="a") for n in range(3)]
    output_ids = store.add_outputs(cycle_id, [Prediction(e.id, "a", 0.5) for e in examples],
                                   examples)
    store.enqueue(cycle_id, output_ids[:2], "least_confident", ratings_needed=2)
    return cycle_id, output_ids


@pytest.fixture
def world(tmp_path, monkeypatch):
    store = Store(tmp_path / "authz.db")
    ann = auth.create_reviewer(store, "ann", PASSWORD)
    bob = auth.create_reviewer(store, "bob", PASSWORD)
    ada = auth.create_reviewer(store, "ada", PASSWORD, "admin")
    _, blind = make_cycle(store, blind=True)
    _, open_ = make_cycle(store, blind=False)
    bob_blind = store.add_rating(reviewer_id=bob, output_id=blind[0], verdict="reject",
                                 corrected="b", comment="bob's secret")
    bob_open = store.add_rating(reviewer_id=bob, output_id=open_[0], verdict="approve")
    monkeypatch.setenv("TUNELOOP_DB", str(tmp_path / "authz.db"))
    viewers = {name: auth.public(store.reviewer(name)) for name in ("ann", "bob", "ada")}
    queue = {output: row["id"] for output, row in (
        (row["output_id"], row) for row in store.query("SELECT id, output_id FROM review_queue"))}
    yield SimpleNamespace(store=store, ann=viewers["ann"], bob=viewers["bob"],
                          ada=viewers["ada"], ids={"ann": ann, "bob": bob, "ada": ada},
                          blind=blind, open=open_, bob_blind=bob_blind, bob_open=bob_open,
                          queue=queue)
    store.close()


def current(store: Store) -> dict[int, tuple]:
    return {rating.id: (rating.reviewer, rating.output_id, rating.verdict, rating.corrected)
            for rating in store.current_ratings(unused_only=False)}


def test_in_blind_mode_an_expert_cannot_read_another_experts_rating(world):
    item = queries.item(world.store, world.ann, world.queue[world.blind[0]])
    with pytest.raises(Forbidden, match="blind"):
        queries.others_ratings(world.store, world.ann, item)
    with pytest.raises(Forbidden, match="blind"):
        queries.rating(world.store, world.ann, world.bob_blind)
    # their own rating, yes; an admin, yes
    assert queries.rating(world.store, world.bob, world.bob_blind)["comment"] == "bob's secret"
    assert [row["reviewer"] for row in queries.others_ratings(world.store, world.ada, item)] \
        == ["bob"]
    assert queries.my_rating(world.store, world.ann, item) is None  # not bob's, under her name


def test_in_open_mode_experts_read_each_other_but_nothing_more(world):
    item = queries.item(world.store, world.ann, world.queue[world.open[0]])
    assert [row["reviewer"] for row in queries.others_ratings(world.store, world.ann, item)] \
        == ["bob"]
    assert queries.rating(world.store, world.ann, world.bob_open)["verdict"] == "approve"
    with pytest.raises(Forbidden):
        queries.history(world.store, world.ann, world.open[0])  # histories are admins'


@pytest.mark.parametrize("mode", ["blind", "open"])
def test_an_expert_never_changes_another_experts_rating(world, mode):
    output = getattr(world, mode)[0]
    before = current(world.store)
    bobs = world.bob_blind if mode == "blind" else world.bob_open
    mine = queries.save_rating(world.store, world.ann, world.queue[output], verdict="reject",
                               corrected="b")
    after = current(world.store)
    assert after[bobs] == before[bobs]  # bob's rating is still current, unchanged
    assert after[mine] == ("ann", output, "reject", "b")
    row = world.store.one("SELECT reviewer_id, supersedes_id FROM ratings WHERE id = ?", [mine])
    assert row == {"reviewer_id": world.ids["ann"], "supersedes_id": None}
    # no write function lets the caller name the reviewer or the rating to replace
    for function in (queries.save_rating,):
        parameters = set(inspect.signature(function).parameters)
        assert not parameters & {"reviewer_id", "reviewer", "rating_id", "supersedes_id"}


def test_writes_outside_the_queue_or_the_label_set_are_refused(world):
    unqueued = world.blind[2]  # an output that exists but was never queued
    with pytest.raises(Forbidden, match="no queued item"):
        queries.save_rating(world.store, world.ann, 10_000, verdict="approve")
    with pytest.raises(Forbidden, match="not one of this cycle's labels"):
        queries.save_rating(world.store, world.ann, world.queue[world.blind[1]],
                            verdict="reject", corrected="<script>")
    with pytest.raises(Forbidden, match="no sides"):
        queries.save_rating(world.store, world.ann, world.queue[world.blind[1]],
                            verdict="approve", preferred="left")
    with pytest.raises(Forbidden, match="unknown verdict"):
        queries.save_rating(world.store, world.ann, world.queue[world.blind[1]],
                            verdict="overrule")
    assert world.store.query("SELECT * FROM ratings WHERE output_id = ? OR reviewer_id = ?",
                             [unqueued, world.ids["ann"]]) == []


def test_a_disabled_reviewer_cannot_write_with_a_stale_session(world):
    world.store.update_reviewer(world.ids["ann"], disabled=1)
    with pytest.raises(PermissionError):
        queries.save_rating(world.store, world.ann, world.queue[world.blind[1]],
                            verdict="approve")


@pytest.mark.parametrize("name, call", [
    ("queue", lambda s, v: stats.queue_by_cycle(s, v)),
    ("throughput", lambda s, v: stats.throughput(s, v)),
    ("experts", lambda s, v: stats.per_expert(s, v)),
    ("agreement", lambda s, v: stats.agreement(s, v, 1, "classification")),
    ("metrics", lambda s, v: stats.metrics_across_cycles(s, v)),
    ("wins", lambda s, v: stats.pairwise_wins(s, v)),
    ("confusion", lambda s, v: stats.confusion_matrix(s, v, 1)),
    ("disagreement", lambda s, v: stats.most_disagreement(s, v, 1, "classification")),
    ("history", lambda s, v: queries.history(s, v, 1)),
])
def test_admin_figures_are_refused_to_experts(world, name, call):
    with pytest.raises(Forbidden):
        call(world.store, world.ann)
    call(world.store, world.ada)  # an admin gets them


def test_the_browser_cannot_choose_whom_a_rating_is_written_as(world):
    at = AppTest.from_file(str(APP), default_timeout=30)
    at.query_params["reviewer"] = "bob"
    at.query_params["reviewer_id"] = str(world.ids["bob"])
    at.run()
    at.text_input(key="login-name").input("ann")
    at.text_input(key="login-password").input(PASSWORD)
    at.button(key="login").click().run()
    approve = next(button for button in at.button if button.key.startswith("approve-"))
    approve.click().run()
    (row,) = world.store.query("SELECT reviewer_id FROM ratings WHERE id > ?", [world.bob_open])
    assert row["reviewer_id"] == world.ids["ann"]


def test_a_demoted_admin_loses_the_admin_pages_at_the_next_click(world):
    at = AppTest.from_file(str(APP), default_timeout=30).run()
    at.text_input(key="login-name").input("ada")
    at.text_input(key="login-password").input(PASSWORD)
    at.button(key="login").click().run()
    at.switch_page("dashboard.py").run()
    assert at.header[0].value == "Review queue"
    auth.set_role(world.store, "ada", "expert")
    at.run()  # the dashboard is no longer offered: the app falls back to the rating page
    assert not at.header and not at.dataframe
    assert any(text.value.startswith("Item ") for text in at.text)
    with pytest.raises(ValueError, match="Could not find a navigation page"):
        at.switch_page("dashboard.py")


def test_the_export_download_needs_a_valid_admin_session(world):
    from tuneloop.review_app.dashboard import export

    assert '"reviewer": "bob"' in export(auth.login(world.store, "ada", PASSWORD))
    with pytest.raises(Forbidden):
        export(auth.login(world.store, "ann", PASSWORD))
    session = auth.login(world.store, "ada", PASSWORD)
    world.store.update_reviewer(world.ids["ada"], disabled=1)
    with pytest.raises(auth.AuthError):
        export(session)
