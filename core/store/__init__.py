"""The project database: one SQLite file, reached only through ``Store``.

Why it is built this way:
- WAL lets the review app read while a cycle writes; a busy timeout makes writers wait, not fail.
- Every write runs in ``BEGIN IMMEDIATE``: a deferred transaction that reads and then writes gets
  SQLITE_BUSY whatever the timeout when another writer got there first, and the write is lost.
- Ratings are append-only (triggers refuse UPDATE and DELETE); an edit adds a rating that
  supersedes the earlier one, so no expert's judgement is ever lost.
"""

from __future__ import annotations

import contextlib
import json
import os
import sqlite3
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, Iterable, Iterator

import sqlite_utils

from tuneloop.components import Example, Prediction, Rating
from tuneloop.errors import TuneloopError
from tuneloop.store.migrations import MIGRATIONS
from tuneloop.store.problems import DatabaseError, explain
from tuneloop.store.review import ReviewStore, SlotTaken  # noqa: F401  (SlotTaken: public)

BUSY_TIMEOUT_MS = 30_000
BUSY_TIMEOUT_ENV = "TUNELOOP_BUSY_TIMEOUT"


def busy_timeout_ms() -> int:
    """How long a writer waits for another one: ``TUNELOOP_BUSY_TIMEOUT`` seconds when set (a slow
    shared disk may need longer; a test of the "locked" message needs shorter), else 30 s."""
    value = os.environ.get(BUSY_TIMEOUT_ENV, "").strip()
    if not value:
        return BUSY_TIMEOUT_MS
    try:
        seconds = float(value)
    except ValueError:
        raise TuneloopError(f"{BUSY_TIMEOUT_ENV}={value!r}: not a number of seconds") from None
    if not 0 <= seconds <= 86_400:
        raise TuneloopError(f"{BUSY_TIMEOUT_ENV}={value!r}: give 0 to 86400 seconds")
    return int(seconds * 1000)


CURRENT_RATINGS = """
    SELECT r.* FROM ratings r
    WHERE NOT EXISTS (SELECT 1 FROM ratings later WHERE later.supersedes_id = r.id)
"""


def now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds")


_last_opened: tuple[Path, int] | None = None  # the database this process opened last


def explain_for_last_opened(error: BaseException) -> DatabaseError | None:
    """A one-line ``DatabaseError`` for an SQLite error that escaped the ``Store`` methods
    (a read through ``store.conn``), naming the database this process opened last; ``None``
    when the error is not about the file or no database was opened. The CLI's last resort:
    a command works on one project database."""
    if _last_opened is None:
        return None
    path, timeout_ms = _last_opened
    return explain(path, error, timeout_ms / 1000)


def _is_after(stamp: str | None, moment: datetime) -> bool:
    """Whether the ISO time ``stamp`` (naive means UTC) is later than ``moment``."""
    if not stamp:
        return False
    when = datetime.fromisoformat(stamp)
    return (when if when.tzinfo else when.replace(tzinfo=timezone.utc)) > moment


