"""The leakage check across splits: exact and near duplicates found against the more protected
split, refused with a one-line error, dropped on the less protected side, or reported."""

from __future__ import annotations

import pytest

from tuneloop import DataError, Example
from tuneloop.leakage import check_leakage, find_leaks


def at(text: str, target: str = "x", line: int = 1, source: str = "d.jsonl") -> Example:
    return Example(text, target, source=source, provenance={"kind": "original", "line": line})


def splits_with_leaks() -> dict[str, list[Example]]:
    return {
        "train": [at("What's my balance?", line=1), at("please freeze my credit card", line=2),
                  at("totally unrelated sentence", line=3),
                  at("how do i reset my passwrd", line=4)],
        "validation": [at("how do i reset my password", line=10), at("validation only", line=11),
                       at("whats my balance", line=12)],
        "test": [at("whats my balance", line=20), at("Please freeze my credit card.", line=21)],
        "review": [at("how do i reset my password now", line=30)],
    }


def test_finds_exact_and_near_duplicates_against_the_most_protected_side():
    leaks = find_leaks(splits_with_leaks(), near_threshold=0.75)
    described = sorted((leak.split, leak.example.provenance["line"], leak.protected_split,
                        leak.protected.provenance["line"], leak.kind) for leak in leaks)
    assert described == [
        ("review", 30, "validation", 10, "near"),
        ("train", 1, "test", 20, "exact"),       # test first: the most protected match
        ("train", 2, "test", 21, "exact"),
        ("train", 4, "validation", 10, "near"),
        ("validation", 12, "test", 20, "exact"),
    ]
    near = next(leak for leak in leaks if leak.example.provenance["line"] == 4)
    assert 0.75 <= near.similarity < 1
    assert "d.jsonl:4" in near.describe() and "d.jsonl:10" in near.describe()


def test_exact_only_when_no_threshold():
    kinds = {leak.kind for leak in find_leaks(splits_with_leaks(), near_threshold=None)}
    assert kinds == {"exact"}
    assert len(find_leaks(splits_with_leaks(), near_threshold=None)) == 3


def test_refuse_is_one_line_naming_a_pair():
    with pytest.raises(DataError) as info:
        check_leakage(splits_with_leaks(), "refuse", 0.75)
    message = str(info.value)
    assert "\n" not in message and "5 example(s) duplicate an input" in message
    assert 'd.jsonl:' in message and "data.leakage.action" in message


def test_drop_removes_the_less_protected_copy_and_never_a_test_example():
    splits = splits_with_leaks()
    test_before = list(splits["test"])
    report = check_leakage(splits, "drop", 0.75)
    assert report["dropped"] == 5 and report["leaks"] == 5
    assert splits["test"] == test_before
    assert [e.provenance["line"] for e in splits["train"]] == [3]
    assert [e.provenance["line"] for e in splits["validation"]] == [10, 11]
    assert splits["review"] == []
    assert find_leaks(splits, 0.75) == []


def test_report_keeps_everything_and_counts():
    splits = splits_with_leaks()
    report = check_leakage(splits, "report", 0.75)
    assert report["dropped"] == 0 and len(splits["train"]) == 4
    assert report["pairs"] == {"train~test (exact)": 2, "train~validation (near)": 1,
                               "review~validation (near)": 1, "validation~test (exact)": 1}
    assert len(report["examples"]) == 5


def test_no_leaks_no_fuss():
    splits = {"train": [at("a b c d e f")], "validation": [at("g h i j k")], "test": [],
              "review": []}
    assert check_leakage(splits, "refuse", 0.9) == {
        "action": "refuse", "near_threshold": 0.9, "leaks": 0, "pairs": {}, "examples": [],
        "dropped": 0}


def test_augmented_variants_count_as_training_data():
    original = at("please check my balance")
    variant = Example("please chekc my balance", "x", split="train",
                      provenance={"kind": "augmented", "from": original.id})
    splits = {"train": [variant], "validation": [], "test": [at("please check my balance")],
              "review": []}
    [leak] = find_leaks(splits, 0.5)  # a swapped pair of letters: similarity 0.52
    assert leak.example is variant and leak.kind == "near"
