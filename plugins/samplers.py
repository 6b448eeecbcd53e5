"""Built-in review samplers: least confident first, or a seeded random sample.

Expert time is the scarcest resource in the loop. ``least_confident`` spends it where the model is
most likely wrong, so each rating is most likely to become a correction (uncertainty sampling).
``random`` gives an unbiased sample, which is what an honest estimate of human-judged quality
needs: a queue of only hard cases makes the model look worse than it is.
"""

from __future__ import annotations

import math
import random

from tuneloop import ReviewCandidate, ReviewSampler, hookimpl


def _confidence(candidate: ReviewCandidate) -> float | None:
    value = candidate.confidence
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    return float(value)


class LeastConfident(ReviewSampler):
    """The ``k`` outputs with the lowest confidence; outputs without a confidence come last
    (nothing says they are hard); ties by output id, so the order is stable."""

    name = "least_confident"

    def select(self, candidates: list[ReviewCandidate], k: int,
               rng: random.Random) -> list[ReviewCandidate]:
        if k <= 0:
            return []

        def order(candidate: ReviewCandidate) -> tuple[bool, float, int]:
            confidence = _confidence(candidate)
            return (confidence is None, confidence if confidence is not None else 0.0,
                    candidate.output_id)

        return sorted(candidates, key=order)[:k]


class RandomSample(ReviewSampler):
    """``k`` outputs drawn uniformly at random with the given rng (seeded by the cycle), from
    the candidates in output-id order, so the same seed and candidates give the same sample
    whatever order they arrive in."""

    name = "random"

    def select(self, candidates: list[ReviewCandidate], k: int,
               rng: random.Random) -> list[ReviewCandidate]:
        if k <= 0:
            return []
        ordered = sorted(candidates, key=lambda candidate: candidate.output_id)
        return rng.sample(ordered, min(k, len(ordered)))


@hookimpl
def register_review_samplers(register):
    """The built-in review samplers."""
    register(LeastConfident)
    register(RandomSample)
