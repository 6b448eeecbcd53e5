"""Tests for changed_answers: used directly, found through the registry, used by real cycles."""

from __future__ import annotations

import random

import pydantic
import pytest

from tuneloop import ReviewCandidate, registries
from tuneloop.testing import register_plugin, run_tiny_cycle

import tuneloop_changed_sampler as plugin
from tuneloop_changed_sampler import ChangedAnswers


def candidate(output_id, output, previous, confidence=0.5):
    return ReviewCandidate(output_id=output_id, example_id=f"e{output_id}",
                           input=f"question {output_id}", output=output, confidence=confidence,
                           previous_output=previous)


def select(candidates, k=10, **options):
    sampler = ChangedAnswers(ChangedAnswers.Options(**options))
    return [c.output_id for c in sampler.select(candidates, k, random.Random(0))]


CANDIDATES = [
    candidate(1, "billing", "billing", 0.2),     # unchanged
    candidate(2, "shipping", "billing", 0.9),    # changed, confident
    candidate(3, "account", None, 0.3),          # new input
    candidate(4, "billing", "shipping", 0.4),    # changed, unsure
    candidate(5, "refund ", "refund", None),     # the same answer, up to whitespace
]


def test_only_changed_answers_least_confident_first():
    assert select(CANDIDATES) == [3, 4, 2]
    assert select(CANDIDATES, k=2) == [3, 4]
    assert select(CANDIDATES, k=0) == []


def test_options_order_new_inputs_and_filling():
    assert select(CANDIDATES, order="most_confident") == [2, 4, 3]
    assert select(CANDIDATES, new_inputs=False) == [4, 2]
    assert select(CANDIDATES, new_inputs=False, fill_with="least_confident") == [4, 2, 1, 3, 5]
    assert select(CANDIDATES, k=3, new_inputs=False, fill_with="least_confident") == [4, 2, 1]
    with pytest.raises(pydantic.ValidationError):
        ChangedAnswers.Options(order="newest")


def test_first_cycle_every_input_is_new():
    first = [candidate(n, "billing", None, 1 - n / 10) for n in range(1, 4)]
    assert select(first) == [3, 2, 1]
    assert select(first, new_inputs=False) == []


def test_registers_through_its_hook():
    with register_plugin(plugin, name="changed-sampler") as name:
        entry = registries.build().review_samplers.entry("changed_answers")
    assert entry.component is ChangedAnswers and entry.plugin == name


def test_queues_what_changed_between_two_real_cycles(tmp_path):
    config = {"review": {"sampler": {"name": "changed_answers", "new_inputs": False}, "size": 6}}
    first = run_tiny_cycle(tmp_path, plugins=[plugin], config=config)
    assert first.queue() == []  # nothing had an answer before the first cycle

    config["training"] = {"epochs": 10, "learning_rate": 0.01}  # learn more: answers change
    second = run_tiny_cycle(tmp_path, plugins=[plugin], config=config)
    before = {row["input"]: row["output"] for row in _outputs(first)}
    after = {row["input"]: row["output"] for row in _outputs(second)}
    changed = {text for text in after if text in before and after[text] != before[text]}
    unchanged = set(after) - changed
    assert changed and unchanged, "the toy run should change some answers and keep others"
    queue = second.queue()
    assert {row["input"] for row in queue} == changed
    assert [row["confidence"] for row in queue] == sorted(row["confidence"] for row in queue)
    assert {row["sampler"] for row in queue} == {"changed_answers"}


def _outputs(cycle):
    with cycle.store() as store:
        return store.outputs(cycle.cycle_id)
