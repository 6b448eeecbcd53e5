"""tuneloop-changed-sampler: a tuneloop review sampler, ``changed_answers``.

Queues the outputs whose answer changed since the last cycle, and only those: the model learnt
something new there (from the experts' corrections, or more data), or it is drifting. Either way
an expert should look, and an unchanged answer has been seen before::

    review:
      size: 30
      sampler: changed_answers                       # or, with options:
      sampler: {name: changed_answers, order: most_confident, fill_with: least_confident}

The cycle gives every candidate the previous cycle's answer for the same input
(``candidate.previous_output``, ``previous_confidence``, ``previous_scores``); an input the last
cycle did not answer has ``previous_output = None`` and counts as changed when ``new_inputs`` is
true. In the first cycle nothing has a previous answer.

tuneloop finds this module through the entry point ``changed-sampler`` in the group ``tuneloop``.
"""

from __future__ import annotations

import random
from typing import Literal

from tuneloop import Options, ReviewCandidate, ReviewSampler, hookimpl

__version__ = "0.1.0"

# tuneloop refuses to load this plugin, naming it and saying why, when its version is outside this.
TUNELOOP_REQUIRES = ">=0.1,<1"


class ChangedAnswersOptions(Options):
    """How ``changed_answers`` orders and fills the queue.

    ``order``: ``least_confident`` first (the change the model is least sure of) or
    ``most_confident`` first (a confident flip is the surprising one). ``new_inputs``: whether an
    input the last cycle did not answer counts as changed. ``fill_with``: what takes the places
    left when fewer than ``review.size`` answers changed: ``nothing`` (a short queue says "little
    changed") or the ``least_confident`` unchanged outputs.
    """

    order: Literal["least_confident", "most_confident"] = "least_confident"
    new_inputs: bool = True
    fill_with: Literal["nothing", "least_confident"] = "nothing"


class ChangedAnswers(ReviewSampler):
    """Outputs whose answer differs from the previous cycle's for the same input, and only those
    (unless ``fill_with`` says otherwise)."""

    name = "changed_answers"
    Options = ChangedAnswersOptions
    options: ChangedAnswersOptions

    def select(self, candidates: list[ReviewCandidate], k: int,
               rng: random.Random) -> list[ReviewCandidate]:
        if k <= 0:
            return []
        changed = [candidate for candidate in candidates if self.changed(candidate)]
        chosen = sorted(changed, key=self._order)[:k]
        if self.options.fill_with == "least_confident" and len(chosen) < k:
            unchanged = [candidate for candidate in candidates if not self.changed(candidate)]
            chosen += sorted(unchanged, key=_least_confident_first)[:k - len(chosen)]
        return chosen

    def changed(self, candidate: ReviewCandidate) -> bool:
        if candidate.previous_output is None:
            return self.options.new_inputs
        return candidate.output.strip() != candidate.previous_output.strip()

    def _order(self, candidate: ReviewCandidate) -> tuple[float, int]:
        confidence, output_id = _least_confident_first(candidate)
        if self.options.order == "most_confident":
            confidence = -confidence if candidate.confidence is not None else confidence
        return confidence, output_id


def _least_confident_first(candidate: ReviewCandidate) -> tuple[float, int]:
    # no confidence sorts last (nothing says it is hard); ties by output id, so the order is stable
    confidence = candidate.confidence if candidate.confidence is not None else 2.0
    return confidence, candidate.output_id


@hookimpl
def register_review_samplers(register):
    register(ChangedAnswers)
