"""The team workflow in the review app (AppTest): a stale submission refused on screen, numbered
items, score buttons without repeated labels, top-k suggestions, the diff of an edit,
guidelines with a "changed" notice, the records view with bulk approval, accounts added in the
app, history found by input text, and the dashboard's held-back items and one-cycle charts."""

from __future__ import annotations

import json

import pytest
from test_review_app import (LABELS, PASSWORD, add_cycle, fast_hashes, log_in,  # noqa: F401
                             project, queue_id, start, table, texts)

from tuneloop import Example, Prediction, auth
from tuneloop.review_app import queries


def ratings_of(store, output_id):
    return store.query("SELECT reviewer_id, verdict FROM ratings WHERE output_id = ? "
                       "ORDER BY id", [output_id])


def test_a_stale_submission_is_refused_with_a_notice_and_the_next_item(project):
    first, second = project.queue
    ann = log_in(start())
    assert "Where is my parcel?" in texts(ann)  # ann holds the first item
    # ann's claim runs out (a sleeping laptop); two other experts fill both slots meanwhile
    project.store.conn.execute("UPDATE review_leases SET expires_at = '2000-01-01T00:00:00'")
    for reviewer in (project.bob, project.admin):
        viewer = project.store.reviewer_by_id(reviewer)
        queries.save_rating(project.store, viewer, first, verdict="reject", corrected="refund")
    ann.button(key=f"approve-{first}").click().run()
    assert any("Not saved: other experts already gave this item" in error.value
               for error in ann.error)
    assert "I want my money back" in texts(ann)  # the next item, at once
    assert [row["reviewer_id"] for row in ratings_of(project.store, project.outputs[0])] == [
        project.bob, project.admin]  # ann's stale approval was not written


def test_items_are_numbered_in_their_cycle_and_score_buttons_say_what_they_mean(project):
    first, second = project.queue
    at = log_in(start())
    assert "Item 1 of 2 · cycle 1 · classification" in texts(at)
    labels = {button.key: button.label for button in at.button}
    assert [labels[f"score-{first}-{n}"] for n in range(1, 6)] == [
        "Poor", "Weak", "Fair", "Good", "Great"]  # the hint adds 1-5: never "1 1"
    at.button(key=f"skip-{first}").click().run()
    assert "Item 2 of 2 · cycle 1 · classification" in texts(at)


def test_classification_items_show_the_top_k_labels_with_scores(project):
    store = project.store
    cycle = store.create_cycle(project="support", task="classification", seed=1,
                               config={"data": {"labels": LABELS}, "review": {"top_k": 2}},
                               plugins=[], base_model="m", start_model="m", parent_id=None)
    example = Example(input="Card charged twice", target="billing")
    scores = {"billing": 0.5, "refund": 0.3, "shipping": 0.15, "warranty": 0.05}
    (output,) = store.add_outputs(cycle, [Prediction(example.id, "billing", 0.5,
                                                     scores=scores)], [example])
    store.enqueue(cycle, [output], "least_confident", ratings_needed=1)
    at = log_in(start())
    assert "Model's top 2: billing 50% · refund 30%" in texts(at)


def test_an_edited_answer_shows_a_diff_against_the_model_answer(project):
    (output,) = add_cycle(project.store, "causal-lm", {},
                          [("Capital of France?", "Paris", "The capital is Lyon.", 0.4)])
    item = queue_id(project.store, output)
    at = log_in(start())
    assert not at.code
    at.text_area(key=f"completion-{item}").input("The capital is Paris.").run()
    (diff,) = at.code
    assert "-The capital is Lyon.\n+The capital is Paris." in diff.value
    assert diff.language == "diff"


def test_guidelines_are_shown_beside_the_item_and_a_change_is_announced(project, tmp_path,
                                                                         monkeypatch):
    rules = tmp_path / "guidelines.md"
    rules.write_text("# Labelling\n\n- *refund*: the customer wants money back\n")
    monkeypatch.setenv("TUNELOOP_GUIDELINES", str(rules))
    at = log_in(start())
    assert any("the customer wants money back" in md.value for md in at.markdown)
    assert "Guidelines" in [header.value for header in at.subheader]
    assert not at.warning
    rules.write_text("# Labelling\n\n- *refund*: money back, or a replacement\n")
    at.run()
    assert any("guidelines changed" in warning.value for warning in at.warning)
    assert any("or a replacement" in md.value for md in at.markdown)
    at.button(key="guidelines-read").click().run()
    assert not at.warning


