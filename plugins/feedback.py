"""Built-in feedback policies: expert corrections and approvals become training examples.

A rating is only worth something if the next model learns from it. These policies turn current
(not superseded) ratings into ordinary examples with ``split="train"`` and a provenance naming
the rating, the policy and the reviewer, so every trained example traces back to the judgement
that made it (the cycle records each use in ``feedback_usage``). The cycle refuses any whose input
sits in validation or test, so feedback never leaks into evaluation.

Both work for classification (the target is a label) and causal LM (the target is a completion).
``skip`` and ``unclear`` verdicts produce nothing: the expert declined to judge.
"""

from __future__ import annotations

from typing import Iterator

from pydantic import Field

from tuneloop import Example, FeedbackPolicy, Options, Rating, hookimpl


class FeedbackOptions(Options):
    """``weight``: the training weight of the examples made (above 1 to trust experts more)."""

    weight: float = Field(1.0, gt=0, allow_inf_nan=False)


def _has_text(value: str | None) -> bool:
    return value is not None and value.strip() != ""


def _example(rating: Rating, target: str, policy: str, weight: float) -> Example:
    return Example(input=rating.input, target=target, weight=weight, split="train",
                   source="feedback",
                   provenance={"kind": "feedback", "rating_id": rating.id, "policy": policy,
                               "reviewer": rating.reviewer})


class Corrections(FeedbackPolicy):
    """A rating with a correction (verdict ``reject`` or ``approve``) becomes an example whose
    target is the corrected label or completion.

    A reject with a correction is the most valuable signal there is: the model was wrong and the
    expert wrote the right answer. An approve with an edit counts too (the answer was acceptable
    but the expert improved it). A blank correction is no answer and is ignored.
    """

    name = "corrections"
    Options = FeedbackOptions
    options: FeedbackOptions

    def examples(self, ratings: list[Rating], task: str) -> Iterator[tuple[int, Example]]:
        for rating in ratings:
            corrected = rating.corrected
            if rating.verdict in ("reject", "approve") and corrected is not None \
                    and corrected.strip():
                yield rating.id, _example(rating, corrected, self.name, self.options.weight)


class Approvals(FeedbackPolicy):
    """An approved output without a correction becomes a positive example: target = the output.

    It reinforces answers an expert vouched for, which matters most where the model was unsure.
    Approvals with a correction are left to ``corrections``, so one rating never yields two
    conflicting examples.
    """

    name = "approvals"
    Options = FeedbackOptions
    options: FeedbackOptions

    def examples(self, ratings: list[Rating], task: str) -> Iterator[tuple[int, Example]]:
        for rating in ratings:
            if rating.verdict == "approve" and not _has_text(rating.corrected) \
                    and _has_text(rating.output):
                yield rating.id, _example(rating, rating.output, self.name, self.options.weight)


@hookimpl
def register_feedback_policies(register):
    """The built-in feedback policies."""
    register(Corrections)
    register(Approvals)
