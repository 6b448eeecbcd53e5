"""Line-based text files: JSON Lines, CSV and TSV.

Each reads its file as a stream, one line (or CSV record) at a time, so a source never holds a whole
file in memory, and ``load()`` returns a generator the cycle can consume as it likes.

Decoding is strict: a byte that is not valid in the configured encoding is an error naming its line
and column, never a silently substituted character that would end up in training data.
"""

from __future__ import annotations

import codecs
import csv
import json
import re
from typing import IO, Any, Iterator, Literal

from pydantic import field_validator

from tuneloop import DataError
from tuneloop.plugins.sources.records import (FIELD_KEYS, FieldMap, Position, RecordSource,
                                              RecordSourceOptions, describe_keys, json_type)

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


def open_text(path: str, encoding: str, newline: str) -> IO[str]:
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


def undecodable(line: str, encoding: str) -> str | None:
    """The message for a line holding bytes that are not valid in ``encoding``, else None."""
    bad = _UNDECODABLE.search(line)
    if bad is None:
        return None
    byte = ord(bad.group()) - 0xDC00
    return f"not valid {encoding}: byte 0x{byte:02x} at column {bad.start() + 1}"


def numbered_lines(handle: IO[str], path: str) -> Iterator[tuple[int, str]]:
    """Yield ``(line number, line)``, without a leading byte-order mark; I/O errors name the line."""
    number = 0
    try:
        for number, line in enumerate(handle, 1):
            if number == 1 and line.startswith("\ufeff"):
                line = line[1:]  # a byte-order mark (Excel writes one) is not part of the data
            yield number, line
    except OSError as error:  # an I/O error part way through (a vanished network drive)
        raise DataError(path, f"cannot read: {error.strerror or error}", number + 1) from None


class TextFileOptions(RecordSourceOptions):
    """``encoding``: the file's text encoding, checked strictly."""

    encoding: str = "utf-8"

    @field_validator("encoding")
    @classmethod
    def _known_encoding(cls, encoding: str) -> str:
        try:
            codecs.lookup(encoding)
        except LookupError:
            raise ValueError(f'unknown encoding "{encoding}"') from None
        return encoding


# --------------------------------------------------------------------------------------------------
# JSON Lines
# --------------------------------------------------------------------------------------------------


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


_DECODER = json.JSONDecoder(parse_constant=_reject_constant)


def parse_json(text: str) -> Any:
    """Standard JSON (no NaN or Infinity); raises ``ValueError`` with a readable message."""
    try:
        return _DECODER.decode(text)
    except json.JSONDecodeError as error:
        # json's messages read "Expecting value" or "Unterminated string starting at"
        at = " column" if error.msg.endswith(" at") else " at column"
        raise ValueError(f"invalid JSON: {error.msg}{at} {error.colno}") from None
    except ValueError as error:  # from _reject_constant, or an integer too long to convert
        raise ValueError(f"invalid JSON: {error}") from None
    except RecursionError:
        raise ValueError("invalid JSON: nested too deeply") from None


class JsonlSource(RecordSource):
    """JSON Lines: one JSON object per line; blank lines are skipped.

    Non-standard constants (``NaN``, ``Infinity``) are invalid JSON here, as in the JSON standard,
    so they cannot sneak in as a label ``"nan"``. The file streams: memory does not grow with it.
    """

    name = "jsonl"
    Options = TextFileOptions
    options: TextFileOptions

    def records(self) -> Iterator[tuple[Position, Any]]:
        path, encoding = self.path, self.options.encoding
        # newline="\n": a line ends at LF only (a CR before it is JSON whitespace), as in JSONL
        with open_text(path, encoding, newline="\n") as handle:
            for number, line in numbered_lines(handle, path):
                position = Position(number)
                problem = undecodable(line, encoding)
                if problem is not None:
                    yield position, DataError(path, problem, number)
                    continue
                if not line.strip():
                    continue
                try:
                    record = parse_json(line.rstrip("\r\n"))
                except ValueError as error:
                    yield position, DataError(path, str(error), number)
                    continue
                if not isinstance(record, dict):
                    yield position, DataError(path, f"a record must be a JSON object, got "
                                                    f"{json_type(record)}", number)
                    continue
                yield position, record