def test_records_view_searches_filters_and_bulk_approves(project):
    store = project.store
    admin = store.reviewer_by_id(project.admin)
    ann = store.reviewer_by_id(project.ann)
    store.add_rating(reviewer_id=project.ann, output_id=project.outputs[0], verdict="approve")
    store.add_rating(reviewer_id=project.bob, output_id=project.outputs[0], verdict="reject",
                     corrected="refund")
    rows = queries.records(store, admin, text="PARCEL")
    assert [row["input"] for row in rows] == ["Where is my parcel?"]
    assert rows[0]["agreement"] == "disagree" and rows[0]["experts"] == 2
    assert "bob: reject → refund" in rows[0]["ratings"]
    assert [r["input"] for r in queries.records(store, admin, text="refund")] == [
        "Where is my parcel?"]  # found by its correction
    assert [r["input"] for r in queries.records(store, admin, agreement="unrated")] == [
        "I want my money back"]
    assert queries.records(store, admin, confidence=(0.4, 0.5))[0]["answer"] == "billing"
    assert queries.records(store, admin, reviewer="bob", status="done")[0]["item"] == \
        project.queue[0]
    with pytest.raises(queries.Forbidden):
        queries.records(store, ann)
    saved, refused = queries.bulk_approve(store, admin, project.queue)
    assert saved == 1 and len(refused) == 1 and "Not saved" in refused[0]  # the first is full
    assert store.query("SELECT status FROM review_queue ORDER BY id") == [
        {"status": "done"}, {"status": "open"}]  # the second needs one more expert

    at = log_in(start(), "ada")
    at.switch_page("records.py").run()
    assert not at.exception, at.exception
    at.text_input(key="records-text").input("money").run()
    assert list(table(at, "agreement")["input"]) == ["I want my money back"]  # all columns
    assert "1 item" in texts(at)


def test_admins_add_reviewers_and_disabling_ends_their_sessions(project):
    bob_session = auth.login(project.store, "bob", PASSWORD)
    at = log_in(start(), "ada")
    at.switch_page("accounts.py").run()
    at.text_input(key="accounts-new-name").input("cy")
    at.text_input(key="accounts-new-password-1").input("a long password")
    at.text_input(key="accounts-new-password-2").input("a long password")
    at.button(key="accounts-add-button").click().run()
    assert not at.exception, at.exception
    assert auth.authenticate(project.store, "cy", "a long password")["role"] == "expert"
    assert "cy" in list(table(at, "email")["name"])
    at.selectbox(key="accounts-name").select("bob").run()
    at.button(key="accounts-disable").click().run()
    with pytest.raises(auth.AuthError):
        auth.current_reviewer(project.store, bob_session)


def test_history_finds_outputs_by_their_input_text(project):
    project.store.add_rating(reviewer_id=project.ann, output_id=project.outputs[1],
                             verdict="approve")
    at = log_in(start(), "ada")
    at.switch_page("history.py").run()
    at.text_input(key="history-search").input("money back").run()
    assert at.selectbox(key="history-found").value == project.outputs[1]
    assert list(table(at, "supersedes_id")["verdict"]) == ["approve"]


def test_dashboard_names_held_back_items_and_draws_a_single_cycle(project):
    store = project.store
    store.add_rating(reviewer_id=project.ann, output_id=project.outputs[0], verdict="approve")
    store.add_rating(reviewer_id=project.bob, output_id=project.outputs[0], verdict="reject",
                     corrected="refund")
    store.add_metrics(1, "validation", {"f1": 0.5})
    store.add_metrics(1, "human", {"approval_rate": 0.5, "ratings": 2.0})
    at = log_in(start(), "ada")
    at.switch_page("dashboard.py").run()
    assert not at.exception, at.exception
    shown = texts(at)
    assert any(text.startswith("Held back from training: 1 item (experts disagree on 1 item")
               for text in shown)
    assert list(table(at, "why")["why"]) == ["50% of 2 experts agree (needs 60%)"]
    assert any("Basis: the verdict" in caption.value for caption in at.caption)
    charts = at.get("vega_lite_chart")
    assert len(charts) >= 2  # validation and human figures, each drawn with its one cycle
    specs = [json.loads(chart.proto.spec) for chart in charts]
    assert any(spec.get("encoding", {}).get("x", {}).get("type") == "ordinal"
               for spec in specs)
