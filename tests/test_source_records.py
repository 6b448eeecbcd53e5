"""What every built-in source shares (plugins/sources/records.py): field mapping (label alias,
split column), chat-style ``messages`` for causal LMs, and ``on_error: skip``."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from pydantic import ValidationError

from tuneloop import DataError, Example
from tuneloop.plugins.sources import CsvSource, JsonlSource


def jsonl(path: Path, rows: list) -> Path:
    path.write_text("".join((row if isinstance(row, str) else json.dumps(row)) + "\n"
                            for row in rows), encoding="utf-8")
    return path


def load(path: Path, source_class=JsonlSource, **options) -> list[Example]:
    return list(source_class(source_class.Options(path=str(path), **options)).load())


# ------------------------------------------------------------------------------------------------
# Field mapping
# ------------------------------------------------------------------------------------------------


def test_label_is_an_alias_and_a_default_target_column(tmp_path):
    path = jsonl(tmp_path / "d.jsonl", [{"text": "a", "label": "x"}, {"text": "b", "label": 2}])
    assert [(e.input, e.target) for e in load(path, fields={"input": "text"})] == [
        ("a", "x"), ("b", "2")]
    path = jsonl(tmp_path / "e.jsonl", [{"text": "a", "intent": "x", "label": "ignored"}])
    assert load(path, fields={"input": "text", "label": "intent"})[0].target == "x"
    with pytest.raises(ValidationError, match="both map the target field"):
        JsonlSource.Options(path="x", fields={"label": "a", "target": "b"})


@pytest.mark.parametrize("value, split", [("train", "train"), ("TRAIN", "train"),
                                          ("val", "validation"), ("dev", "validation"),
                                          ("valid", "validation"), ("test", "test"),
                                          ("review", "review"), (None, None), ("", None)])
def test_split_column_values_are_normalised(tmp_path, value, split):
    path = jsonl(tmp_path / "d.jsonl", [{"input": "a", "fold": value}])
    assert load(path, fields={"split": "fold"})[0].split == split


def test_split_column_errors(tmp_path):
    path = jsonl(tmp_path / "d.jsonl", [{"input": "a", "fold": "train"},
                                        {"input": "b", "fold": "holdout"}])
    with pytest.raises(DataError) as info:
        load(path, fields={"split": "fold"})
    assert info.value.line == 2 and 'split ("fold") is "holdout"' in str(info.value)
    with pytest.raises(ValidationError, match="either split"):
        JsonlSource.Options(path="x", split="test", fields={"split": "fold"})
    csv = tmp_path / "d.csv"
    csv.write_text("input,fold\na,test\nb,\n")
    assert [e.split for e in load(csv, CsvSource, fields={"split": "fold"})] == ["test", None]


def test_fields_must_be_columns_or_positions():
    for bad in ({"input": -1}, {"input": ""}, {"input": True}):
        with pytest.raises(ValidationError):
            JsonlSource.Options(path="x", fields=bad)
    with pytest.raises(ValidationError, match="either messages"):
        JsonlSource.Options(path="x", fields={"messages": "m", "input": "i"})


# ------------------------------------------------------------------------------------------------
# Chats
# ------------------------------------------------------------------------------------------------

CHAT = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"},
        {"role": "assistant", "content": "Hello."}, {"role": "user", "content": "Capital of France?"},
        {"role": "assistant", "content": "Paris."}]


def test_a_chat_becomes_a_prompt_and_its_last_answer(tmp_path):
    path = jsonl(tmp_path / "chat.jsonl", [{"messages": CHAT}])
    [example] = load(path)
    assert example.input == ("system: Be brief.\nuser: Hi\nassistant: Hello.\n"
                             "user: Capital of France?\nassistant:")
    assert example.target == " Paris."
    assert example.provenance == {"kind": "original", "line": 1}


def test_each_assistant_turn_can_be_an_example(tmp_path):
    path = jsonl(tmp_path / "chat.jsonl", [{"messages": CHAT}])
    first, second = load(path, chat_turns="each")
    assert (first.input, first.target) == ("system: Be brief.\nuser: Hi\nassistant:", " Hello.")
    assert second.target == " Paris." and second.input.endswith("France?\nassistant:")
    assert first.provenance["turn"] == 2 and second.provenance["turn"] == 4
    assert first.id != second.id


def test_sharegpt_turns_a_mapped_column_and_an_unanswered_chat(tmp_path):
    path = jsonl(tmp_path / "chat.jsonl", [
        {"conversations": [{"from": "human", "value": "q"}, {"from": "gpt", "value": "a"}],
         "w": None},
        {"conversations": [{"from": "human", "value": "still waiting"}], "w": 2},
    ])
    answered, waiting = load(path, fields={"messages": "conversations", "weight": "w"})
    assert (answered.input, answered.target) == ("user: q\nassistant:", " a")
    assert (waiting.input, waiting.target, waiting.weight) == (
        "user: still waiting\nassistant:", None, 2.0)


@pytest.mark.parametrize("messages, message", [
    ([], "non-empty array of turns"),
    ("hello", "non-empty array of turns"),
    ([["user", "hi"]], "messages[0] must be an object"),
    ([{"role": "wizard", "content": "hi"}], "messages[0].role must be one of"),
    ([{"role": "user", "content": 3}], "messages[0].content must be a string, got a number"),
])
def test_bad_chats_name_the_line_and_the_turn(tmp_path, messages, message):
    path = jsonl(tmp_path / "chat.jsonl", [{"messages": CHAT}, {"messages": messages}])
    with pytest.raises(DataError) as info:
        load(path)
    assert info.value.line == 2 and message in str(info.value)


def test_a_chat_with_a_mapped_target_is_refused(tmp_path):
    path = jsonl(tmp_path / "chat.jsonl", [{"messages": CHAT, "answer": "x"}])
    with pytest.raises(DataError, match="do not map a target"):
        load(path, fields={"target": "answer"})


def test_chat_with_the_tokenizer_chat_template(tmp_path):
    from tuneloop.testing import tiny_tokenizer

    tokenizer = tiny_tokenizer(["hi hello paris"], style="gpt2")
    tokenizer.chat_template = ("{% for m in messages %}<{{ m.role }}>{{ m.content }}{% endfor %}"
                               "{% if add_generation_prompt %}<assistant>{% endif %}")
    path = jsonl(tmp_path / "chat.jsonl", [{"messages": CHAT[1:3]}])
    source = JsonlSource(JsonlSource.Options(path=str(path), chat_format="tokenizer"))
    assert source.needs_tokenizer
    with pytest.raises(DataError, match="was not given"):
        list(source.load())
    source.tokenizer = tokenizer
    [example] = list(source.load())
    assert (example.input, example.target) == ("<user>Hi<assistant>", "Hello.")
    tokenizer.chat_template = None
    with pytest.raises(DataError, match="no chat template"):
        list(source.load())


# ------------------------------------------------------------------------------------------------
# on_error: skip
# ------------------------------------------------------------------------------------------------

BAD_LINES = [
    {"input": "good one", "target": "a", "w": 1},
    '{"input": "broken',                       # malformed line
    {"input": 5, "target": "a", "w": 1},      # wrong type
    {"text": "no input field", "w": 1},       # missing field
    {"input": "weighted", "w": "heavy"},      # bad weight
    {"input": "good two", "w": 2},
]


def test_skip_keeps_the_good_records_and_reports_where_the_bad_ones_were(tmp_path):
    path = jsonl(tmp_path / "d.jsonl", BAD_LINES)
    path.write_bytes(path.read_bytes() + b'{"input": "caf\xe9", "w": 1}\n')  # non-UTF-8 bytes
    source = JsonlSource(JsonlSource.Options(path=str(path), fields={"weight": "w"},
                                             on_error="skip"))
    assert [e.input for e in source.load()] == ["good one", "good two"]
    assert [error.line for error in source.skipped] == [2, 3, 4, 5, 7]
    messages = [str(error) for error in source.skipped]
    assert "invalid JSON" in messages[0] and "must be a string" in messages[1]
    assert "missing input field" in messages[2] and 'weight ("w")' in messages[3]
    assert "not valid utf-8" in messages[4]
    # the default stops at the first one
    with pytest.raises(DataError) as info:
        load(path, fields={"weight": "w"})
    assert info.value.line == 2


def test_skip_in_csv_goes_on_after_a_broken_row(tmp_path):
    path = tmp_path / "d.csv"
    path.write_bytes(b'input,target\nok,a\n"a"b,c\nshort\n\xff,x\nfine,b\n')
    source = CsvSource(CsvSource.Options(path=str(path), on_error="skip"))
    assert [(e.input, e.target) for e in source.load()] == [("ok", "a"), ("fine", "b")]
    assert [error.line for error in source.skipped] == [3, 4, 5]


def test_all_records_skipped_is_still_an_error(tmp_path):
    path = jsonl(tmp_path / "d.jsonl", ['{"broken', '{"also broken'])
    with pytest.raises(DataError, match="all 2 were skipped; the first: .*:1: invalid JSON"):
        load(path, on_error="skip")


def test_problems_with_the_whole_file_are_never_skipped(tmp_path):
    with pytest.raises(DataError, match="file not found"):
        load(tmp_path / "missing.jsonl", on_error="skip")
    path = tmp_path / "d.csv"
    path.write_text("text,label\na,b\n")
    with pytest.raises(DataError, match="no input column"):
        load(path, CsvSource, on_error="skip")