# --------------------------------------------------------------------------------------------------
# CSV and TSV
# --------------------------------------------------------------------------------------------------


class CsvOptions(TextFileOptions):
    """CSV options: ``delimiter`` is one character (``"\\t"`` for tab-separated files);
    ``quoting: none`` reads quote characters as text (TSV files usually do not quote)."""

    delimiter: str = ","
    quoting: Literal["minimal", "none"] = "minimal"

    @field_validator("delimiter")
    @classmethod
    def _one_character(cls, delimiter: str) -> str:
        if len(delimiter) != 1 or delimiter in "\r\n\"":
            raise ValueError("delimiter must be one character (not a quote or a line break)")
        return delimiter


class CsvSource(RecordSource):
    """CSV with a header row naming the columns; blank lines are skipped.

    A quoted field may span lines; errors name the line where the record starts. An empty cell
    means "none" for the target, group and split (CSV cannot tell an empty string from a missing
    value) and the default 1.0 for the weight. Rows with more or fewer cells than the header are
    errors: a shifted column would silently put a label in the input.
    """

    name = "csv"
    Options = CsvOptions
    options: CsvOptions
    empty_is_none = True

    def records(self) -> Iterator[tuple[Position, Any]]:
        path, encoding = self.path, self.options.encoding
        with open_text(path, encoding, newline="") as handle:
            lines = numbered_lines(handle, path)
            bad_lines: dict[int, str] = {}

            def checked() -> Iterator[str]:
                for number, line in lines:
                    problem = undecodable(line, encoding)
                    if problem is not None:
                        bad_lines[number] = problem
                        line = _UNDECODABLE.sub("\ufffd", line)
                    yield line

            quoting = csv.QUOTE_NONE if self.options.quoting == "none" else csv.QUOTE_MINIMAL
            reader = csv.reader(checked(), delimiter=self.options.delimiter, strict=True,
                                quoting=quoting)
            header: list[str] | None = None
            while True:
                start = reader.line_num + 1
                try:
                    row = next(reader)
                except StopIteration:
                    break
                except csv.Error as error:
                    problem = DataError(path, f"invalid CSV: {error}", start)
                    if header is None:
                        raise problem from None
                    yield Position(start), problem
                    continue
                bad = [number for number in bad_lines if start <= number <= reader.line_num]
                if bad:
                    problem = DataError(path, bad_lines[bad[0]], bad[0])
                    bad_lines.clear()
                    if header is None:
                        raise problem
                    yield Position(start), problem
                    continue
                if not row or (len(row) == 1 and not row[0].strip()):
                    continue  # a blank line
                if header is None:
                    header = self._header(row, start)
                    continue
                if len(row) != len(header):
                    yield Position(start), DataError(
                        path, f"the row has {len(row)} cells, the header has {len(header)}", start)
                    continue
                yield Position(start), dict(zip(header, row))

    def _header(self, row: list[str], line: int) -> list[str]:
        mapping = FieldMap(self.options.fields)
        header = [cell.strip() for cell in row]
        duplicates = sorted({cell for cell in header if header.count(cell) > 1})
        if duplicates:
            raise DataError(self.path, f"the header repeats column(s) "
                                       f"{', '.join(repr(d) for d in duplicates)}", line)
        columns = describe_keys(dict.fromkeys(header))
        for field in FIELD_KEYS:
            column = mapping.column(field, header)
            if field == "input" and column is None and mapping.column("messages", header) is None:
                raise DataError(self.path, f"no input column {mapping.describe_input()} in the "
                                           f"header; columns: {columns}", line)
            if column is not None and str(column) not in header:
                raise DataError(self.path, f'no {field} column "{column}" (mapped in fields) in '
                                           f"the header; columns: {columns}", line)
        return header


class TsvOptions(CsvOptions):
    """TSV: tab-separated, quote characters read as text by default."""

    delimiter: str = "\t"
    quoting: Literal["minimal", "none"] = "none"


class TsvSource(CsvSource):
    """Tab-separated values with a header row (a CSV source with tab and no quoting by default)."""

    name = "tsv"
    Options = TsvOptions
    options: TsvOptions
