"""The review app through Streamlit's AppTest, every page and role: login (password and single
sign-on), rating single and pair items, superseding edits, blind and open review, progress,
sessions that expire, the admin dashboard, history and reviewer pages, and ``tuneloop review``."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from importlib import resources
from pathlib import Path
from types import SimpleNamespace
from typing import Any, Iterator

import pytest
from argon2 import PasswordHasher
from click.testing import CliRunner
from streamlit.testing.v1 import AppTest

from tuneloop import Example, Prediction, auth
from tuneloop.auth import LOGIN_FAILED, create_reviewer
from tuneloop.store import Store

APP = Path(str(resources.files("tuneloop.review_app") / "app.py"))
PASSWORD = "correct horse"
LABELS = ["billing", "refund", "shipping", "warranty"]
EVIL_INPUT = "Summarise: <script>alert(1)</script> and **bold** [link](javascript:alert(2))"
EVIL_OUTPUT = "<script>alert(1)</script>\n**bold** <img src=x onerror=alert(3)> # heading"


@pytest.fixture(autouse=True)
def fast_hashes(monkeypatch):
    """Cheap Argon2id parameters: the app runs in this process, so it uses them too."""
    monkeypatch.setattr(auth, "HASHER", PasswordHasher(time_cost=1, memory_cost=1024,
                                                       parallelism=1))


def add_cycle(store: Store, task: str, config: dict[str, Any],
              rows: list[tuple[str, str, str, float]], ratings_needed: int = 2,
              parent_id: int | None = None) -> list[int]:
    """A cycle with outputs (input, reference, model output, confidence), all queued in order."""
    cycle_id = store.create_cycle(project="support", task=task, seed=1, config=config,
                                  plugins=[], base_model="m", start_model="m",
                                  parent_id=parent_id)
    examples = [Example(input=text, target=reference) for text, reference, _, _ in rows]
    predictions = [Prediction(example_id=example.id, output=output, confidence=confidence)
                   for example, (_, _, output, confidence) in zip(examples, rows)]
    output_ids = store.add_outputs(cycle_id, predictions, examples)
    store.enqueue(cycle_id, output_ids, sampler="least_confident", ratings_needed=ratings_needed)
    return output_ids


def queue_id(store: Store, output_id: int, pair_output_id: int | None = None) -> int:
    return store.one("SELECT id FROM review_queue WHERE output_id = ? AND pair_output_id IS ?",
                     [output_id, pair_output_id])["id"]


@pytest.fixture
def project(tmp_path, monkeypatch) -> Iterator[SimpleNamespace]:
    path = tmp_path / "review.db"
    with Store(path) as store:
        outputs = add_cycle(store, "classification", {"data": {"labels": LABELS}}, [
            ("Where is my parcel?", "shipping", "shipping", 0.91),
            ("I want my money back", "refund", "billing", 0.42),
        ])
        ann = create_reviewer(store, "ann", PASSWORD)
        bob = create_reviewer(store, "bob", PASSWORD)
        admin = create_reviewer(store, "ada", PASSWORD, "admin")
        monkeypatch.setenv("TUNELOOP_DB", str(path))
        monkeypatch.delenv("TUNELOOP_IDLE_HOURS", raising=False)
        yield SimpleNamespace(store=store, path=path, outputs=outputs, ann=ann, bob=bob,
                              admin=admin, queue=[queue_id(store, o) for o in outputs])


def start() -> AppTest:
    return AppTest.from_file(str(APP), default_timeout=30).run()


def log_in(at: AppTest, name: str = "ann", password: str = PASSWORD) -> AppTest:
    at.text_input(key="login-name").input(name)
    at.text_input(key="login-password").input(password)
    at.button(key="login").click().run()
    assert not at.exception, at.exception
    return at


def texts(at: AppTest) -> list[str]:
    return [element.value for element in at.text]


def all_elements(node: Any) -> Iterator[Any]:
    for child in getattr(node, "children", {}).values():
        yield child
        yield from all_elements(child)


def ratings(store: Store, output_id: int) -> list[dict[str, Any]]:
    return store.query("SELECT * FROM ratings WHERE output_id = ? ORDER BY id", [output_id])


def table(at: AppTest, column: str) -> Any:
    """The first table (as a DataFrame) that has ``column``, by its columns or its index."""
    for frame in at.dataframe:
        value = frame.value
        if column in value.columns or value.index.name == column:
            return value
    raise AssertionError(f"no table with a {column!r} column")


def logged_in_as(at: AppTest) -> str | None:
    shown = [text.value for text in at.sidebar.text if text.value.startswith("Logged in as")]
    return shown[0] if shown else None


# ---- logging in and out ------------------------------------------------------------------------


def test_logged_out_visitor_sees_only_the_login_form(project):
    at = start()
    assert not at.exception
    assert [widget.label for widget in at.text_input] == ["Name", "Password"]
    assert at.text_input(key="login-password").proto.type == 1  # PASSWORD: hidden input
    assert [button.label for button in at.button] == ["Log in"]  # no single sign-on configured
    assert not at.text and not at.selectbox and not at.text_area and not at.sidebar.children
    assert "session" not in at.session_state


def test_wrong_password_shows_one_error_and_stays_logged_out(project):
    at = log_in(start(), "ann", "not the password")
    assert [error.value for error in at.error] == [LOGIN_FAILED]
    assert "session" not in at.session_state and not at.text
    at = log_in(start(), "nobody", PASSWORD)  # an unknown name reads exactly the same
    assert [error.value for error in at.error] == [LOGIN_FAILED]


def test_log_out_and_an_expired_session_show_the_login_form(project):
    at = log_in(start())
    at.button(key="logout").click().run()
    assert "You have logged out." in [info.value for info in at.info]
    assert "session" not in at.session_state and logged_in_as(at) is None

    at = log_in(start())
    idle = datetime.now(timezone.utc) - timedelta(seconds=1)
    at.session_state["session"].expires_at = idle
    # the stored session is what every tab shares: its idle expiry is the one that counts
    project.store.touch_review_session(at.session_state["session"].session_id, idle)
    at.run()
    assert any("expired" in info.value for info in at.info)
    assert [widget.label for widget in at.text_input] == ["Name", "Password"]
    at = log_in(start())
    at.session_state["session"].ends_at = datetime.now(timezone.utc) - timedelta(seconds=1)
    at.run()  # the absolute lifetime ends a session however active it is
    assert any("expired" in info.value for info in at.info)


def test_single_sign_on_logs_in_the_linked_account_only(project):
    auth.set_email(project.store, "ann", "Ann@Example.com")
    at = AppTest.from_file(str(APP), default_timeout=30)
    at.secrets["auth"] = {"redirect_uri": "http://localhost:8501/oauth2callback",
                          "cookie_secret": "x" * 32}
    at.run()
    assert "Log in with single sign-on" in [button.label for button in at.button]
    at.user = {"is_logged_in": True, "email": "ann@example.com", "email_verified": True}
    at.run()
    assert not at.exception and logged_in_as(at) == "Logged in as ann (expert)"
    assert at.session_state["session"].single_sign_on

    for user, message in (({"is_logged_in": True, "email": "eve@example.com"},
                           "No reviewer account is linked"),
                          ({"is_logged_in": True, "email": "ann@example.com",
                            "email_verified": False}, "no verified email")):
        stranger = AppTest.from_file(str(APP), default_timeout=30)
        stranger.secrets["auth"] = {"redirect_uri": "http://localhost:8501/oauth2callback",
                                    "cookie_secret": "x" * 32}
        stranger.user = user
        stranger.run()
        assert message in stranger.error[0].value
        assert "session" not in stranger.session_state and logged_in_as(stranger) is None
        assert [button.key for button in stranger.button] == ["sso-logout"]


# ---- rating single items -----------------------------------------------------------------------


def test_approve_then_correct_then_empty_queue(project):
    first, second = project.queue
    at = log_in(start())
    assert logged_in_as(at) == "Logged in as ann (expert)"
    shown = texts(at)
    assert "Where is my parcel?" in shown and "shipping" in shown and "Confidence: 91.0%" in shown
    assert "Item 1 of 2 · cycle 1 · classification" in shown
    assert "Rated in this session: 0 · in this cycle: 0" in shown
    at.button(key=f"approve-{first}").click().run()
    assert [success.value for success in at.success] == ["Saved: approve."]
    assert "Rated in this session: 1 · in this cycle: 1" in texts(at)

    assert "I want my money back" in texts(at)
    label = at.selectbox(key=f"label-{second}")
    # the config's label set, including a label no output uses
    assert label.options == LABELS
    assert label.value == "billing"  # starts at the model's answer
    label.select("refund")
    at.button(key=f"score-{second}-4").click().run()
    assert at.button(key=f"score-{second}-4").proto.type == "primary"  # chosen
    at.text_input(key=f"comment-{second}").input("asks for a refund, not a bill")
    at.button(key=f"approve-{second}").click().run()  # approving a changed label is refused
    assert "press Reject" in at.error[0].value and not ratings(project.store,
                                                                project.outputs[1])
    at.button(key=f"reject-{second}").click().run()
    assert not at.exception

    assert any("queue is empty" in info.value for info in at.info)
    assert [(row["reviewer_id"], row["verdict"], row["corrected"], row["score"], row["comment"])
            for output in project.outputs for row in ratings(project.store, output)] == [
        (project.ann, "approve", None, None, None),
        (project.ann, "reject", "refund", 4, "asks for a refund, not a bill"),
    ]


def test_every_action_has_a_keyboard_shortcut(project):
    first, _ = project.queue
    at = log_in(start())
    shortcuts = {button.key: button.proto.shortcut.lower() for button in at.button}
    assert [shortcuts[f"{action}-{first}"] for action in
            ("approve", "reject", "skip", "unclear")] == ["a", "x", "s", "u"]
    assert [shortcuts[f"score-{first}-{n}"] for n in range(1, 6)] == ["1", "2", "3", "4", "5"]
    at.button(key=f"skip-{first}").click().run()
    assert shortcuts.get("back") is None and at.button(key="back").proto.shortcut.lower() == "b"


def test_skip_and_unclear_are_recorded_and_a_skip_does_not_close_the_item(project):
    first, second = project.queue
    at = log_in(start())
    at.button(key=f"skip-{first}").click().run()
    at.button(key=f"unclear-{second}").click().run()
    rows = project.store.query("SELECT output_id, verdict FROM ratings ORDER BY id")
    assert rows == [{"output_id": project.outputs[0], "verdict": "skip"},
                    {"output_id": project.outputs[1], "verdict": "unclear"}]
    assert any("queue is empty" in info.value for info in at.info)  # nothing left for ann
    # bob still sees both: a skip is no rating, and each item asks for two
    assert project.store.next_queue_item(project.bob)["id"] == project.outputs[0]


def test_saving_the_same_item_again_supersedes_and_keeps_the_first(project):
    first, second = project.queue
    at = log_in(start())
    at.button(key=f"approve-{first}").click().run()
    at.button(key="back").click().run()  # "Back to my previous item"
    assert "Where is my parcel?" in texts(at)
    assert any("You rated this item before (approve)" in info.value for info in at.info)
    at.selectbox(key=f"label-{first}").select("warranty")
    at.button(key=f"reject-{first}").click().run()
    assert not at.exception

    history = ratings(project.store, project.outputs[0])
    assert [(row["verdict"], row["corrected"], row["reviewer_id"]) for row in history] == [
        ("approve", None, project.ann), ("reject", "warranty", project.ann)]
    assert history[1]["supersedes_id"] == history[0]["id"]
    current = project.store.current_ratings(unused_only=False)
    assert [(rating.output_id, rating.verdict) for rating in current] == [
        (project.outputs[0], "reject")]
    assert "I want my money back" in texts(at)  # and on to the next item


def test_each_session_writes_as_its_own_reviewer_and_a_disabled_one_is_logged_out(project):
    first, _ = project.queue
    ann, bob = log_in(start(), "ann"), log_in(start(), "bob")
    bob.button(key=f"skip-{first}").click().run()
    assert [(row["reviewer_id"], row["verdict"])
            for row in ratings(project.store, project.outputs[0])] == [(project.bob, "skip")]

    project.store.update_reviewer(project.ann, disabled=1)
    ann.button(key=f"approve-{first}").click().run()
    assert any("disabled or locked" in info.value for info in ann.info)
    assert [widget.label for widget in ann.text_input] == ["Name", "Password"]
    assert "session" not in ann.session_state
    assert len(ratings(project.store, project.outputs[0])) == 1  # nothing written for ann


def test_blind_review_hides_other_experts_and_open_review_shows_them(project):
    first, _ = project.queue
    project.store.add_rating(reviewer_id=project.bob, output_id=project.outputs[0],
                             verdict="reject", corrected="refund", comment="bob's <b>note</b>")
    at = log_in(start())
    assert not at.expander and not any("bob" in text for text in texts(at))
    at.button(key="logout").click().run()  # gives her claimed item back


    (open_output,) = add_cycle(project.store, "classification",
                               {"data": {"labels": LABELS}, "review": {"blind": False}},
                               [("Card declined", "billing", "billing", 0.5)])
    project.store.add_rating(reviewer_id=project.bob, output_id=open_output, verdict="approve",
                             score=5, comment="bob's <b>note</b>")
    at = log_in(start())  # the newest cycle comes first
    assert "Card declined" in texts(at)
    assert "bob: approve · score 5 · comment: bob's <b>note</b>" in texts(at)


def test_model_text_is_shown_verbatim_never_as_markdown_or_html(project):
    (evil,) = add_cycle(project.store, "causal-lm", {}, [(EVIL_INPUT, "ok", EVIL_OUTPUT, 0.3)])
    evil_item = queue_id(project.store, evil)
    at = log_in(start())  # the newest cycle's item comes first
    shown = texts(at)
    assert EVIL_INPUT in shown and EVIL_OUTPUT in shown
    # the only HTML is the app's own script that trades the login grant for the cookie
    assert all(html.proto.body.startswith('<script>fetch("/_tuneloop/session"')
               for html in at.get("html"))
    # the only Markdown is the app's own fixed headings, never model text
    assert {md.value for md in at.markdown} <= {"**Input**", "**Model answer**"}
    for element in all_elements(at):
        value = getattr(element, "value", None)
        if element.type in ("text", "text_area") or not isinstance(value, str):
            continue
        assert "<script>" not in value and "bold" not in value, (element.type, value)
    completion = at.text_area(key=f"completion-{evil_item}")
    assert completion.value == EVIL_OUTPUT
    completion.input("A plain summary.")
    at.button(key=f"reject-{evil_item}").click().run()
    assert [(row["verdict"], row["corrected"]) for row in ratings(project.store, evil)] == [
        ("reject", "A plain summary.")]


# ---- pair items --------------------------------------------------------------------------------


@pytest.fixture
def pair(project) -> SimpleNamespace:
    """Cycle 2 answered the parcel question differently; the pair item compares the two."""
    store = project.store
    cycle_two = store.create_cycle(project="support", task="causal-lm", seed=1, config={},
                                   plugins=[], base_model="m", start_model="m", parent_id=1)
    (newer,) = store.add_outputs(cycle_two, [Prediction("x", "It ships tomorrow.", 0.6)],
                                 [Example(input="Where is my parcel?", target="shipping")])
    store.enqueue(cycle_two, [newer], "pairwise", 1, pair_output_ids=[project.outputs[0]])
    return SimpleNamespace(newer=newer, older=project.outputs[0],
                           item=queue_id(store, newer, project.outputs[0]))


def test_pair_items_hide_the_models_and_store_the_choice_by_output(project, pair):
    at = log_in(start())
    shown = texts(at)
    assert "Where is my parcel?" in shown
    assert {"It ships tomorrow.", "shipping"} <= set(shown)
    assert not any("cycle" in text.lower() for text in shown if text.startswith("Item"))
    left_text = shown[shown.index("Where is my parcel?") + 1]
    left_output = pair.newer if left_text == "It ships tomorrow." else pair.older
    assert {button.proto.shortcut.lower() for button in at.button if button.key.endswith(
        f"-{pair.item}")} == {"left", "right", "e", "x", "s", "u"}

    # scores that contradict the choice are refused
    at.segmented_control(key=f"left-score-{pair.item}").set_value(2)
    at.segmented_control(key=f"right-score-{pair.item}").set_value(5)
    at.button(key=f"left-{pair.item}").click().run()
    assert "Your scores prefer the other answer" in at.error[0].value
    assert not ratings(project.store, pair.newer)
    at.segmented_control(key=f"left-score-{pair.item}").set_value(5)
    at.segmented_control(key=f"right-score-{pair.item}").set_value(2)
    at.button(key=f"left-{pair.item}").click().run()
    assert not at.exception and [s.value for s in at.success] == ["Saved: left."]

    (row,) = ratings(project.store, pair.newer)
    assert (row["pair_output_id"], row["verdict"], row["preferred_output_id"],
            row["left_output_id"]) == (pair.older, "approve", left_output, left_output)
    scores = {row["output_id"]: row["score"], row["pair_output_id"]: row["pair_score"]}
    right_output = ({pair.newer, pair.older} - {left_output}).pop()
    assert scores[left_output] == 5 and scores[right_output] == 2
    # rating the pair is not rating the older output alone: that item is still ann's to rate
    assert "Where is my parcel?" in texts(at) and at.button(key=f"approve-{project.queue[0]}")


def test_sides_are_shuffled_between_reviewers(project):
    store = project.store
    cycle_two = store.create_cycle(project="support", task="causal-lm", seed=1, config={},
                                   plugins=[], base_model="m", start_model="m", parent_id=1)
    inputs = [f"question {n}" for n in range(12)]
    older = store.add_outputs(1, [Prediction("x", f"old {n}") for n in range(12)],
                              [Example(input=text) for text in inputs])
    newer = store.add_outputs(cycle_two, [Prediction("x", f"new {n}") for n in range(12)],
                              [Example(input=text) for text in inputs])
    store.enqueue(cycle_two, newer, "pairwise", 1, pair_output_ids=older)
    from tuneloop.review_app.queries import item

    newer_on_left = {name: [item(store, {"id": reviewer}, queue_id(store, n, o))["left"]
                            ["output_id"] == n for n, o in zip(newer, older)]
                     for name, reviewer in (("ann", project.ann), ("bob", project.bob))}
    assert 0 < sum(newer_on_left["ann"]) < 12  # both orders occur
    assert newer_on_left["ann"] != newer_on_left["bob"]  # and differ by reviewer


# ---- roles and admin pages ---------------------------------------------------------------------


def test_experts_are_offered_no_admin_page_and_cannot_switch_to_one(project):
    at = log_in(start())
    for page in ("dashboard.py", "history.py", "accounts.py"):
        with pytest.raises(ValueError, match="Could not find a navigation page"):
            at.switch_page(page)


@pytest.mark.parametrize("page", ["dashboard.py", "history.py", "accounts.py"])
def test_an_admin_page_refuses_an_expert_session_even_when_run_directly(project, page):
    """The navigation hides admin pages; the pages check the role themselves as well."""
    at = AppTest.from_file(str(APP.parent / page), default_timeout=30)
    at.session_state["session"] = auth.login(project.store, "ann", PASSWORD)
    at.run()
    assert not at.exception
    assert [error.value for error in at.error] == ["This page is for admins."]
    assert not at.dataframe and not at.header
    logged_out = AppTest.from_file(str(APP.parent / page), default_timeout=30).run()
    assert not logged_out.dataframe and not logged_out.header
    assert "You are not logged in" in logged_out.info[0].value


def test_admin_dashboard_shows_queue_experts_agreement_metrics_confusion(project):
    store = project.store
    for reviewer, verdicts in ((project.ann, ("approve", ("reject", "refund"))),
                               (project.bob, (("reject", "billing"), ("reject", "refund")))):
        for output, verdict in zip(project.outputs, verdicts):
            verdict, corrected = (verdict, None) if isinstance(verdict, str) else verdict
            store.add_rating(reviewer_id=reviewer, output_id=output, verdict=verdict,
                             corrected=corrected)
    store.add_metrics(1, "validation", {"f1": 0.5, "accuracy": 0.75})
    store.add_metrics(1, "human", {"approval_rate": 0.25})
    at = log_in(start(), "ada")
    assert logged_in_as(at) == "Logged in as ada (admin)"
    at.switch_page("dashboard.py").run()
    assert not at.exception, at.exception
    assert [header.value for header in at.header] == [
        "Review queue", "Ratings per expert", "Agreement between experts (cycle 1)",
        "Metrics across cycles", "Confusion matrix (cycle 1)", "Most disagreement (cycle 1)",
        "Export"]
    metrics = {metric.label: metric.value for metric in at.metric}
    assert metrics["Open items"] == "0" and metrics["Done items"] == "2"
    assert metrics["Ratings today"] == "4" and metrics["Items rated by several"] == "2"
    experts = table(at, "reviewer").set_index("reviewer")
    assert experts.loc["ann", "ratings"] == 2 and experts.loc["bob", "corrections"] == 2
    kappa = table(at, "other expert")
    assert list(kappa["expert"]) == ["ann"] and kappa["agree"].iloc[0] == 0.5
    confusion = table(at, "true label")
    assert confusion.loc["refund", "billing"] == 1  # both experts said refund; the model billing
    disagreement = table(at, "judgements")
    assert list(disagreement["input"]) == ["Where is my parcel?"]
    assert disagreement["agreement"].iloc[0] == 0.5

    at.switch_page("history.py").run()
    at.number_input(key="history-output").set_value(project.outputs[1]).run()
    history = table(at, "supersedes_id")
    assert list(history["reviewer"]) == ["ann", "bob"] and list(history["current"]) == [True] * 2


def test_admin_history_shows_superseded_versions(project):
    store = project.store
    first = store.add_rating(reviewer_id=project.ann, output_id=project.outputs[0],
                             verdict="approve")
    store.add_rating(reviewer_id=project.ann, output_id=project.outputs[0], verdict="reject",
                     corrected="refund", comment="changed my mind")
    at = log_in(start(), "ada")
    at.switch_page("history.py").run()
    assert f"Recently edited outputs: {project.outputs[0]}" in texts(at)
    at.number_input(key="history-output").set_value(project.outputs[0]).run()
    versions = table(at, "supersedes_id")
    assert list(versions["verdict"]) == ["approve", "reject"]
    assert list(versions["current"]) == [False, True] and versions["supersedes_id"].iloc[1] == first


def test_admin_manages_reviewers_but_not_themselves(project):
    at = log_in(start(), "ada")
    at.switch_page("accounts.py").run()
    accounts = table(at, "email")
    assert list(accounts["name"]) == ["ada", "ann", "bob"]
    assert at.button(key="accounts-disable").disabled  # ada is selected first: herself
    assert at.button(key="accounts-role").disabled

    at.selectbox(key="accounts-name").select("bob").run()
    at.button(key="accounts-disable").click().run()
    assert project.store.reviewer("bob")["disabled"] == 1
    at.button(key="accounts-enable").click().run()
    at.button(key="accounts-role").click().run()
    assert project.store.reviewer("bob")["role"] == "admin"
    at.text_input(key="accounts-password-1").input("a new password")
    at.text_input(key="accounts-password-2").input("a new password")
    at.button(key="accounts-set-password").click().run()
    assert auth.authenticate(project.store, "bob", "a new password")["name"] == "bob"
    at.text_input(key="accounts-email-value").input("bob@example.com")
    at.button(key="accounts-save-email").click().run()
    assert project.store.reviewer("bob")["email"] == "bob@example.com"


def test_settings_come_from_the_command_line_then_the_environment(monkeypatch):
    from tuneloop.review_app.app import settings

    monkeypatch.setenv("TUNELOOP_DB", "env.db")
    monkeypatch.setenv("TUNELOOP_IDLE_HOURS", "1")
    assert settings(["--db", "cli.db", "--idle-hours", "2"]) == (Path("cli.db"),
                                                               timedelta(hours=2))
    assert settings([]) == (Path("env.db"), timedelta(hours=1))
    monkeypatch.delenv("TUNELOOP_DB")
    monkeypatch.delenv("TUNELOOP_IDLE_HOURS")
    assert settings([]) == (None, auth.DEFAULT_IDLE_TIMEOUT)


# ---- tuneloop review -------------------------------------------------------------------------

CONFIG = """\
project: support
task: classification
database: data/reviews.db
model: {name: some-model}
data:
  sources: [{type: jsonl, path: data.jsonl}]
