"""Two experts on one queue in real browsers (Debian's chromium via Playwright), against a real
``tuneloop review`` server: claims keep them off each other's slots, a stale submission is
refused on screen, nothing is lost (counted in the database); a reload keeps the login, and a
logout in one tab ends the other."""

from __future__ import annotations

import re

import pytest

from browser import BROWSER_MARKS, ReviewServer, launch_chromium, log_in, press

from tuneloop import Example, Prediction
from tuneloop.auth import COOKIE_NAME, create_reviewer
from tuneloop.store import Store

pytestmark = [*BROWSER_MARKS, pytest.mark.slow]
PASSWORD = "correct horse battery"
ITEMS = 6
SHOWN = ("() => { const found = [...document.querySelectorAll('[class*=\"st-key-approve-\"]')]"
         ".map(e => e.className.match(/st-key-approve-(\\d+)/)); "
         "return found.length ? Number(found[0][1]) : null; }")


@pytest.fixture
def team_db(tmp_path):
    database = tmp_path / "team.db"
    with Store(database) as store:
        cycle = store.create_cycle(project="p", task="classification", seed=1,
                                   config={"data": {"labels": ["billing", "shipping"]}},
                                   plugins=[], base_model="m", start_model="m", parent_id=None)
        examples = [Example(input=f"Customer question number {n}", target="billing")
                    for n in range(ITEMS)]
        outputs = store.add_outputs(cycle, [Prediction(e.id, "billing", 0.5) for e in examples],
                                    examples)
        store.enqueue(cycle, outputs, "least_confident", ratings_needed=1)
        ids = {name: create_reviewer(store, name, PASSWORD) for name in ("alice", "bob")}
        queue = [row["id"] for row in store.query("SELECT id FROM review_queue "
                                                  "ORDER BY priority")]
    return {"path": database, "reviewers": ids, "queue": queue, "outputs": outputs}


@pytest.fixture
def chromium():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = launch_chromium(playwright)
        yield browser
        browser.close()


def shown_item(page) -> int | None:
    """The queue id of the item on screen (from its Approve button's widget key)."""
    page.wait_for_function(f"() => ({SHOWN})() !== null || "
                           "document.body.innerText.includes('queue is empty')",
                           timeout=30_000)
    return page.evaluate(SHOWN)


def approve(page, queue_id: int) -> None:
    press(page, "a", f"approve-{queue_id}")
    page.wait_for_function(f"() => ({SHOWN})() !== {queue_id}", timeout=30_000)


def test_two_experts_share_a_queue_without_taking_each_others_slots(team_db, chromium):
    alice = chromium.new_context(viewport={"width": 1280, "height": 800}).new_page()
    bob = chromium.new_context(viewport={"width": 1280, "height": 800}).new_page()
    with ReviewServer(team_db["path"], {"TUNELOOP_LEASE_SECONDS": "600"}) as url:
        log_in(alice, url, "alice", PASSWORD)
        log_in(bob, url, "bob", PASSWORD)
        first, second = shown_item(alice), shown_item(bob)
        assert first is not None and second is not None and first != second  # both at once

        approve(alice, first)
        third = shown_item(alice)
        # bob's laptop sleeps: his claim on `second` runs out, and alice is handed that item
        with Store(team_db["path"]) as store:
            store.conn.execute("UPDATE review_leases SET expires_at = '2000-01-01T00:00:00' "
                               "WHERE reviewer_id = ?", [team_db["reviewers"]["bob"]])
        approve(alice, third)
        assert shown_item(alice) == second
        approve(alice, second)
        # bob wakes up and approves the item on his stale page: refused, visibly, next item
        press(bob, "a", f"approve-{second}")
        bob.get_by_text("Not saved: other experts already gave this item").wait_for(
            timeout=30_000)
        assert shown_item(bob) not in (None, first, second, third)

        # then both work the rest of the queue, taking turns
        rated = {"alice": 3, "bob": 0}
        while True:
            moved = False
            for name, page in (("bob", bob), ("alice", alice)):
                item = shown_item(page)
                if item is not None:
                    approve(page, item)
                    rated[name] += 1
                    moved = True
            if not moved:
                break
        for page in (alice, bob):
            page.get_by_text("queue is empty").wait_for(timeout=30_000)

    with Store(team_db["path"]) as store:
        per_output = {row["output_id"]: row["n"] for row in store.query(
            "SELECT output_id, COUNT(*) AS n FROM ratings GROUP BY output_id")}
        by_reviewer = {row["name"]: row["n"] for row in store.query(
            "SELECT v.name, COUNT(*) AS n FROM ratings r JOIN reviewers v "
            "ON v.id = r.reviewer_id GROUP BY v.name")}
        open_items = store.query("SELECT id FROM review_queue WHERE status != 'done'")
        leases = store.query("SELECT * FROM review_leases")
    assert per_output == {output: 1 for output in team_db["outputs"]}  # each slot exactly once
    assert by_reviewer == rated and sum(rated.values()) == ITEMS  # nothing lost, nothing extra
    assert rated["bob"] >= 1
    assert open_items == [] and leases == []


def test_a_reload_keeps_the_login_and_a_logout_ends_every_tab(team_db, chromium):
    context = chromium.new_context(viewport={"width": 1280, "height": 800})
    first_tab = context.new_page()
    with ReviewServer(team_db["path"]) as url:
        log_in(first_tab, url, "alice", PASSWORD)
        item = shown_item(first_tab)
        first_tab.wait_for_function("() => true")
        cookie = None
        for _ in range(50):  # the page trades its one-time grant for the cookie
            cookie = next((c for c in context.cookies() if c["name"] == COOKIE_NAME), None)
            if cookie:
                break
            first_tab.wait_for_timeout(200)
        assert cookie is not None
        assert cookie["httpOnly"] is True and cookie["sameSite"] == "Strict"
        assert COOKIE_NAME not in first_tab.evaluate("document.cookie")  # page script: no
        with Store(team_db["path"]) as store:
            stored = store.query("SELECT token_hash FROM review_sessions")
        assert len(stored) == 1 and cookie["value"] not in stored[0]["token_hash"]
        assert re.fullmatch(r"[0-9a-f]{64}", stored[0]["token_hash"])

        first_tab.reload()
        first_tab.get_by_text("Logged in as alice").wait_for(timeout=30_000)
        assert shown_item(first_tab) == item  # her claimed item survives the reload
        assert first_tab.get_by_role("textbox", name="Password").count() == 0

        second_tab = context.new_page()
        second_tab.goto(url)
        second_tab.get_by_text("Logged in as alice").wait_for(timeout=30_000)
        assert shown_item(second_tab) == item

        first_tab.get_by_role("button", name="Log out").click()
        first_tab.get_by_role("textbox", name="Password").wait_for(timeout=30_000)
        press(second_tab, "s", f"skip-{item}")  # the other tab's next action
        second_tab.get_by_role("textbox", name="Password").wait_for(timeout=30_000)
        second_tab.get_by_text("logged out").first.wait_for(timeout=30_000)
        third_tab = context.new_page()
        third_tab.goto(url)
        third_tab.get_by_role("textbox", name="Password").wait_for(timeout=30_000)

    with Store(team_db["path"]) as store:
        assert store.query("SELECT * FROM ratings") == []  # the ended tab saved nothing
        assert store.query("SELECT * FROM review_leases") == []  # her claim went back
        ended = store.query("SELECT ended_at FROM review_sessions")
    assert all(row["ended_at"] for row in ended)
