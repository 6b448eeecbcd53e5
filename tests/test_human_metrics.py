"""Human metrics: agreement statistics against published worked examples and scikit-learn, and a
cycle's figures from ratings in a real store."""

from __future__ import annotations

import math
import random

import pytest
from sklearn.metrics import cohen_kappa_score

from tuneloop import Example, Prediction
from tuneloop.human_metrics import (agreement, cohen_kappa, fleiss_kappa, human_metrics,
                                    krippendorff_alpha)
from tuneloop.store import Store


def test_cohen_kappa_matches_scikit_learn():
    rng = random.Random(1)
    first = [rng.choice("abc") for _ in range(80)]
    second = [label if rng.random() < 0.6 else rng.choice("abc") for label in first]
    assert cohen_kappa(first, second) == pytest.approx(cohen_kappa_score(first, second))


def test_cohen_kappa_by_hand():
    # 10 items: both approve 4, both reject 3, disagree 3 (2 + 1).
    first = ["a"] * 4 + ["r"] * 3 + ["a", "a", "r"]
    second = ["a"] * 4 + ["r"] * 3 + ["r", "r", "a"]
    observed = 7 / 10
    expected = (6 / 10) * (5 / 10) + (4 / 10) * (5 / 10)  # rater 1: 6 a, 4 r; rater 2: 5 a, 5 r
    assert cohen_kappa(first, second) == pytest.approx((observed - expected) / (1 - expected))
    assert cohen_kappa(["a", "b"], ["a", "b"]) == 1.0
    assert math.isnan(cohen_kappa(["a", "a"], ["a", "a"]))  # chance agreement is total
    with pytest.raises(ValueError, match="2 labels from the first rater, 1"):
        cohen_kappa(["a", "b"], ["a"])


def test_fleiss_kappa_on_the_worked_example():
    # Fleiss (1971) as worked on Wikipedia: 10 subjects, 14 raters, 5 categories: kappa 0.210
    counts = [[0, 0, 0, 0, 14], [0, 2, 6, 4, 2], [0, 0, 3, 5, 6], [0, 3, 9, 2, 0],
              [2, 2, 8, 1, 1], [7, 7, 0, 0, 0], [3, 2, 6, 3, 0], [2, 5, 3, 2, 2],
              [6, 5, 2, 1, 0], [0, 2, 2, 3, 7]]
    items = [[category for category, n in enumerate(row) for _ in range(n)] for row in counts]
    assert fleiss_kappa(items) == pytest.approx(0.2099, abs=5e-4)
    with pytest.raises(ValueError, match="same number of ratings per item"):
        fleiss_kappa([["a", "b"], ["a", "b", "a"]])


def test_fleiss_kappa_with_two_raters_is_scotts_pi():
    first = ["a", "a", "b", "b", "a", "b", "a", "a"]
    second = ["a", "b", "b", "b", "a", "a", "a", "a"]
    observed = sum(x == y for x, y in zip(first, second)) / len(first)
    pooled = (first + second)
    expected = sum((pooled.count(label) / len(pooled)) ** 2 for label in "ab")
    assert fleiss_kappa(list(zip(first, second))) == pytest.approx(
        (observed - expected) / (1 - expected))


def test_krippendorff_alpha_on_the_worked_example():
    # Krippendorff (2011), "Computing Krippendorff's alpha-reliability", the example with four
    # observers, twelve units and missing values: nominal alpha = 0.743
    missing = None
    observers = [
        [1, 2, 3, 3, 2, 1, 4, 1, 2, missing, missing, missing],
        [1, 2, 3, 3, 2, 2, 4, 1, 2, 5, missing, 3],
        [missing, 3, 3, 3, 2, 3, 4, 2, 2, 5, 1, missing],
        [1, 2, 3, 3, 2, 4, 4, 1, 2, 5, 1, missing],
    ]
    units = [[value for value in unit if value is not missing] for unit in zip(*observers)]
    assert krippendorff_alpha(units) == pytest.approx(0.743, abs=5e-4)
    assert krippendorff_alpha([["a", "a"], ["b", "b"]]) == pytest.approx(1.0)
    assert math.isnan(krippendorff_alpha([["a", "a"], ["a", "a"]]))  # nothing to disagree about
    assert math.isnan(krippendorff_alpha([["a"], ["b"]]))  # no unit has two values


# --------------------------------------------------------------------------------------------------
# A cycle's figures, from ratings in the store
# --------------------------------------------------------------------------------------------------


