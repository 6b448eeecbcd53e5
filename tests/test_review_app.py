"""The review app through Streamlit's AppTest: login, rating, corrections, superseding edits,
untrusted model text, and ``tuneloop review`` starting it."""

from __future__ import annotations

from datetime import timedelta
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
EVIL_INPUT = "Summarise: <script>alert(1)</script> and **bold** [link](javascript:alert(2))"
EVIL_OUTPUT = "<script>alert(1)</script>\n**bold** <img src=x onerror=alert(3)> # heading"


@pytest.fixture(autouse=True)
def fast_hashes(monkeypatch):
    """Cheap Argon2id parameters: the app runs in this process, so it uses them too."""
    monkeypatch.setattr(auth, "HASHER", PasswordHasher(time_cost=1, memory_cost=1024,
                                                       parallelism=1))


def add_cycle(store: Store, task: str, config: dict[str, Any],
              rows: list[tuple[str, str, str, float]]) -> list[int]:
    """A cycle with outputs (input, reference, model output, confidence), all queued in order."""
    cycle_id = store.create_cycle(project="support", task=task, seed=1, config=config,
                                  plugins=[], base_model="m", start_model="m", parent_id=None)
    examples = [Example(input=text, target=reference) for text, reference, _, _ in rows]
    predictions = [Prediction(example_id=example.id, output=output, confidence=confidence)
                   for example, (_, _, output, confidence) in zip(examples, rows)]
    output_ids = store.add_outputs(cycle_id, predictions, examples)
    store.enqueue(cycle_id, output_ids, sampler="least_confident", ratings_needed=2)
    return output_ids


@pytest.fixture
def project(tmp_path, monkeypatch) -> Iterator[SimpleNamespace]:
    path = tmp_path / "review.db"
    with Store(path) as store:
        outputs = add_cycle(store, "classification",
                            {"data": {"labels": ["billing", "refund", "shipping", "warranty"]}}, [
                                ("Where is my parcel?", "shipping", "shipping", 0.91),
                                ("I want my money back", "refund", "billing", 0.42),
                            ])
        ann = create_reviewer(store, "ann", PASSWORD)
        bob = create_reviewer(store, "bob", PASSWORD)
        monkeypatch.setenv("TUNELOOP_DB", str(path))
        monkeypatch.delenv("TUNELOOP_IDLE_HOURS", raising=False)
        yield SimpleNamespace(store=store, path=path, outputs=outputs, ann=ann, bob=bob)


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


def test_logged_out_visitor_sees_only_the_login_form(project):
    at = start()
    assert not at.exception
    assert [widget.label for widget in at.text_input] == ["Name", "Password"]
    assert at.text_input(key="login-password").proto.type == 1  # PASSWORD: hidden input
    assert [button.label for button in at.button] == ["Log in"]
    assert not at.text and not at.selectbox and not at.text_area and not at.sidebar.children
    assert "session" not in at.session_state


def test_wrong_password_shows_one_error_and_stays_logged_out(project):
    at = log_in(start(), "ann", "not the password")
    assert [error.value for error in at.error] == [LOGIN_FAILED]
    assert "session" not in at.session_state and not at.text
    at = log_in(start(), "nobody", PASSWORD)  # an unknown name reads exactly the same
    assert [error.value for error in at.error] == [LOGIN_FAILED]


def test_approve_then_correct_then_empty_queue(project):
    first, second = project.outputs
    at = log_in(start())
    assert at.sidebar.text[0].value == "Logged in as ann (expert)"
    shown = texts(at)
    assert "Where is my parcel?" in shown and "shipping" in shown and "Confidence: 91.0%" in shown
    assert "Cycle 1 · classification · item 1" in shown
    at.button(key=f"approve-{first}").click().run()
    assert [success.value for success in at.success] == ["Saved: approve."]

    assert "I want my money back" in texts(at)
    label = at.selectbox(key=f"label-{second}")
    # the config's label set, including a label no output uses
    assert label.options == ["billing", "refund", "shipping", "warranty"]
    assert label.value == "billing"  # starts at the model's answer
    label.select("refund")
    at.selectbox(key=f"score-{second}").select(4)
    at.text_area(key=f"comment-{second}").input("asks for a refund, not a bill")
    at.button(key=f"approve-{second}").click().run()  # approving a changed label is refused
    assert "press Reject" in at.error[0].value and not ratings(project.store, second)
    at.button(key=f"reject-{second}").click().run()
    assert not at.exception

    assert any("queue is empty" in info.value for info in at.info)
    assert [(row["reviewer_id"], row["verdict"], row["corrected"], row["score"], row["comment"])
            for row in ratings(project.store, first) + ratings(project.store, second)] == [
        (project.ann, "approve", None, None, None),
        (project.ann, "reject", "refund", 4, "asks for a refund, not a bill"),
    ]
    assert project.store.queue_progress(project.ann)["rated_by_you"] == 2


