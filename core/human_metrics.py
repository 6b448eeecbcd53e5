"""What the experts thought of a cycle's outputs, and how far they agreed with each other.

``human_metrics(store, cycle_id)`` turns the current (not superseded) ratings of one cycle's outputs
into figures stored under the split ``human``: the approval rate, the mean 1-5 score, corrections
per rated output, and, where outputs were rated by more than one expert, agreement on the verdict
(approve or reject) beyond chance:

- ``cohen_kappa``: exactly two experts, on the outputs both rated;
- ``fleiss_kappa``: every output rated by more than one expert was rated by the same number of them;
- ``krippendorff_alpha`` (nominal): any number of experts, each output rated by any subset of them.

Skips, "unclear" verdicts and pairwise preferences carry no approve/reject verdict and are left out.
The three agreement statistics are plain functions over category labels, so the review app can show
them live; a statistic that chance agreement leaves undefined (every rating the same) is ``nan``
and ``human_metrics`` omits it.
"""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from typing import TYPE_CHECKING, Hashable, Sequence

if TYPE_CHECKING:  # pragma: no cover
    from tuneloop.store import Store

VERDICTS = ("approve", "reject")
# Every figure ``human_metrics`` can give (a promotion rule on ``human.<name>`` names one of them).
FIGURES = ("ratings", "rated_outputs", "reviewers", "approval_rate", "corrections_per_output",
           "mean_score", "agreement_items", "krippendorff_alpha", "cohen_kappa", "fleiss_kappa")


# --------------------------------------------------------------------------------------------------
# Agreement between raters
# --------------------------------------------------------------------------------------------------


def cohen_kappa(first: Sequence[Hashable], second: Sequence[Hashable]) -> float:
    """Cohen's kappa of two raters who labelled the same items (``first[i]`` and ``second[i]``).

    ``(observed - expected) / (1 - expected)``, where ``expected`` is the agreement two raters
    with these label frequencies would reach by chance. 1 is perfect agreement, 0 chance level.
    """
    if len(first) != len(second):
        raise ValueError(f"{len(first)} labels from the first rater, {len(second)} from the second")
    if not first:
        return math.nan
    count = len(first)
    observed = sum(a == b for a, b in zip(first, second)) / count
    first_counts, second_counts = Counter(first), Counter(second)
    expected = sum(first_counts[label] * second_counts[label]
                   for label in first_counts) / count ** 2
    if expected == 1:
        return math.nan  # both raters gave one and the same label to everything
    return (observed - expected) / (1 - expected)


def fleiss_kappa(items: Sequence[Sequence[Hashable]]) -> float:
    """Fleiss' kappa: each item's labels from the same number of raters (who may differ by item).

    ``items[i]`` holds the labels item ``i`` received. Mean pairwise agreement per item against the
    agreement the overall label proportions give by chance.
    """
    if not items:
        return math.nan
    raters = {len(labels) for labels in items}
    if len(raters) != 1:
        raise ValueError(f"Fleiss' kappa needs the same number of ratings per item, got "
                         f"{sorted(raters)}")
    (per_item,) = raters
    if per_item < 2:
        raise ValueError("Fleiss' kappa needs at least two ratings per item")
    totals: Counter = Counter()
    agreement = 0.0
    for labels in items:
        counts = Counter(labels)
        totals.update(counts)
        agreement += (sum(n * n for n in counts.values()) - per_item) / (per_item * (per_item - 1))
    observed = agreement / len(items)
    ratings = len(items) * per_item
    expected = sum((n / ratings) ** 2 for n in totals.values())
    if expected == 1:
        return math.nan
    return (observed - expected) / (1 - expected)


