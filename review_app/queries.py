"""Every read and write the rating screen makes, each checked against the logged-in reviewer.

The pages never query ratings themselves: they call these functions with ``viewer``, the reviewer
row ``context.viewer`` re-read from the database for this run, and these decide what that
reviewer may see and do:

- anyone logged in may open a queued item (inputs and outputs are not secret between experts);
- a reviewer always sees their own ratings; another expert's only when the item's cycle is not in
  blind mode (``review.blind``, on by default) or the viewer is an admin;
- a rating is always written as the viewer, superseding only the viewer's own earlier rating: no
  function takes a reviewer id, so no expert can change another's rating in any mode;
- a rating must be for an item in the queue, with a label from the item's label set;
- rating histories (every superseded version) are for admins.

A refusal raises ``Forbidden``; the tests call these functions directly, across reviewers.
"""

from __future__ import annotations

import json
import os
import zlib
from datetime import datetime, timedelta, timezone
from typing import Any

from tuneloop.errors import AuthError
from tuneloop.store import CURRENT_RATINGS, SlotTaken, Store

VERDICTS = ("approve", "reject", "skip", "unclear")


class Forbidden(AuthError):
    """The logged-in reviewer may not read or write this."""


class Full(Forbidden):
    """The item already has every rating it asked for: the rating was not saved."""


def lease_time() -> timedelta:
    """How long an item shown to an expert stays theirs without a renewal (the open page renews
    it every ``lease_time() / 5``). ``TUNELOOP_LEASE_SECONDS`` overrides the 5 minutes."""
    seconds = float(os.environ.get("TUNELOOP_LEASE_SECONDS") or 300)
    return timedelta(seconds=max(seconds, 5.0))


def _now() -> datetime:
    return datetime.now(timezone.utc)


def is_admin(viewer: dict[str, Any]) -> bool:
    return viewer.get("role") == "admin"


def require_admin(viewer: dict[str, Any], what: str) -> None:
    if not is_admin(viewer):
        raise Forbidden(f"only admins may see {what}")


# ---- items -----------------------------------------------------------------------------------


def cycle_config(store: Store, cycle_id: int) -> dict[str, Any]:
    row = store.one("SELECT config FROM cycles WHERE id = ?", [cycle_id])
    try:
        return json.loads(row["config"]) if row and row["config"] else {}
    except ValueError:
        return {}


def is_blind(config: dict[str, Any]) -> bool:
    """Blind unless the cycle's config says ``review.blind: false``."""
    return (config.get("review") or {}).get("blind", True) is not False


def next_item(store: Store, viewer: dict[str, Any], skip_queue_ids: list[int] = ()
              ) -> dict[str, Any] | None:
    """The next queued item for this reviewer, claimed for them (``Store.claim_next_item``: an
    item is offered only while it has a slot no other expert rated or holds), ready to show."""
    now = _now()
    row = store.claim_next_item(viewer["id"], now=now, until=now + lease_time(),
                                skip_queue_ids=skip_queue_ids)
    return None if row is None else item(store, viewer, row["queue_id"])


def position(store: Store, viewer: dict[str, Any], queue_id: int) -> tuple[int, int]:
    """The item's number in its cycle's queue and that queue's size (anyone logged in)."""
    return store.queue_position(queue_id)


def top_labels(item: dict[str, Any], k: int) -> list[tuple[str, float]]:
    """The model's ``k`` most likely labels with their scores, most likely first (from the
    output's stored scores; empty when the trainer recorded none)."""
    try:
        scores = json.loads(item.get("scores") or "{}")
    except ValueError:
        return []
    ranked = sorted(((str(label), float(score)) for label, score in scores.items()
                     if isinstance(score, (int, float))), key=lambda pair: -pair[1])
    return ranked[:k]


def keep(store: Store, viewer: dict[str, Any], queue_id: int) -> bool:
    """Renew the viewer's claim on the item on screen; ``False`` once it has no room for them
    (their claim ran out and other experts filled it)."""
    now = _now()
    return store.renew_lease(queue_id, viewer["id"], now=now, until=now + lease_time())


