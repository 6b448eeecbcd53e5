"""least_confident and random review samplers."""

from __future__ import annotations

import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tuneloop import ReviewCandidate, registries
from tuneloop.plugins.samplers import LeastConfident, RandomSample


def candidate(output_id: int, confidence: float | None) -> ReviewCandidate:
    return ReviewCandidate(output_id=output_id, example_id=f"e{output_id}", input=f"in {output_id}",
                           output="x", confidence=confidence)


CANDIDATES = [candidate(5, 0.9), candidate(3, None), candidate(8, 0.2), candidate(1, 0.2),
              candidate(2, 0.55), candidate(7, float("nan")), candidate(4, 0.0)]


def test_samplers_are_registered_through_the_registry():
    found = registries.build()
    assert found.review_samplers.get("least_confident") is LeastConfident
    assert found.review_samplers.get("random") is RandomSample
    assert found.review_samplers.entry("random").plugin == "tuneloop.plugins.samplers"


def test_least_confident_first_ties_by_output_id_unknown_last():
    chosen = LeastConfident().select(CANDIDATES, 10, random.Random(0))
    assert [c.output_id for c in chosen] == [4, 1, 8, 2, 5, 3, 7]
    assert [c.output_id for c in LeastConfident().select(CANDIDATES, 3, random.Random(0))] == [
        4, 1, 8]


@pytest.mark.parametrize("sampler", [LeastConfident(), RandomSample()])
def test_at_most_k(sampler):
    assert sampler.select(CANDIDATES, 0, random.Random(0)) == []
    assert sampler.select(CANDIDATES, -1, random.Random(0)) == []
    assert sampler.select([], 5, random.Random(0)) == []
    assert len(sampler.select(CANDIDATES, 3, random.Random(0))) == 3
    assert sorted(c.output_id for c in sampler.select(CANDIDATES, 100, random.Random(0))) == [
        1, 2, 3, 4, 5, 7, 8]


def test_random_is_seeded_and_independent_of_input_order():
    first = [c.output_id for c in RandomSample().select(CANDIDATES, 4, random.Random(42))]
    again = [c.output_id for c in RandomSample().select(list(reversed(CANDIDATES)), 4,
                                                        random.Random(42))]
    assert first == again and len(set(first)) == 4
    many = {tuple(c.output_id for c in RandomSample().select(CANDIDATES, 4, random.Random(seed)))
            for seed in range(20)}
    assert len(many) > 10  # different seeds give different samples


@settings(max_examples=50, deadline=None)
@given(confidences=st.lists(st.none() | st.floats(0, 1), max_size=20), k=st.integers(0, 25))
def test_least_confident_property(confidences, k):
    candidates = [candidate(n, c) for n, c in enumerate(confidences)]
    chosen = LeastConfident().select(candidates, k, random.Random(0))
    assert len(chosen) == min(k, len(candidates))
    known = [c.confidence for c in chosen if c.confidence is not None]
    assert known == sorted(known)
    rest = [c.confidence for c in candidates if c not in chosen and c.confidence is not None]
    assert all(value <= other for value in known for other in rest)
