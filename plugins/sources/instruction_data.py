"""Instruction and chat datasets as the field writes them: Alpaca, ShareGPT, and LLaMA-Factory's
``dataset_info.json`` entries.

==================  ============================================================================
``alpaca``          ``{"instruction", "input", "output"}`` records, with an optional ``system``
                    prompt and ``history`` (a list of ``[instruction, answer]`` pairs before it)
``sharegpt``        ``{"conversations": [{"from": "human", "value": ...}, ...]}`` records; also
                    ``role``/``content`` turns, and a ``messages`` list (the OpenAI form)
``dataset_info``    one entry of a LLaMA-Factory ``dataset_info.json`` (``path`` is that file,
                    ``dataset`` the entry's name): its ``file_name``, ``formatting`` (``alpaca``,
                    ``sharegpt`` or ``openai``), ``columns`` and ``tags`` are honoured
==================  ============================================================================

Files are a JSON array (at the top, or at ``record_path``) or JSON Lines, told apart by the
extension (``.jsonl``, ``.ndjson``) or else by the content (a document that starts with ``[``, or
whose first line is not a whole JSON object, is a JSON document); ``file_format`` forces one.

Every record becomes a chat, converted as LLaMA-Factory converts it (``data/converter.py``), so a
dataset behaves here as it did there: Alpaca's user turn is ``instruction`` and ``input`` joined by
a newline, after the history's turns; ShareGPT's roles map ``human`` -> user, ``gpt`` -> assistant,
``system`` -> system, ``function_call`` -> assistant (a call the model makes) and ``observation``
-> tool (what the call returned), a first ``system`` turn becomes the system prompt, and turns must
alternate (user or observation, then assistant or function call). The chat becomes the example the
causal-LM trainer reads (``chat_format: messages``, the default here): the input is the JSON list
of turns before the last answer, the target that answer; the trainer renders the conversation with
the model's chat template and trains on every assistant turn (the history's answers too, as
LLaMA-Factory does). ``chat_format: plain`` renders ``role: text`` lines instead, for a model
without a chat template.

Bad records are ``DataError``s naming the file and line (and the turn), like every built-in
source's; ``on_error: skip`` skips and reports them.
"""

from __future__ import annotations

import difflib
import json
from pathlib import Path
from typing import Any, ClassVar, Iterator, Literal

from pydantic import StrictStr, field_validator

from tuneloop import DataError, Example
from tuneloop.plugins.sources.json_document import JsonOptions, JsonSource
from tuneloop.plugins.sources.records import (ALIASES, BadValue, FieldMap, Position, describe_keys,
                                              json_type, mapped_value, text_value, _MISSING)
from tuneloop.plugins.sources.text_files import JsonlSource

#: the ``fields`` an instruction source still takes (its text comes through ``columns``)
INSTRUCTION_FIELDS = ("group", "weight", "split")
ALPACA_COLUMNS = ("prompt", "query", "response", "system", "history")
SHAREGPT_COLUMNS = ("messages", "system")
#: columns LLaMA-Factory knows that tuneloop does not read: refused when a record uses them
UNSUPPORTED_COLUMNS = {
    "tools": "tool descriptions are not passed to the chat template",
    "images": "multimodal data is not supported", "videos": "multimodal data is not supported",
    "audios": "multimodal data is not supported",
    "chosen": "preference datasets (ranking) are not read from files; tuneloop's DPO learns from "
              "experts' pairwise ratings",
    "rejected": "preference datasets (ranking) are not read from files; tuneloop's DPO learns "
                "from experts' pairwise ratings",
    "kto_tag": "KTO datasets are not read from files; tuneloop's KTO learns from experts' thumbs",
}
TAG_NAMES = ("role_tag", "content_tag", "user_tag", "assistant_tag", "observation_tag",
             "function_tag", "system_tag")
SHAREGPT_TAGS = {"role_tag": "from", "content_tag": "value", "user_tag": "human",
                 "assistant_tag": "gpt", "observation_tag": "observation",
                 "function_tag": "function_call", "system_tag": "system"}
OPENAI_TAGS = {"role_tag": "role", "content_tag": "content", "user_tag": "user",
               "assistant_tag": "assistant", "observation_tag": "tool",
               "function_tag": "function", "system_tag": "system"}
#: without explicit tags, both spellings are read (ShareGPT's and OpenAI's), turn by turn
DEFAULT_ROLES = {"human": "user", "user": "user", "gpt": "assistant", "assistant": "assistant",
                 "system": "system", "function_call": "assistant", "observation": "tool",
                 "tool": "tool"}
