"""What the admin dashboard shows, as plain functions over the store (admins only).

Each function takes the viewer and refuses anyone but an admin (``queries.Forbidden``), so the
figures are guarded even if a page forgot to check. They return lists of dicts or small dicts;
the page turns them into tables and charts.
"""

from __future__ import annotations

import itertools
import math
from collections import Counter, defaultdict
from datetime import datetime, timedelta, timezone
from typing import Any

from tuneloop.components import Rating
from tuneloop.consensus import agreement_by_item, judgement
from tuneloop.review_app.queries import require_admin
from tuneloop.store import CURRENT_RATINGS, Store


def cycles(store: Store, viewer: dict[str, Any]) -> list[dict[str, Any]]:
    require_admin(viewer, "cycles")
    return store.query("SELECT id, status, task, started_at FROM cycles ORDER BY id DESC")


def min_agreement(store: Store, viewer: dict[str, Any]) -> float:
    """``feedback.min_agreement`` of the newest cycle's config (0.6 when it has none)."""
    require_admin(viewer, "the feedback settings")
    from tuneloop.review_app.queries import cycle_config

    newest = store.one("SELECT MAX(id) AS id FROM cycles")
    if not newest or newest["id"] is None:
        return 0.6
    value = (cycle_config(store, newest["id"]).get("feedback") or {}).get("min_agreement")
    return float(value) if isinstance(value, (int, float)) else 0.6


def queue_by_cycle(store: Store, viewer: dict[str, Any]) -> list[dict[str, Any]]:
    """Per cycle: queued items open and done, and how many are pairs."""
    require_admin(viewer, "the queue")
    return store.query(
        "SELECT cycle_id AS cycle, SUM(status = 'open') AS open, SUM(status = 'done') AS done, "
        "COUNT(*) AS items, SUM(pair_output_id IS NOT NULL) AS pairs FROM review_queue "
        "GROUP BY cycle_id ORDER BY cycle_id DESC")


def throughput(store: Store, viewer: dict[str, Any], days: int = 14,
               now: datetime | None = None) -> list[dict[str, Any]]:
    """Ratings saved per day over the last ``days`` days (edits included: they are work too),
    with every day present, so a quiet day shows as zero."""
    require_admin(viewer, "throughput")
    today = (now or datetime.now(timezone.utc)).date()
    first = today - timedelta(days=days - 1)
    counts = {row["day"]: row["ratings"] for row in store.query(
        "SELECT substr(created_at, 1, 10) AS day, COUNT(*) AS ratings FROM ratings "
        "WHERE created_at >= ? GROUP BY day", [first.isoformat()])}
    return [{"day": (first + timedelta(days=n)).isoformat(),
             "ratings": counts.get((first + timedelta(days=n)).isoformat(), 0)}
            for n in range(days)]


def per_expert(store: Store, viewer: dict[str, Any]) -> list[dict[str, Any]]:
    """Per reviewer: current ratings by verdict, corrections, pairwise judgements, edits made,
    and when they last rated."""
    require_admin(viewer, "ratings per expert")
    rows = store.query(
        f"""SELECT v.name AS reviewer, v.role, COUNT(c.id) AS ratings,
                   SUM(c.verdict = 'approve') AS approve, SUM(c.verdict = 'reject') AS reject,
                   SUM(c.verdict = 'skip') AS skip, SUM(c.verdict = 'unclear') AS unclear,
                   SUM(c.corrected IS NOT NULL) AS corrections,
                   SUM(c.pair_output_id IS NOT NULL) AS pairs,
                   SUM(c.supersedes_id IS NOT NULL) AS edits, MAX(c.created_at) AS last_rating
            FROM reviewers v LEFT JOIN ({CURRENT_RATINGS}) c ON c.reviewer_id = v.id
            GROUP BY v.id ORDER BY ratings DESC, v.name""")
    for row in rows:
        for key in ("approve", "reject", "skip", "unclear", "corrections", "pairs", "edits"):
            row[key] = row[key] or 0
    return rows


