"""From a record (a JSON object, a CSV row, a table row) to an ``Example``: the part every built-in
source shares.

A source only has to say how to walk its file: ``RecordSource.records()`` yields each record with
its position (a line, or a row number where a format has no lines). Everything after that is here:
the field mapping, the type checks, chat-style ``messages``, and ``on_error: skip``.

Field mapping: ``fields`` maps tuneloop's fields to the record's column names (or, for records that
are JSON arrays, to positions: ``{input: 0, target: 1}``):

=============  ==============================================================================
``input``      the text to classify, or the prompt (alias ``prompt``)
``target``     the label or the completion (aliases ``label``, ``completion``)
``group``      examples of a group stay on one side of the split (all chunks of a document)
``weight``     a number above 0 that scales the example's loss
``split``      the split named in the data (``train``, ``validation``/``val``/``dev``, ``test``,
               ``review``); the source pins each example to it
``messages``   a chat: a list of ``{role, content}`` turns (``{from, value}`` works too)
=============  ==============================================================================

Without a mapping, the input is the ``input`` column (``prompt`` where a record has none), the
target ``target`` (else ``label``, else ``completion``), and a record with a ``messages`` list and
no input is a chat. A column the config names explicitly must be present: a typo in the mapping is
an error, not a file full of unlabeled examples.

Bad records: every problem is a ``DataError`` naming the file and the line (or row). By default the
first one stops the load; ``on_error: skip`` skips each bad record instead and keeps the errors in
``self.skipped``, which the cycle reports (how many, and where).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Iterator, Literal, Union

from pydantic import StrictInt, StrictStr, field_validator, model_validator

from tuneloop import DataError, DataSource, Example, SourceOptions

Column = Union[str, int]

FIELD_KEYS = ("input", "target", "group", "weight", "split", "messages")
ALIASES = {"prompt": "input", "completion": "target", "label": "target"}
DEFAULT_COLUMNS: dict[str, tuple[str, ...]] = {"input": ("input", "prompt"),
                                               "target": ("target", "label", "completion"),
                                               "messages": ("messages",)}
SPLIT_NAMES = {"train": "train", "training": "train", "validation": "validation",
               "valid": "validation", "val": "validation", "dev": "validation",
               "test": "test", "testing": "test", "review": "review"}
ROLE_NAMES = {"user": "user", "human": "user", "assistant": "assistant", "gpt": "assistant",
              "bot": "assistant", "model": "assistant", "system": "system", "tool": "tool"}


# --------------------------------------------------------------------------------------------------
# Positions: where a record is, for error messages and provenance
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Position:
    """A record's place in its file: ``line 12`` for text formats, ``row 12`` for tables."""

    number: int
    unit: str = "line"
    #: the record's index where the format has one besides the line (a JSON document's array)
    index: int | None = None

    def error(self, path: str, message: str) -> DataError:
        if self.unit == "line":
            record = f"record {self.index}: " if self.index is not None else ""
            return DataError(path, record + message, self.number)
        return DataError(path, f"{self.unit} {self.number}: {message}")

    def provenance(self) -> dict[str, Any]:
        if self.index is not None:
            return {"kind": "original", self.unit: self.number, "index": self.index}
        return {"kind": "original", self.unit: self.number}


# --------------------------------------------------------------------------------------------------
# Options
# --------------------------------------------------------------------------------------------------


class RecordSourceOptions(SourceOptions):
    """Options every built-in source accepts.

    ``fields`` maps tuneloop's fields to columns (see the module docstring); ``on_error`` is
    ``raise`` (stop at the first bad record) or ``skip`` (skip and report them); by default it is
    ``data.on_error``. ``chat_format`` renders ``messages`` as plain ``role: text`` lines, or with
    the model tokenizer's chat template (``tokenizer``), or keeps them as a chat (``messages``: the
    input is the JSON list of turns before the answer, which the causal-LM trainer renders with the
    chat template and trains on every assistant turn of); ``chat_turns: each`` makes one example per
    assistant turn instead of one per chat (the last turn).
    """

    fields: dict[str, StrictStr | StrictInt] = {}
    on_error: Literal["raise", "skip"] | None = None
    chat_format: Literal["plain", "tokenizer", "messages"] = "plain"
    chat_turns: Literal["last", "each"] = "last"

    @field_validator("fields")
    @classmethod
    def _known_fields(cls, fields: dict[str, Column]) -> dict[str, Column]:
        seen: dict[str, str] = {}
        for key, column in fields.items():
            field = ALIASES.get(key, key)
            if field not in FIELD_KEYS:
                allowed = ", ".join(FIELD_KEYS + tuple(ALIASES))
                raise ValueError(f'unknown field "{key}" (fields are {allowed})')
            if field in seen:
                raise ValueError(f'"{seen[field]}" and "{key}" both map the {field} field')
            if isinstance(column, bool) or column == "" or (isinstance(column, int) and column < 0):
                raise ValueError(f'field "{key}" maps to {column!r}, not a column name or position')
            seen[field] = key
        if "messages" in seen and "input" in seen:
            raise ValueError("map either messages (a chat) or input, not both")
        return fields

    @model_validator(mode="after")
    def _one_split_rule(self) -> "RecordSourceOptions":
        if self.split is not None and any(ALIASES.get(k, k) == "split" for k in self.fields):
            raise ValueError("set either split (one split for the whole source) or fields.split "
                             "(a column naming each example's split), not both")
        return self


