"""Which ratings are agreed enough to train on.

Several experts may rate one item (``review.ratings_per_item``). When they disagree, training on
every rating teaches the model both answers, and training on any one of them picks a side at
random. So before the feedback policies run, ratings are grouped by item and compared:

- an item still waiting for the ratings it asked for is held back until they arrive;
- an item where fewer than ``min_agreement`` of its experts give the same judgement is held back
  (and, with ``on_disagreement: requeue``, sent back to the queue for one more expert);
- otherwise only the ratings that agree with the majority go on to the policies; the others are
  outvoted (kept in the database, never trained on).

A held-back rating is not recorded in ``feedback_usage``, so a later cycle offers it again, by
which time more ratings may have settled the item. A skip is not a judgement and does not count.

The judgement compared is what a policy would learn: the label an expert says is right
(classification), approve versus reject (generation, where two edits rarely match word for word),
the preferred side of a pair, or "unclear".
"""

from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Hashable

from tuneloop.components import Rating

if TYPE_CHECKING:  # pragma: no cover
    from tuneloop.store import Store

ItemKey = tuple[int, int | None]  # (output_id, pair_output_id)


def item_key(rating: Rating) -> ItemKey:
    return (rating.output_id, rating.pair_output_id)


def judgement(rating: Rating, task: str) -> Hashable | None:
    """What a rating says about its item, in a form two ratings can be compared by; ``None`` for
    a skip (no judgement)."""
    if rating.verdict == "skip":
        return None
    if rating.verdict == "unclear":
        return ("unclear",)
    if rating.is_pair:
        if rating.preferred_output_id is not None:
            return ("prefer", rating.preferred_output_id)
        return ("both fine",) if rating.verdict == "approve" else ("both bad",)
    if task == "classification":
        if rating.verdict == "approve":
            return ("label", rating.output)
        if rating.corrected is not None and rating.corrected.strip():
            return ("label", rating.corrected)
        return ("wrong",)
    return (rating.verdict,)


@dataclass
class ItemAgreement:
    """How the experts of one item judged it."""

    key: ItemKey
    raters: int
    majority: Hashable | None
    share: float  # of the raters, the share giving the majority judgement (1.0 with one rater)
    judgements: dict[Hashable, int] = field(default_factory=dict)


def agreement_by_item(ratings: list[Rating], task: str) -> dict[ItemKey, ItemAgreement]:
    """Each rated item's majority judgement and the share of its experts that gave it.

    A tie between the two most common judgements has no majority (``majority`` is ``None``).
    """
    grouped: dict[ItemKey, list[Hashable]] = defaultdict(list)
    for rating in ratings:
        said = judgement(rating, task)
        if said is not None:
            grouped[item_key(rating)].append(said)
    result: dict[ItemKey, ItemAgreement] = {}
    for key, said in grouped.items():
        counts = Counter(said)
        ranked = counts.most_common()
        top, top_count = ranked[0]
        tied = len(ranked) > 1 and ranked[1][1] == top_count
        result[key] = ItemAgreement(key=key, raters=len(said), majority=None if tied else top,
                                    share=top_count / len(said), judgements=dict(counts))
    return result


@dataclass
class Consensus:
    """The outcome of the agreement check: which ratings go on to the feedback policies."""

    kept: list[Rating]
    held: dict[ItemKey, str]  # item → why it is held back
    outvoted: list[int]  # rating ids that disagree with their item's majority
    requeue: list[tuple[ItemKey, int]]  # (item, ratings now needed) to send back to the queue


def agreed_ratings(store: "Store", offered: list[Rating], *, task: str, min_agreement: float,
                   requeue: bool) -> Consensus:
    """Filter ``offered`` ratings down to those agreed enough to train on.

    Agreement is measured over every current rating of an item, not only the offered (unused)
    ones, so an item rated again after a cycle has trained on it is judged as a whole.
    """
    if not offered:
        return Consensus([], {}, [], [])
    wanted = {item_key(rating) for rating in offered}
    everyone = [rating for rating in store.current_ratings(unused_only=False)
                if item_key(rating) in wanted]
    agreement = agreement_by_item(everyone, task)
    waiting = awaiting_ratings(store, agreement)
    held: dict[ItemKey, str] = {}
    to_requeue: list[tuple[ItemKey, int]] = []
    for key, item in agreement.items():
        if key in waiting:
            held[key] = f"waiting for {waiting[key]} ratings (has {item.raters})"
        elif item.raters > 1 and (item.majority is None or item.share < min_agreement):
            held[key] = (f"{item.share:.0%} of {item.raters} experts agree "
                         f"(needs {min_agreement:.0%})")
            if requeue:
                to_requeue.append((key, item.raters + 1))
    kept: list[Rating] = []
    outvoted: list[int] = []
    for rating in offered:
        key = item_key(rating)
        if key in held:
            continue
        item = agreement.get(key)
        said = judgement(rating, task)
        if item is not None and said is not None and item.raters > 1 and said != item.majority:
            outvoted.append(rating.id)
            continue
        kept.append(rating)
    return Consensus(kept, held, outvoted, to_requeue)