@pytest.fixture
def rated(tmp_path):
    """A cycle with four outputs, three reviewers, and a helper to rate."""
    store = Store(tmp_path / "rated.db")
    cycle = store.create_cycle(project="p", task="classification", seed=1, config={}, plugins=[],
                               base_model="m", start_model="m", parent_id=None)
    examples = [Example(f"question {n}", "yes") for n in range(4)]
    outputs = store.add_outputs(cycle, [Prediction(e.id, "yes", 0.9) for e in examples],
                                examples)
    reviewers = []
    for name in ("ann", "bob", "cat"):
        with store.write() as db:
            table = db["reviewers"]
            table.insert({"name": name, "password_hash": "x", "role": "expert",
                          "created_at": "2026-01-01"})
            reviewers.append(int(table.last_pk))
    yield store, cycle, outputs, reviewers
    store.close()


def test_human_metrics_of_one_rater_per_output(rated):
    store, cycle, outputs, (ann, bob, _) = rated
    store.add_rating(reviewer_id=ann, output_id=outputs[0], verdict="approve", score=5)
    store.add_rating(reviewer_id=ann, output_id=outputs[1], verdict="reject", corrected="no",
                     score=2)
    store.add_rating(reviewer_id=bob, output_id=outputs[2], verdict="approve")
    store.add_rating(reviewer_id=bob, output_id=outputs[3], verdict="skip")  # no verdict
    assert human_metrics(store, cycle) == {
        "ratings": 3.0, "rated_outputs": 3.0, "reviewers": 2.0,
        "approval_rate": pytest.approx(2 / 3), "corrections_per_output": pytest.approx(1 / 3),
        "mean_score": pytest.approx(3.5)}
    assert human_metrics(store, cycle + 1) == {}


def test_an_edited_rating_counts_once_with_its_new_verdict(rated):
    store, cycle, outputs, (ann, *_) = rated
    store.add_rating(reviewer_id=ann, output_id=outputs[0], verdict="reject", corrected="no")
    store.add_rating(reviewer_id=ann, output_id=outputs[0], verdict="approve")  # supersedes
    figures = human_metrics(store, cycle)
    assert figures["ratings"] == 1 and figures["approval_rate"] == 1.0
    assert figures["corrections_per_output"] == 0.0


def test_agreement_of_two_raters_is_cohens_kappa(rated):
    store, cycle, outputs, (ann, bob, _) = rated
    ann_says = ["approve", "approve", "reject", "reject"]
    bob_says = ["approve", "reject", "reject", "reject"]
    for output, a, b in zip(outputs, ann_says, bob_says):
        store.add_rating(reviewer_id=ann, output_id=output, verdict=a)
        store.add_rating(reviewer_id=bob, output_id=output, verdict=b)
    figures = human_metrics(store, cycle)
    assert figures["agreement_items"] == 4
    assert figures["cohen_kappa"] == pytest.approx(cohen_kappa_score(ann_says, bob_says))
    assert figures["fleiss_kappa"] == pytest.approx(fleiss_kappa(list(zip(ann_says, bob_says))))
    assert figures["krippendorff_alpha"] == pytest.approx(
        krippendorff_alpha(list(zip(ann_says, bob_says))))
    assert figures["corrections_per_output"] == 0.0 and figures["rated_outputs"] == 4


def test_agreement_of_three_raters_on_some_outputs(rated):
    store, cycle, outputs, (ann, bob, cat) = rated
    plan = {outputs[0]: {ann: "approve", bob: "approve", cat: "approve"},
            outputs[1]: {ann: "approve", bob: "reject", cat: "reject"},
            outputs[2]: {ann: "reject", cat: "reject"},           # two raters here
            outputs[3]: {bob: "approve"}}                          # one: not an agreement item
    for output, verdicts in plan.items():
        for reviewer, verdict in verdicts.items():
            store.add_rating(reviewer_id=reviewer, output_id=output, verdict=verdict)
    figures = human_metrics(store, cycle)
    assert figures["agreement_items"] == 3
    assert "cohen_kappa" not in figures  # three raters
    assert "fleiss_kappa" not in figures  # unequal raters per item
    units = [list(verdicts.values()) for verdicts in list(plan.values())[:3]]
    assert figures["krippendorff_alpha"] == pytest.approx(krippendorff_alpha(units))
    # the dashboard's entry point gives the same
    from tuneloop.human_metrics import verdict_ratings

    assert agreement(verdict_ratings(store, cycle))["krippendorff_alpha"] == pytest.approx(
        figures["krippendorff_alpha"])


def test_undefined_agreement_is_left_out(rated):
    store, cycle, outputs, (ann, bob, _) = rated
    for output in outputs[:2]:
        store.add_rating(reviewer_id=ann, output_id=output, verdict="approve")
        store.add_rating(reviewer_id=bob, output_id=output, verdict="approve")
    figures = human_metrics(store, cycle)
    assert figures["approval_rate"] == 1.0 and figures["agreement_items"] == 2
    assert not {"cohen_kappa", "fleiss_kappa", "krippendorff_alpha"} & set(figures)
    assert all(math.isfinite(value) for value in figures.values())
