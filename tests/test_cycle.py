"""End to end: cycle 1 → an expert rates outputs → cycle 2 trains on the ratings, with lineage."""

from __future__ import annotations

import json

import pytest

from projects import causal_project, classification_project, vocabulary_texts
from tuneloop import hookimpl as tuneloop_hookimpl
from tuneloop.auth import create_reviewer
from tuneloop.config import load_config
from tuneloop.cycle import run_cycle
from tuneloop.store import Store
from tuneloop.testing import register_plugin


@pytest.fixture(scope="session")
def tiny_bert_dir(tmp_path_factory):
    from tuneloop.testing import tiny_bert

    return tiny_bert(tmp_path_factory.mktemp("bert"), vocabulary_texts())


@pytest.fixture(scope="session")
def tiny_gpt2_dir(tmp_path_factory):
    from tuneloop.testing import tiny_gpt2

    return tiny_gpt2(tmp_path_factory.mktemp("gpt2"), vocabulary_texts())


def rate_queue(store: Store, reviewer_id: int, correct: int, approve: int,
               corrected_value) -> dict[int, str | None]:
    """A scripted expert: corrects the first `correct` items, approves the next `approve`."""
    given: dict[int, str | None] = {}
    for _ in range(correct + approve):
        item = store.next_queue_item(reviewer_id)
        assert item is not None, "the queue ran dry"
        if len(given) < correct:
            value = corrected_value(item)
            rating = store.add_rating(reviewer_id=reviewer_id, output_id=item["id"],
                                      verdict="reject", corrected=value)
            given[rating] = value
        else:
            rating = store.add_rating(reviewer_id=reviewer_id, output_id=item["id"],
                                      verdict="approve")
            given[rating] = None
    return given


def feedback_examples(store: Store, cycle_id: int) -> list[dict]:
    rows = store.examples(cycle_id, "train")
    return [row for row in rows if json.loads(row["provenance"])["kind"] == "feedback"]


def test_classification_cycle_two_learns_from_expert_corrections(tmp_path, tiny_bert_dir):
    config = load_config(classification_project(tmp_path, tiny_bert_dir))
    first = run_cycle(config, quiet=True)
    assert first.status == "done" and first.promoted and first.queued == 10
    assert set(first.metrics) == {"validation", "test"}
    assert {"accuracy", "precision", "recall", "f1"} <= set(first.metrics["validation"])

    with Store(config.database_path) as store:
        assert store.cycle(first.cycle_id)["status"] == "done"
        reviewer_id = create_reviewer(store, "ann", "correct horse battery")
        # The expert relabels three outputs as "account" and approves two.
        given = rate_queue(store, reviewer_id, correct=3, approve=2,
                           corrected_value=lambda item: "account")

    second = run_cycle(config, quiet=True)
    assert second.ratings_used == 5
    with Store(config.database_path) as store:
        cycle = store.cycle(second.cycle_id)
        assert cycle["parent_id"] == first.cycle_id
        assert cycle["start_model"] == first.model_path  # continued from the promoted model
        usage = store.feedback_usage(second.cycle_id)
        assert {row["rating_id"] for row in usage} == set(given)
        trained = feedback_examples(store, second.cycle_id)
        corrected = [row for row in trained
                     if json.loads(row["provenance"])["policy"] == "corrections"]
        assert len(corrected) == 3
        assert all(row["target"] == "account" and row["weight"] == 2.0 for row in corrected)
        assert {json.loads(row["provenance"])["rating_id"] for row in trained} == set(given)
        # Human metrics of cycle 1 were recorded from the ratings.
        human = store.final_metrics(first.cycle_id)["human"]
        assert human["approval_rate"] == pytest.approx(2 / 5)
        # Rated inputs are training data now; they are not queued for review again.
        rated_inputs = {row["input"] for row in store.query(
            "SELECT o.input FROM ratings r JOIN outputs o ON o.id = r.output_id")}
        queued_inputs = {row["input"] for row in store.query(
            "SELECT o.input FROM review_queue q JOIN outputs o ON o.id = q.output_id "
            "WHERE q.cycle_id = ?", [second.cycle_id])}
        assert not rated_inputs & queued_inputs

    third = run_cycle(config, quiet=True)
    # every earlier rating stays training data, with its lineage, even continuing from the
    # promoted model (which would otherwise drift away from what they taught it)
    assert third.ratings_used == 5
    with Store(config.database_path) as store:
        assert {row["rating_id"] for row in store.feedback_usage(third.cycle_id)} == set(given)
        stats = json.loads(store.cycle(third.cycle_id)["stats"])
        assert stats["feedback"]["new_ratings"] == 0 and stats["feedback"]["ratings_used"] == 5