def awaiting_ratings(store: "Store", agreement: dict[ItemKey, ItemAgreement]
                     ) -> dict[ItemKey, int]:
    """Items still open in the queue that have fewer judgements than they asked for."""
    if not agreement:
        return {}
    rows = store.query("SELECT output_id, pair_output_id, ratings_needed FROM review_queue "
                       "WHERE status = 'open' AND ratings_needed > 1")
    waiting = {}
    for row in rows:
        key = (row["output_id"], row["pair_output_id"])
        item = agreement.get(key)
        if item is not None and item.raters < row["ratings_needed"]:
            waiting[key] = row["ratings_needed"]
    return waiting


def send_back_to_queue(store: "Store", items: list[tuple[ItemKey, int]],
                       sampler: str = "disagreement") -> int:
    """Reopen each item so one more expert rates it; queue it at the top if it was never queued
    (ratings imported from elsewhere). Returns how many items were reopened or queued."""
    from tuneloop.store import now

    changed = 0
    with store.write() as db:
        for (output_id, pair_output_id), needed in items:
            cursor = db.execute(
                "UPDATE review_queue SET status = 'open', ratings_needed = MAX(ratings_needed, ?)"
                " WHERE output_id = ? AND pair_output_id IS ?",
                [needed, output_id, pair_output_id])
            if cursor.rowcount == 0:
                cycle = db.execute("SELECT cycle_id FROM outputs WHERE id = ?",
                                   [output_id]).fetchone()
                if cycle is None:
                    continue
                db.execute(
                    "INSERT INTO review_queue (output_id, pair_output_id, cycle_id, priority, "
                    "sampler, ratings_needed, status, created_at) VALUES (?, ?, ?, -1, ?, ?, "
                    "'open', ?)", [output_id, pair_output_id, cycle[0], sampler, needed, now()])
            changed += 1
    return changed


@dataclass
class HeldBack:
    """The rated items kept out of training right now, and why (``held_back``)."""

    waiting: list[ItemKey] = field(default_factory=list)  # fewer ratings than asked for
    disagree: list[ItemKey] = field(default_factory=list)  # experts disagree
    back_in_queue: list[ItemKey] = field(default_factory=list)  # of ``disagree``: reopened
    reasons: dict[ItemKey, str] = field(default_factory=dict)

    @property
    def total(self) -> int:
        return len(self.waiting) + len(self.disagree)

    def line(self) -> str:
        """One line for ``run``, ``status`` and the dashboard (fits 80 columns)."""
        if not self.total:
            return "Held back from training: none (every rated item is agreed)"
        parts = []
        if self.disagree:
            queued = len(self.back_in_queue)
            parts.append(f"experts disagree on {_items(len(self.disagree))}"
                         + (f", {queued} back in the queue for a tie-break" if queued else
                            ", not requeued yet: the next cycle does, unless "
                            "feedback.on_disagreement is hold"))
        if self.waiting:
            parts.append(f"{_items(len(self.waiting))} waiting for more ratings")
        return f"Held back from training: {_items(self.total)} ({'; '.join(parts)})"


def _items(count: int) -> str:
    return f"{count} item" + ("" if count == 1 else "s")


def held_back(store: "Store", *, min_agreement: float) -> HeldBack:
    """Which rated items the next cycle would keep out of training, over every current rating
    (the same test ``agreed_ratings`` applies), and whether the disagreed ones are back in the
    queue. Each item is judged by its own cycle's task."""
    tasks = {row["id"]: row["task"] for row in store.cycles()}
    by_task: dict[str, list[Rating]] = defaultdict(list)
    for rating in store.current_ratings(unused_only=False):
        by_task[tasks.get(rating.cycle_id, "classification")].append(rating)
    states = store.queue_states()
    result = HeldBack()
    for task, ratings in by_task.items():
        agreement = agreement_by_item(ratings, task)
        waiting = awaiting_ratings(store, agreement)
        for key, item in sorted(agreement.items(), key=lambda pair: pair[0][0]):
            # disagreement first: a requeued item also waits, for its tie-breaking rating
            if item.raters > 1 and (item.majority is None or item.share < min_agreement):
                result.disagree.append(key)
                result.reasons[key] = (f"{item.share:.0%} of {item.raters} experts agree "
                                       f"(needs {min_agreement:.0%})")
                if states.get(key) == "open":
                    result.back_in_queue.append(key)
            elif key in waiting:
                result.waiting.append(key)
                result.reasons[key] = f"waiting for {waiting[key]} ratings (has {item.raters})"
    return result