# --------------------------------------------------------------------------------------------------
# Field mapping
# --------------------------------------------------------------------------------------------------


class FieldMap:
    """Which column holds each field; explicit columns must exist, default ones may be absent.

    Records are mappings (JSON objects, CSV rows) or sequences (JSON arrays, whose columns are
    positions).
    """

    def __init__(self, fields: dict[str, Column]):
        self.explicit: dict[str, Column] = {ALIASES.get(key, key): column
                                            for key, column in fields.items()}

    def column(self, field: str, available: Any) -> Column | None:
        """The column for ``field`` among ``available`` column names; None if it has none.

        An explicit column is returned even when missing (the caller reports it); a default one
        only when present.
        """
        if field in self.explicit:
            return self.explicit[field]
        if isinstance(available, (list, tuple)) and available and not isinstance(available[0], str):
            return None  # an array record has no column names to default to
        for candidate in DEFAULT_COLUMNS.get(field, ()):
            if candidate in available:
                return candidate
        return None

    def describe_input(self) -> str:
        if "input" in self.explicit:
            return f'"{self.explicit["input"]}"'
        if "messages" in self.explicit:
            return f'"{self.explicit["messages"]}" (messages)'
        return '"input" (or "prompt") or a "messages" chat'


_MISSING = object()


def lookup(record: Any, column: Column) -> Any:
    """The value of ``column`` in a record, or ``_MISSING``."""
    if isinstance(record, dict):
        return record.get(column if isinstance(column, str) else str(column), _MISSING)
    if isinstance(column, str):
        if not column.isdigit():
            return _MISSING
        column = int(column)
    return record[column] if column < len(record) else _MISSING


def describe_keys(record: Any, limit: int = 20) -> str:
    """The record's keys (or length) for an error message."""
    if not isinstance(record, dict):
        return f"{len(record)} item{'s' if len(record) != 1 else ''}"
    keys = [f'"{key}"' for key in list(record)[:limit]]
    if not keys:
        return "no fields"
    more = f" and {len(record) - limit} more" if len(record) > limit else ""
    return ", ".join(keys) + more


def json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float)):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, (list, tuple)):
        return "an array"
    if isinstance(value, dict):
        return "an object"
    return type(value).__name__


class BadValue(Exception):
    """A value that cannot become a field; turned into a DataError with the record's position."""


def text_value(value: str, what: str) -> str:
    """Refuse strings that cannot be stored: JSON escapes can encode unpaired surrogates."""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise BadValue(f"{what} contains an unpaired surrogate (a \\ud800-\\udfff escape that is "
                       f"not half of a pair)") from None
    return value


def mapped_value(record: Any, field: str, column: Column, empty_is_none: bool) -> Any:
    """The value of ``field`` read from ``column`` of ``record``, checked for its kind (a weight,
    a split, else a label-like string); a missing column is a BadValue naming the field."""
    value = lookup(record, column)
    if value is _MISSING:
        raise BadValue(f'missing {field} field "{column}" (mapped in fields); the record has '
                       f"{describe_keys(record)}")
    if field == "weight":
        return weight_value(value, column)
    if field == "split":
        return split_value(value, column)
    return label_value(value, f'{field} ("{column}")', empty_is_none)


def label_value(value: Any, what: str, empty_is_none: bool) -> str | None:
    """A target or group: a string, or a number written as a string; null means none."""
    if value is None:
        return None
    if isinstance(value, str):
        if empty_is_none and value == "":
            return None
        return text_value(value, what)
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        if isinstance(value, float) and not math.isfinite(value):
            raise BadValue(f"{what} must be a string or a finite number, got {value}")
        return str(value)
    raise BadValue(f"{what} must be a string or a number, got {json_type(value)}")


def weight_value(value: Any, column: Column) -> float:
    """A weight: a number (or numeric string) above 0; empty or null means the default 1.0."""
    if value is None or value == "":
        return 1.0
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise BadValue(f'weight ("{column}") must be a number, got {json_type(value)}')
    try:
        weight = float(value)
    except (ValueError, OverflowError):
        raise BadValue(f'weight ("{column}") must be a number, got {value!r}') from None
    if not math.isfinite(weight) or weight <= 0:
        raise BadValue(f'weight ("{column}") must be a finite number above 0, got {value!r}')
    return weight


