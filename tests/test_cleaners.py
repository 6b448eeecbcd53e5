"""drop_empty and drop_duplicates: what they drop, what they keep, every removal reported, and
that they stream."""

from __future__ import annotations

import inspect

import pytest
from pydantic import ValidationError

from tuneloop import Example, registries
from tuneloop.plugins.cleaners import DropDuplicates, DropEmpty


def run(cleaner, examples):
    removed: list[tuple[Example, str]] = []
    kept = list(cleaner.clean(examples, lambda example, reason: removed.append((example, reason))))
    return kept, removed


def test_cleaners_are_registered_through_the_registry():
    found = registries.build()
    assert found.cleaners.get("drop_empty") is DropEmpty
    assert found.cleaners.get("drop_duplicates") is DropDuplicates
    assert found.cleaners.entry("drop_duplicates").plugin == "tuneloop.plugins.cleaners"


def test_drop_empty_drops_blank_inputs_and_reports_each():
    examples = [Example("hello", "a"), Example("", "b"), Example(" \t\n", "c"),
                Example("unlabeled"), Example("blank target", "  ")]
    kept, removed = run(DropEmpty(), examples)
    assert [e.input for e in kept] == ["hello", "unlabeled", "blank target"]
    assert [(e.target, reason) for e, reason in removed] == [("b", "empty input"),
                                                              ("c", "empty input")]


def test_drop_empty_can_require_a_target():
    cleaner = DropEmpty(DropEmpty.Options(require_target=True))
    examples = [Example("hello", "a"), Example("unlabeled"), Example("blank", " "),
                Example("", None)]
    kept, removed = run(cleaner, examples)
    assert [e.input for e in kept] == ["hello"]
    assert [(e.input, reason) for e, reason in removed] == [
        ("unlabeled", "missing target"), ("blank", "missing target"), ("", "empty input")]
    with pytest.raises(ValidationError):
        DropEmpty.Options(require_targets=True)  # a typo is an error, not ignored


def test_drop_duplicates_keeps_the_first_of_normalised_input_and_target():
    first = Example("Check my  balance", "balance", source="a.jsonl")
    examples = [
        first,
        Example("check my balance", "balance", source="b.jsonl"),   # case and spaces differ
        Example(" CHECK MY BALANCE\n", "balance", weight=3.0),       # still the same
        Example("check my balance", "transfer"),                      # conflicting label: kept
        Example("check my balance"),                                   # unlabeled: kept
        Example("check my balance"),                                   # its duplicate: dropped
        Example("check my balances", "balance"),                       # different input: kept
    ]
    kept, removed = run(DropDuplicates(), examples)
    assert kept == [first, examples[3], examples[4], examples[6]]
    assert kept[0] is first
    assert [(e, reason) for e, reason in removed] == [
        (examples[1], "duplicate"), (examples[2], "duplicate"), (examples[5], "duplicate")]


def test_target_is_compared_exactly():
    kept, removed = run(DropDuplicates(), [Example("q", " Yes"), Example("q", "yes"),
                                           Example("q", " Yes")])
    assert [e.target for e in kept] == [" Yes", "yes"] and len(removed) == 1


def test_cleaners_stream():
    def endless():
        number = 0
        while True:
            yield Example(f"text {number % 3}", "x")
            number += 1

    for cleaner in (DropEmpty(), DropDuplicates()):
        output = cleaner.clean(endless(), lambda example, reason: None)
        assert inspect.isgenerator(output)
        assert next(output).input == "text 0"
        assert next(output).input == "text 1"
