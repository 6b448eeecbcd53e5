"""The review app's share of the store: leases on queue items and login sessions.

Why leases: the queue alone only knows how many ratings an item *has*. Two experts who open the
app at the same moment are both shown the first open item, both rate it, and with
``ratings_per_item: 1`` one of them rated a slot that was already filled (and their work, if it
disagrees, silently keeps the item out of training). A lease says "this expert is looking at this
item until then": an item is offered only while the experts who rated it plus those holding a
live lease on it are fewer than ``ratings_needed``, and a rating is accepted only while the item
has room for it. Both checks run inside one ``BEGIN IMMEDIATE`` transaction with the write they
guard, so two processes cannot both take the last slot.

Why sessions here: a login kept in the database can be found again from a browser cookie after a
reload or in a new tab, and ended for every tab at once by logging out. Only hashes of the
secrets are stored (see ``tuneloop.auth``).

The methods are mixed into ``Store`` (``class Store(ReviewStore)``); they use its ``write``,
``query`` and ``one``.
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any, Iterable

# The current, non-skip ratings of a queue item ``q`` by other reviewers than ``:reviewer``:
# the slots of ``q`` that are filled.
_FILLED_BY_OTHERS = """
    (SELECT COUNT(DISTINCT r.reviewer_id) FROM ratings r
     WHERE r.output_id = q.output_id AND r.pair_output_id IS q.pair_output_id
       AND r.reviewer_id != :reviewer AND r.verdict != 'skip'
       AND NOT EXISTS (SELECT 1 FROM ratings later WHERE later.supersedes_id = r.id))
"""
# The live leases on ``q`` held by other reviewers: the slots of ``q`` that are spoken for.
_HELD_BY_OTHERS = """
    (SELECT COUNT(*) FROM review_leases l
     WHERE l.queue_id = q.id AND l.reviewer_id != :reviewer AND l.expires_at > :now)
