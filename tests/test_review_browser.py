"""The review app in a real browser: Debian's chromium driven by Playwright, against a real
``tuneloop review`` server on loopback. Logs in, rates three items with the keyboard only,
checks the database, checks the page was never reloaded, and proves that script in a model
input and output stays inert text."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request

import pytest

from browser import BROWSER_MARKS, CHROMIUM, launch_chromium

from tuneloop import Example, Prediction
from tuneloop.auth import create_reviewer
from tuneloop.store import Store

pytestmark = BROWSER_MARKS
PASSWORD = "correct horse battery"
EVIL = ('<script>window.__pwned = 1; alert("x")</script><img src=x onerror="window.__pwned = 2">'
        '**bold** [link](javascript:window.__pwned=3)')


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def review_server(tmp_path):
    database = tmp_path / "review.db"
    with Store(database) as store:
        cycle_id = store.create_cycle(project="p", task="classification", seed=1,
                                      config={"data": {"labels": ["billing", "shipping"]}},
                                      plugins=[], base_model="m", start_model="m",
                                      parent_id=None)
        examples = [Example(input="Where is my parcel?", target="shipping"),
                    Example(input=EVIL, target="billing"),
                    Example(input="Why was I charged twice?", target="billing")]
        predictions = [Prediction(example_id=examples[0].id, output="shipping", confidence=0.9),
                       Prediction(example_id=examples[1].id, output=EVIL, confidence=0.5),
                       Prediction(example_id=examples[2].id, output="billing", confidence=0.8)]
        output_ids = store.add_outputs(cycle_id, predictions, examples)
        store.enqueue(cycle_id, output_ids, "least_confident", ratings_needed=1)
        queue = [row["id"] for row in store.query("SELECT id FROM review_queue ORDER BY "
                                                  "priority")]
        reviewer_id = create_reviewer(store, "ann", PASSWORD)
    port = free_port()
    env = {**os.environ, "TUNELOOP_DEBUG": "1"}
    process = subprocess.Popen(
        [sys.executable, "-m", "tuneloop.cli", "review", "--db", str(database), "--port",
         str(port)], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url + "/_stcore/health", timeout=2) as response:
                if response.status == 200:
                    break
        except OSError:
            time.sleep(0.3)
    else:
        process.kill()
        pytest.fail("the review server did not start: " + (process.stdout.read() or ""))
    yield {"url": url, "database": database, "outputs": output_ids, "reviewer": reviewer_id,
           "queue": queue}
    os.killpg(process.pid, 15)
    process.wait(timeout=10)


@pytest.fixture
def page():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = launch_chromium(playwright)
        context = browser.new_context()
        dialogs: list[str] = []
        tab = context.new_page()
        tab.on("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.dismiss()))
        tab.dialogs = dialogs  # type: ignore[attr-defined]
        yield tab
        browser.close()


def press(page, key: str, button_key: str) -> None:
    """Press a shortcut key once the button it should trigger (by its widget key) is on screen:
    a key pressed while the card is still being drawn reaches the previous item's button (which
    the app refuses) or none. The focus is on the page, not in a text field."""
    page.locator(f".st-key-{button_key} button").wait_for(timeout=30_000)
    page.evaluate("document.activeElement && document.activeElement.blur()")
    page.keyboard.press(key)


def test_log_in_rate_three_items_with_the_keyboard_and_script_stays_inert(review_server,
                                                                           page):
    page.goto(review_server["url"])
    page.get_by_role("textbox", name="Name").fill("ann")
    page.get_by_role("textbox", name="Password").fill(PASSWORD)
    page.get_by_role("textbox", name="Password").press("Enter")
    page.get_by_text("Logged in as ann").wait_for(timeout=30_000)
    page.evaluate("window.__loaded_once = true")  # a full reload would forget this

    first, second, third = review_server["queue"]
    # Item 1: score 4 (key 4), approve (key A).
    page.get_by_text("Where is my parcel?").wait_for(timeout=30_000)
    press(page, "4", f"score-{first}-4")
    page.wait_for_function("() => [...document.querySelectorAll('button')].some("
                           "b => b.innerText.trim().startsWith('Good') && "
                           "b.getAttribute('kind') === 'primary')", timeout=30_000)
    press(page, "a", f"approve-{first}")
    # Item 2: the hostile input and output, shown as text; skip it (key S).
    page.get_by_text("Saved: approve.").wait_for(timeout=30_000)
    page.get_by_text(EVIL).first.wait_for(timeout=30_000)
    assert page.evaluate("window.__pwned") is None
    assert page.locator("img[src='x']").count() == 0
    assert page.locator("a[href^='javascript']").count() == 0
    assert page.locator("strong", has_text="bold").count() == 0
    press(page, "s", f"skip-{second}")
    # Item 3: reject (key X).
    page.get_by_text("Why was I charged twice?").wait_for(timeout=30_000)
    press(page, "x", f"reject-{third}")
    page.get_by_text("queue is empty").wait_for(timeout=30_000)

    assert page.evaluate("window.__loaded_once") is True  # no full page reload happened
    assert page.evaluate("window.__pwned") is None
    assert page.dialogs == []  # type: ignore[attr-defined]
    with Store(review_server["database"]) as store:
        rows = store.query("SELECT output_id, reviewer_id, verdict, score FROM ratings "
                           "ORDER BY id")
    first, second, third = review_server["outputs"]
    reviewer = review_server["reviewer"]
    assert rows == [
        {"output_id": first, "reviewer_id": reviewer, "verdict": "approve", "score": 4},
        {"output_id": second, "reviewer_id": reviewer, "verdict": "skip", "score": None},
        {"output_id": third, "reviewer_id": reviewer, "verdict": "reject", "score": None}]


def test_a_logged_out_browser_sees_only_the_login_page(review_server, page):
    page.goto(review_server["url"] + "/dashboard")
    page.get_by_role("textbox", name="Password").wait_for(timeout=30_000)
    page.wait_for_function("() => !document.querySelector('[data-testid=stStatusWidget]')",
                           timeout=30_000)
    body = page.inner_text("body")
    assert "Where is my parcel?" not in body and "Dashboard" not in body
    assert page.get_by_role("textbox").count() == 2
    assert page.get_by_role("button", name="Log in").count() == 1


def test_chromium_is_the_debian_build():
    assert shutil.which("chromium") == CHROMIUM