"""


def test_review_command_starts_streamlit_on_the_configured_database(tmp_path, monkeypatch):
    import subprocess

    from tuneloop.cli import cli

    config = tmp_path / "tuneloop.yaml"
    config.write_text(CONFIG)
    started: list[list[str]] = []
    monkeypatch.setattr(subprocess, "run",
                        lambda command: started.append(command) or SimpleNamespace(returncode=0))
    # tuneloop review runs streamlit through run_forwarding_signals (passes SIGTERM on)
    monkeypatch.setattr("tuneloop.cli.child.run_forwarding_signals",
                        lambda command: started.append(list(command)) or (0, None))
    missing = CliRunner().invoke(cli, ["review", "--config", str(config)])
    assert missing.exit_code == 2 and "no database yet" in missing.output and not started

    Store(tmp_path / "data" / "reviews.db").close()
    result = CliRunner().invoke(cli, ["review", "--config", str(config), "--port", "8600"])
    assert result.exit_code == 0, result.output
    assert "http://127.0.0.1:8600" in result.output
    assert "No reviewer accounts yet" in result.output
    (command,) = started
    assert command[1:5] == ["-m", "streamlit", "run", str(APP.parent / "serve.py")]
    options = " ".join(command[5:])
    assert "--server.headless true --server.address 127.0.0.1 --server.port 8600" in options
    assert "secrets" not in options
    assert options.endswith(f"-- --db {(tmp_path / 'data' / 'reviews.db').resolve()} "
                            "--idle-hours 8.0")


def test_review_command_checks_the_single_sign_on_secrets(tmp_path, monkeypatch):
    import importlib.util
    import subprocess

    from tuneloop.cli import cli

    Store(tmp_path / "reviews.db").close()
    started: list[list[str]] = []
    monkeypatch.setattr(subprocess, "run",
                        lambda command: started.append(command) or SimpleNamespace(returncode=0))
    monkeypatch.setattr("tuneloop.cli.child.run_forwarding_signals",
                        lambda command: started.append(list(command)) or (0, None))
    secrets = tmp_path / "secrets.toml"
    database = str(tmp_path / "reviews.db")
    for text, message in (("title = 1\n", "no [auth] section"),
                          ("[auth]\nredirect_uri = 'x'\n", "[auth] needs cookie_secret"),
                          ("[auth\n", "not a readable TOML file")):
        secrets.write_text(text)
        result = CliRunner().invoke(cli, ["review", "--db", database, "--secrets", str(secrets)])
        assert result.exit_code == 2 and message in result.output, result.output
    secrets.write_text("[auth]\nredirect_uri = 'http://localhost:8501/oauth2callback'\n"
                       "cookie_secret = 'random'\n")
    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *rest: object() if name == "authlib"
                        else real_find_spec(name, *rest))
    result = CliRunner().invoke(cli, ["review", "--db", database, "--secrets", str(secrets)])
    assert result.exit_code == 0, result.output
    assert f"--secrets.files {secrets.resolve()}" in " ".join(started[-1])
    assert not started[:-1]


def test_cli_module_imports_neither_streamlit_nor_argon2():
    """``tuneloop --help`` imports every command module: it must not pay for the app."""
    import subprocess
    import sys

    code = ("import sys, tuneloop.cli.review, tuneloop.cli.feedback; "
            "print(sorted({'streamlit', 'argon2', 'torch', 'pandas'} & set(sys.modules)))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            check=True)
    assert result.stdout.strip() == "[]"


def test_a_key_that_reaches_the_previous_items_button_saves_nothing(project, monkeypatch):
    """A key pressed twice quickly can reach the previous card's button while the next card is
    drawn; the save callback acts only on the item the server has on screen."""
    from tuneloop.review_app import rating

    first, second = project.queue
    state: dict[str, Any] = {"current": second, "session": auth.login(project.store, "ann",
                                                                       PASSWORD)}
    monkeypatch.setattr(rating.st, "session_state", state)
    rating.submit(first, "reject")
    assert state["flash"] == ("error", "That key press reached the previous item; nothing was "
                                       "saved. Press it again.")
    assert project.store.query("SELECT * FROM ratings") == []
    rating.submit(second, "approve")  # the item on screen
    assert state["flash"] == ("success", "Saved: approve.") and state["current"] is None
    assert [row["verdict"] for row in ratings(project.store, project.outputs[1])] == ["approve"]
