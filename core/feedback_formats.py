"""The experts' ratings in the formats people move between tools: CSV, Hugging Face ``datasets``
(a ``save_to_disk`` folder) and Argilla 2.x records. ``tuneloop.feedback_io`` owns the rows
(``export_rows``) and the checked, all-or-nothing import (``import_rows``); this module only
turns those rows into each format and back, so every format gets the same checks on the way in.

- **CSV** and **datasets** hold one flat row per rating (``FLAT_COLUMNS``): the JSON Lines row
  with ``pair`` spread into ``pair_*`` columns and ``used_by`` as JSON text, so a spreadsheet or
  an Arrow table gets one plain column per field. An empty CSV cell reads as "none".
- **Argilla** (2.x): a JSON array of records as ``Dataset.records.to_json`` writes them
  (``Record.to_dict``): ``{"id", "fields", "metadata", "suggestions", "responses", "vectors",
  "_server_id"}``, one record per rated item (an output, or a pair of outputs), the model's
  answer as a suggestion and each expert's current rating as responses to the questions in
  ``ARGILLA_QUESTIONS``. Argilla names users by UUID: a reviewer's is ``reviewer_uuid(name)``
  (UUID5, so the same name always gets the same id); on import a ``user_id`` may also be a
  reviewer name. Argilla keeps one response per user and question, so only current ratings
  are exported, without their times.
"""

from __future__ import annotations

import csv
import json
import uuid
from collections import defaultdict
from pathlib import Path
from typing import IO, Any, Iterable, Iterator

from tuneloop.errors import DataError
from tuneloop.feedback_io import RowError

FORMATS = ("jsonl", "csv", "datasets", "argilla")
INT_COLUMNS = ("rating_id", "supersedes_id", "cycle_id", "output_id", "score",
               "pair_output_id", "pair_cycle_id", "pair_score")
FLAT_COLUMNS = ("rating_id", "supersedes_id", "created_at", "current", "reviewer", "cycle_id",
                "output_id", "example_id", "input", "output", "reference", "verdict", "score",
                "corrected", "comment", "pair_output_id", "pair_cycle_id", "pair_example_id",
                "pair_output", "pair_score", "preferred", "left", "used_by")
PAIR_KEYS = {"pair_output_id": "output_id", "pair_cycle_id": "cycle_id",
             "pair_example_id": "example_id", "pair_output": "output", "pair_score": "score"}
# question name -> what it holds; the layout of an Argilla dataset made for these records
ARGILLA_QUESTIONS = {
    "verdict": "label: approve, reject, skip or unclear",
    "correction": "text: the right label or the edited answer (with reject)",
    "score": "rating 1-5 of the output",
    "comment": "text",
    "preferred": "label, pairs only: output or pair (the one preferred; none: neither)",
    "pair_score": "rating 1-5 of the pair output, pairs only",
    "shown_left": "label, pairs only: output or pair (the one shown on the left)",
}
REVIEWER_NAMESPACE = uuid.uuid5(uuid.NAMESPACE_URL, "https://tuneloop/reviewers")


def guess_format(path: Path) -> str:
    """The format of a file or folder to import, from its name: a folder is a ``datasets``
    save_to_disk folder, ``.csv`` CSV, ``.json`` Argilla records, anything else JSON Lines."""
    if path.is_dir():
        return "datasets"
    return {".csv": "csv", ".json": "argilla"}.get(path.suffix.lower(), "jsonl")


# ---- flat rows (CSV, datasets) -----------------------------------------------------------


def flat(row: dict[str, Any]) -> dict[str, Any]:
    """One exported rating as a flat row of ``FLAT_COLUMNS``."""
    pair = row.get("pair") or {}
    result = {key: row.get(key) for key in FLAT_COLUMNS if key not in PAIR_KEYS}
    result.update({column: pair.get(key) for column, key in PAIR_KEYS.items()})
    result["used_by"] = json.dumps(row.get("used_by") or [])
    return {column: result[column] for column in FLAT_COLUMNS}