def test_test_split_never_receives_feedback_or_changes(tmp_path, tiny_bert_dir):
    config = load_config(classification_project(tmp_path, tiny_bert_dir))
    first = run_cycle(config, quiet=True)
    second = run_cycle(config, quiet=True)
    with Store(config.database_path) as store:
        test_one = {row["input"] for row in store.examples(first.cycle_id, "test")}
        test_two = {row["input"] for row in store.examples(second.cycle_id, "test")}
        train_two = {row["input"] for row in store.examples(second.cycle_id, "train")}
    assert test_one == test_two and test_one
    assert not test_one & train_two


def test_causal_lm_cycle_two_learns_from_edited_completions(tmp_path, tiny_gpt2_dir):
    config = load_config(causal_project(tmp_path, tiny_gpt2_dir))
    first = run_cycle(config, quiet=True)
    assert first.status == "done"
    assert {"exact_match", "perplexity"} <= set(first.metrics["validation"])
    with Store(config.database_path) as store:
        outputs = store.outputs(first.cycle_id)
        assert outputs and all(isinstance(row["output"], str) for row in outputs)
        reviewer_id = create_reviewer(store, "bea", "correct horse battery")
        given = rate_queue(store, reviewer_id, correct=2, approve=1,
                           corrected_value=lambda item: item["reference"])
    second = run_cycle(config, quiet=True)
    assert second.ratings_used == 3
    with Store(config.database_path) as store:
        usage = store.feedback_usage(second.cycle_id)
        assert {row["rating_id"] for row in usage} == set(given)
        edited = {row["input"]: row["target"] for row in feedback_examples(store, second.cycle_id)
                  if json.loads(row["provenance"])["policy"] == "corrections"}
        assert len(edited) == 2
        assert all(target.strip() in {"red", "blue", "green", "black"}
                   for target in edited.values())


def test_expert_corrections_through_the_review_app_train_cycle_two(tmp_path, tiny_bert_dir,
                                                                   monkeypatch):
    """The same loop, with the expert working in the Streamlit app (AppTest) instead of the API."""
    from importlib import resources
    from pathlib import Path

    from argon2 import PasswordHasher
    from streamlit.testing.v1 import AppTest

    from tuneloop import auth

    monkeypatch.setattr(auth, "HASHER", PasswordHasher(time_cost=1, memory_cost=1024,
                                                       parallelism=1))
    config = load_config(classification_project(tmp_path, tiny_bert_dir))
    first = run_cycle(config, quiet=True)
    with Store(config.database_path) as store:
        create_reviewer(store, "cat", "correct horse battery")
    monkeypatch.setenv("TUNELOOP_DB", str(config.database_path))

    app = AppTest.from_file(str(Path(str(resources.files("tuneloop.review_app") / "app.py"))),
                            default_timeout=60).run()
    app.text_input(key="login-name").input("cat")
    app.text_input(key="login-password").input("correct horse battery")
    app.button(key="login").click().run()
    corrected_outputs = []
    for _ in range(2):  # correct two items to another label
        selectbox = next(box for box in app.selectbox if box.key.startswith("label-"))
        queue_id = int(selectbox.key.removeprefix("label-"))  # widgets are keyed by queue item
        chosen = next(label for label in selectbox.options if label != selectbox.value)
        selectbox.select(chosen)
        app.button(key=f"reject-{queue_id}").click().run()
        assert not app.exception, app.exception
        with Store(config.database_path) as store:
            output_id = store.one("SELECT output_id FROM review_queue WHERE id = ?",
                                  [queue_id])["output_id"]
        corrected_outputs.append((output_id, chosen))
    approve = next(button for button in app.button if button.key.startswith("approve-"))
    approve.click().run()

    second = run_cycle(config, quiet=True)
    assert second.ratings_used == 3
    with Store(config.database_path) as store:
        trained = {(json.loads(row["provenance"])["rating_id"], row["target"])
                   for row in feedback_examples(store, second.cycle_id)}
        ratings = {row["id"]: row for row in store.query(
            "SELECT r.id, r.output_id, r.corrected, v.name FROM ratings r "
            "JOIN reviewers v ON v.id = r.reviewer_id")}
        assert {row["name"] for row in ratings.values()} == {"cat"}
        for output_id, label in corrected_outputs:
            (rating_id,) = [r for r, row in ratings.items() if row["output_id"] == output_id]
            assert (rating_id, label) in trained
        assert {row["rating_id"] for row in store.feedback_usage(second.cycle_id)} == set(ratings)
    assert first.cycle_id < second.cycle_id