def split_value(value: Any, column: Column) -> str | None:
    """A split named in the data, normalised (``val`` and ``dev`` are ``validation``)."""
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise BadValue(f'split ("{column}") must be a string, got {json_type(value)}')
    split = SPLIT_NAMES.get(value.strip().lower())
    if split is None:
        raise BadValue(f'split ("{column}") is "{value}"; splits are train, validation (val, '
                       f"dev), test and review")
    return split


# --------------------------------------------------------------------------------------------------
# Chats
# --------------------------------------------------------------------------------------------------


def chat_turns(value: Any, column: Column) -> list[dict[str, str]]:
    """A list of ``{"role", "content"}`` turns, checked; ShareGPT's ``from``/``value`` accepted."""
    if not isinstance(value, (list, tuple)) or not value:
        raise BadValue(f'messages ("{column}") must be a non-empty array of turns, got '
                       f"{json_type(value) if value != [] else 'an empty array'}")
    turns = []
    for number, turn in enumerate(value):
        if not isinstance(turn, dict):
            raise BadValue(f"messages[{number}] must be an object with role and content, got "
                           f"{json_type(turn)}")
        role = turn.get("role", turn.get("from"))
        content = turn.get("content", turn.get("value"))
        if not isinstance(role, str) or ROLE_NAMES.get(role.lower()) is None:
            raise BadValue(f"messages[{number}].role must be one of user, assistant, system, "
                           f"tool, got {role!r}")
        if not isinstance(content, str):
            raise BadValue(f"messages[{number}].content must be a string, got "
                           f"{json_type(content)}")
        turns.append({"role": ROLE_NAMES[role.lower()],
                      "content": text_value(content, f"messages[{number}].content")})
    return turns


def render_plain(turns: list[dict[str, str]]) -> str:
    """A chat as ``role: text`` lines ending with ``assistant:``, the prompt a completion follows."""
    return "".join(f"{turn['role']}: {turn['content']}\n" for turn in turns) + "assistant:"


# --------------------------------------------------------------------------------------------------
# The base of every built-in source
# --------------------------------------------------------------------------------------------------