def release(store: Store, viewer: dict[str, Any], queue_id: int | None = None) -> None:
    """Give the item (or every item) the viewer holds back to the queue."""
    store.release_leases(viewer["id"], queue_id)


def item(store: Store, viewer: dict[str, Any], queue_id: int) -> dict[str, Any]:
    """One queued item as the rating screen shows it.

    A pair's two outputs are ``left`` and ``right``, in an order shuffled per reviewer and item
    (stable across reruns) and without the cycles they came from, so position and model name
    cannot sway the choice.
    """
    row = store.one(
        "SELECT q.id AS queue_id, q.output_id, q.pair_output_id, q.cycle_id, q.ratings_needed, "
        "q.status, o.input, o.output, o.confidence, o.scores, c.task FROM review_queue q "
        "JOIN outputs o ON o.id = q.output_id JOIN cycles c ON c.id = q.cycle_id "
        "WHERE q.id = ?", [queue_id])
    if row is None:
        raise Forbidden(f"no queued item {queue_id}")
    config = cycle_config(store, row["cycle_id"])
    row["blind"] = is_blind(config)
    row["top_k"] = int((config.get("review") or {}).get("top_k") or 3)
    row["labels"] = label_set(store, row["cycle_id"], config) \
        if row["task"] == "classification" else None
    row["left"] = row["right"] = None
    if row["pair_output_id"] is not None:
        pair = store.one("SELECT id, output FROM outputs WHERE id = ?", [row["pair_output_id"]])
        sides = [{"output_id": row["output_id"], "output": row["output"]},
                 {"output_id": pair["id"], "output": pair["output"]}] if pair else []
        if zlib.crc32(f"{viewer['id']}:{queue_id}".encode()) & 1:
            sides.reverse()
        row["left"], row["right"] = sides if sides else (None, None)
    return row


_label_sets: dict[tuple[str, int], list[str]] = {}


def label_set(store: Store, cycle_id: int, config: dict[str, Any]) -> list[str]:
    """The labels an expert may choose from for a classification cycle.

    The config's ``data.labels`` where it has them, plus every label the cycle's outputs use as
    reference or prediction, so a label that only the data knows is still offered. Remembered per
    cycle: a cycle's outputs are all stored before any of them is queued, so the set is final by
    the time anyone rates, and a page need not scan the cycle's outputs on every click.
    """
    key = (str(store.path.resolve()), cycle_id)
    if key not in _label_sets:
        if len(_label_sets) > 256:
            _label_sets.clear()
        _label_sets[key] = _labels_now(store, cycle_id, config)
    return list(_label_sets[key])


def _labels_now(store: Store, cycle_id: int, config: dict[str, Any]) -> list[str]:
    labels = {str(label) for label in ((config.get("data") or {}).get("labels") or [])}
    for row in store.query(
            "SELECT DISTINCT reference AS label FROM outputs WHERE cycle_id = ? AND reference "
            "IS NOT NULL UNION SELECT DISTINCT output FROM outputs WHERE cycle_id = ?",
            [cycle_id, cycle_id]):
        labels.add(row["label"])
    return sorted(labels)


# ---- reading ratings -------------------------------------------------------------------------


def my_rating(store: Store, viewer: dict[str, Any], item: dict[str, Any]
              ) -> dict[str, Any] | None:
    """The viewer's own current rating of the item (of the pair, for a pair item)."""
    return store.one(CURRENT_RATINGS + " AND r.reviewer_id = ? AND r.output_id = ? "
                     "AND r.pair_output_id IS ?",
                     [viewer["id"], item["output_id"], item["pair_output_id"]])


def my_rating_of(store: Store, viewer: dict[str, Any], queue_id: int) -> bool:
    """Whether the viewer has a current, non-skip rating of the queued item (theirs to edit:
    it needs no claim)."""
    return store.has_rated(queue_id, viewer["id"])


def others_ratings(store: Store, viewer: dict[str, Any], item: dict[str, Any]
                   ) -> list[dict[str, Any]]:
    """Other reviewers' current ratings of the item; refused in blind mode (admins excepted)."""
    if item["blind"] and not is_admin(viewer):
        raise Forbidden("this project reviews blind: other experts' ratings are hidden")
    return store.query(
        f"SELECT c.*, v.name AS reviewer FROM ({CURRENT_RATINGS}) c "
        "JOIN reviewers v ON v.id = c.reviewer_id WHERE c.output_id = ? "
        "AND c.pair_output_id IS ? AND c.reviewer_id != ? ORDER BY c.id",
        [item["output_id"], item["pair_output_id"], viewer["id"]])


