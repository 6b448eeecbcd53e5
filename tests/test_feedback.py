"""corrections and approvals: which ratings become which training examples."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from tuneloop import Example, Rating, registries
from tuneloop.plugins.feedback import Approvals, Corrections


def rating(id: int, verdict: str, corrected: str | None = None, output: str = "card_lost",
           input: str = "I lost my card", reviewer: str = "ann") -> Rating:
    return Rating(id=id, output_id=100 + id, cycle_id=1, reviewer=reviewer, verdict=verdict,
                  input=input, output=output, reference="card_lost", corrected=corrected)


RATINGS = [
    rating(1, "reject", corrected="card_stolen"),
    rating(2, "approve"),
    rating(3, "approve", corrected="card_lost_abroad"),
    rating(4, "skip", corrected="ignored"),
    rating(5, "unclear", corrected="ignored"),
    rating(6, "reject"),                      # wrong, but no answer given: nothing to learn
    rating(7, "reject", corrected="   "),     # a blank correction is no answer
    rating(8, "unclear"),
    rating(9, "skip"),
]


def test_policies_are_registered_through_the_registry():
    found = registries.build()
    assert found.feedback_policies.get("corrections") is Corrections
    assert found.feedback_policies.get("approvals") is Approvals
    assert found.feedback_policies.entry("approvals").plugin == "tuneloop.plugins.feedback"


def test_corrections_turn_corrected_ratings_into_training_examples():
    pairs = list(Corrections().examples(RATINGS, "classification"))
    assert [rating_id for rating_id, _ in pairs] == [1, 3]
    rating_id, example = pairs[0]
    assert example == Example(input="I lost my card", target="card_stolen", weight=1.0,
                              split="train", source="feedback",
                              provenance={"kind": "feedback", "rating_id": 1,
                                          "policy": "corrections", "reviewer": "ann"})
    assert example.id == Example("I lost my card", "card_stolen").id
    assert pairs[1][1].target == "card_lost_abroad"


def test_approvals_turn_approved_outputs_into_positive_examples():
    pairs = list(Approvals(Approvals.Options(weight=2.0)).examples(RATINGS, "classification"))
    assert [rating_id for rating_id, _ in pairs] == [2]
    example = pairs[0][1]
    assert (example.input, example.target, example.weight, example.split) == (
        "I lost my card", "card_lost", 2.0, "train")
    assert example.provenance == {"kind": "feedback", "rating_id": 2, "policy": "approvals",
                                  "reviewer": "ann"}


def test_a_rating_feeds_at_most_one_policy():
    used = [rid for policy in (Corrections(), Approvals())
            for rid, _ in policy.examples(RATINGS, "classification")]
    assert sorted(used) == [1, 2, 3]


def test_causal_lm_completions():
    ratings = [rating(1, "reject", corrected=" Paris.", output=" Lyon.",
                      input="The capital of France is", reviewer="bo"),
               rating(2, "approve", output=" 4", input="2+2 =")]
    corrected = list(Corrections(Corrections.Options(weight=3.0)).examples(ratings, "causal-lm"))
    assert [(e.input, e.target, e.weight) for _, e in corrected] == [
        ("The capital of France is", " Paris.", 3.0)]
    assert corrected[0][1].provenance["reviewer"] == "bo"
    approved = list(Approvals().examples(ratings, "causal-lm"))
    assert [(e.input, e.target) for _, e in approved] == [("2+2 =", " 4")]


def test_no_ratings_no_examples():
    assert list(Corrections().examples([], "classification")) == []
    assert list(Approvals().examples([rating(1, "approve", output="")], "causal-lm")) == []


@pytest.mark.parametrize("options", [{"weight": 0}, {"weight": -1}, {"weight": float("inf")},
                                     {"wieght": 2}])
def test_options_are_checked(options):
    with pytest.raises(ValidationError):
        Corrections.Options(**options)
