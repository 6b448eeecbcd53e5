"""Built-in feedback policies: how expert ratings become training signal for the next cycle.

A rating is only worth something if the next model learns from it. Each policy below is one
stated rule for turning current (not superseded) ratings into examples, and every example names
the rating, the policy and the reviewer in its provenance; the cycle records each use in
``feedback_usage``, so any model traces back to the judgements that trained it. The cycle refuses
examples whose input sits in validation or test (feedback never leaks into evaluation), and holds
back items the experts disagree on before any policy sees them (``tuneloop.consensus``).

- ``corrections``: a corrected label or edited completion becomes an example (the strongest signal).
- ``approvals``: an approved output becomes a positive example.
- ``preferences``: a pairwise comparison becomes a DPO pair (chosen ≻ rejected), weighted by the
  gap between the two scores; for classification the preferred label becomes an example.
- ``thumbs``: approve / reject of a completion become KTO examples (desirable / undesirable), with
  weights that balance the two classes.

``skip`` and ``unclear`` verdicts produce nothing: the expert declined to judge. Single-output
policies ignore pairwise ratings and the pairwise policy ignores single ratings, so one rating
never feeds two contradicting rules.
"""

from __future__ import annotations

from typing import Iterator

from pydantic import Field

from tuneloop import Example, FeedbackPolicy, Options, Rating, hookimpl

MAX_SCORE_GAP = 4  # scores run from 1 to 5


class FeedbackOptions(Options):
    """``weight``: the training weight of the examples made (above 1 to trust experts more)."""

    weight: float = Field(1.0, gt=0, allow_inf_nan=False)


def _has_text(value: str | None) -> bool:
    return value is not None and value.strip() != ""


def _example(rating: Rating, target: str, policy: str, weight: float, **preference) -> Example:
    return Example(input=rating.input, target=target, weight=weight, split="train",
                   source="feedback",
                   provenance={"kind": "feedback", "rating_id": rating.id, "policy": policy,
                               "reviewer": rating.reviewer},
                   **preference)


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
            if rating.is_pair or rating.verdict not in ("reject", "approve"):
                continue
            if _has_text(rating.corrected):
                yield rating.id, _example(rating, rating.corrected or "", self.name,
                                          self.options.weight)


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
            if rating.is_pair or rating.verdict != "approve":
                continue
            if not _has_text(rating.corrected) and _has_text(rating.output):
                yield rating.id, _example(rating, rating.output, self.name, self.options.weight)


class PreferenceOptions(FeedbackOptions):
    """``weight`` is the weight of a pair whose scores are 5 and 1; a pair with scores ``a`` and
    ``b`` weighs ``weight * |a - b| / 4``, and a preference given without (or with equal) scores
    weighs ``weight * unscored_gap / 4``. ``from_corrections`` also turns each edited completion
    into a pair (the edit preferred over the model's output)."""

    unscored_gap: float = Field(2.0, gt=0, le=MAX_SCORE_GAP)
    from_corrections: bool = False


class Preferences(FeedbackPolicy):
    """A pairwise comparison becomes a DPO pair: ``target`` is the preferred output, ``rejected``
    the other, weighted by how far apart the expert scored them.

    A larger score gap is a clearer preference and should pull harder; a bare "A is better" is
    counted as a middling gap. "Both fine", "both bad", skips and unclear inputs say nothing
    about which is better and produce nothing. For classification there is no pair to train on:
    the preferred label becomes an ordinary example with the same weight.
    """

    name = "preferences"
    Options = PreferenceOptions
    options: PreferenceOptions

    def examples(self, ratings: list[Rating], task: str) -> Iterator[tuple[int, Example]]:
        for rating in ratings:
            if rating.is_pair:
                pair = self._from_pair(rating, task)
                if pair is not None:
                    yield rating.id, pair
            elif (self.options.from_corrections and task == "causal-lm"
                  and rating.verdict == "reject" and _has_text(rating.corrected)
                  and rating.corrected != rating.output):
                yield rating.id, _example(rating, rating.corrected or "", self.name,
                                          self.options.weight, rejected=rating.output)

    def _from_pair(self, rating: Rating, task: str) -> Example | None:
        if rating.verdict not in ("approve", "reject") or rating.preferred_output_id is None:
            return None
        if rating.preferred_output_id == rating.output_id:
            chosen, other = rating.output, rating.pair_output
            chosen_score, other_score = rating.score, rating.pair_score
        else:
            chosen, other = rating.pair_output, rating.output
            chosen_score, other_score = rating.pair_score, rating.score
        if not _has_text(chosen) or other is None or chosen == other:
            return None
        gap: float = self.options.unscored_gap
        if chosen_score is not None and other_score is not None and chosen_score != other_score:
            if chosen_score < other_score:
                return None  # the scores contradict the choice: trust neither
            gap = chosen_score - other_score
        weight = self.options.weight * gap / MAX_SCORE_GAP
        if task == "classification":
            return _example(rating, chosen or "", self.name, weight)
        return _example(rating, chosen or "", self.name, weight, rejected=other)


class ThumbsOptions(FeedbackOptions):
    """``weight`` is the mean weight; the desirable and undesirable examples each get half of the
    total, whatever their counts. ``include_corrections`` adds each edited completion as a
    desirable example (the expert's own answer is one they would approve)."""

    include_corrections: bool = True


class Thumbs(FeedbackPolicy):
    """Approve and reject of a completion become KTO examples: ``desirable=True`` for an approved
    output, ``desirable=False`` for a rejected one (the model's own output, never an expert's).

    Experts approve far more often than they reject (or the reverse, early on). KTO assumes
    neither class swamps the other, so each class is weighted to carry half of the total weight:
    with 90 approvals and 10 rejections, a rejection weighs nine times an approval.
    """

    name = "thumbs"
    tasks = ("causal-lm",)
    Options = ThumbsOptions
    options: ThumbsOptions

    def examples(self, ratings: list[Rating], task: str) -> Iterator[tuple[int, Example]]:
        made: list[tuple[int, Rating, str, bool]] = []
        for rating in ratings:
            if rating.is_pair or rating.verdict not in ("approve", "reject"):
                continue
            if rating.verdict == "approve" and _has_text(rating.output):
                made.append((rating.id, rating, rating.output, True))
            if rating.verdict == "reject" and _has_text(rating.output):
                made.append((rating.id, rating, rating.output, False))
            if self.options.include_corrections and _has_text(rating.corrected) \
                    and rating.corrected != rating.output:
                made.append((rating.id, rating, rating.corrected or "", True))
        desirable = sum(1 for *_, good in made if good)
        undesirable = len(made) - desirable
        for rating_id, rating, target, good in made:
            count = desirable if good else undesirable
            balance = len(made) / (2 * count) if desirable and undesirable else 1.0
            yield rating_id, _example(rating, target, self.name, self.options.weight * balance,
                                      desirable=good)


@hookimpl
def register_feedback_policies(register):
    """The built-in feedback policies."""
    for policy in (Corrections, Approvals, Preferences, Thumbs):
        register(policy)