ASKING = ("user", "tool")  # the roles a turn at an even position (0, 2, ...) may have


# --------------------------------------------------------------------------------------------------
# Options
# --------------------------------------------------------------------------------------------------


class InstructionOptions(JsonOptions):
    """Options of the instruction sources, beside the JSON ones (``record_path``, ``encoding``).

    ``file_format``: ``auto`` (by extension, then content), ``json`` or ``jsonl``. ``columns``
    maps LLaMA-Factory's column names to the file's (see each source); ``fields`` maps only
    ``group``, ``weight`` and ``split``. ``chat_format`` is ``messages`` by default.
    """

    file_format: Literal["auto", "json", "jsonl"] = "auto"
    columns: dict[str, StrictStr | None] = {}
    chat_format: Literal["plain", "tokenizer", "messages"] = "messages"

    allowed_columns: ClassVar[tuple[str, ...]] = ALPACA_COLUMNS + SHAREGPT_COLUMNS

    @field_validator("fields")
    @classmethod
    def _only_extra_fields(cls, fields: dict[str, Any]) -> dict[str, Any]:
        for key in fields:
            if ALIASES.get(key, key) not in INSTRUCTION_FIELDS:
                raise ValueError(f'"{key}" comes from the record\'s columns here (the columns '
                                 f'option); fields maps only {", ".join(INSTRUCTION_FIELDS)}')
        return fields

    @field_validator("columns")
    @classmethod
    def _known_columns(cls, columns: dict[str, str | None]) -> dict[str, str | None]:
        for key, column in columns.items():
            if key in UNSUPPORTED_COLUMNS:
                raise ValueError(f'columns.{key}: {UNSUPPORTED_COLUMNS[key]}')
            if key not in cls.allowed_columns:
                close = difflib.get_close_matches(key, cls.allowed_columns, n=1)
                hint = f' (did you mean "{close[0]}"?)' if close else ""
                raise ValueError(f'unknown column "{key}"{hint}; columns are '
                                 f'{", ".join(cls.allowed_columns)}')
            if column == "":
                raise ValueError(f"columns.{key} is empty (null: the column is not read)")
        return columns


class AlpacaOptions(InstructionOptions):
    """``columns``: ``prompt`` (default ``instruction``), ``query`` (``input``), ``response``
    (``output``), ``system`` (``system``) and ``history`` (``history``)."""

    allowed_columns: ClassVar[tuple[str, ...]] = ALPACA_COLUMNS


class ShareGptOptions(InstructionOptions):
    """``columns``: ``messages`` (default ``conversations``, else ``messages``) and ``system``
    (``system``); ``tags`` (LLaMA-Factory's ``role_tag``, ``user_tag``... ) fix the turns' keys
    and role names, which by default may be ShareGPT's or OpenAI's."""

    tags: dict[str, StrictStr] = {}

    allowed_columns: ClassVar[tuple[str, ...]] = SHAREGPT_COLUMNS

    @field_validator("tags")
    @classmethod
    def _known_tags(cls, tags: dict[str, str]) -> dict[str, str]:
        for key in tags:
            if key not in TAG_NAMES:
                close = difflib.get_close_matches(key, TAG_NAMES, n=1)
                hint = f' (did you mean "{close[0]}"?)' if close else ""
                raise ValueError(f'unknown tag "{key}"{hint}; tags are {", ".join(TAG_NAMES)}')
        return tags


class DatasetInfoOptions(InstructionOptions):
    """``path`` is the ``dataset_info.json``; ``dataset`` names its entry. The entry's
    ``columns`` and ``tags`` apply; the source's own ``columns`` is not taken."""

    dataset: str

    @field_validator("columns")
    @classmethod
    def _no_columns(cls, columns: dict[str, str]) -> dict[str, str]:
        if columns:
            raise ValueError("the columns come from the dataset_info.json entry")
        return columns


# --------------------------------------------------------------------------------------------------
# Reading: JSON or JSON Lines
# --------------------------------------------------------------------------------------------------


