"""Ratings in and out of a project database as JSON Lines (``tuneloop feedback export|import``).

Why: ratings are the expensive part of the loop. They must survive a move to a new database, be
auditable outside tuneloop (one JSON object per rating, every version with what it superseded and
which cycles trained on it), and come in from elsewhere (a copy of the database experts worked on,
another labelling tool) without trusting the file.

An exported row names its output by id *and* by content (input and output text). Import trusts the
content: a row lands on the output with the same input and output (the given ``output_id`` when it
still matches, else the newest such output of the row's ``cycle_id``, else the newest such output
of any cycle), so a file from another database lands on the right outputs or is rejected, never on
a stranger's.

Import checks every row before writing any. A bad row is reported with its line number and the
reason; by default nothing is imported while any row is bad, and ``skip_invalid`` imports the good
ones. The rows that are imported go in one transaction and keep their ``created_at``. A row whose
rating is already there (the same reviewer, output and judgement, made at the same time; or,
without a time, the reviewer's current rating) is not added twice, so importing a file again,
even a full history, changes nothing.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime
from typing import IO, TYPE_CHECKING, Any, Iterator

from tuneloop.errors import DataError

if TYPE_CHECKING:  # pragma: no cover
    from tuneloop.store import Store

VERDICTS = ("approve", "reject", "skip", "unclear")
SIDES = ("output", "pair")
MAX_TEXT = 100_000
KNOWN_FIELDS = {
    "rating_id", "supersedes_id", "created_at", "reviewer", "cycle_id", "output_id", "example_id",
    "input", "output", "reference", "verdict", "score", "corrected", "comment", "pair",
    "preferred", "left", "used_by", "current",
}


# ---- export ----------------------------------------------------------------------------------


def export_rows(store: "Store", *, cycle_id: int | None = None,
                all_versions: bool = False) -> Iterator[dict[str, Any]]:
    """Every current rating (or every version, oldest first), as the rows ``import`` reads."""
    from tuneloop.store import CURRENT_RATINGS

    source = "ratings" if all_versions else f"({CURRENT_RATINGS})"
    conditions, params = [], []
    if cycle_id is not None:
        conditions.append("o.cycle_id = ?")
        params.append(cycle_id)
    where = ("WHERE " + " AND ".join(conditions)) if conditions else ""
    rows = store.query(
        f"""SELECT r.*, v.name AS reviewer, o.cycle_id, o.example_id, o.input, o.output,
                   o.reference, p.cycle_id AS pair_cycle_id, p.output AS pair_output,
                   p.example_id AS pair_example_id,
                   NOT EXISTS (SELECT 1 FROM ratings later WHERE later.supersedes_id = r.id)
                       AS is_current
            FROM {source} r
            JOIN reviewers v ON v.id = r.reviewer_id
            JOIN outputs o ON o.id = r.output_id
            LEFT JOIN outputs p ON p.id = r.pair_output_id
            {where} ORDER BY r.id""", params)
    uses: dict[int, list[dict[str, Any]]] = {}
    for use in store.query("SELECT u.rating_id, u.cycle_id, u.policy, u.example_id "
                           "FROM feedback_usage u JOIN cycles c ON c.id = u.cycle_id "
                           "WHERE c.status != 'failed' ORDER BY u.id"):
        uses.setdefault(use.pop("rating_id"), []).append(use)
    for row in rows:
        pair = None
        if row["pair_output_id"] is not None:
            pair = {"output_id": row["pair_output_id"], "cycle_id": row["pair_cycle_id"],
                    "example_id": row["pair_example_id"], "output": row["pair_output"],
                    "score": row["pair_score"]}
        yield {
            "rating_id": row["id"], "supersedes_id": row["supersedes_id"],
            "created_at": row["created_at"], "current": bool(row["is_current"]),
            "reviewer": row["reviewer"], "cycle_id": row["cycle_id"],
            "output_id": row["output_id"], "example_id": row["example_id"],
            "input": row["input"], "output": row["output"], "reference": row["reference"],
            "verdict": row["verdict"], "score": row["score"], "corrected": row["corrected"],
            "comment": row["comment"], "pair": pair,
            "preferred": _side(row, row["preferred_output_id"]),
            "left": _side(row, row["left_output_id"]),
            "used_by": uses.get(row["id"], []),
        }


def _side(row: dict[str, Any], output_id: int | None) -> str | None:
    if output_id is None:
        return None
    return "output" if output_id == row["output_id"] else "pair"


def write_jsonl(rows: Iterator[dict[str, Any]], stream: IO[str]) -> int:
    count = 0
    for row in rows:
        stream.write(json.dumps(row, ensure_ascii=False) + "\n")
        count += 1
    return count


# ---- import ----------------------------------------------------------------------------------


@dataclass
class ImportReport:
    imported: int = 0
    unchanged: int = 0  # identical to the reviewer's current rating: already there
    rejected: list[tuple[int, str]] = field(default_factory=list)  # (line, reason)


@dataclass
class _Row:
    line: int
    reviewer_id: int
    fields: dict[str, Any]


class RowError(ValueError):
    """Why one row cannot be imported (reported with its line)."""


def import_jsonl(store: "Store", lines: Iterator[str], *, source: str = "ratings.jsonl",
                 skip_invalid: bool = False, dry_run: bool = False) -> ImportReport:
    """Check every row, then add the good ones as ratings in one transaction.

    Raises ``DataError`` naming the first bad line (and how many there are) when any row is bad
    and ``skip_invalid`` is off; nothing is written then. ``dry_run`` checks without writing.
    """
    def parsed() -> Iterator[tuple[int, Any]]:
        for number, text in enumerate(lines, start=1):
            if not text.strip():
                continue
            try:
                yield number, json.loads(text)
            except json.JSONDecodeError as error:
                yield number, RowError(f"not JSON ({error.msg})")

    return import_rows(store, parsed(), source=source, skip_invalid=skip_invalid,
                       dry_run=dry_run)


def import_rows(store: "Store", rows: Iterator[tuple[int, Any]], *, source: str,
                skip_invalid: bool = False, dry_run: bool = False) -> ImportReport:
    """``import_jsonl`` for rows already read from any format: ``(line or record number, row
    dict)`` pairs, a ``RowError`` in place of a row that could not be read. The checks, the
    all-or-nothing rule and the one transaction are the same for every format."""
    report = ImportReport()
    good: list[_Row] = []
    reviewers = {row["name"]: row for row in store.query("SELECT id, name, disabled FROM "
                                                         "reviewers")}
    for number, row in rows:
        try:
            if isinstance(row, RowError):
                raise row
            good.append(_Row(number, *_check_fields(store, row, reviewers)))
        except RowError as error:
            report.rejected.append((number, str(error)))
    if report.rejected and not skip_invalid:
        line, reason = report.rejected[0]
        extra = len(report.rejected) - 1
        more = f" (and {extra} more bad rows)" if extra else ""
        raise DataError(source, f"{reason}{more}; nothing imported", line)
    if dry_run:
        report.imported = len(good)
        return report
    with store.write():
        for row in good:
            if _already_there(store, row):
                report.unchanged += 1
                continue
            store.add_rating(reviewer_id=row.reviewer_id, **row.fields)
            report.imported += 1
    return report


def _check_fields(store: "Store", row: Any, reviewers: dict[str, dict[str, Any]]
                  ) -> tuple[int, dict[str, Any]]:
    if not isinstance(row, dict):
        raise RowError("a row must be a JSON object")
    unknown = sorted(set(row) - KNOWN_FIELDS)
    if unknown:
        raise RowError(f"unknown fields: {', '.join(unknown[:5])}")
    reviewer = reviewers.get(_text(row, "reviewer", required=True))
    if reviewer is None:
        raise RowError(f'unknown reviewer "{row["reviewer"]}" (add the account first)')
    if reviewer["disabled"]:
        raise RowError(f'reviewer "{row["reviewer"]}" is disabled')
    verdict = row.get("verdict")
    if verdict not in VERDICTS:
        raise RowError(f"verdict must be one of {', '.join(VERDICTS)}, not {verdict!r}")
    output_id = _find_output(store, row, row.get("output_id"), row.get("cycle_id"),
                             _text(row, "output", required=True), row.get("example_id"),
                             what="output")
    fields: dict[str, Any] = {
        "output_id": output_id, "verdict": verdict, "score": _score(row.get("score"), "score"),
        "corrected": _text(row, "corrected"), "comment": _text(row, "comment"),
    }
    pair = row.get("pair")
    if pair is not None:
        if not isinstance(pair, dict) or not isinstance(pair.get("output"), str):
            raise RowError("pair must be an object with the other output's text in 'output'")
        if fields["corrected"] is not None:
            raise RowError("a pairwise rating has no correction")
        pair_id = _find_output(store, row, pair.get("output_id"), pair.get("cycle_id"),
                               pair["output"], pair.get("example_id"), what="pair output")
        if pair_id == output_id:
            raise RowError("a pair compares two different outputs")
        sides = {"output": output_id, "pair": pair_id, None: None}
        for key in ("preferred", "left"):
            if row.get(key) not in sides:
                raise RowError(f"{key} must be \"output\", \"pair\" or null")
        if row.get("preferred") is not None and verdict in ("skip", "unclear"):
            raise RowError(f"a {verdict} prefers neither output")
        fields.update(pair_output_id=pair_id, pair_score=_score(pair.get("score"), "pair score"),
                      preferred_output_id=sides[row.get("preferred")],
                      left_output_id=sides[row.get("left")])
    elif row.get("preferred") is not None or row.get("left") is not None:
        raise RowError("preferred and left need a pair")
    if verdict in ("skip", "unclear") and fields["corrected"] is not None:
        raise RowError(f"a {verdict} has no correction")
    created = _text(row, "created_at")
    if created is not None:
        try:
            datetime.fromisoformat(created)
        except ValueError:
            raise RowError(f"created_at is not an ISO date and time: {created[:40]!r}") from None
        fields["created_at"] = created
    return reviewer["id"], fields


def _text(row: dict[str, Any], key: str, required: bool = False) -> str | None:
    value = row.get(key)
    if value is None:
        if required:
            raise RowError(f"{key} is missing")
        return None
    if not isinstance(value, str):
        raise RowError(f"{key} must be a string")
    if len(value) > MAX_TEXT:
        raise RowError(f"{key} is longer than {MAX_TEXT} characters")
    if key in ("corrected", "comment") and not value.strip():
        return None
    return value


def _score(value: Any, what: str) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 5:
        raise RowError(f"{what} must be a whole number from 1 to 5, not {value!r}")
    return value


def _find_output(store: "Store", row: dict[str, Any], output_id: Any, cycle_id: Any,
                 output: str, example_id: Any, *, what: str) -> int:
    """The output with this row's input and this output text (see the module docstring)."""
    source_input = _text(row, "input", required=True)
    if isinstance(output_id, int) and not isinstance(output_id, bool):
        same = store.one("SELECT id FROM outputs WHERE id = ? AND input = ? AND output = ?",
                         [output_id, source_input, output])
        if same is not None:
            return int(same["id"])
    sql = "SELECT id FROM outputs WHERE input = ? AND output = ?"
    params: list[Any] = [source_input, output]
    if isinstance(example_id, str):  # indexed: no scan of every output
        sql += " AND example_id = ?"
        params.append(example_id)
    found = None
    if isinstance(cycle_id, int) and not isinstance(cycle_id, bool):
        found = store.one(sql + " AND cycle_id = ? ORDER BY id DESC LIMIT 1",
                          [*params, cycle_id])
    if found is None:  # another database numbers its cycles differently
        found = store.one(sql + " ORDER BY id DESC LIMIT 1", params)
    if found is None:
        raise RowError(f"no {what} with this input and output text")
    return int(found["id"])


def _already_there(store: "Store", row: _Row) -> bool:
    """This exact rating exists: the same version (same time) if the row has a time, else the
    reviewer's current rating says the same."""
    from tuneloop.store import CURRENT_RATINGS

    source = "ratings r WHERE 1" if "created_at" in row.fields else f"({CURRENT_RATINGS}) r WHERE 1"
    for existing in store.query(f"SELECT r.* FROM {source} AND r.output_id = ? "
                                "AND r.reviewer_id = ? AND r.pair_output_id IS ?",
                                [row.fields["output_id"], row.reviewer_id,
                                 row.fields.get("pair_output_id")]):
        if all(existing.get(key) == value for key, value in row.fields.items()):
            return True
    return False