def rating(store: Store, viewer: dict[str, Any], rating_id: int) -> dict[str, Any]:
    """One rating by id: the viewer's own, or another's where ``others_ratings`` would show it."""
    row = store.one("SELECT r.*, o.cycle_id FROM ratings r JOIN outputs o ON o.id = r.output_id "
                    "WHERE r.id = ?", [rating_id])
    if row is None:
        raise Forbidden(f"no rating {rating_id}")
    if row["reviewer_id"] != viewer["id"] and not is_admin(viewer) \
            and is_blind(cycle_config(store, row["cycle_id"])):
        raise Forbidden("this project reviews blind: other experts' ratings are hidden")
    return row


def history(store: Store, viewer: dict[str, Any], output_id: int) -> list[dict[str, Any]]:
    """Every version of every rating of an output (superseded ones too); admins only."""
    require_admin(viewer, "rating histories")
    return store.query(
        "SELECT r.id, r.created_at, v.name AS reviewer, r.verdict, r.score, r.corrected, "
        "r.comment, r.pair_output_id, r.preferred_output_id, r.pair_score, r.supersedes_id, "
        "NOT EXISTS (SELECT 1 FROM ratings later WHERE later.supersedes_id = r.id) AS current "
        "FROM ratings r JOIN reviewers v ON v.id = r.reviewer_id "
        "WHERE r.output_id = ? OR r.pair_output_id = ? ORDER BY r.id", [output_id, output_id])


# ---- writing a rating ------------------------------------------------------------------------


def save_rating(store: Store, viewer: dict[str, Any], queue_id: int, *, verdict: str,
                score: int | None = None, corrected: str | None = None,
                comment: str | None = None, preferred: str | None = None,
                left_score: int | None = None, right_score: int | None = None) -> int:
    """Save the viewer's rating of a queued item; returns the new rating's id.

    For a pair item, ``preferred`` is ``"left"``, ``"right"`` or ``None``, and the scores are
    given by side; they are stored against the outputs the sides showed. The store appends the
    rating and supersedes the viewer's own earlier rating of the item, if any.
    """
    shown = item(store, viewer, queue_id)
    if verdict not in VERDICTS:
        raise Forbidden(f"unknown verdict {verdict!r}")
    for value in (score, left_score, right_score):
        if value is not None and value not in (1, 2, 3, 4, 5):
            raise Forbidden("scores run from 1 to 5")
    comment = comment.strip()[:2000] if comment and comment.strip() else None
    if shown["pair_output_id"] is None:
        if preferred is not None or left_score is not None or right_score is not None:
            raise Forbidden("a single item has no sides")
        if corrected is not None and verdict in ("skip", "unclear"):
            corrected = None
        if corrected is not None and shown["labels"] is not None \
                and corrected not in shown["labels"]:
            raise Forbidden(f"{corrected!r} is not one of this cycle's labels")
        return _rate(store, viewer, queue_id, output_id=shown["output_id"], verdict=verdict,
                     score=score, corrected=corrected, comment=comment)
    if corrected is not None or score is not None:
        raise Forbidden("a pair item is scored by side and has no correction")
    if preferred not in (None, "left", "right"):
        raise Forbidden(f"preferred must be left, right or nothing, not {preferred!r}")
    if preferred is not None and verdict in ("skip", "unclear"):
        raise Forbidden(f"a {verdict} prefers neither side")
    sides = {"left": shown["left"], "right": shown["right"]}
    scores = {sides["left"]["output_id"]: left_score, sides["right"]["output_id"]: right_score}
    return _rate(
        store, viewer, queue_id, output_id=shown["output_id"],
        pair_output_id=shown["pair_output_id"], verdict=verdict,
        score=scores[shown["output_id"]], pair_score=scores[shown["pair_output_id"]],
        preferred_output_id=sides[preferred]["output_id"] if preferred else None,
        left_output_id=sides["left"]["output_id"], comment=comment)