def looks_like_jsonl(path: str, encoding: str) -> bool:
    """Whether ``path`` holds JSON Lines: by extension, else by its first line being a whole
    JSON object (a JSON document's first line is ``[`` or an unfinished object)."""
    suffix = Path(path).suffix.lower()
    if suffix in (".jsonl", ".ndjson"):
        return True
    try:
        with open(path, encoding=encoding, errors="replace") as handle:
            first = ""
            for line in handle:
                if line.strip():
                    first = line.lstrip("\ufeff").strip()
                    break
    except OSError:
        return suffix != ".json"  # the reader reports the problem, naming the file
    if not first.startswith("{"):
        return False
    try:
        return isinstance(json.loads(first), dict)
    except ValueError:
        return False


class InstructionSource(JsonSource):
    """The shared part: read JSON or JSON Lines records, turn each into a chat, then into
    examples (``RecordSource.chat_examples``). Subclasses implement ``turns(record)``."""

    Options = InstructionOptions
    options: InstructionOptions
    tasks = ("causal-lm",)

    @property
    def label(self) -> str:
        return Path(self.path).name if self.is_jsonl() else super().label

    def is_jsonl(self) -> bool:
        if self.options.file_format != "auto":
            return self.options.file_format == "jsonl"
        if self.options.record_path is not None:
            return False
        return looks_like_jsonl(self.path, self.options.encoding)

    def records(self) -> Iterator[tuple[Position, Any]]:
        if self.is_jsonl():
            if self.options.record_path is not None:
                raise DataError(self.path, "record_path is for a JSON document; this file is read "
                                           "as JSON Lines (file_format)")
            yield from JsonlSource.records(self)  # type: ignore[arg-type]
        else:
            yield from super().records()

    # ---- one record ------------------------------------------------------------------------

    def _examples(self, record: Any, mapping: FieldMap, position: Position) -> list[Example]:
        if not isinstance(record, dict):
            raise BadValue(f"a record must be an object, got {json_type(record)}")
        self._refuse_unsupported(record)
        values: dict[str, Any] = {}
        for field in INSTRUCTION_FIELDS:
            column = mapping.explicit.get(field)
            if column is None:
                continue
            values[field] = mapped_value(record, field, column, False)
        values.setdefault("split", self.options.split)
        return self.chat_examples(self.turns(record), values, position)

    def turns(self, record: dict) -> list[dict[str, str]]:
        raise NotImplementedError

    def column(self, name: str) -> str | None:
        """The record key of a LLaMA-Factory column (``None``: the column is not read)."""
        return self.columns().get(name)

    def columns(self) -> dict[str, str | None]:
        raise NotImplementedError

    def explicit(self, name: str) -> bool:
        """Whether the config (or the dataset_info entry) named the column: then it must be there."""
        return self.options.columns.get(name) is not None

    def _refuse_unsupported(self, record: dict) -> None:
        """A record with tools, images or preference columns would lose them silently."""
        for name in self.unsupported_columns():
            value = record.get(name)
            if value not in (None, "", [], {}):
                raise BadValue(f'"{name}": {UNSUPPORTED_COLUMNS.get(name, "not supported")}')

    def unsupported_columns(self) -> tuple[str, ...]:
        return ("tools", "images", "videos", "audios", "chosen", "rejected", "kto_tag")

    def text(self, record: dict, name: str, required: bool) -> str | None:
        """The string in column ``name``, or None when it is null, or absent where that is
        allowed: a ``required`` column, or one the config named, must be in the record (a
        misspelt column name, or a file of another format, is an error, not empty prompts)."""
        key = self.column(name)
        if key is None:
            return None
        value = record.get(key, _MISSING)
        if value is _MISSING:
            if required or self.explicit(name):
                raise BadValue(f'missing {name} column "{key}"; the record has '
                               f"{describe_keys(record)}")
            return None
        if value is None:
            return None
        if not isinstance(value, str):
            raise BadValue(f'{name} ("{key}") must be a string, got {json_type(value)}')
        return text_value(value, f'{name} ("{key}")')


# --------------------------------------------------------------------------------------------------
# Alpaca
# --------------------------------------------------------------------------------------------------


