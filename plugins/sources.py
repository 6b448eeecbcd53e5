"""Built-in data sources: JSON Lines and CSV files.

Both read their file as a stream, one line (or CSV record) at a time, so a source never holds a
whole file in memory, and ``load()`` returns a generator the cycle can consume as it likes.

Every problem with the input is a ``tuneloop.DataError`` naming the file and, where there is one,
the line: the person fixing the data needs to know where to look, and a Python traceback from deep
inside a parser does not tell them. Decoding is strict: a byte that is not valid in the configured
encoding is an error naming its line and column, never a silently substituted character that
would end up in training data.

Field mapping: ``fields`` maps tuneloop's fields (``input``, ``target``, ``group``, ``weight``) to
the file's column names. ``prompt`` and ``completion`` are accepted as aliases of ``input`` and
``target``, so a causal-LM file reads naturally. Without a mapping, the input is the ``input``
column (``prompt`` where a record has no ``input``) and the target the ``target`` column
(``completion`` where there is no ``target``); a record without a target is unlabeled. A column the
config names explicitly must be present: a typo in the mapping is an error, not a file full of
unlabeled examples.
"""

from __future__ import annotations

import codecs
import csv
import json
import math
import re
from pathlib import Path
from typing import IO, Any, Iterator

from pydantic import field_validator

from tuneloop import DataError, DataSource, Example, SourceOptions, hookimpl

# --------------------------------------------------------------------------------------------------
# Strict decoding that still knows the line
# --------------------------------------------------------------------------------------------------
#
# A text file decoded with errors="strict" fails on the whole read-ahead chunk, so the line number
# of the bad byte is lost. Instead, undecodable bytes are replaced by lone low surrogates
# (U+DC00 + byte), which strict decoding never produces from valid input, and each line is checked
# for them as it is read: the error names the exact line and column, and works for any encoding
# (UTF-16 included, where splitting raw bytes on b"\n" would not).

_ERROR_HANDLER = "tuneloop.mark_undecodable"


def _mark_undecodable(error: UnicodeError) -> tuple[str, int]:
    if not isinstance(error, UnicodeDecodeError):
        raise error
    bad = error.object[error.start:error.end]
    return "".join(chr(0xDC00 + byte) for byte in bad), error.end


codecs.register_error(_ERROR_HANDLER, _mark_undecodable)
_UNDECODABLE = re.compile("[\udc00-\udcff]")


def _open(path: str, encoding: str, newline: str) -> IO[str]:
    """Open for streaming text; an unreadable path is a DataError naming it."""
    try:
        return open(path, encoding=encoding, errors=_ERROR_HANDLER, newline=newline)
    except FileNotFoundError:
        raise DataError(path, "file not found") from None
    except IsADirectoryError:
        raise DataError(path, "is a directory, not a file") from None
    except PermissionError:
        raise DataError(path, "permission denied") from None
    except LookupError as error:
        raise DataError(path, f"unknown encoding: {error}") from None
    except OSError as error:
        raise DataError(path, f"cannot read: {error.strerror or error}") from None


def _checked_lines(handle: IO[str], path: str, encoding: str) -> Iterator[tuple[int, str]]:
    """Yield ``(line number, line)``; a line with undecodable bytes is a DataError."""
    number = 0
    try:
        for number, line in enumerate(handle, 1):
            if number == 1 and line.startswith("\ufeff"):
                line = line[1:]  # a byte-order mark (Excel writes one) is not part of the data
            bad = _UNDECODABLE.search(line)
            if bad is not None:
                byte = ord(bad.group()) - 0xDC00
                raise DataError(path, f"not valid {encoding}: byte 0x{byte:02x} at column "
                                      f"{bad.start() + 1}", number)
            yield number, line
    except OSError as error:  # an I/O error part way through (a vanished network drive)
        raise DataError(path, f"cannot read: {error.strerror or error}", number + 1) from None


# --------------------------------------------------------------------------------------------------
# Field mapping and value checks shared by both formats
# --------------------------------------------------------------------------------------------------

FIELD_KEYS = ("input", "target", "group", "weight")
ALIASES = {"prompt": "input", "completion": "target"}
DEFAULT_COLUMNS = {"input": ("input", "prompt"), "target": ("target", "completion")}