def _rate(store: Store, viewer: dict[str, Any], queue_id: int, **fields: Any) -> int:
    """Add the rating only if the item still has room for it (checked in the same transaction
    as the insert, see ``Store.rate_queue_item``); ``Full`` otherwise."""
    try:
        return store.rate_queue_item(queue_id, viewer["id"], now=_now(), **fields)
    except SlotTaken:
        raise Full("Not saved: other experts already gave this item all the ratings it needs "
                   "(your claim on it had run out). Here is the next item.") from None


# ---- progress --------------------------------------------------------------------------------


def progress(store: Store, viewer: dict[str, Any], cycle_id: int) -> dict[str, int]:
    """The cycle's queue (items done of all) and how many of its items the viewer rated."""
    counts = {row["status"]: row["n"] for row in store.query(
        "SELECT status, COUNT(*) AS n FROM review_queue WHERE status IN ('open', 'done') "
        "AND cycle_id = ? GROUP BY status", [cycle_id])}
    mine = store.one(  # from the viewer's own ratings (indexed), not a scan of the queue
        "SELECT COUNT(DISTINCT r.output_id || ':' || IFNULL(r.pair_output_id, '')) AS n "
        "FROM ratings r JOIN outputs o ON o.id = r.output_id "
        "WHERE r.reviewer_id = ? AND o.cycle_id = ?", [viewer["id"], cycle_id])
    done, open_ = counts.get("done", 0), counts.get("open", 0)
    return {"done": done, "total": done + open_, "rated_by_you": mine["n"] if mine else 0}


# ---- records view ----------------------------------------------------------------------------

AGREEMENT = ("unrated", "one expert", "agreed", "disagree")


def records(store: Store, viewer: dict[str, Any], *, agreement: str | None = None,
            min_agreement: float = 0.6, **filters: Any) -> list[dict[str, Any]]:
    """The records view (admins): queued items with who said what and whether they agree.

    ``filters`` are those of ``Store.review_records``; ``agreement`` keeps items whose experts
    are ``unrated``, ``one expert``, ``agreed`` (at least ``min_agreement`` give the majority
    judgement) or ``disagree``.
    """
    require_admin(viewer, "the records")
    from tuneloop.consensus import agreement_by_item

    rows = store.review_records(**filters)
    cycles = sorted({row["cycle"] for row in rows})
    tasks = {row["id"]: row["task"] for row in store.cycles() if row["id"] in cycles}
    rated = store.current_ratings(unused_only=False, cycle_ids=cycles)
    said: dict[tuple[int, int | None], list[str]] = {}
    for rating in rated:
        text = f"{rating.reviewer}: {rating.verdict}"
        if rating.corrected:
            text += f" → {rating.corrected}"
        said.setdefault((rating.output_id, rating.pair_output_id), []).append(text)
    agreed: dict[tuple[int, int | None], Any] = {}
    for cycle in cycles:
        agreed.update(agreement_by_item([r for r in rated if r.cycle_id == cycle],
                                        tasks.get(cycle, "classification")))
    result = []
    for row in rows:
        key = (row["output_id"], row["pair_output_id"])
        item = agreed.get(key)
        kind = ("unrated" if item is None else "one expert" if item.raters == 1 else
                "agreed" if item.majority is not None and item.share >= min_agreement
                else "disagree")
        if agreement is not None and kind != agreement:
            continue
        result.append({**row, "experts": 0 if item is None else item.raters,
                       "agreement": kind, "ratings": "; ".join(said.get(key, []))})
    return result


def bulk_approve(store: Store, viewer: dict[str, Any], queue_ids: list[int]
                 ) -> tuple[int, list[str]]:
    """Approve each item as the admin (one rating each, through the same checks as the rating
    screen). Returns how many were saved and why the others were not."""
    require_admin(viewer, "bulk approval")
    saved, refused = 0, []
    for queue_id in queue_ids:
        try:
            save_rating(store, viewer, queue_id, verdict="approve")
            saved += 1
        except Forbidden as error:
            refused.append(f"item {queue_id}: {error}")
    return saved, refused