class AlpacaSource(InstructionSource):
    """Alpaca records: ``instruction`` (required), ``input``, ``output``, ``system``, ``history``.

    The user turn is the instruction and the input joined by a newline (either may be empty, not
    both); ``history`` is a list of ``[instruction, answer]`` pairs that come before it; a null or
    absent ``output`` makes an unlabeled prompt (for review). Column names follow LLaMA-Factory's
    (``columns: {prompt: question, response: answer}``).
    """

    name = "alpaca"
    Options = AlpacaOptions
    options: AlpacaOptions

    DEFAULTS: ClassVar[dict[str, str]] = {"prompt": "instruction", "query": "input",
                                          "response": "output", "system": "system",
                                          "history": "history"}

    def columns(self) -> dict[str, str | None]:
        return {**self.DEFAULTS, **self.options.columns}

    def turns(self, record: dict) -> list[dict[str, str]]:
        turns: list[dict[str, str]] = []
        system = self.text(record, "system", required=False)
        if system:
            turns.append({"role": "system", "content": system})
        turns.extend(self._history(record))
        query = [part for part in (self.text(record, "prompt", required=True),
                                   self.text(record, "query", required=False)) if part]
        if not query:
            raise BadValue(f'the instruction ("{self.column("prompt")}") and the input '
                           f'("{self.column("query")}") are both empty')
        turns.append({"role": "user", "content": "\n".join(query)})
        response = self.text(record, "response", required=False)
        if response is not None:
            turns.append({"role": "assistant", "content": response})
        return turns

    def _history(self, record: dict) -> list[dict[str, str]]:
        key = self.column("history")
        value = record.get(key, None) if key is not None else None
        if key is not None and key not in record and self.explicit("history"):
            raise BadValue(f'missing history column "{key}"; the record has '
                           f"{describe_keys(record)}")
        if value is None or value == []:
            return []
        if not isinstance(value, list):
            raise BadValue(f'history ("{key}") must be an array of [instruction, answer] pairs, '
                           f"got {json_type(value)}")
        turns = []
        for number, pair in enumerate(value):
            if (not isinstance(pair, (list, tuple)) or len(pair) != 2
                    or not all(isinstance(part, str) for part in pair)):
                raise BadValue(f"history[{number}] must be a pair of strings [instruction, "
                               f"answer], got {json.dumps(pair, ensure_ascii=False)[:80]}")
            turns.append({"role": "user", "content": text_value(pair[0], f"history[{number}]")})
            turns.append({"role": "assistant",
                          "content": text_value(pair[1], f"history[{number}]")})
        return turns


# --------------------------------------------------------------------------------------------------
# ShareGPT (and OpenAI messages)
# --------------------------------------------------------------------------------------------------


class ShareGptSource(InstructionSource):
    """ShareGPT records: a ``conversations`` list of ``{"from", "value"}`` turns (or a ``messages``
    list of ``{"role", "content"}`` turns), and an optional ``system`` column.

    Without ``tags`` each turn may use either spelling, and the roles ``human``/``user``,
    ``gpt``/``assistant``, ``system``, ``function_call``, ``observation``/``tool``; with ``tags``
    (LLaMA-Factory's), exactly those keys and role names. A chat that ends with the user's turn is
    an unlabeled prompt (for review).
    """

    name = "sharegpt"
    Options = ShareGptOptions
    options: ShareGptOptions

    def columns(self) -> dict[str, str | None]:
        return {"messages": None, "system": "system", **self.options.columns}

    def tags(self) -> dict[str, str] | None:
        """The tags in force, or None to read both spellings."""
        return {**SHAREGPT_TAGS, **self.options.tags} if self.options.tags else None

    def turns(self, record: dict) -> list[dict[str, str]]:
        key = self.column("messages")
        if key is None:
            key = next((name for name in ("conversations", "messages") if name in record),
                       "conversations")
        value = record.get(key, _MISSING)
        if value is _MISSING:
            raise BadValue(f'missing conversation column "{key}"; the record has '
                           f"{describe_keys(record)}")
        if not isinstance(value, list) or not value:
            raise BadValue(f'"{key}" must be a non-empty array of turns, got '
                           f"{json_type(value) if value != [] else 'an empty array'}")
        tags = self.tags()
        turns = [self._turn(turn, number, tags) for number, turn in enumerate(value)]
        system = self.text(record, "system", required=False)
        if turns[0]["role"] == "system":
            system, turns = turns[0]["content"], turns[1:]  # the first turn overrides the column
        for number, turn in enumerate(turns):
            expected = ASKING if number % 2 == 0 else ("assistant",)
            if turn["role"] not in expected:
                shift = 1 if len(turns) < len(value) else 0
                raise BadValue(f"{key}[{number + shift}]: turns must alternate (user or "
                               f"observation, then assistant or function call); a "
                               f"{turn['role']} turn cannot come here")
        if not turns:
            raise BadValue(f'"{key}" has only a system turn')
        return ([{"role": "system", "content": system}] if system else []) + turns

    def _turn(self, turn: Any, number: int, tags: dict[str, str] | None) -> dict[str, str]:
        key = self.column("messages") or "conversations"
        if not isinstance(turn, dict):
            raise BadValue(f"{key}[{number}] must be an object, got {json_type(turn)}")
        if tags is None:
            role = turn.get("from", turn.get("role"))
            role = role.lower() if isinstance(role, str) else role
            content = turn.get("value", turn.get("content"))
            roles = DEFAULT_ROLES
            role_key, content_key = ("from", "value") if "from" in turn else ("role", "content")
        else:
            role_key, content_key = tags["role_tag"], tags["content_tag"]
            role, content = turn.get(role_key), turn.get(content_key)
            roles = {tags["user_tag"]: "user", tags["assistant_tag"]: "assistant",
                     tags["observation_tag"]: "tool", tags["function_tag"]: "assistant",
                     tags["system_tag"]: "system"}
        if not isinstance(role, str) or role not in roles:
            raise BadValue(f"{key}[{number}].{role_key} must be one of "
                           f"{', '.join(roles)}, got {role!r}")
        if not isinstance(content, str):
            raise BadValue(f"{key}[{number}].{content_key} must be a string, got "
                           f"{json_type(content)}")
        return {"role": roles[role], "content": text_value(content, f"{key}[{number}]")}