def unflat(values: dict[str, Any]) -> dict[str, Any]:
    """A flat row back into the row ``import_rows`` checks (unknown columns are kept, so the
    check names them)."""
    row = {key: value for key, value in values.items() if key not in PAIR_KEYS}
    for key in INT_COLUMNS:
        if key in row:
            row[key] = _integer(row[key], key)
    if isinstance(row.get("current"), str):
        row["current"] = row["current"].strip().lower() in ("1", "true", "yes")
    if values.get("pair_output") is not None:
        row["pair"] = {key: (_integer(values.get(column), column) if column in INT_COLUMNS
                             else values.get(column))
                       for column, key in PAIR_KEYS.items()}
    used = row.get("used_by")
    if isinstance(used, str):
        try:
            row["used_by"] = json.loads(used) if used.strip() else []
        except json.JSONDecodeError:
            raise RowError("used_by is not JSON") from None
    return row


def _integer(value: Any, what: str) -> Any:
    if not isinstance(value, str):
        return value
    try:
        return int(value) if value.strip() else None
    except ValueError:
        raise RowError(f"{what} must be a whole number, not {value[:40]!r}") from None


def write_csv(rows: Iterable[dict[str, Any]], stream: IO[str]) -> int:
    writer = csv.DictWriter(stream, fieldnames=FLAT_COLUMNS)
    writer.writeheader()
    count = 0
    for row in rows:
        writer.writerow(flat(row))
        count += 1
    return count


def read_csv(stream: IO[str]) -> Iterator[tuple[int, Any]]:
    """``(line, row)`` for every data line (line 1 is the header); blank cells read as none,
    except the input and output texts."""
    reader = csv.DictReader(stream)
    for values in reader:
        number = reader.line_num
        cells = {key: (value if value != "" or key in ("input", "output") else None)
                 for key, value in values.items() if key is not None}
        if None in values:
            yield number, RowError("more cells than columns")
            continue
        try:
            yield number, unflat(cells)
        except RowError as error:
            yield number, error


def write_datasets(rows: Iterable[dict[str, Any]], folder: Path) -> int:
    """A ``datasets.Dataset`` of flat rows, saved with ``save_to_disk`` (typed columns, so an
    all-empty column still has its type)."""
    from datasets import Dataset, Features, Value

    types = {column: Value("int64") if column in INT_COLUMNS else
             Value("bool") if column == "current" else Value("string")
             for column in FLAT_COLUMNS}
    flats = [flat(row) for row in rows]
    Dataset.from_list(flats, features=Features(types)).save_to_disk(str(folder))
    return len(flats)


def read_datasets(folder: Path) -> Iterator[tuple[int, Any]]:
    """``(row number, row)`` from a ``save_to_disk`` folder (numbered from 1)."""
    from datasets import load_from_disk

    try:
        dataset = load_from_disk(str(folder))
    except (FileNotFoundError, ValueError) as error:
        raise DataError(str(folder), f"not a datasets save_to_disk folder ({error})") from None
    if not hasattr(dataset, "column_names") or isinstance(dataset.column_names, dict):
        raise DataError(str(folder), "a DatasetDict: save one split (a Dataset) instead")
    for number, values in enumerate(dataset, start=1):
        try:
            yield number, unflat(dict(values))
        except RowError as error:
            yield number, error


# ---- Argilla 2.x records -------------------------------------------------------------------


def reviewer_uuid(name: str) -> str:
    return str(uuid.uuid5(REVIEWER_NAMESPACE, name))


