"""A JSON document: an array of records, or one nested inside objects (``record_path``).

Many datasets ship as one JSON file rather than JSON Lines: a top-level array of records, or an
object whose keys hold the splits (CLINC150's ``{"train": [[text, intent], ...], "val": ...}``).
``record_path`` says where the records are (``train``, ``data.items``, or a list of keys and
array positions); records may be objects or arrays (map array fields by position:
``fields: {input: 0, target: 1}``).

The file's text is read whole (a JSON document has no record boundaries to stream by), but it is
never parsed whole: the path is walked with a small scanner, and each record is parsed on its own
by the C JSON decoder as the source yields it. That keeps memory near the size of the text (a parsed
document takes several times more) and gives every record its line, so an error names the line the
record starts on and its index in the array.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any, Iterator, Union

from pydantic import field_validator

from tuneloop import DataError
from tuneloop.plugins.sources.records import Position, RecordSource, json_type
from tuneloop.plugins.sources.text_files import _ERROR_HANDLER, TextFileOptions, undecodable

PathPart = Union[str, int]
_WHITESPACE = re.compile(r"[ \t\n\r]*")
_UNDECODABLE = re.compile("[\udc00-\udcff]")


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


_DECODER = json.JSONDecoder(parse_constant=_reject_constant)


class JsonOptions(TextFileOptions):
    """``record_path``: where the array of records is, as dotted keys (``data.train``) or a list
    of keys and array positions; unset means the document itself is the array."""

    record_path: str | list[PathPart] | None = None

    @field_validator("record_path")
    @classmethod
    def _parts(cls, value: Any) -> Any:
        if isinstance(value, str):
            if not value or any(part == "" for part in value.split(".")):
                raise ValueError("record_path has an empty key; write keys separated by dots")
        elif isinstance(value, list) and not value:
            raise ValueError("record_path is an empty list")
        return value

    def path_parts(self) -> list[PathPart]:
        if self.record_path is None:
            return []
        if isinstance(self.record_path, str):
            return list(self.record_path.split("."))
        return list(self.record_path)


class JsonError(Exception):
    """A problem at a character offset of the document."""

    def __init__(self, message: str, offset: int):
        super().__init__(message)
        self.offset = offset


class Scanner:
    """Walks a JSON text structurally; values it does not need are skipped by the C decoder."""

    def __init__(self, text: str):
        self.text = text

    def space(self, at: int) -> int:
        return _WHITESPACE.match(self.text, at).end()  # type: ignore[union-attr]

    def char(self, at: int) -> str:
        return self.text[at] if at < len(self.text) else ""

    def value(self, at: int) -> tuple[Any, int]:
        try:
            return _DECODER.raw_decode(self.text, at)
        except json.JSONDecodeError as error:
            at_word = " column" if error.msg.endswith(" at") else " at column"
            raise JsonError(f"invalid JSON: {error.msg}{at_word} {error.colno}", error.pos) from None
        except ValueError as error:  # a NaN/Infinity constant, or an absurdly long integer
            raise JsonError(f"invalid JSON: {error}", at) from None
        except RecursionError:
            raise JsonError("invalid JSON: nested too deeply", at) from None

    def expect(self, at: int, characters: str, what: str) -> int:
        at = self.space(at)
        if self.char(at) not in characters or not self.char(at):
            found = repr(self.char(at)) if self.char(at) else "the end of the file"
            raise JsonError(f"invalid JSON: expected {what}, found {found}", at)
        return at

    def object_members(self, at: int) -> Iterator[tuple[str, int]]:
        """At ``{``: yield ``(key, offset of its value)``; the caller must move past each value
        and send the offset after it back (``generator.send(end)``)."""
        at = self.space(at + 1)
        if self.char(at) == "}":
            return
        while True:
            at = self.expect(at, '"', "a key in double quotes")
            key, at = self.value(at)
            at = self.expect(at, ":", "':' after a key") + 1
            end = yield key, self.space(at)
            at = self.expect(end, ",}", "',' or '}'")
            if self.char(at) == "}":
                return
            at += 1

    def array_items(self, at: int) -> Iterator[int]:
        """At ``[``: yield the offset of each item; the caller sends back the offset after it."""
        at = self.space(at + 1)
        if self.char(at) == "]":
            return
        while True:
            end = yield self.space(at)
            at = self.expect(end, ",]", "',' or ']'")
            if self.char(at) == "]":
                return
            at += 1

    def skip(self, at: int) -> int:
        return self.value(at)[1]


class JsonSource(RecordSource):
    """A JSON document: an array of records, at its top or at ``record_path``.

    Errors name the line a record starts on and its index in the array; a document that is not
    valid JSON (anywhere, not only around the records) is an error naming its line. Bytes that are
    not valid in the encoding are errors of the record holding them (``on_error: skip`` skips it).
    """

    name = "json"
    Options = JsonOptions
    options: JsonOptions

    @property
    def label(self) -> str:
        name = Path(self.path).name
        parts = self.options.path_parts()
        return f"{name}#{'.'.join(str(part) for part in parts)}" if parts else name

    def records(self) -> Iterator[tuple[Position, Any]]:
        text = self._read()
        scanner = Scanner(text)
        lines = LineCounter(text)
        try:
            start = scanner.space(1 if text.startswith("\ufeff") else 0)
            if start >= len(text):
                raise DataError(self.path, "no records (the file is empty)")
            yield from self._walk(scanner, lines, start)
        except JsonError as error:
            raise DataError(self.path, str(error), lines.line(error.offset)) from None

    def _read(self) -> str:
        try:
            with open(self.path, "rb") as handle:
                data = handle.read()
        except FileNotFoundError:
            raise DataError(self.path, "file not found") from None
        except IsADirectoryError:
            raise DataError(self.path, "is a directory, not a file") from None
        except PermissionError:
            raise DataError(self.path, "permission denied") from None
        except OSError as error:
            raise DataError(self.path, f"cannot read: {error.strerror or error}") from None
        try:
            return data.decode(self.options.encoding, errors=_ERROR_HANDLER)
        except LookupError as error:  # pragma: no cover - the option validator checks it
            raise DataError(self.path, f"unknown encoding: {error}") from None

    def _walk(self, scanner: Scanner, lines: "LineCounter", at: int) -> Iterator[tuple[Position, Any]]:
        """Follow ``record_path`` from the top, yield the records, then check the rest is JSON."""
        parts = self.options.path_parts()
        enclosing: list[Iterator[Any]] = []  # the containers around the records, to finish later
        walked: list[str] = []
        for part in parts:
            kind = scanner.char(at)
            where = ".".join(walked) or "the top of the document"
            if kind == "{":
                members = scanner.object_members(at)
                keys: list[str] = []
                found = self._find_member(scanner, members, str(part), keys)
                if found is None:
                    listing = ", ".join(f'"{key}"' for key in keys[:20]) or "no keys"
                    raise DataError(self.path, f'record_path: no key "{part}" at {where}; it has '
                                               f"{listing}")
                at = found
                enclosing.append(members)
            elif kind == "[":
                if not isinstance(part, int) and not str(part).isdigit():
                    raise DataError(self.path, f'record_path: "{part}" is a key, but {where} is '
                                               f"an array (use a position)")
                items = scanner.array_items(at)
                found = self._find_item(scanner, items, int(part))
                if found is None:
                    raise DataError(self.path, f"record_path: {where} has no item {part}")
                at = found
                enclosing.append(items)
            else:
                value, _ = scanner.value(at)
                raise DataError(self.path, f"record_path: {where} is {json_type(value)}, not an "
                                           f"object or array")
            walked.append(str(part))

        if scanner.char(at) != "[":
            where = ".".join(walked) or "the document"
            value, _ = scanner.value(at)
            hint = ""
            if isinstance(value, dict):
                keys_text = ", ".join(f'"{key}"' for key in list(value)[:20])
                hint = f"; set record_path to the key that holds the records ({keys_text})"
            raise DataError(self.path, f"{where} is {json_type(value)}, not an array of records"
                                       f"{hint}", lines.line(at))
        end = yield from self._records(scanner, lines, at)
        # The rest of the document must be valid JSON too: a truncated file is an error.
        for container in reversed(enclosing):
            while True:
                try:
                    item = container.send(end)
                except StopIteration:
                    break
                start = item[1] if isinstance(item, tuple) else item
                end = scanner.skip(start)
            end = self._closing(scanner, end)
        rest = scanner.space(end)
        if rest < len(scanner.text):
            raise JsonError("invalid JSON: extra data after the document", rest)

    @staticmethod
    def _find_member(scanner: Scanner, members: Iterator[Any], wanted: str,
                     keys: list[str]) -> int | None:
        try:
            key, start = next(members)
            while True:
                if key == wanted:
                    return start
                keys.append(key)
                key, start = members.send(scanner.skip(start))
        except StopIteration:
            return None

    @staticmethod
    def _find_item(scanner: Scanner, items: Iterator[int], wanted: int) -> int | None:
        try:
            start = next(items)
            for _ in range(wanted):
                start = items.send(scanner.skip(start))
            return start
        except StopIteration:
            return None

    @staticmethod
    def _closing(scanner: Scanner, end: int) -> int:
        """The offset after the bracket that closed the container a generator just finished."""
        at = scanner.space(end)
        if scanner.char(at) in "]}" and scanner.char(at):
            return at + 1
        return end

    def _records(self, scanner: Scanner, lines: "LineCounter",
                 at: int) -> Iterator[tuple[Position, Any]]:
        items = scanner.array_items(at)
        index = 0
        try:
            start = next(items)
        except StopIteration:
            return self._closing(scanner, at + 1)
        while True:
            record, end = scanner.value(start)
            position = Position(lines.line(start), index=index)
            problem = _UNDECODABLE.search(scanner.text, start, end)
            if problem is not None:
                line_start = scanner.text.rfind("\n", 0, problem.start()) + 1
                message = undecodable(scanner.text[line_start:problem.end()],
                                      self.options.encoding)
                yield position, DataError(self.path, f"record {index}: {message}",
                                          lines.line(problem.start()))
            else:
                yield position, record
            index += 1
            try:
                start = items.send(end)
            except StopIteration:
                return self._closing(scanner, end)


class LineCounter:
    """Line numbers of offsets, counted incrementally (offsets mostly grow)."""

    def __init__(self, text: str):
        self.text = text
        self.offset = 0
        self.number = 1

    def line(self, offset: int) -> int:
        if offset < self.offset:
            return self.text.count("\n", 0, offset) + 1
        self.number += self.text.count("\n", self.offset, offset)
        self.offset = offset
        return self.number