class Store(ReviewStore):
    """All reads and writes of one project database."""

    def __init__(self, path: str | Path, migrate: bool = True):
        """Open (creating if needed) and migrate the database. A file that is damaged, read-only,
        locked, on a full disk or made by a newer tuneloop raises ``DatabaseError``: one line
        naming the file and what to do (``tuneloop.store.problems``)."""
        self.path = Path(path)
        self.busy_timeout_ms = busy_timeout_ms()
        global _last_opened
        _last_opened = (self.path, self.busy_timeout_ms)
        self.conn: sqlite3.Connection | None = None  # type: ignore[assignment]
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            connection = sqlite3.connect(str(self.path), isolation_level=None,
                                         timeout=self.busy_timeout_ms / 1000,
                                         check_same_thread=False)
            self.db = sqlite_utils.Database(connection)
            self.conn = connection
            self._write_depth = 0  # > 0 inside write(): nested writes join the open transaction
            self.conn.execute(f"PRAGMA busy_timeout = {self.busy_timeout_ms}")
            self._enable_wal()
            self.conn.execute("PRAGMA synchronous = NORMAL")
            self.conn.execute("PRAGMA foreign_keys = ON")
            if migrate:
                self.migrate()
        except BaseException as error:
            if self.conn is not None:
                self.conn.close()
            problem = self._problem(error) if isinstance(error, (sqlite3.Error, OSError)) else None
            if problem is None:
                raise
            raise problem from error

    def _problem(self, error: BaseException) -> DatabaseError | None:
        """The one-line ``DatabaseError`` for an SQLite error about this file, else ``None``."""
        return explain(self.path, error, self.busy_timeout_ms / 1000)

    def _enable_wal(self) -> None:
        """Switch to WAL. Two processes opening a brand-new file at once can both try, and SQLite
        answers the loser "database is locked" without honouring busy_timeout: retry briefly."""
        deadline = time.monotonic() + self.busy_timeout_ms / 1000
        while True:
            try:
                self.conn.execute("PRAGMA journal_mode = WAL")
                return
            except sqlite3.OperationalError as error:
                if "locked" not in str(error) or time.monotonic() > deadline:
                    raise
                time.sleep(0.05)

    def close(self) -> None:
        self.conn.close()

    def __enter__(self) -> "Store":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    # ---- transactions ----------------------------------------------------------------------

    @contextlib.contextmanager
    def write(self) -> Iterator[sqlite_utils.Database]:
        """A write transaction that takes the write lock up front (``BEGIN IMMEDIATE``).

        A ``write()`` inside another joins it, so several store writes (``add_rating`` for each
        row of an import) can be made all-or-nothing by wrapping them in one outer ``write()``.
        """
        if self._write_depth:
            self._write_depth += 1
            try:
                yield self.db
            finally:
                self._write_depth -= 1
            return
        try:
            self._begin_immediate()
        except sqlite3.Error as error:
            problem = self._problem(error)
            if problem is None:
                raise
            raise problem from error
        self._write_depth = 1
        try:
            yield self.db
            self.conn.execute("COMMIT")
        except BaseException as error:
            if self.conn.in_transaction:
                self.conn.execute("ROLLBACK")
            # a full disk, a lock held too long, a damaged file: one line naming the file
            problem = self._problem(error) if isinstance(error, sqlite3.Error) else None
            if problem is None:
                raise
            raise problem from error
        finally:
            self._write_depth = 0

    def _begin_immediate(self) -> None:
        # busy_timeout covers BEGIN IMMEDIATE too; retry for the rare case it still reports BUSY
        # (e.g. a WAL checkpoint racing), so that a person never sees "database is locked".
        deadline = time.monotonic() + self.busy_timeout_ms / 1000
        while True:
            try:
                self.conn.execute("BEGIN IMMEDIATE")
                return
            except sqlite3.OperationalError as error:
                if "locked" not in str(error) and "busy" not in str(error):
                    raise
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.01)

    # ---- migrations ------------------------------------------------------------------------

    def migrate(self) -> list[str]:
        """Apply the migrations this database lacks, each in its own transaction.

        An up-to-date database is only read (no write lock: ``status`` works while a cycle
        writes). One with a migration this code does not know was made by a newer tuneloop:
        refused, before anything is written to it."""
        known = {migration.__name__ for migration in MIGRATIONS}
        has_table = self.conn.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND "
                                      "name = '_migrations'").fetchone()
        if has_table:
            applied = set(self.applied_migrations())
            newer = sorted(applied - known)
            if newer:
                raise DatabaseError(
                    self.path, "newer",
                    f"made by a newer tuneloop (its schema has migration {newer[-1]}; this "
                    f"tuneloop knows up to {max(known)}): upgrade tuneloop "
                    f"(pip install -U tuneloop), or use a backup made by this version")
            if known <= applied:
                return []
        with self.write() as db:
            db.execute("CREATE TABLE IF NOT EXISTS _migrations (name TEXT PRIMARY KEY, "
                       "applied_at TEXT NOT NULL)")
        applied = {row[0] for row in self.conn.execute("SELECT name FROM _migrations")}
        done = []
        for migration in MIGRATIONS:
            if migration.__name__ in applied:
                continue
            with self.write() as db:
                # re-check inside the lock: another process may have migrated meanwhile
                if db.execute("SELECT 1 FROM _migrations WHERE name = ?",
                              [migration.__name__]).fetchone():
                    continue
                migration(db)
                db["_migrations"].insert({"name": migration.__name__, "applied_at": now()})
            done.append(migration.__name__)
        return done

    def applied_migrations(self) -> list[str]:
        return [row[0] for row in self.conn.execute("SELECT name FROM _migrations ORDER BY name")]

    # ---- reading helpers -------------------------------------------------------------------

    def query(self, sql: str, params: Iterable[Any] | dict[str, Any] = ()) -> list[dict[str, Any]]:
        try:
            return list(self.db.query(sql, params))
        except sqlite3.Error as error:
            problem = self._problem(error)
            if problem is None:
                raise
            raise problem from error

    def one(self, sql: str, params: Iterable[Any] | dict[str, Any] = ()) -> dict[str, Any] | None:
        rows = self.query(sql, params)
        return rows[0] if rows else None

    # ---- cycles ----------------------------------------------------------------------------

    def create_cycle(self, *, project: str, task: str, seed: int, config: dict[str, Any],
                     plugins: list[dict[str, Any]], base_model: str, start_model: str,
                     parent_id: int | None, stats: dict[str, Any] | None = None) -> int:
        """A new cycle row, ``running``; ``stats`` (e.g. the process that runs it) go in at once,
        so ``tuneloop status`` never sees a running cycle without its process."""
        with self.write() as db:
            table = db["cycles"]
            table.insert({
                "project": project, "status": "running", "parent_id": parent_id, "task": task,
                "seed": seed, "config": json.dumps(config), "plugins": json.dumps(plugins),
                "base_model": base_model, "start_model": start_model, "started_at": now(),
                "stats": json.dumps(stats) if stats is not None else None,
            })
            return int(table.last_pk)

    def update_cycle(self, cycle_id: int, **fields: Any) -> None:
        values = {key: (json.dumps(value) if isinstance(value, (dict, list)) else value)
                  for key, value in fields.items()}
        with self.write() as db:
            db["cycles"].update(cycle_id, values)

    def cycle(self, cycle_id: int) -> dict[str, Any] | None:
        return self.one("SELECT * FROM cycles WHERE id = ?", [cycle_id])

    def cycles(self, project: str | None = None) -> list[dict[str, Any]]:
        if project is None:
            return self.query("SELECT * FROM cycles ORDER BY id")
        return self.query("SELECT * FROM cycles WHERE project = ? ORDER BY id", [project])

    def latest_cycle(self, project: str, status: str | None = None) -> dict[str, Any] | None:
        sql = "SELECT * FROM cycles WHERE project = ?"
        params: list[Any] = [project]
        if status:
            sql += " AND status = ?"
            params.append(status)
        return self.one(sql + " ORDER BY id DESC LIMIT 1", params)

    # ---- splits and examples ---------------------------------------------------------------

    def split_assignments(self) -> dict[str, str]:
        return {row[0]: row[1] for row in
                self.conn.execute("SELECT split_key, split FROM split_assignments")}

    def add_split_assignments(self, assignments: dict[str, str], cycle_id: int) -> None:
        rows = [{"split_key": key, "split": split, "first_cycle_id": cycle_id}
                for key, split in assignments.items()]
        with self.write() as db:
            db["split_assignments"].insert_all(rows, ignore=True, batch_size=1000)

    def add_examples(self, cycle_id: int, splits: dict[str, list[Example]]) -> None:
        rows = (
            {"cycle_id": cycle_id, "id": example.id, "split": split, "input": example.input,
             "target": example.target, "weight": example.weight, "source": example.source,
             "provenance": json.dumps(example.provenance)}
            for split, examples in splits.items() for example in examples
        )
        with self.write() as db:
            db["examples"].insert_all(rows, ignore=True, batch_size=1000)

    def examples(self, cycle_id: int, split: str | None = None) -> list[dict[str, Any]]:
        if split is None:
            return self.query("SELECT * FROM examples WHERE cycle_id = ?", [cycle_id])
        return self.query("SELECT * FROM examples WHERE cycle_id = ? AND split = ?",
                          [cycle_id, split])

    # ---- metrics ---------------------------------------------------------------------------

    def add_metrics(self, cycle_id: int, split: str, values: dict[str, float],
                    step: int | None = None) -> None:
        rows = [{"cycle_id": cycle_id, "split": split, "name": name, "value": float(value),
                 "step": step, "created_at": now()} for name, value in values.items()]
        if rows:
            with self.write() as db:
                db["metrics"].insert_all(rows)

    def final_metrics(self, cycle_id: int) -> dict[str, dict[str, float]]:
        """The cycle's figures after training, by split (step-wise training logs excluded)."""
        result: dict[str, dict[str, float]] = {}
        for row in self.query("SELECT split, name, value FROM metrics WHERE cycle_id = ? AND "
                              "step IS NULL ORDER BY id", [cycle_id]):
            result.setdefault(row["split"], {})[row["name"]] = row["value"]
        return result

    def metric_history(self, cycle_id: int) -> list[dict[str, Any]]:
        return self.query("SELECT split, name, value, step FROM metrics WHERE cycle_id = ? AND "
                          "step IS NOT NULL ORDER BY step, id", [cycle_id])

    # ---- outputs and the review queue --------------------------------------------------------

    def add_outputs(self, cycle_id: int, predictions: list[Prediction],
                    examples: list[Example]) -> list[int]:
        """Store predictions (in the order of ``examples``); returns the new output ids.

        A prediction's ``candidates`` (further answers to the same example) are stored after it
        as candidates 1, 2, ... (``candidate_outputs``); the ids returned are the outputs'."""
        ids = []
        columns = ("cycle_id", "example_id", "input", "output", "reference", "confidence",
                   "scores", "created_at")
        # one prepared INSERT per row, not sqlite_utils' table.insert (which inspects the table
        # on every call: 7 ms a row, 12 minutes for a 100,000-item review pool)
        single = (f"INSERT INTO outputs ({', '.join(columns)}) "
                  f"VALUES ({', '.join('?' * len(columns))})")
        candidate = (f"INSERT INTO outputs ({', '.join(columns)}, candidate) "
                     f"VALUES ({', '.join('?' * (len(columns) + 1))})")
        with self.write():
            created = now()
            for prediction, example in zip(predictions, examples, strict=True):
                for number, answer in enumerate([prediction, *prediction.candidates]):
                    values = [cycle_id, example.id, example.input, answer.output, example.target,
                              answer.confidence,
                              json.dumps(answer.scores) if answer.scores else None, created]
                    # candidate 0 by the column's default (m006), so a single answer
                    # stores on a schema from before it too
                    cursor = (self.conn.execute(candidate, [*values, number]) if number
                              else self.conn.execute(single, values))
                    if number == 0:
                        ids.append(int(cursor.lastrowid))
        return ids

    def candidate_outputs(self, output_ids: list[int]) -> dict[int, list[dict[str, Any]]]:
        """For each output id, every answer of its cycle's model to the same example: the
        output itself (candidate 0) first, then its candidates in order."""
        found: dict[int, list[dict[str, Any]]] = {}
        for output_id in output_ids:
            found[output_id] = self.query(
                "SELECT c.* FROM outputs o JOIN outputs c ON c.cycle_id = o.cycle_id "
                "AND c.example_id = o.example_id AND c.input = o.input "
                "WHERE o.id = ? AND o.candidate = 0 ORDER BY c.candidate, c.id", [output_id])
        return found

    def previous_outputs(self, cycle_id: int, previous_cycle_id: int
                         ) -> dict[int, dict[str, Any]]:
        """For each output (candidate 0) of ``cycle_id``, the output of ``previous_cycle_id`` for
        the same input text (the latest if answered twice), keyed by the current output's id.
        Served by the ``outputs(input, cycle_id)`` index (m007)."""
        rows = self.query(
            "SELECT new.id AS output_id, old.id, old.output, old.confidence, old.scores "
            "FROM outputs new JOIN outputs old ON old.input = new.input AND old.cycle_id = ? "
            "AND old.candidate = 0 WHERE new.cycle_id = ? AND new.candidate = 0 ORDER BY old.id",
            [previous_cycle_id, cycle_id])
        return {row["output_id"]: row for row in rows}

    def outputs(self, cycle_id: int) -> list[dict[str, Any]]:
        return self.query("SELECT * FROM outputs WHERE cycle_id = ? ORDER BY id", [cycle_id])

    def output(self, output_id: int) -> dict[str, Any] | None:
        return self.one("SELECT * FROM outputs WHERE id = ?", [output_id])

    def enqueue(self, cycle_id: int, output_ids: list[int], sampler: str,
                ratings_needed: int, *, pair_output_ids: list[int] | None = None,
                priorities: list[int] | None = None) -> None:
        """Queue outputs in the given order (or with the given priorities, 0 first); with
        ``pair_output_ids`` each item is a pair: the output against the earlier output at the
        same position, compared side by side."""
        created = now()
        pairs = pair_output_ids if pair_output_ids is not None else [None] * len(output_ids)
        order = priorities if priorities is not None else list(range(len(output_ids)))
        rows = [{"output_id": output_id, "pair_output_id": pair, "cycle_id": cycle_id,
                 "priority": priority, "sampler": sampler, "ratings_needed": ratings_needed,
                 "status": "open", "created_at": created}
                for output_id, pair, priority in zip(output_ids, pairs, order, strict=True)]
        with self.write() as db:
            db["review_queue"].insert_all(rows)

    def next_queue_item(self, reviewer_id: int, skip_output_ids: Iterable[int] = (),
                        skip_queue_ids: Iterable[int] = ()) -> dict[str, Any] | None:
        """The open item this reviewer should see next: newest cycle first, then by priority,
        leaving out items the reviewer has already rated and any the caller skipped.

        A pairwise item has ``pair_output_id`` set; rating an output alone does not count as
        rating its pair, and the other way round."""
        skipped, skipped_items = list(skip_output_ids), list(skip_queue_ids)
        leave_out = f"AND q.output_id NOT IN ({','.join('?' * len(skipped))})" if skipped else ""
        if skipped_items:
            leave_out += f" AND q.id NOT IN ({','.join('?' * len(skipped_items))})"
        return self.one(
            f"""
            SELECT q.id AS queue_id, q.cycle_id, q.priority, q.ratings_needed, q.pair_output_id,
                   o.*
            FROM review_queue q JOIN outputs o ON o.id = q.output_id
            WHERE q.status = 'open' {leave_out}
              AND NOT EXISTS (SELECT 1 FROM ratings r WHERE r.reviewer_id = ?
                              AND r.output_id = q.output_id
                              AND r.pair_output_id IS q.pair_output_id)
            ORDER BY q.cycle_id DESC, q.priority
            LIMIT 1
            """, [*skipped, *skipped_items, reviewer_id])

    def queue_progress(self, reviewer_id: int | None = None) -> dict[str, int]:
        # over every cycle's queue, like next_queue_item, so 100% means nothing is left to rate
        row = self.one("SELECT COUNT(*) AS total, SUM(status = 'done') AS done, "
                       "SUM(status = 'open') AS open FROM review_queue") or {}
        progress = {"total": row.get("total") or 0, "done": row.get("done") or 0,
                    "open": row.get("open") or 0}
        if reviewer_id is not None:
            mine = self.one("SELECT COUNT(DISTINCT output_id) AS n FROM ratings "
                            "WHERE reviewer_id = ?", [reviewer_id])
            progress["rated_by_you"] = mine["n"] if mine else 0
        return progress

    # ---- reviewers ---------------------------------------------------------------------------

    def add_reviewer(self, name: str, password_hash: str, role: str) -> int:
        with self.write() as db:
            table = db["reviewers"]
            table.insert({"name": name, "password_hash": password_hash, "role": role,
                          "created_at": now()})
            return int(table.last_pk)

    def reviewer(self, name: str) -> dict[str, Any] | None:
        return self.one("SELECT * FROM reviewers WHERE name = ?", [name])

    def reviewer_by_id(self, reviewer_id: int) -> dict[str, Any] | None:
        return self.one("SELECT * FROM reviewers WHERE id = ?", [reviewer_id])

    def reviewers(self) -> list[dict[str, Any]]:
        return self.query(
            "SELECT v.id, v.name, v.role, v.disabled, v.locked_until, v.created_at, "
            "(SELECT COUNT(*) FROM ratings r WHERE r.reviewer_id = v.id) AS ratings "
            "FROM reviewers v ORDER BY v.name")

    def update_reviewer(self, reviewer_id: int, **fields: Any) -> None:
        with self.write() as db:
            db["reviewers"].update(reviewer_id, fields)

    def reserve_login_attempt(self, reviewer_id: int, max_failures: int, now: datetime) -> bool:
        """Take one of the account's login attempts before the (slow) password check, in one
        ``BEGIN IMMEDIATE`` transaction: refused (``False``) when the account is disabled or
        locked, or when attempts already under way have used up the ``max_failures`` allowed.

        The attempt counts as a failure from here on (``failed_logins`` + 1); a correct password
        clears the count in :meth:`finish_login_attempt`. So thirty guesses released at once get
        ``max_failures`` checks between them, not thirty, whatever the order the checks end in.
        """
        with self.write() as db:
            row = db.execute("SELECT disabled, locked_until, failed_logins FROM reviewers "
                             "WHERE id = ?", [reviewer_id]).fetchone()
            if row is None or row[0] or _is_after(row[1], now) or row[2] >= max_failures:
                return False
            db.execute("UPDATE reviewers SET failed_logins = failed_logins + 1 WHERE id = ?",
                       [reviewer_id])
            return True

    def finish_login_attempt(self, reviewer_id: int, *, correct: bool, max_failures: int,
                             lockout: timedelta, now: datetime) -> bool:
        """Settle an attempt taken by :meth:`reserve_login_attempt`. A wrong password stays
        counted, and once the count reaches ``max_failures`` the account is locked until
        ``now + lockout`` (the count starts again after it). A correct password clears the count
        and any lock, unless the account was disabled meanwhile. Returns whether the login
        stands."""
        with self.write() as db:
            row = db.execute("SELECT disabled, failed_logins FROM reviewers WHERE id = ?",
                             [reviewer_id]).fetchone()
            if row is None:
                return False
            if correct and not row[0]:
                db.execute("UPDATE reviewers SET failed_logins = 0, locked_until = NULL "
                           "WHERE id = ?", [reviewer_id])
                return True
            if row[1] >= max_failures:
                db.execute("UPDATE reviewers SET failed_logins = 0, locked_until = ? WHERE id = ?",
                           [(now + lockout).isoformat(), reviewer_id])
            return False

    # ---- ratings -----------------------------------------------------------------------------

    def add_rating(self, *, reviewer_id: int, output_id: int, verdict: str,
                   score: int | None = None, corrected: str | None = None,
                   comment: str | None = None, pair_output_id: int | None = None,
                   preferred_output_id: int | None = None, pair_score: int | None = None,
                   left_output_id: int | None = None, created_at: str | None = None) -> int:
        """Append a rating. If this reviewer already rated the output (the same pair, for a
        pairwise rating), the new rating supersedes their current one. Closes the queue item
        once it has enough ratings (and reopens it if an edit to "skip" leaves it short).

        A pairwise rating compares ``output_id`` with ``pair_output_id``: ``preferred_output_id``
        is the one preferred (or None), ``score``/``pair_score`` score each, and
        ``left_output_id`` is the one that was shown on the left. ``created_at`` keeps the time
        of a rating imported from elsewhere (default: now)."""
        with self.write() as db:
            for needed in (output_id, pair_output_id):
                if needed is not None and not db.execute(
                        "SELECT 1 FROM outputs WHERE id = ?", [needed]).fetchone():
                    raise LookupError(f"no output {needed}")
            reviewer = db.execute("SELECT disabled FROM reviewers WHERE id = ?",
                                  [reviewer_id]).fetchone()
            if reviewer is None or reviewer[0]:
                raise PermissionError(f"reviewer {reviewer_id} does not exist or is disabled")
            current = db.execute(
                CURRENT_RATINGS + " AND r.output_id = ? AND r.reviewer_id = ? "
                "AND r.pair_output_id IS ?", [output_id, reviewer_id, pair_output_id]).fetchone()
            table = db["ratings"]
            table.insert({
                "output_id": output_id, "reviewer_id": reviewer_id, "verdict": verdict,
                "score": score, "corrected": corrected, "comment": comment,
                "supersedes_id": current[0] if current else None,
                "created_at": created_at or now(), "pair_output_id": pair_output_id, "preferred_output_id": preferred_output_id,
                "pair_score": pair_score, "left_output_id": left_output_id,
            })
            rating_id = int(table.last_pk)
            db.execute(
                f"""UPDATE review_queue SET status = CASE WHEN ratings_needed <= (
                        SELECT COUNT(DISTINCT c.reviewer_id) FROM ({CURRENT_RATINGS}) c
                        WHERE c.output_id = ? AND c.pair_output_id IS ?
                          AND c.verdict != 'skip') THEN 'done' ELSE 'open' END
                    WHERE output_id = ? AND pair_output_id IS ?""",
                [output_id, pair_output_id, output_id, pair_output_id])
            return rating_id

    def current_ratings(self, *, unused_only: bool, cycle_ids: list[int] | None = None
                        ) -> list[Rating]:
        """Current (not superseded) ratings joined with their outputs; optionally only those no
        cycle has trained on yet."""
        sql = f"""
            SELECT c.id, c.output_id, o.cycle_id, v.name AS reviewer, c.verdict, o.input,
                   o.output, o.reference, c.score, c.corrected, c.comment, o.example_id,
                   c.pair_output_id, p.output AS pair_output, c.pair_score,
                   c.preferred_output_id
            FROM ({CURRENT_RATINGS}) c
            JOIN outputs o ON o.id = c.output_id
            LEFT JOIN outputs p ON p.id = c.pair_output_id
            JOIN reviewers v ON v.id = c.reviewer_id
        """
        conditions = []
        params: list[Any] = []
        if unused_only:
            # a failed cycle trained nothing, so its uses do not count
            conditions.append("NOT EXISTS (SELECT 1 FROM feedback_usage u JOIN cycles used "
                              "ON used.id = u.cycle_id WHERE u.rating_id = c.id "
                              "AND used.status != 'failed')")
        if cycle_ids is not None:
            conditions.append(f"o.cycle_id IN ({','.join('?' * len(cycle_ids)) or 'NULL'})")
            params.extend(cycle_ids)
        if conditions:
            sql += " WHERE " + " AND ".join(conditions)
        return [Rating(**row) for row in self.query(sql + " ORDER BY c.id", params)]

    def rating_history(self, output_id: int) -> list[dict[str, Any]]:
        return self.query("SELECT r.*, v.name AS reviewer FROM ratings r JOIN reviewers v ON "
                          "v.id = r.reviewer_id WHERE r.output_id = ? ORDER BY r.id", [output_id])

    # ---- feedback lineage --------------------------------------------------------------------

    def record_feedback_usage(self, cycle_id: int, uses: list[tuple[int, str, str]]) -> None:
        """Record which rating trained which cycle, through which policy, as which example."""
        created = now()
        rows = [{"rating_id": rating_id, "cycle_id": cycle_id, "policy": policy,
                 "example_id": example_id, "created_at": created}
                for rating_id, policy, example_id in uses]
        if rows:
            with self.write() as db:
                db["feedback_usage"].insert_all(rows)

    def feedback_usage(self, cycle_id: int) -> list[dict[str, Any]]:
        return self.query("SELECT * FROM feedback_usage WHERE cycle_id = ? ORDER BY id",
                          [cycle_id])

    # ---- models ------------------------------------------------------------------------------

    def add_model(self, cycle_id: int, path: str, metrics: dict[str, Any], stage: str,
                  reasons: list[str]) -> None:
        with self.write() as db:
            db["models"].insert({"cycle_id": cycle_id, "path": path,
                                 "metrics": json.dumps(metrics), "stage": stage,
                                 "reasons": json.dumps(reasons), "created_at": now()})

    def models(self, project: str | None = None) -> list[dict[str, Any]]:
        sql = "SELECT m.*, c.project FROM models m JOIN cycles c ON c.id = m.cycle_id"
        params: list[Any] = []
        if project:
            sql += " WHERE c.project = ?"
            params.append(project)
        return self.query(sql + " ORDER BY m.cycle_id", params)

    def promoted_models(self, project: str) -> list[dict[str, Any]]:
        return [model for model in self.models(project) if model["stage"] == "promoted"]

    # ---- resuming interrupted cycles (tuneloop.resume) ---------------------------------------

    def unfinished_cycles(self, project: str) -> list[dict[str, Any]]:
        """The project's cycles left ``running``, ``trained`` or ``evaluated``: running now, or
        interrupted by a kill (their process is in ``stats``)."""
        return self.query("SELECT * FROM cycles WHERE project = ? AND status IN "
                          "('running', 'trained', 'evaluated') ORDER BY id", [project])

    def example_keys(self, cycle_id: int) -> set[tuple[str, str]]:
        """``(split, example id)`` of every example the cycle recorded when it started."""
        return {(row[0], row[1]) for row in self.conn.execute(
            "SELECT split, id FROM examples WHERE cycle_id = ?", [cycle_id])}

    def rated_outputs(self, cycle_id: int) -> int:
        """How many of the cycle's outputs an expert has rated (ratings are never deleted)."""
        row = self.conn.execute("SELECT COUNT(DISTINCT r.output_id) FROM ratings r JOIN outputs o "
                                "ON o.id = r.output_id WHERE o.cycle_id = ?", [cycle_id]).fetchone()
        return int(row[0]) if row else 0

    def judged_inputs(self) -> set[str]:
        """Inputs of outputs an expert approved or rejected (in any cycle)."""
        return {row[0] for row in self.conn.execute(
            "SELECT DISTINCT o.input FROM ratings r JOIN outputs o ON o.id = r.output_id "
            "WHERE r.verdict IN ('approve', 'reject')")}

    def replace_final_metrics(self, cycle_id: int, split: str, values: dict[str, float]) -> None:
        """The cycle's final figures of ``split``, replacing any stored before, in one
        transaction (a later cycle recomputes its parent's ``human`` figures)."""
        with self.write() as db:
            db.execute("DELETE FROM metrics WHERE cycle_id = ? AND split = ? AND step IS NULL",
                       [cycle_id, split])
            self.add_metrics(cycle_id, split, values)

    def clear_stage_records(self, cycle_id: int, stage: str) -> None:
        """Delete what a cycle recorded from ``stage`` on, in one transaction, so an interrupted
        cycle reruns that stage and the ones after it into a clean slate:

        - ``evaluate``: final figures (not the training log), per-example predictions, and all
          that ``review`` clears;
        - ``review``: outputs, their review-queue items (single and pairwise) and all that
          ``promote`` clears;
        - ``promote``: the model record.

        Callers refuse first when experts rated the outputs (:meth:`rated_outputs`): ratings are
        append-only, so their outputs cannot go."""
        stages = ("evaluate", "review", "promote")
        if stage not in stages:
            raise ValueError(f"unknown stage {stage!r}; one of {', '.join(stages)}")
        tables = set(self.db.table_names())
        with self.write() as db:
            if stage == "evaluate":
                db.execute("DELETE FROM metrics WHERE cycle_id = ? AND step IS NULL", [cycle_id])
                if "predictions" in tables:
                    db.execute("DELETE FROM predictions WHERE cycle_id = ?", [cycle_id])
            if stage in ("evaluate", "review"):
                db.execute("DELETE FROM review_queue WHERE cycle_id = ? OR output_id IN (SELECT "
                           "id FROM outputs WHERE cycle_id = ?) OR pair_output_id IN (SELECT id "
                           "FROM outputs WHERE cycle_id = ?)", [cycle_id] * 3)
                db.execute("DELETE FROM outputs WHERE cycle_id = ?", [cycle_id])
            db.execute("DELETE FROM models WHERE cycle_id = ?", [cycle_id])

    def mark_interrupted(self, cycle_id: int, error: str, *, finished_at: str | None = None,
                         timings: dict[str, Any] | None = None) -> str:
        """Mark a cycle ``failed``, keeping the status it had reached in ``stats`` as
        ``interrupted_at`` (a resume continues from there), and withdraw a model it had already
        promoted; one transaction. Returns the status it had reached."""
        with self.write() as db:
            row = db.execute("SELECT status, stats FROM cycles WHERE id = ?",
                             [cycle_id]).fetchone()
            if row is None:
                raise LookupError(f"no cycle {cycle_id}")
            status, stats = row[0], json.loads(row[1]) if row[1] else {}
            reached = stats.get("interrupted_at", status) if status == "failed" else status
            stats["interrupted_at"] = reached
            fields: dict[str, Any] = {"status": "failed", "error": error,
                                      "stats": json.dumps(stats)}
            if finished_at is not None:
                fields["finished_at"] = finished_at
            if timings is not None:
                fields["timings"] = json.dumps(timings)
            db["cycles"].update(cycle_id, fields)
            db.execute("UPDATE models SET stage = 'rejected', reasons = json_insert(reasons, "
                       "'$[#]', 'withdrawn: the cycle failed after the gate') WHERE cycle_id = ? "
                       "AND stage = 'promoted'", [cycle_id])
        return reached