class ScriptedAnswers:
    """A ``dpo`` trainer that trains for real but answers as a script says: every answer wrong
    in cycle 1, and in later cycles right except for items numbered by 5. A tiny random model
    often answers every prompt alike in two cycles, which leaves nothing to compare; the loop
    under test is the queue, the ratings, the policy and the preference training, not how much
    a tiny model learns."""

    @staticmethod
    @tuneloop_hookimpl
    def register_trainers(register):
        from tuneloop.plugins.trainers.preference import DPOTrainer

        class Scripted(DPOTrainer):
            name = "dpo_scripted"

            def predict(self, model_dir, examples, context):
                predictions = super().predict(model_dir, examples, context)
                for prediction, example in zip(predictions, examples, strict=True):
                    number = int(example.input.split()[1])
                    right = context.cycle_id > 1 and number % 5 != 0
                    wrong = " black" if (example.target or "").strip() != "black" else " red"
                    prediction.output = example.target if right else wrong
                return predictions

        register(Scripted)


def test_scores_and_pairwise_preferences_close_the_loop_for_a_causal_lm(tmp_path,
                                                                          tiny_gpt2_dir):
    """Cycle 1 → scored ratings → cycle 2 trains on them and queues its answers against cycle
    1's → an expert compares the pairs → cycle 3 trains DPO pairs, weighted by the score gap."""
    with register_plugin(ScriptedAnswers(), name="scripted-answers"):
        config = load_config(causal_project(
            tmp_path, tiny_gpt2_dir,
            review={"size": 4, "sampler": "least_confident", "pairwise": True, "pair_size": 3},
            feedback={"policies": ["corrections", "approvals", "preferences"]},
            training={"trainer": {"name": "dpo_scripted"}}))
        first = run_cycle(config, quiet=True)
        with Store(config.database_path) as store:
            expert = create_reviewer(store, "pat", "correct horse battery")
            item = store.next_queue_item(expert)
            store.add_rating(reviewer_id=expert, output_id=item["id"], verdict="reject",
                             score=1, corrected=item["reference"])
            item = store.next_queue_item(expert)
            store.add_rating(reviewer_id=expert, output_id=item["id"], verdict="approve",
                             score=5)

        second = run_cycle(config, quiet=True)
        assert second.ratings_used == 2
        with Store(config.database_path) as store:
            assert store.final_metrics(first.cycle_id)["human"]["mean_score"] == 3.0
            answers: dict[str, dict[int, str]] = {}
            for cycle in (first.cycle_id, second.cycle_id):
                for row in store.outputs(cycle):
                    answers.setdefault(row["input"], {})[cycle] = row["output"]
            changed = {text for text, by_cycle in answers.items() if len(set(
                by_cycle.values())) == 2}
            pairs = store.query("SELECT q.output_id, q.pair_output_id, n.input, n.reference, "
                                "n.output AS newer, o.output AS older FROM review_queue q "
                                "JOIN outputs n ON n.id = q.output_id "
                                "JOIN outputs o ON o.id = q.pair_output_id "
                                "WHERE q.cycle_id = ?", [second.cycle_id])
            assert len(changed) > 3  # the script changed most answers
            assert len(pairs) == 3 and {pair["input"] for pair in pairs} <= changed
            assert all(pair["newer"] == pair["reference"] != pair["older"] for pair in pairs)
            assert second.queued == 4 + len(pairs)
            # The expert prefers the right answer, scoring it 4 against 1 (a gap of 3 of 4).
            compared = []
            while (item := store.next_queue_item(expert)) is not None:
                if item["pair_output_id"] is None:
                    store.add_rating(reviewer_id=expert, output_id=item["id"], verdict="skip")
                    continue
                compared.append(store.add_rating(
                    reviewer_id=expert, output_id=item["id"],
                    pair_output_id=item["pair_output_id"], verdict="approve",
                    preferred_output_id=item["id"], score=4, pair_score=1,
                    left_output_id=item["pair_output_id"]))
            assert len(compared) == len(pairs)

        third = run_cycle(config, quiet=True)
    # the pairwise ratings train cycle 3, and the earlier ratings stay training data
    assert third.status == "done" and third.ratings_used == len(pairs) + second.ratings_used
    with Store(config.database_path) as store:
        usage = store.feedback_usage(third.cycle_id)
        earlier = {row["rating_id"] for row in store.feedback_usage(second.cycle_id)}
        assert {row["rating_id"] for row in usage} == set(compared) | earlier
        assert {row["policy"] for row in usage if row["rating_id"] in compared} == {"preferences"}
        trained = [row for row in feedback_examples(store, third.cycle_id)
                   if json.loads(row["provenance"])["rating_id"] in compared]
        assert {json.loads(row["provenance"])["rating_id"] for row in trained} == set(compared)
        assert {row["input"]: row["target"] for row in trained} == {
            pair["input"]: pair["newer"] for pair in pairs}
        assert {row["weight"] for row in trained} == {0.75}
        stats = json.loads(store.cycle(third.cycle_id)["stats"])
        before = json.loads(store.cycle(second.cycle_id)["stats"])
        assert stats["feedback"]["examples"] == len(pairs) + before["feedback"]["examples"]
        assert stats["feedback"]["new_ratings"] == len(pairs)