def krippendorff_alpha(units: Sequence[Sequence[Hashable]]) -> float:
    """Krippendorff's alpha for nominal labels, with any number of raters per unit.

    ``units[u]`` holds the labels unit ``u`` received (missing ratings are simply absent); units
    with fewer than two labels cannot be compared and are left out. ``1 - observed / expected``
    disagreement, both from the coincidence matrix of pairable values.
    """
    coincidences: dict[tuple[Hashable, Hashable], float] = defaultdict(float)
    for labels in units:
        pairable = len(labels)
        if pairable < 2:
            continue
        counts = Counter(labels)
        for c, n_c in counts.items():
            for k, n_k in counts.items():
                pairs = n_c * (n_k - 1) if c == k else n_c * n_k
                coincidences[(c, k)] += pairs / (pairable - 1)
    marginals: Counter = Counter()
    for (c, _), value in coincidences.items():
        marginals[c] += value
    total = sum(marginals.values())
    if total <= 1:
        return math.nan
    observed = sum(value for (c, k), value in coincidences.items() if c != k)
    expected = sum(marginals[c] * marginals[k] for c in marginals for k in marginals
                   if c != k) / (total - 1)
    if expected == 0:
        return math.nan  # a single label throughout: nothing to disagree about
    return 1 - observed / expected


# --------------------------------------------------------------------------------------------------
# A cycle's figures
# --------------------------------------------------------------------------------------------------


def verdict_ratings(store: "Store", cycle_id: int) -> list[dict]:
    """The cycle's current approve/reject ratings: output, reviewer, verdict, score, correction."""
    from tuneloop.store import CURRENT_RATINGS

    columns = {row["name"] for row in store.query("PRAGMA table_info(ratings)")}
    single = "AND c.pair_output_id IS NULL" if "pair_output_id" in columns else ""
    return store.query(
        f"""SELECT c.output_id, c.reviewer_id, c.verdict, c.score, c.corrected
            FROM ({CURRENT_RATINGS}) c JOIN outputs o ON o.id = c.output_id
            WHERE o.cycle_id = ? AND c.verdict IN ('approve', 'reject') {single}
            ORDER BY c.id""", [cycle_id])


def human_metrics(store: "Store", cycle_id: int) -> dict[str, float]:
    """The experts' figures for one cycle's outputs (``{}`` when nobody rated any)."""
    ratings = verdict_ratings(store, cycle_id)
    if not ratings:
        return {}
    outputs = {rating["output_id"] for rating in ratings}
    approved = sum(rating["verdict"] == "approve" for rating in ratings)
    corrected = sum(rating["corrected"] is not None for rating in ratings)
    scores = [rating["score"] for rating in ratings if rating["score"] is not None]
    figures = {
        "ratings": float(len(ratings)),
        "rated_outputs": float(len(outputs)),
        "reviewers": float(len({rating["reviewer_id"] for rating in ratings})),
        "approval_rate": approved / len(ratings),
        "corrections_per_output": corrected / len(outputs),
    }
    if scores:
        figures["mean_score"] = sum(scores) / len(scores)
    figures.update(agreement(ratings))
    return {name: value for name, value in figures.items() if math.isfinite(value)}


def agreement(ratings: list[dict]) -> dict[str, float]:
    """Agreement on the verdict over the outputs that more than one expert rated."""
    by_output: dict[int, dict[int, str]] = defaultdict(dict)
    for rating in ratings:
        by_output[rating["output_id"]][rating["reviewer_id"]] = rating["verdict"]
    shared = {output: verdicts for output, verdicts in by_output.items() if len(verdicts) > 1}
    if not shared:
        return {}
    figures = {"agreement_items": float(len(shared)),
               "krippendorff_alpha": krippendorff_alpha([list(v.values())
                                                         for v in shared.values()])}
    reviewers = sorted({reviewer for verdicts in shared.values() for reviewer in verdicts})
    if len(reviewers) == 2:
        first, second = reviewers
        figures["cohen_kappa"] = cohen_kappa([v[first] for v in shared.values()],
                                             [v[second] for v in shared.values()])
    if len({len(verdicts) for verdicts in shared.values()}) == 1:
        figures["fleiss_kappa"] = fleiss_kappa([list(v.values()) for v in shared.values()])
    return figures