class FileSourceOptions(SourceOptions):
    """Options of a file source.

    ``fields`` maps ``input``, ``target``, ``group``, ``weight`` (or the aliases ``prompt`` and
    ``completion``) to column names; ``encoding`` is the file's text encoding, checked strictly.
    """

    encoding: str = "utf-8"

    @field_validator("fields")
    @classmethod
    def _known_fields(cls, fields: dict[str, str]) -> dict[str, str]:
        seen: dict[str, str] = {}
        for key, column in fields.items():
            field = ALIASES.get(key, key)
            if field not in FIELD_KEYS:
                allowed = ", ".join(FIELD_KEYS + tuple(ALIASES))
                raise ValueError(f'unknown field "{key}" (fields are {allowed})')
            if field in seen:
                raise ValueError(f'"{seen[field]}" and "{key}" both map the {field} field')
            if not column:
                raise ValueError(f'field "{key}" maps to an empty column name')
            seen[field] = key
        return fields

    @field_validator("encoding")
    @classmethod
    def _known_encoding(cls, encoding: str) -> str:
        try:
            codecs.lookup(encoding)
        except LookupError:
            raise ValueError(f'unknown encoding "{encoding}"') from None
        return encoding


class FieldMap:
    """Which column holds each field; explicit columns must exist, default ones may be absent."""

    def __init__(self, fields: dict[str, str]):
        self.explicit: dict[str, str] = {ALIASES.get(key, key): column
                                         for key, column in fields.items()}

    def column(self, field: str, available: Any) -> str | None:
        """The column for ``field`` among ``available`` column names; None if it has none.

        An explicit column is returned even when missing (the caller reports it); a default one
        only when present.
        """
        if field in self.explicit:
            return self.explicit[field]
        for candidate in DEFAULT_COLUMNS.get(field, ()):
            if candidate in available:
                return candidate
        return None

    def describe_input(self) -> str:
        if "input" in self.explicit:
            return f'"{self.explicit["input"]}"'
        return '"input" (or "prompt")'


def _keys(record: dict[str, Any], limit: int = 20) -> str:
    """The record's keys for an error message (the first ``limit``), or "no fields"."""
    keys = [f'"{key}"' for key in list(record)[:limit]]
    if not keys:
        return "no fields"
    more = f" and {len(record) - limit} more" if len(record) > limit else ""
    return ", ".join(keys) + more


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float)):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    if isinstance(value, dict):
        return "an object"
    return type(value).__name__


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _text(value: str, what: str, path: str, line: int) -> str:
    """Refuse strings that cannot be stored: JSON escapes can encode unpaired surrogates."""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise DataError(path, f"{what} contains an unpaired surrogate (a \\ud800-\\udfff escape "
                              f"that is not half of a pair)", line) from None
    return value


def _label(value: Any, what: str, path: str, line: int, empty_is_none: bool) -> str | None:
    """A target or group: a string, or a number written as a string; null means none."""
    if value is None:
        return None
    if isinstance(value, str):
        if empty_is_none and value == "":
            return None
        return _text(value, what, path, line)
    if _is_number(value):
        if isinstance(value, float) and not math.isfinite(value):
            raise DataError(path, f"{what} must be a string or a finite number, got {value}", line)
        return str(value)
    raise DataError(path, f"{what} must be a string or a number, got {_json_type(value)}", line)


def _weight(value: Any, column: str, path: str, line: int) -> float:
    """A weight: a number (or numeric string) above 0; empty or null means the default 1.0."""
    if value is None or value == "":
        return 1.0
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise DataError(path, f'weight ("{column}") must be a number, got {_json_type(value)}',
                        line)
    try:
        weight = float(value)
    except (ValueError, OverflowError):
        raise DataError(path, f'weight ("{column}") must be a number, got {value!r}',
                        line) from None
    if not math.isfinite(weight) or weight <= 0:
        raise DataError(path, f'weight ("{column}") must be a finite number above 0, got {value!r}',
                        line)
    return weight


# --------------------------------------------------------------------------------------------------
# Sources
# --------------------------------------------------------------------------------------------------


class FileSource(DataSource):
    """Shared parts of the file sources: options, the example builder, the empty-file check."""

    Options = FileSourceOptions
    options: FileSourceOptions

    @property
    def path(self) -> str:
        return self.options.path

    def _example(self, record: dict[str, Any], mapping: FieldMap, line: int,
                 empty_is_none: bool) -> Example:
        path = self.path
        input_column = mapping.column("input", record)
        if input_column is None or input_column not in record:
            raise DataError(path, f"missing input field {mapping.describe_input()}; "
                                  f"the record has {_keys(record)}", line)
        value = record[input_column]
        if not isinstance(value, str):
            raise DataError(path, f'input ("{input_column}") must be a string, got '
                                  f"{_json_type(value)}", line)
        values: dict[str, Any] = {"input": _text(value, "input", path, line)}
        for field in ("target", "group", "weight"):
            column = mapping.column(field, record)
            if column is None:
                continue
            if column not in record:
                raise DataError(path, f'missing {field} field "{column}" (mapped in fields); '
                                      f"the record has {_keys(record)}", line)
            if field == "weight":
                values["weight"] = _weight(record[column], column, path, line)
            else:
                values[field] = _label(record[column], f'{field} ("{column}")', path, line,
                                       empty_is_none)
        return Example(**values, source=Path(path).name, split=self.options.split,
                       provenance={"kind": "original", "line": line})

    def _no_records(self) -> DataError:
        return DataError(self.path, "no records")


