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


# ---- preferences (DPO pairs) and thumbs (KTO) ------------------------------------------------

from tuneloop.plugins.feedback import Preferences, Thumbs  # noqa: E402


def pair_rating(id: int, verdict: str, preferred: str | None, score: int | None = None,
                pair_score: int | None = None, output: str = " Paris.",
                pair_output: str = " Lyon.") -> Rating:
    """A comparison of output 100+id (newer) with output 200+id (older)."""
    preferred_id = {"output": 100 + id, "pair": 200 + id, None: None}[preferred]
    return Rating(id=id, output_id=100 + id, cycle_id=2, reviewer="ann", verdict=verdict,
                  input="The capital of France is", output=output, score=score,
                  pair_output_id=200 + id, pair_output=pair_output, pair_score=pair_score,
                  preferred_output_id=preferred_id)


def build(name: str, **options):
    component = registries.build().feedback_policies.get(name)
    return component(component.Options.model_validate(options))


def test_preference_policies_are_registered_through_the_registry():
    found = registries.build().feedback_policies
    assert found.get("preferences") is Preferences and found.get("thumbs") is Thumbs
    assert found.entry("thumbs").plugin == "tuneloop.plugins.feedback"
    assert Thumbs.tasks == ("causal-lm",) and "classification" in Preferences.tasks


def test_scored_pairs_become_dpo_pairs_weighted_by_the_score_gap():
    ratings = [
        pair_rating(1, "approve", "output", score=5, pair_score=1),   # gap 4: full weight
        pair_rating(2, "approve", "pair", score=2, pair_score=3),     # gap 1, older preferred
        pair_rating(3, "approve", "output"),                          # no scores: unscored_gap
        pair_rating(4, "approve", "output", score=3, pair_score=3),   # equal scores: same
        pair_rating(5, "approve", "output", score=1, pair_score=4),   # scores contradict: none
        pair_rating(6, "approve", None),                              # both fine: none
        pair_rating(7, "reject", None),                               # both bad: none
        pair_rating(8, "skip", None),
        pair_rating(9, "unclear", None),
        pair_rating(10, "approve", "output", output=" Lyon."),        # identical texts: none
        rating(11, "reject", corrected=" Paris.", output=" Lyon."),   # single: not a pair
    ]
    pairs = list(build("preferences", weight=2.0).examples(ratings, "causal-lm"))
    assert [(rating_id, e.target, e.rejected, e.weight) for rating_id, e in pairs] == [
        (1, " Paris.", " Lyon.", 2.0),
        (2, " Lyon.", " Paris.", 0.5),
        (3, " Paris.", " Lyon.", 1.0),
        (4, " Paris.", " Lyon.", 1.0),
    ]
    example = pairs[0][1]
    assert example.input == "The capital of France is" and example.split == "train"
    assert example.provenance == {"kind": "feedback", "rating_id": 1, "policy": "preferences",
                                  "reviewer": "ann"}
    assert example.desirable is None
    # the pair is part of the example's identity: the same prompt and chosen text with another
    # rejected text is another example
    other = list(build("preferences").examples([pair_rating(1, "approve", "output",
                                                            pair_output=" Nice.")],
                                               "causal-lm"))[0][1]
    assert other.id != example.id


def test_corrections_can_also_become_pairs_and_classification_pairs_become_labels():
    edited = rating(1, "reject", corrected=" Paris.", output=" Lyon.",
                    input="The capital of France is")
    assert list(build("preferences").examples([edited], "causal-lm")) == []
    ((rating_id, example),) = build("preferences", from_corrections=True).examples([edited],
                                                                                 "causal-lm")
    assert (rating_id, example.target, example.rejected, example.weight) == (
        1, " Paris.", " Lyon.", 1.0)
    labels = pair_rating(2, "approve", "pair", score=1, pair_score=5, output="billing",
                         pair_output="refund")
    ((_, chosen),) = build("preferences").examples([labels], "classification")
    assert (chosen.target, chosen.rejected, chosen.weight) == ("refund", None, 1.0)


def test_thumbs_become_kto_examples_with_balanced_weights():
    ratings = [rating(n, "approve", output=f" answer {n}") for n in range(1, 7)]  # 6 desirable
    ratings += [rating(7, "reject", output=" wrong"),                              # 1 + 1
                rating(8, "reject", output=" bad", corrected=" good"),            # 1 + desirable
                rating(9, "skip"), rating(10, "unclear"),
                pair_rating(11, "approve", "output")]
    made = list(build("thumbs", weight=1.0).examples(ratings, "causal-lm"))
    desirable = [e for _, e in made if e.desirable]
    undesirable = [e for _, e in made if e.desirable is False]
    assert len(desirable) == 7 and len(undesirable) == 2
    assert {e.target for e in undesirable} == {" wrong", " bad"}  # the model's outputs
    assert " good" in {e.target for e in desirable}
    # each class carries half of the total weight
    assert sum(e.weight for e in desirable) == pytest.approx(sum(e.weight for e in undesirable))
    assert sum(e.weight for _, e in made) == pytest.approx(len(made))
    assert [rating_id for rating_id, e in made if rating_id == 8] == [8, 8]
    without = list(build("thumbs", include_corrections=False).examples(ratings, "causal-lm"))
    assert " good" not in {e.target for _, e in without}
    only_good = list(build("thumbs").examples(ratings[:2], "causal-lm"))
    assert [e.weight for _, e in only_good] == [1.0, 1.0]  # one class: nothing to balance


def test_single_output_policies_ignore_pairwise_ratings():
    pairs = [pair_rating(1, "approve", "output", score=5, pair_score=1),
             pair_rating(2, "approve", None)]
    for policy in (Corrections(), Approvals(), build("thumbs")):
        assert list(policy.examples(pairs, "causal-lm")) == []


@pytest.mark.parametrize("name, options", [
    ("preferences", {"unscored_gap": 0}), ("preferences", {"unscored_gap": 5}),
    ("preferences", {"weight": -1}), ("thumbs", {"include_corrections": "sometimes"}),
    ("thumbs", {"wieght": 1}),
])
def test_preference_options_are_checked(name, options):
    with pytest.raises(ValidationError):
        registries.build().feedback_policies.get(name).Options.model_validate(options)