def test_saving_the_same_output_again_supersedes_and_keeps_the_first(project):
    first, second = project.outputs
    at = log_in(start())
    at.button(key=f"approve-{first}").click().run()
    at.button(key="back").click().run()  # "Change my last rating"
    assert "Where is my parcel?" in texts(at)
    assert any("You rated this item before (approve)" in info.value for info in at.info)
    at.selectbox(key=f"label-{first}").select("warranty")
    at.button(key=f"reject-{first}").click().run()
    assert not at.exception

    history = ratings(project.store, first)
    assert [(row["verdict"], row["corrected"], row["reviewer_id"]) for row in history] == [
        ("approve", None, project.ann), ("reject", "warranty", project.ann)]
    assert history[1]["supersedes_id"] == history[0]["id"]
    current = project.store.current_ratings(unused_only=False)
    assert [(rating.output_id, rating.verdict) for rating in current] == [(first, "reject")]
    assert "I want my money back" in texts(at)  # and on to the next item


def test_each_session_writes_as_its_own_reviewer_and_a_disabled_one_is_logged_out(project):
    first, _ = project.outputs
    ann, bob = log_in(start(), "ann"), log_in(start(), "bob")
    bob.button(key=f"skip-{first}").click().run()
    assert [(row["reviewer_id"], row["verdict"]) for row in ratings(project.store, first)] == [
        (project.bob, "skip")]

    project.store.update_reviewer(project.ann, disabled=1)
    ann.button(key=f"approve-{first}").click().run()
    assert any("disabled or locked" in info.value for info in ann.info)
    assert [widget.label for widget in ann.text_input] == ["Name", "Password"]
    assert "session" not in ann.session_state
    assert len(ratings(project.store, first)) == 1  # nothing written for ann


def test_model_text_is_shown_verbatim_never_as_markdown_or_html(project):
    (evil,) = add_cycle(project.store, "causal-lm", {}, [(EVIL_INPUT, "ok", EVIL_OUTPUT, 0.3)])
    at = log_in(start())  # the newest cycle's item comes first
    shown = texts(at)
    assert EVIL_INPUT in shown and EVIL_OUTPUT in shown
    assert not at.get("html")
    for element in all_elements(at):
        value = getattr(element, "value", None)
        if element.type in ("text", "text_area") or not isinstance(value, str):
            continue
        assert "<script>" not in value and "bold" not in value, (element.type, value)
    completion = at.text_area(key=f"completion-{evil}")
    assert completion.value == EVIL_OUTPUT
    completion.input("A plain summary.")
    at.button(key=f"reject-{evil}").click().run()
    assert [(row["verdict"], row["corrected"]) for row in ratings(project.store, evil)] == [
        ("reject", "A plain summary.")]


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
    missing = CliRunner().invoke(cli, ["review", "--config", str(config)])
    assert missing.exit_code == 2 and "no database yet" in missing.output and not started

    Store(tmp_path / "data" / "reviews.db").close()
    result = CliRunner().invoke(cli, ["review", "--config", str(config), "--port", "8600"])
    assert result.exit_code == 0, result.output
    assert "http://127.0.0.1:8600" in result.output
    assert "No reviewer accounts yet" in result.output
    (command,) = started
    assert command[1:5] == ["-m", "streamlit", "run", str(APP)]
    options = " ".join(command[5:])
    assert "--server.headless true --server.address 127.0.0.1 --server.port 8600" in options
    assert options.endswith(f"-- --db {(tmp_path / 'data' / 'reviews.db').resolve()} "
                            "--idle-hours 8.0")


def test_cli_module_imports_neither_streamlit_nor_argon2():
    """``tuneloop --help`` imports every command module: it must not pay for the app."""
    import subprocess
    import sys

    code = ("import sys, tuneloop.cli.review; "
            "print(sorted({'streamlit', 'argon2', 'torch'} & set(sys.modules)))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            check=True)
    assert result.stdout.strip() == "[]"