class JsonlSource(FileSource):
    """JSON Lines: one JSON object per line; blank lines are skipped.

    Non-standard constants (``NaN``, ``Infinity``) are invalid JSON here, as in the JSON standard,
    so they cannot sneak in as a label ``"nan"``.
    """

    name = "jsonl"

    def load(self) -> Iterator[Example]:
        path, encoding = self.path, self.options.encoding
        mapping = FieldMap(self.options.fields)
        count = 0
        # newline="\n": a line ends at LF only (a CR before it is JSON whitespace), as in JSONL
        with _open(path, encoding, newline="\n") as handle:
            for number, line in _checked_lines(handle, path, encoding):
                if not line.strip():
                    continue
                record = _parse_json(line.rstrip("\r\n"), path, number)
                if not isinstance(record, dict):
                    raise DataError(path, f"a record must be a JSON object, got "
                                          f"{_json_type(record)}", number)
                yield self._example(record, mapping, number, empty_is_none=False)
                count += 1
        if count == 0:
            raise self._no_records()


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


def _parse_json(line: str, path: str, number: int) -> Any:
    try:
        return json.loads(line, parse_constant=_reject_constant)
    except json.JSONDecodeError as error:
        # json's messages read "Expecting value" or "Unterminated string starting at"
        at = " column" if error.msg.endswith(" at") else " at column"
        raise DataError(path, f"invalid JSON: {error.msg}{at} {error.colno}", number) from None
    except ValueError as error:  # from _reject_constant, or an integer too long to convert
        raise DataError(path, f"invalid JSON: {error}", number) from None
    except RecursionError:
        raise DataError(path, "invalid JSON: nested too deeply", number) from None


class CsvOptions(FileSourceOptions):
    """CSV options: ``delimiter`` is one character (``"\\t"`` for tab-separated files)."""

    delimiter: str = ","

    @field_validator("delimiter")
    @classmethod
    def _one_character(cls, delimiter: str) -> str:
        if len(delimiter) != 1 or delimiter in "\r\n\"":
            raise ValueError("delimiter must be one character (not a quote or a line break)")
        return delimiter


class CsvSource(FileSource):
    """CSV with a header row naming the columns; blank lines are skipped.

    A quoted field may span lines; errors name the line where the record starts. An empty cell
    means "none" for the target and group (CSV cannot tell an empty string from a missing value)
    and the default 1.0 for the weight. Rows with more or fewer cells than the header are errors:
    a shifted column would silently put a label in the input.
    """

    name = "csv"
    Options = CsvOptions
    options: CsvOptions

    def load(self) -> Iterator[Example]:
        path, encoding = self.path, self.options.encoding
        mapping = FieldMap(self.options.fields)
        count = 0
        with _open(path, encoding, newline="") as handle:
            lines = _checked_lines(handle, path, encoding)
            reader = csv.reader((line for _, line in lines), delimiter=self.options.delimiter,
                                strict=True)
            header: list[str] | None = None
            start = 1
            while True:
                start = reader.line_num + 1
                try:
                    row = next(reader)
                except StopIteration:
                    break
                except csv.Error as error:
                    raise DataError(path, f"invalid CSV: {error}", start) from None
                if not row or (len(row) == 1 and not row[0].strip()):
                    continue  # a blank line
                if header is None:
                    header = self._header(row, mapping, start)
                    continue
                if len(row) != len(header):
                    raise DataError(path, f"the row has {len(row)} cells, the header has "
                                          f"{len(header)}", start)
                record = dict(zip(header, row))
                yield self._example(record, mapping, start, empty_is_none=True)
                count += 1
        if count == 0:
            raise self._no_records()

    def _header(self, row: list[str], mapping: FieldMap, line: int) -> list[str]:
        header = [cell.strip() for cell in row]
        duplicates = sorted({cell for cell in header if header.count(cell) > 1})
        if duplicates:
            raise DataError(self.path, f"the header repeats column(s) "
                                       f"{', '.join(repr(d) for d in duplicates)}", line)
        columns = _keys(dict.fromkeys(header))
        for field in FIELD_KEYS:
            column = mapping.column(field, header)
            if field == "input" and column is None:
                raise DataError(self.path, f"no input column {mapping.describe_input()} in the "
                                           f"header; columns: {columns}", line)
            if column is not None and column not in header:
                raise DataError(self.path, f'no {field} column "{column}" (mapped in fields) in '
                                           f"the header; columns: {columns}", line)
        return header


@hookimpl
def register_data_sources(register):
    """The built-in file sources."""
    register(JsonlSource)
    register(CsvSource)