class RecordSource(DataSource):
    """A source that walks records and maps their fields; subclasses implement ``records()``.

    ``records()`` yields ``(position, record)``; a record-level problem (a malformed line, bad
    bytes on one line) is yielded as ``(position, DataError)`` so that ``on_error: skip`` can skip
    it and go on. A problem with the file as a whole (missing, not a database, unreadable) is
    raised.
    """

    Options = RecordSourceOptions
    options: RecordSourceOptions
    #: CSV and similar formats cannot tell an empty cell from a missing value
    empty_is_none: ClassVar[bool] = False

    def __init__(self, options: Any = None):
        super().__init__(options)
        self.skipped: list[DataError] = []
        self.tokenizer: Any = None
        self._plans: dict[Any, tuple] = {}
        self._source_label = ""

    @property
    def needs_tokenizer(self) -> bool:
        """Rendering chats with the model's chat template needs its tokenizer (``messages``: to
        check that it has one before anything trains)."""
        return self.options.chat_format in ("tokenizer", "messages")

    @property
    def path(self) -> str:
        return self.options.path

    @property
    def label(self) -> str:
        """What ``Example.source`` says: the file's name."""
        return Path(self.path).name

    def records(self) -> Iterator[tuple[Position, Any]]:
        raise NotImplementedError

    def load(self) -> Iterator[Example]:
        mapping = FieldMap(self.options.fields)
        self._check_chat_template()
        skip = self.options.on_error == "skip"
        self.skipped = []
        self._plans = {}
        self._source_label = self.label
        count = 0
        for position, record in self.records():
            try:
                if isinstance(record, DataError):
                    raise record
                examples = self.examples(record, mapping, position)
            except DataError as error:
                if not skip:
                    raise
                self.skipped.append(error)
                continue
            count += len(examples)
            yield from examples
        if count == 0:
            if self.skipped:
                raise DataError(self.path, f"no valid records: all {len(self.skipped)} were "
                                           f"skipped; the first: {self.skipped[0]}")
            raise DataError(self.path, "no records")

    # ---- one record ------------------------------------------------------------------------

    def examples(self, record: Any, mapping: FieldMap, position: Position) -> list[Example]:
        """The example(s) a record makes (a chat with ``chat_turns: each`` makes several)."""
        try:
            return self._examples(record, mapping, position)
        except BadValue as error:
            raise position.error(self.path, str(error)) from None

    def _plan(self, record: Any, mapping: FieldMap) -> tuple:
        """Which column each field comes from, for records with these keys (worked out once per
        shape of record: a file's records nearly always share one)."""
        shape = tuple(record) if isinstance(record, dict) else len(record)
        plan = self._plans.get(shape)
        if plan is None:
            columns = tuple((field, column) for field in ("target", "group", "weight", "split")
                            if (column := mapping.column(field, record)) is not None)
            plan = (columns, mapping.column("input", record), mapping.column("messages", record))
            if len(self._plans) < 64:
                self._plans[shape] = plan
        return plan

    def _examples(self, record: Any, mapping: FieldMap, position: Position) -> list[Example]:
        if not isinstance(record, (dict, list, tuple)):
            raise BadValue(f"a record must be an object (or an array), got {json_type(record)}")
        columns, input_column, messages_column = self._plan(record, mapping)
        values: dict[str, Any] = {}
        for field, column in columns:
            values[field] = mapped_value(record, field, column, self.empty_is_none)
        values.setdefault("split", self.options.split)

        if input_column is None and isinstance(record, dict) and messages_column is not None:
            return self._chat_examples(record, messages_column, values, position)
        if input_column is None and not isinstance(record, dict):
            raise BadValue(f"the record is an array of {len(record)} items: map fields by "
                           f"position, e.g. fields: {{input: 0, target: 1}}")
        value = lookup(record, input_column) if input_column is not None else _MISSING
        if value is _MISSING:
            raise BadValue(f"missing input field {mapping.describe_input()}; the record has "
                           f"{describe_keys(record)}")
        if not isinstance(value, str):
            raise BadValue(f'input ("{input_column}") must be a string, got {json_type(value)}')
        values["input"] = text_value(value, "input")
        return [Example(**values, source=self._source_label, provenance=position.provenance())]

    def _chat_examples(self, record: dict, column: Column, values: dict[str, Any],
                       position: Position) -> list[Example]:
        value = lookup(record, column)
        if value is _MISSING:
            raise BadValue(f'missing messages field "{column}" (mapped in fields); the record '
                           f"has {describe_keys(record)}")
        if "target" in values:
            raise BadValue("a chat's completion is its last assistant turn; do not map a target "
                           "as well")
        return self.chat_examples(chat_turns(value, column), values, position)

    def chat_examples(self, turns: list[dict[str, str]], values: dict[str, Any],
                      position: Position) -> list[Example]:
        """The example(s) of a checked chat: each cut before an answered assistant turn makes a
        prompt (the turns before it, rendered by ``chat_format``) and its completion (the turn)."""
        answers = [i for i, turn in enumerate(turns) if turn["role"] == "assistant"]
        if self.options.chat_turns == "each" and answers:
            cuts = answers
        elif answers and answers[-1] == len(turns) - 1:
            cuts = [answers[-1]]
        else:
            cuts = []  # the chat ends with the user's turn: a prompt to answer (unlabeled)
        made = []
        for cut in cuts or [len(turns)]:
            if self.options.chat_format == "messages" and not any(
                    turn["role"] not in ("assistant", "system") for turn in turns[:cut]):
                raise BadValue(f"messages[{cut}]: an assistant turn with no user turn before it "
                               f"has nothing to answer")
            prompt = self._render(turns[:cut])
            target = (" " + turns[cut]["content"] if self.options.chat_format == "plain"
                      else turns[cut]["content"]) if cut < len(turns) else None
            provenance = dict(position.provenance(), turn=cut) if len(cuts) > 1 else \
                position.provenance()
            made.append(Example(**values, input=prompt, target=target, source=self._source_label,
                                provenance=provenance))
        return made

    def _render(self, turns: list[dict[str, str]]) -> str:
        if self.options.chat_format == "plain":
            return render_plain(turns)
        if self.options.chat_format == "messages":
            return json.dumps(turns, ensure_ascii=False)
        tokenizer = self.tokenizer
        if tokenizer is None:
            raise DataError(self.path, "chat_format: tokenizer needs the model's tokenizer, which "
                                       "was not given to the source")
        if not getattr(tokenizer, "chat_template", None):
            raise DataError(self.path, "chat_format: tokenizer, but the model's tokenizer has no "
                                       "chat template; use chat_format: plain")
        return tokenizer.apply_chat_template(turns, tokenize=False, add_generation_prompt=True)

    def _check_chat_template(self) -> None:
        """``chat_format: messages`` leaves the rendering to the trainer, through the model's chat
        template: a model without one is refused here, before a cycle starts, rather than at the
        first training step. (Without a tokenizer, as in a unit test, the trainer checks.)"""
        if self.options.chat_format != "messages" or self.tokenizer is None:
            return
        if not getattr(self.tokenizer, "chat_template", None):
            name = getattr(self.tokenizer, "name_or_path", "") or "the model"
            raise DataError(self.path, f"chat_format: messages trains through the model's chat "
                                       f"template, and the tokenizer of {name} has none; use "
                                       f"chat_format: plain (role: text lines) or a model with one")