def argilla_records(rows: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """Current ratings grouped into one Argilla record per item, experts' ratings as responses."""
    items: dict[tuple[int, int | None], list[dict[str, Any]]] = defaultdict(list)
    for row in rows:
        if row.get("current", True):
            pair = row.get("pair") or {}
            items[(row["output_id"], pair.get("output_id"))].append(row)
    records = []
    for (output_id, pair_id), rated in items.items():
        first = rated[0]
        pair = first.get("pair") or {}
        fields = {"input": first["input"], "output": first["output"]}
        metadata = {"cycle_id": first["cycle_id"], "output_id": output_id,
                    "example_id": first["example_id"], "reference": first.get("reference")}
        if pair_id is not None:
            fields["pair_output"] = pair["output"]
            metadata.update(pair_output_id=pair_id, pair_cycle_id=pair.get("cycle_id"),
                            pair_example_id=pair.get("example_id"))
        responses: dict[str, list[dict[str, Any]]] = defaultdict(list)
        for row in rated:
            user = reviewer_uuid(row["reviewer"])
            answers = {"verdict": row["verdict"], "correction": row.get("corrected"),
                       "score": row.get("score"), "comment": row.get("comment")}
            if pair_id is not None:
                answers.update(preferred=row.get("preferred"),
                               pair_score=(row.get("pair") or {}).get("score"),
                               shown_left=row.get("left"))
            for question, value in answers.items():
                if value is not None:
                    responses[question].append({"value": value, "user_id": user})
        suggestions = {} if pair_id is not None else {
            "correction": {"value": first["output"], "score": None,
                           "agent": f"tuneloop cycle {first['cycle_id']}"}}
        records.append({
            "id": f"tuneloop-{output_id}" + (f"-{pair_id}" if pair_id is not None else ""),
            "fields": fields,
            "metadata": {key: value for key, value in metadata.items() if value is not None},
            "suggestions": suggestions, "responses": dict(responses), "vectors": {},
            "_server_id": None,
        })
    return records


def write_argilla(rows: Iterable[dict[str, Any]], stream: IO[str]) -> int:
    """Argilla records as ``Dataset.records.to_json`` writes them (a JSON array); returns how
    many ratings they hold."""
    rows = list(rows)
    json.dump(argilla_records(rows), stream, ensure_ascii=False)
    return sum(1 for row in rows if row.get("current", True))


def read_argilla(stream: IO[str], reviewer_names: Iterable[str]) -> Iterator[tuple[int, Any]]:
    """``(record number, row)`` for every expert's response set in an Argilla records file;
    ``reviewer_names``: the accounts a ``user_id`` may stand for."""
    try:
        records = json.load(stream)
    except json.JSONDecodeError as error:
        raise DataError(getattr(stream, "name", "records.json"),
                        f"not JSON ({error.msg})", error.lineno) from None
    if not isinstance(records, list):
        raise DataError(getattr(stream, "name", "records.json"),
                        "Argilla records must be a JSON array of records")
    users = {reviewer_uuid(name): name for name in reviewer_names}
    for number, record in enumerate(records, start=1):
        try:
            yield from ((number, row) for row in _record_rows(record, users))
        except RowError as error:
            yield number, error


def _record_rows(record: Any, users: dict[str, str]) -> Iterator[dict[str, Any]]:
    if not isinstance(record, dict) or not isinstance(record.get("fields"), dict):
        raise RowError("an Argilla record must be an object with 'fields'")
    fields, metadata = record["fields"], record.get("metadata") or {}
    responses = record.get("responses") or {}
    if not isinstance(responses, dict) or not isinstance(metadata, dict):
        raise RowError("'responses' and 'metadata' must be objects")
    unknown = sorted(set(responses) - set(ARGILLA_QUESTIONS))
    if unknown:
        raise RowError(f"unknown questions: {', '.join(unknown[:5])}")
    answers: dict[str, dict[str, Any]] = defaultdict(dict)
    for question, given in responses.items():
        if not isinstance(given, list):
            raise RowError(f"responses to {question} must be a list")
        for response in given:
            if not isinstance(response, dict) or "value" not in response:
                raise RowError(f"a response to {question} needs a value")
            user = str(response.get("user_id"))
            answers[users.get(user, user)][question] = response["value"]
    for reviewer, said in answers.items():
        if "verdict" not in said:
            raise RowError(f"user {reviewer}: no response to the verdict question")
        row: dict[str, Any] = {
            "reviewer": reviewer, "cycle_id": metadata.get("cycle_id"),
            "output_id": metadata.get("output_id"), "example_id": metadata.get("example_id"),
            "input": fields.get("input"), "output": fields.get("output"),
            "verdict": said["verdict"], "score": said.get("score"),
            "corrected": said.get("correction"), "comment": said.get("comment"),
        }
        if fields.get("pair_output") is not None:
            row["pair"] = {"output_id": metadata.get("pair_output_id"),
                           "cycle_id": metadata.get("pair_cycle_id"),
                           "example_id": metadata.get("pair_example_id"),
                           "output": fields["pair_output"], "score": said.get("pair_score")}
            row["preferred"], row["left"] = said.get("preferred"), said.get("shown_left")
        yield row