def cycle_ratings(store: Store, viewer: dict[str, Any], cycle_id: int) -> list[Rating]:
    """The current ratings of one cycle's outputs (pairs included), read once per page.

    Driven from the cycle's outputs (``CROSS JOIN`` keeps SQLite to that order), so the cost
    follows the cycle's ratings, not every rating in the database.
    """
    require_admin(viewer, "ratings")
    rows = store.query(
        """SELECT r.id, r.output_id, o.cycle_id, v.name AS reviewer, r.verdict, o.input,
                  o.output, o.reference, r.score, r.corrected, r.comment, o.example_id,
                  r.pair_output_id, p.output AS pair_output, r.pair_score,
                  r.preferred_output_id
           FROM outputs o
           CROSS JOIN ratings r ON r.output_id = o.id
           JOIN reviewers v ON v.id = r.reviewer_id
           LEFT JOIN outputs p ON p.id = r.pair_output_id
           WHERE o.cycle_id = ?
             AND NOT EXISTS (SELECT 1 FROM ratings later WHERE later.supersedes_id = r.id)
           ORDER BY r.id""", [cycle_id])
    return [Rating(**row) for row in rows]


def _ratings(store: Store, viewer: dict[str, Any], cycle_id: int,
             ratings: list[Rating] | None) -> list[Rating]:
    return ratings if ratings is not None else cycle_ratings(store, viewer, cycle_id)


def agreement(store: Store, viewer: dict[str, Any], cycle_id: int, task: str,
              ratings: list[Rating] | None = None) -> dict[str, Any]:
    """Agreement between experts on one cycle's outputs, beyond chance.

    On the verdict (approve/reject of single outputs) as the human metrics compute it, on the
    judgement a policy would learn (the label an expert says is right, the preferred side of a
    pair) with Krippendorff's alpha, and Cohen's kappa for every two experts who rated the same
    items.
    """
    require_admin(viewer, "agreement")
    from tuneloop.human_metrics import agreement as verdict_agreement
    from tuneloop.human_metrics import krippendorff_alpha

    ratings = _ratings(store, viewer, cycle_id, ratings)
    verdicts = [{"output_id": r.output_id, "reviewer_id": r.reviewer, "verdict": r.verdict}
                for r in ratings if not r.is_pair and r.verdict in ("approve", "reject")]
    figures: dict[str, Any] = {"verdict": verdict_agreement(verdicts)}
    by_item: dict[tuple, dict[str, Any]] = defaultdict(dict)
    for rating in ratings:
        said = judgement(rating, task)
        if said is not None:
            by_item[(rating.output_id, rating.pair_output_id)][rating.reviewer] = said
    figures["pairs"] = verdict_pairs(verdicts)
    shared = [judged for judged in by_item.values() if len(judged) > 1]
    alpha = krippendorff_alpha([list(judged.values()) for judged in shared])
    figures["judgement"] = {"items": len(shared),
                            "krippendorff_alpha": None if math.isnan(alpha) else alpha}
    return figures