# ------------------------------------------------------------------------------------------------
# Data that cannot measure anything stops before the cycle row; surprises are warned about
# ------------------------------------------------------------------------------------------------


def test_a_causal_lm_cycle_with_an_empty_validation_split_exits_2_and_writes_no_cycle(
        tmp_path, tiny_gpt2_dir):
    from click.testing import CliRunner

    from projects import write_jsonl
    from tuneloop.cli import cli

    # all-different answers, stratified by the answer: every answer a stratum of one, all in train
    path = causal_project(tmp_path, tiny_gpt2_dir, data={"split": {
        "train": 0.8, "validation": 0.1, "test": 0.1, "review": 0.0, "stratify": "label"}})
    write_jsonl(tmp_path / "data.jsonl", [
        {"prompt": f"item {number} colour is red . answer :", "completion": f" {number}"}
        for number in range(48)])
    result = CliRunner().invoke(cli, ["run", "--quiet", str(path)])
    assert result.exit_code == 2, result.output
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert lines == [
        "Error: data.split: validation is empty: 0 of 48 examples (fractions train 0.8 / "
        "validation 0.1 / test 0.1 / review 0): 48 unpinned inputs split per label, and no label "
        "has enough of them for a validation share (data.split.stratify: none splits them by "
        "hash); give it examples, or set data.split.validation: 0 for a project without one"]
    with Store(tmp_path / "tuneloop.db") as store:
        assert store.cycles() == [] and store.split_assignments() == {}


def test_a_cycle_that_measured_nothing_is_failed_not_done(tmp_path, tiny_bert_dir):
    from tuneloop import TuneloopError

    config = load_config(classification_project(tmp_path, tiny_bert_dir, data={"split": {
        "train": 0.8, "validation": 0.0, "test": 0.0, "review": 0.2, "seed": 3}},
        training={"epochs": 1}))
    with pytest.raises(TuneloopError, match="cycle 1 measured nothing: its validation and test "
                                            "splits are both empty"):
        run_cycle(config, quiet=True)
    with Store(config.database_path) as store:
        assert [cycle["status"] for cycle in store.cycles()] == ["failed"]


def test_run_warns_about_empty_targets_and_labels_unseen_in_training(tmp_path, tiny_bert_dir,
                                                                     caplog):
    import yaml

    from projects import classification_rows, write_jsonl
    from tuneloop import DataError

    path = classification_project(tmp_path, tiny_bert_dir, training={"epochs": 1})
    rows = classification_rows()
    rows[3]["intent"] = ""
    write_jsonl(tmp_path / "data.jsonl", rows)
    write_jsonl(tmp_path / "extra.jsonl", [{"text": "could you return my money quickly",
                                            "intent": "refunds"}])
    settings = yaml.safe_load(path.read_text())
    settings["data"]["sources"].append({"type": "jsonl", "path": "extra.jsonl", "split": "test",
                                        "fields": {"input": "text", "target": "intent"}})
    path.write_text(yaml.safe_dump(settings, sort_keys=False))
    with caplog.at_level("WARNING", logger="tuneloop.data"):
        result = run_cycle(load_config(path), quiet=True)
    assert result.status == "done"
    warned = [record.getMessage() for record in caplog.records if record.name == "tuneloop.data"]
    assert len(warned) == 2
    assert warned[0].startswith("warning: data.jsonl:4: empty target: 1 example(s)")
    assert warned[1].startswith('warning: extra.jsonl:1: 1 test example(s) have a label that no '
                                'training example has ("refunds")')

    # and the config can refuse them: one line, exit 2, no new cycle
    settings["data"]["on_unseen_label"] = "refuse"
    path.write_text(yaml.safe_dump(settings, sort_keys=False))
    with pytest.raises(DataError, match=r"^extra.jsonl:1: 1 test example\(s\) have a label"):
        run_cycle(load_config(path), quiet=True)
    with Store(tmp_path / "tuneloop.db") as store:
        assert len(store.cycles()) == 1