# --------------------------------------------------------------------------------------------------
# LLaMA-Factory's dataset_info.json
# --------------------------------------------------------------------------------------------------

LLAMA_FACTORY_COLUMNS: dict[tuple[str, ...], dict[str, str | None]] = {
    ALPACA_COLUMNS: {"prompt": "instruction", "query": "input", "response": "output",
                     "system": None, "history": None},
    SHAREGPT_COLUMNS: {"messages": "conversations", "system": None},
}
HUB_KEYS = ("hf_hub_url", "ms_hub_url", "om_hub_url", "script_url", "cloud_file_name")


class DatasetInfoSource(InstructionSource):
    """One entry of a LLaMA-Factory ``dataset_info.json``, read as LLaMA-Factory reads it.

    ``file_name`` is resolved against the ``dataset_info.json``'s folder; ``formatting`` picks the
    Alpaca or ShareGPT reading (``openai``: ShareGPT with ``role``/``content`` tags); when the
    entry has ``columns``, only the columns it names are read (LLaMA-Factory's rule: an Alpaca
    entry with ``columns: {prompt: q, response: a}`` reads no ``input``). Hub and script entries,
    ``ranking`` (preference) entries and ``num_samples`` are refused with a reason, not ignored.
    """

    name = "dataset_info"
    Options = DatasetInfoOptions
    options: DatasetInfoOptions

    def __init__(self, options: Any = None):
        super().__init__(options)
        self._entry: dict[str, Any] | None = None
        self._reader: InstructionSource | None = None

    @property
    def info_path(self) -> str:
        return self.options.path

    @property
    def path(self) -> str:
        """The data file the entry names (errors about records name it, not the index)."""
        return self.reader().options.path

    @property
    def label(self) -> str:
        return self.reader().label

    def reader(self) -> InstructionSource:
        """The Alpaca or ShareGPT source the entry describes (built once)."""
        if self._reader is None:
            entry = self.entry()
            formatting = entry.get("formatting", "alpaca")
            columns = entry.get("columns")
            tags = entry.get("tags")
            for key, value in (("columns", columns), ("tags", tags)):
                if value is not None and not (isinstance(value, dict) and all(
                        isinstance(item, str) for item in value.values())):
                    raise self._error(f"{key} must be an object of strings")
            options: dict[str, Any] = {
                "path": str(self._data_file(entry)), "encoding": self.options.encoding,
                "file_format": self.options.file_format, "record_path": self.options.record_path,
                "fields": self.options.fields, "on_error": self.options.on_error,
                "split": self.options.split, "chat_format": self.options.chat_format,
                "chat_turns": self.options.chat_turns}
            reader_class: type[InstructionSource]
            if formatting == "alpaca":
                reader_class = AlpacaSource
                options["columns"] = self._columns(columns, ALPACA_COLUMNS)
            elif formatting in ("sharegpt", "openai"):
                reader_class = ShareGptSource
                options["columns"] = self._columns(columns, SHAREGPT_COLUMNS)
                defaults = SHAREGPT_TAGS if formatting == "sharegpt" else OPENAI_TAGS
                unknown = [key for key in tags or {} if key not in TAG_NAMES]
                if unknown:
                    raise self._error(f'unknown tag "{unknown[0]}"; tags are '
                                      f'{", ".join(TAG_NAMES)}')
                options["tags"] = {**defaults, **(tags or {})}
            else:
                raise self._error(f'formatting is "{formatting}"; tuneloop reads alpaca, '
                                  f"sharegpt and openai")
            try:
                reader = reader_class(reader_class.Options.model_validate(options))
            except ValueError as error:  # pydantic's ValidationError is a ValueError
                raise self._error(str(error).splitlines()[-1].strip()) from None
            self._reader = reader
        return self._reader

    def _columns(self, columns: dict[str, str] | None,
                 known: tuple[str, ...]) -> dict[str, str | None]:
        """The entry's columns as the reader's ``columns`` option, with LLaMA-Factory's defaults
        (``DatasetAttr``): without ``columns``, Alpaca reads instruction/input/output and ShareGPT
        conversations, neither a system column; with ``columns``, only the columns it names."""
        if columns is None:
            return dict(LLAMA_FACTORY_COLUMNS[known])
        for key in columns:
            if key in UNSUPPORTED_COLUMNS:
                raise self._error(f"columns.{key}: {UNSUPPORTED_COLUMNS[key]}")
        unknown = [key for key in columns if key not in known]
        if unknown:
            raise self._error(f'columns.{unknown[0]} is not a column of this formatting (it has '
                              f'{", ".join(known)})')
        return {key: columns.get(key) for key in known}

    def entry(self) -> dict[str, Any]:
        if self._entry is None:
            path = self.info_path
            try:
                with open(path, encoding="utf-8") as handle:
                    text = handle.read()
            except FileNotFoundError:
                raise DataError(path, "file not found") from None
            except (OSError, UnicodeDecodeError) as error:
                raise DataError(path, f"cannot read: {error}") from None
            try:
                info = json.loads(text)
            except json.JSONDecodeError as error:
                raise DataError(path, f"invalid JSON: {error.msg} at column {error.colno}",
                                error.lineno) from None
            if not isinstance(info, dict):
                raise DataError(path, f"a dataset_info.json is an object of entries, got "
                                      f"{json_type(info)}")
            name = self.options.dataset
            if name not in info:
                close = difflib.get_close_matches(name, list(info), n=1)
                hint = f' (did you mean "{close[0]}"?)' if close else ""
                names = ", ".join(f'"{key}"' for key in list(info)[:20]) or "none"
                raise DataError(path, f'no dataset "{name}"{hint}; it has {names}')
            entry = info[name]
            if not isinstance(entry, dict):
                raise DataError(path, f'dataset "{name}" must be an object, got '
                                      f"{json_type(entry)}")
            self._entry = entry
            self._check(entry)
        return self._entry

    def _check(self, entry: dict[str, Any]) -> None:
        hub = [key for key in HUB_KEYS if key in entry]
        if hub:
            raise self._error(f"{hub[0]}: only entries with a local file_name can be read (for a "
                              f"hub dataset use the hf_dataset source)")
        if entry.get("ranking"):
            raise self._error("ranking: " + UNSUPPORTED_COLUMNS["chosen"])
        if entry.get("num_samples") is not None:
            raise self._error("num_samples is not read; set max_examples on the source instead")
        if not isinstance(entry.get("file_name"), str) or not entry["file_name"]:
            raise self._error("has no file_name")

    def _data_file(self, entry: dict[str, Any]) -> Path:
        data = Path(self.info_path).parent / entry["file_name"]
        if data.is_dir():
            raise self._error(f'file_name "{entry["file_name"]}" is a folder; point it at one '
                              f"JSON or JSON Lines file")
        return data

    def _error(self, message: str) -> DataError:
        return DataError(self.info_path, f'dataset "{self.options.dataset}": {message}')

    # ---- delegation ------------------------------------------------------------------------

    def records(self) -> Iterator[tuple[Position, Any]]:
        reader = self.reader()
        reader.tokenizer = self.tokenizer  # given to this source after it was built
        reader._source_label = reader.label
        return reader.records()

    def _examples(self, record: Any, mapping: FieldMap, position: Position) -> list[Example]:
        return self.reader()._examples(record, mapping, position)

    def columns(self) -> dict[str, str | None]:  # pragma: no cover - the reader's are used
        return self.reader().columns()


SOURCES = (AlpacaSource, ShareGptSource, DatasetInfoSource)