def verdict_pairs(verdicts: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Cohen's kappa for every two experts on the verdicts (approve/reject) of the outputs both
    rated: the basis ``human.*`` uses in ``tuneloop status`` and ``cycles show``."""
    from tuneloop.human_metrics import cohen_kappa

    by_output: dict[int, dict[str, str]] = defaultdict(dict)
    for row in verdicts:
        by_output[row["output_id"]][row["reviewer_id"]] = row["verdict"]
    shared = [said for said in by_output.values() if len(said) > 1]
    pairs = []
    experts = sorted({name for said in shared for name in said})
    for first, second in itertools.combinations(experts, 2):
        both = [said for said in shared if first in said and second in said]
        if len(both) < 2:
            continue
        kappa = cohen_kappa([said[first] for said in both], [said[second] for said in both])
        pairs.append({"expert": first, "other expert": second, "items": len(both),
                      "agree": round(sum(s[first] == s[second] for s in both) / len(both), 3),
                      "cohen_kappa": None if math.isnan(kappa) else round(kappa, 3)})
    return pairs


def metrics_across_cycles(store: Store, viewer: dict[str, Any]) -> list[dict[str, Any]]:
    """Every cycle's final figures, long form: cycle, split, metric, value."""
    require_admin(viewer, "metrics")
    return store.query("SELECT m.cycle_id AS cycle, m.split, m.name AS metric, m.value "
                       "FROM metrics m WHERE m.step IS NULL ORDER BY m.cycle_id, m.id")


def pairwise_wins(store: Store, viewer: dict[str, Any]) -> list[dict[str, Any]]:
    """Per cycle, how often experts preferred its answer over the previous cycle's (pairs of one
    model's candidates, from the same cycle, are left out: they compare answers, not models)."""
    require_admin(viewer, "pairwise results")
    rows = store.query(
        f"""SELECT o.cycle_id AS cycle, COUNT(*) AS comparisons,
                   SUM(c.preferred_output_id = c.output_id) AS newer_preferred,
                   SUM(c.preferred_output_id = c.pair_output_id) AS older_preferred,
                   SUM(c.preferred_output_id IS NULL AND c.verdict = 'approve') AS both_fine,
                   SUM(c.preferred_output_id IS NULL AND c.verdict = 'reject') AS both_bad
            FROM ({CURRENT_RATINGS}) c JOIN outputs o ON o.id = c.output_id
            JOIN outputs p ON p.id = c.pair_output_id AND p.cycle_id != o.cycle_id
            WHERE c.verdict IN ('approve', 'reject')
            GROUP BY o.cycle_id ORDER BY o.cycle_id""")
    for row in rows:
        decided = (row["newer_preferred"] or 0) + (row["older_preferred"] or 0)
        row["newer_win_rate"] = (row["newer_preferred"] or 0) / decided if decided else None
    return rows


def confusion_matrix(store: Store, viewer: dict[str, Any], cycle_id: int,
                     truth: str = "experts", ratings: list[Rating] | None = None
                     ) -> tuple[list[str], list[dict[str, Any]]]:
    """Counts of (true label, model label) over a classification cycle's rated outputs.

    ``truth="experts"``: the label the experts settled on (their majority; items without one are
    left out); ``truth="reference"``: the data's label, over all of the cycle's outputs.
    Returns the labels and one row per true label: ``{"true label": t, <model label>: n, ...}``.
    """
    require_admin(viewer, "the confusion matrix")
    counts: Counter = Counter()
    if truth == "reference":
        for row in store.query("SELECT reference, output FROM outputs WHERE cycle_id = ? AND "
                               "reference IS NOT NULL", [cycle_id]):
            counts[(row["reference"], row["output"])] += 1
    else:
        singles = [rating for rating in _ratings(store, viewer, cycle_id, ratings)
                   if not rating.is_pair]
        model = {rating.output_id: rating.output for rating in singles}
        for (output_id, _), item in agreement_by_item(singles, "classification").items():
            if isinstance(item.majority, tuple) and item.majority[0] == "label":
                counts[(item.majority[1], model[output_id])] += 1
    labels = sorted({label for pair in counts for label in pair})
    matrix = [{"true label": true, **{predicted: counts[(true, predicted)]
                                      for predicted in labels}} for true in labels]
    return labels, matrix


def most_disagreement(store: Store, viewer: dict[str, Any], cycle_id: int, task: str,
                      limit: int = 20, ratings: list[Rating] | None = None
                      ) -> list[dict[str, Any]]:
    """The items whose experts disagree, least agreement first, then most raters."""
    require_admin(viewer, "disagreements")
    ratings = _ratings(store, viewer, cycle_id, ratings)
    inputs = {(rating.output_id, rating.pair_output_id): rating.input for rating in ratings}
    items = [item for item in agreement_by_item(ratings, task).values()
             if item.raters > 1 and item.share < 1]
    items.sort(key=lambda item: (item.share, -item.raters, item.key))
    return [{"output": item.key[0], "pair with": item.key[1], "input": inputs[item.key][:200],
             "experts": item.raters, "agreement": round(item.share, 3),
             "judgements": "; ".join(f"{describe(said)} ×{count}"
                                     for said, count in sorted(item.judgements.items(),
                                                               key=lambda kv: -kv[1]))}
            for item in items[:limit]]


def describe(said: Any) -> str:
    """A judgement key (``consensus.judgement``) in words."""
    kind, *rest = said
    if kind == "label":
        return f"label {rest[0]}"
    if kind == "prefer":
        return f"prefers output {rest[0]}"
    return kind