"""


class SlotTaken(Exception):
    """The item has as many ratings (or live claims by others) as it needs: this rating would
    fill a slot another expert already filled. Nothing was written."""


def iso(moment: datetime) -> str:
    """A time as the store writes it (UTC, milliseconds), so stored times compare as text."""
    return moment.astimezone(timezone.utc).isoformat(timespec="milliseconds")


class ReviewStore:
    """Leases and sessions; mixed into ``Store``."""

    # ---- leases ----------------------------------------------------------------------------

    def claim_next_item(self, reviewer_id: int, *, now: datetime, until: datetime,
                        skip_queue_ids: Iterable[int] = ()) -> dict[str, Any] | None:
        """Claim the item this reviewer should rate next and return it (as
        ``next_queue_item`` does), or ``None`` when nothing has room for them.

        An item the reviewer already holds a live lease on comes first (a reload shows the same
        item). Otherwise: open items they have not rated, newest cycle first, then by priority,
        that still have a free slot (ratings by others + others' live leases < needed).
        """
        skipped = list(skip_queue_ids)
        leave_out = f"AND q.id NOT IN ({','.join(str(int(i)) for i in skipped)})" \
            if skipped else ""
        params = {"reviewer": reviewer_id, "now": iso(now)}
        with self.write() as db:  # type: ignore[attr-defined]
            db.execute("DELETE FROM review_leases WHERE expires_at <= ?", [iso(now)])
            row = self.one(  # type: ignore[attr-defined]
                f"""SELECT q.id AS queue_id, q.cycle_id, q.priority, q.ratings_needed,
                           q.pair_output_id, o.*
                    FROM review_leases l JOIN review_queue q ON q.id = l.queue_id
                    JOIN outputs o ON o.id = q.output_id
                    WHERE l.reviewer_id = :reviewer AND l.expires_at > :now
                      AND q.status = 'open' {leave_out}
                      AND NOT EXISTS (SELECT 1 FROM ratings r WHERE r.reviewer_id = :reviewer
                                      AND r.output_id = q.output_id
                                      AND r.pair_output_id IS q.pair_output_id)
                    ORDER BY l.claimed_at LIMIT 1""", params)
            if row is None:
                row = self.one(  # type: ignore[attr-defined]
                    f"""SELECT q.id AS queue_id, q.cycle_id, q.priority, q.ratings_needed,
                               q.pair_output_id, o.*
                        FROM review_queue q JOIN outputs o ON o.id = q.output_id
                        WHERE q.status = 'open' {leave_out}
                          AND NOT EXISTS (SELECT 1 FROM ratings r
                                          WHERE r.reviewer_id = :reviewer
                                          AND r.output_id = q.output_id
                                          AND r.pair_output_id IS q.pair_output_id)
                          AND {_FILLED_BY_OTHERS} + {_HELD_BY_OTHERS} < q.ratings_needed
                        ORDER BY q.cycle_id DESC, q.priority LIMIT 1""", params)
            if row is None:
                return None
            db.execute("INSERT INTO review_leases (queue_id, reviewer_id, claimed_at, "
                       "expires_at) VALUES (?, ?, ?, ?) ON CONFLICT (queue_id, reviewer_id) "
                       "DO UPDATE SET expires_at = excluded.expires_at",
                       [row["queue_id"], reviewer_id, iso(now), iso(until)])
            return row

    def renew_lease(self, queue_id: int, reviewer_id: int, *, now: datetime,
                    until: datetime) -> bool:
        """Keep holding an item while its page is open. Returns whether the reviewer holds it
        now: an expired lease is taken again only while the item still has a free slot."""
        params = {"reviewer": reviewer_id, "now": iso(now), "until": iso(until),
                  "queue": queue_id}
        with self.write() as db:  # type: ignore[attr-defined]
            updated = db.execute(
                "UPDATE review_leases SET expires_at = :until WHERE queue_id = :queue "
                "AND reviewer_id = :reviewer AND expires_at > :now", params).rowcount
            if updated:
                return True
            room = self.one(  # type: ignore[attr-defined]
                f"SELECT 1 AS ok FROM review_queue q WHERE q.id = :queue AND q.status = 'open' "
                f"AND {_FILLED_BY_OTHERS} + {_HELD_BY_OTHERS} < q.ratings_needed", params)
            if room is None:
                return False
            db.execute("INSERT INTO review_leases (queue_id, reviewer_id, claimed_at, "
                       "expires_at) VALUES (:queue, :reviewer, :now, :until) "
                       "ON CONFLICT (queue_id, reviewer_id) DO UPDATE SET "
                       "expires_at = excluded.expires_at", params)
            return True

    def release_leases(self, reviewer_id: int, queue_id: int | None = None) -> int:
        """Give up one item (``queue_id``) or every item the reviewer holds (logout)."""
        sql, params = "DELETE FROM review_leases WHERE reviewer_id = ?", [reviewer_id]
        if queue_id is not None:
            sql += " AND queue_id = ?"
            params.append(queue_id)
        with self.write() as db:  # type: ignore[attr-defined]
            return db.execute(sql, params).rowcount

    def queue_states(self) -> dict[tuple[int, int | None], str]:
        """Every queued item's status (``open``/``done``), by (output id, pair output id)."""
        return {(row["output_id"], row["pair_output_id"]): row["status"]
                for row in self.query(  # type: ignore[attr-defined]
                    "SELECT output_id, pair_output_id, status FROM review_queue")}

    def queue_position(self, queue_id: int) -> tuple[int, int]:
        """The item's place in its own cycle's queue (1-based, in the order items are offered)
        and how many items that queue has: "item 3 of 30", whatever the global ids."""
        row = self.one(  # type: ignore[attr-defined]
            "SELECT (SELECT COUNT(*) FROM review_queue o WHERE o.cycle_id = q.cycle_id AND "
            "(o.priority < q.priority OR (o.priority = q.priority AND o.id <= q.id))) AS place, "
            "(SELECT COUNT(*) FROM review_queue o WHERE o.cycle_id = q.cycle_id) AS total "
            "FROM review_queue q WHERE q.id = ?", [queue_id])
        return (row["place"], row["total"]) if row else (0, 0)

    def review_records(self, *, text: str | None = None, label: str | None = None,
                       confidence: tuple[float, float] | None = None,
                       cycle_id: int | None = None, status: str | None = None,
                       reviewer: str | None = None, limit: int = 1000) -> list[dict[str, Any]]:
        """Queued items with what the experts said, filtered (the review app's records view).
        ``item`` is the queue id, ``number`` the item's place in its cycle's queue (the "Item 3
        of 30" the rating screen shows).

        ``text`` matches inputs, outputs and corrections (case-insensitive substring);
        ``label`` the model's answer; ``confidence`` a closed range; ``reviewer`` items that
        reviewer rated. Newest cycle first, then in queue order; at most ``limit`` rows.
        """
        conditions, params = [], {"limit": limit}
        if text:
            params["like"] = "%" + text.replace("\\", "\\\\").replace("%", "\\%") \
                .replace("_", "\\_") + "%"
            conditions.append(
                "(o.input LIKE :like ESCAPE '\\' OR o.output LIKE :like ESCAPE '\\' OR "
                "EXISTS (SELECT 1 FROM ratings r WHERE r.output_id = q.output_id AND "
                "r.pair_output_id IS q.pair_output_id AND r.corrected LIKE :like ESCAPE '\\'))")
        if label is not None:
            conditions.append("o.output = :label")
            params["label"] = label
        if confidence is not None:
            conditions.append("o.confidence BETWEEN :low AND :high")
            params.update(low=confidence[0], high=confidence[1])
        if cycle_id is not None:
            conditions.append("q.cycle_id = :cycle")
            params["cycle"] = cycle_id
        if status is not None:
            conditions.append("q.status = :status")
            params["status"] = status
        if reviewer is not None:
            conditions.append("EXISTS (SELECT 1 FROM ratings r JOIN reviewers v ON v.id = "
                              "r.reviewer_id WHERE v.name = :reviewer AND r.output_id = "
                              "q.output_id AND r.pair_output_id IS q.pair_output_id)")
            params["reviewer"] = reviewer
        where = ("WHERE " + " AND ".join(conditions)) if conditions else ""
        return self.query(  # type: ignore[attr-defined]
            f"""SELECT q.id AS item, q.number, q.cycle_id AS cycle, q.status,
                       q.ratings_needed AS needed, q.output_id, q.pair_output_id, o.input,
                       o.output AS answer, o.confidence, o.reference
                FROM (SELECT *, ROW_NUMBER() OVER (PARTITION BY cycle_id ORDER BY priority, id)
                             AS number FROM review_queue) q
                JOIN outputs o ON o.id = q.output_id {where}
                ORDER BY q.cycle_id DESC, q.priority, q.id LIMIT :limit""", params)

    def rated_outputs_matching(self, text: str, limit: int = 50) -> list[dict[str, Any]]:
        """Rated outputs whose input contains ``text`` (case-insensitive), newest first: the
        rating history found by what was asked, not by an output id."""
        like = "%" + text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
        return self.query(  # type: ignore[attr-defined]
            "SELECT o.id, o.cycle_id, o.input, o.output FROM outputs o WHERE o.input LIKE ? "
            "ESCAPE '\\' AND EXISTS (SELECT 1 FROM ratings r WHERE r.output_id = o.id OR "
            "r.pair_output_id = o.id) ORDER BY o.id DESC LIMIT ?", [like, limit])

    def has_rated(self, queue_id: int, reviewer_id: int) -> bool:
        """Whether the reviewer has a current, non-skip rating of the queued item."""
        return self.one(  # type: ignore[attr-defined]
            "SELECT 1 AS yes FROM review_queue q WHERE q.id = ? AND EXISTS (SELECT 1 FROM "
            "ratings r WHERE r.reviewer_id = ? AND r.output_id = q.output_id AND "
            "r.pair_output_id IS q.pair_output_id AND r.verdict != 'skip' AND NOT EXISTS "
            "(SELECT 1 FROM ratings later WHERE later.supersedes_id = r.id))",
            [queue_id, reviewer_id]) is not None

    def leases(self, *, now: datetime) -> list[dict[str, Any]]:
        """Live leases with who holds them (the dashboard's "being rated now")."""
        return self.query(  # type: ignore[attr-defined]
            "SELECT l.queue_id, v.name AS reviewer, l.claimed_at, l.expires_at "
            "FROM review_leases l JOIN reviewers v ON v.id = l.reviewer_id "
            "WHERE l.expires_at > ? ORDER BY l.claimed_at", [iso(now)])

    def rate_queue_item(self, queue_id: int, reviewer_id: int, *, now: datetime,
                        **rating: Any) -> int:
        """Add the reviewer's rating of a queued item if the item has room for it, in the same
        ``BEGIN IMMEDIATE`` transaction as the check, and drop their lease on it.

        Room means: the reviewer rated the item before (an edit replaces their own rating), or
        the ratings by others are fewer than needed and, unless the reviewer holds a live lease,
        so are the ratings plus the others' live leases. A skip always has room (it fills no
        slot). Otherwise raises ``SlotTaken`` and writes nothing. ``rating``: the keyword
        arguments of ``add_rating`` other than the reviewer.
        """
        params = {"reviewer": reviewer_id, "now": iso(now), "queue": queue_id}
        with self.write() as db:  # type: ignore[attr-defined]
            row = self.one(  # type: ignore[attr-defined]
                f"""SELECT q.output_id, q.pair_output_id, q.ratings_needed,
                           {_FILLED_BY_OTHERS} AS filled, {_HELD_BY_OTHERS} AS held,
                           EXISTS (SELECT 1 FROM review_leases l WHERE l.queue_id = q.id
                                   AND l.reviewer_id = :reviewer AND l.expires_at > :now)
                               AS mine_held,
                           EXISTS (SELECT 1 FROM ratings r WHERE r.reviewer_id = :reviewer
                                   AND r.output_id = q.output_id
                                   AND r.pair_output_id IS q.pair_output_id
                                   AND r.verdict != 'skip') AS rated_before
                    FROM review_queue q WHERE q.id = :queue""", params)
            if row is None:
                raise LookupError(f"no queued item {queue_id}")
            if rating.get("output_id", row["output_id"]) != row["output_id"] or \
                    rating.get("pair_output_id") != row["pair_output_id"]:
                raise LookupError(f"the rating is not for queued item {queue_id}")
            fills = rating.get("verdict") != "skip"
            taken = row["filled"] + (0 if row["mine_held"] else row["held"])
            if fills and not row["rated_before"] and taken >= row["ratings_needed"]:
                raise SlotTaken(f"item {queue_id} already has the {row['ratings_needed']} "
                                f"rating(s) it needs")
            rating_id = self.add_rating(reviewer_id=reviewer_id,  # type: ignore[attr-defined]
                                        **{"output_id": row["output_id"], **rating})
            db.execute("DELETE FROM review_leases WHERE queue_id = ? AND reviewer_id = ?",
                       [queue_id, reviewer_id])
            return rating_id

    # ---- sessions --------------------------------------------------------------------------

    def add_review_session(self, reviewer_id: int, *, created_at: datetime,
                           expires_at: datetime, ends_at: datetime,
                           single_sign_on: bool = False) -> int:
        with self.write() as db:  # type: ignore[attr-defined]
            table = db["review_sessions"]
            table.insert({"reviewer_id": reviewer_id, "created_at": iso(created_at),
                          "expires_at": iso(expires_at), "ends_at": iso(ends_at),
                          "single_sign_on": int(single_sign_on)})
            return int(table.last_pk)

    def set_session_grant(self, session_id: int, grant_hash: str, expires_at: datetime) -> None:
        """Attach a one-time code (its hash) that the browser trades for the session cookie."""
        with self.write() as db:  # type: ignore[attr-defined]
            db.execute("UPDATE review_sessions SET grant_hash = ?, grant_expires_at = ? "
                       "WHERE id = ? AND ended_at IS NULL",
                       [grant_hash, iso(expires_at), session_id])

    def redeem_session_grant(self, grant_hash: str, token_hash: str, *,
                             now: datetime) -> dict[str, Any] | None:
        """Trade a live one-time code for the session's cookie token (its hash is stored; the
        code is used up). Returns the session row, or ``None`` for an unknown, used, expired
        or ended one."""
        with self.write() as db:  # type: ignore[attr-defined]
            row = self.one(  # type: ignore[attr-defined]
                "SELECT * FROM review_sessions WHERE grant_hash = ? AND grant_expires_at > ? "
                "AND ended_at IS NULL AND expires_at > ? AND ends_at > ?",
                [grant_hash, iso(now), iso(now), iso(now)])
            db.execute("UPDATE review_sessions SET grant_hash = NULL, grant_expires_at = NULL "
                       "WHERE grant_hash = ?", [grant_hash])
            if row is None:
                return None
            db.execute("UPDATE review_sessions SET token_hash = ? WHERE id = ?",
                       [token_hash, row["id"]])
            return {**row, "token_hash": token_hash, "grant_hash": None}

    def review_session(self, *, session_id: int | None = None,
                       token_hash: str | None = None) -> dict[str, Any] | None:
        """A session row by id or by its cookie token's hash (ended or not: callers check)."""
        if session_id is not None:
            return self.one("SELECT * FROM review_sessions WHERE id = ?",  # type: ignore
                            [session_id])
        if token_hash is not None:
            return self.one("SELECT * FROM review_sessions WHERE token_hash = ?",  # type: ignore
                            [token_hash])
        return None

    def touch_review_session(self, session_id: int, expires_at: datetime) -> None:
        """Move the idle expiry of a live session on (never past its absolute end)."""
        with self.write() as db:  # type: ignore[attr-defined]
            db.execute("UPDATE review_sessions SET expires_at = MIN(?, ends_at) "
                       "WHERE id = ? AND ended_at IS NULL", [iso(expires_at), session_id])

    def end_review_sessions(self, *, now: datetime, reason: str,
                            session_id: int | None = None,
                            reviewer_id: int | None = None) -> int:
        """End one session, or every live session of a reviewer; their leases go too."""
        if session_id is None and reviewer_id is None:
            raise ValueError("end which sessions? give session_id or reviewer_id")
        with self.write() as db:  # type: ignore[attr-defined]
            if reviewer_id is None:
                found = db.execute("SELECT reviewer_id FROM review_sessions WHERE id = ?",
                                   [session_id]).fetchone()
                reviewer_id = found[0] if found else None
            where, params = ("id = ?", [session_id]) if session_id is not None \
                else ("reviewer_id = ?", [reviewer_id])
            ended = db.execute(
                f"UPDATE review_sessions SET ended_at = ?, ended_reason = ?, grant_hash = NULL "
                f"WHERE {where} AND ended_at IS NULL", [iso(now), reason, *params]).rowcount
            if reviewer_id is not None:
                db.execute("DELETE FROM review_leases WHERE reviewer_id = ?", [reviewer_id])
            return ended
