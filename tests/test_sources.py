"""The jsonl and csv sources: happy paths, field mapping, every bad input as a DataError naming the
file and line, streaming, and a property test that nothing but DataError ever escapes."""

from __future__ import annotations

import inspect
import json
import os
import tempfile
import tracemalloc
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from tuneloop import DataError, Example, registries
from tuneloop.plugins.sources import CsvSource, JsonlSource


def jsonl(path: Path, lines: list[str | dict]) -> Path:
    path.write_text("".join((json.dumps(line) if isinstance(line, dict) else line) + "\n"
                            for line in lines), encoding="utf-8")
    return path


def load_jsonl(path: Path, **options) -> list[Example]:
    return list(JsonlSource(JsonlSource.Options(path=str(path), **options)).load())


def load_csv(path: Path, **options) -> list[Example]:
    return list(CsvSource(CsvSource.Options(path=str(path), **options)).load())


def data_error(load, *args, **kwargs) -> DataError:
    with pytest.raises(DataError) as info:
        load(*args, **kwargs)
    return info.value


# ------------------------------------------------------------------------------------------------
# Registration and happy paths
# ------------------------------------------------------------------------------------------------


def test_sources_are_registered_through_the_registry(tmp_path):
    found = registries.build()
    assert {"jsonl", "csv"} <= set(found.data_sources.names())
    assert found.data_sources.entry("jsonl").plugin == "tuneloop.plugins.sources"
    source_class = found.data_sources.get("jsonl")
    path = jsonl(tmp_path / "d.jsonl", [{"input": "hi", "target": "greet"}])
    examples = list(source_class(source_class.Options(path=str(path))).load())
    assert [(e.input, e.target) for e in examples] == [("hi", "greet")]


def test_jsonl_defaults_and_example_fields(tmp_path):
    path = jsonl(tmp_path / "intents.jsonl", [
        {"input": "check my balance", "target": "balance"},
        "",
        "   ",
        {"input": "lost card", "target": "card", "extra": [1, 2]},
        {"input": "no label here"},
    ])
    examples = load_jsonl(path)
    assert [(e.input, e.target) for e in examples] == [
        ("check my balance", "balance"), ("lost card", "card"), ("no label here", None)]
    first = examples[0]
    assert first.source == "intents.jsonl"
    assert first.split is None and first.weight == 1.0 and first.group is None
    assert first.provenance == {"kind": "original", "line": 1}
    assert examples[1].provenance["line"] == 4  # blank lines skipped but counted
    assert first.id == Example(input="check my balance", target="balance").id


def test_jsonl_field_mapping_group_weight_and_split(tmp_path):
    path = jsonl(tmp_path / "d.jsonl", [
        {"text": "a", "label": "x", "doc": "d1", "w": 2.5},
        {"text": "b", "label": 3, "doc": 7, "w": "0.5"},
        {"text": "c", "label": None, "doc": None, "w": None},
    ])
    examples = load_jsonl(path, fields={"input": "text", "target": "label", "group": "doc",
                                        "weight": "w"}, split="test")
    assert [(e.input, e.target, e.group, e.weight, e.split) for e in examples] == [
        ("a", "x", "d1", 2.5, "test"), ("b", "3", "7", 0.5, "test"),
        ("c", None, None, 1.0, "test")]


def test_prompt_completion_aliases_and_defaults(tmp_path):
    rows = [{"question": "2+2=", "answer": " 4"}]
    mapped = load_jsonl(jsonl(tmp_path / "a.jsonl", rows),
                        fields={"prompt": "question", "completion": "answer"})
    assert [(e.input, e.target) for e in mapped] == [("2+2=", " 4")]
    # a prompt/completion file needs no mapping at all
    plain = load_jsonl(jsonl(tmp_path / "b.jsonl", [{"prompt": "Hi", "completion": " there"}]))
    assert [(e.input, e.target) for e in plain] == [("Hi", " there")]
    plain_csv = tmp_path / "c.csv"
    plain_csv.write_text("prompt,completion\nHi, there\n", encoding="utf-8")
    assert [(e.input, e.target) for e in load_csv(plain_csv)] == [("Hi", " there")]


def test_target_numbers_become_strings(tmp_path):
    path = jsonl(tmp_path / "d.jsonl", [{"input": "a", "target": 1}, {"input": "b", "target": 2.5}])
    assert [e.target for e in load_jsonl(path)] == ["1", "2.5"]


def test_csv_happy_path_with_quotes_multiline_bom_and_delimiter(tmp_path):
    path = tmp_path / "d.csv"
    path.write_bytes("\ufefftext,label,w\n"
                     '"hello, world",greet,2\n'
                     "\n"
                     '"two\nlines",multi,\n'
                     "no label,,\n".encode("utf-8"))
    examples = load_csv(path, fields={"input": "text", "target": "label", "weight": "w"})
    assert [(e.input, e.target, e.weight) for e in examples] == [
        ("hello, world", "greet", 2.0), ("two\nlines", "multi", 1.0), ("no label", None, 1.0)]
    assert [e.provenance["line"] for e in examples] == [2, 4, 6]
    assert examples[0].source == "d.csv"
    tsv = tmp_path / "d.tsv"
    tsv.write_text("input\ttarget\na, b\tc\n", encoding="utf-8")
    assert [(e.input, e.target) for e in load_csv(tsv, delimiter="\t")] == [("a, b", "c")]


def test_other_encodings_are_read_when_configured(tmp_path):
    path = tmp_path / "latin.jsonl"
    path.write_bytes('{"input": "café", "target": "x"}\n'.encode("latin-1"))
    assert load_jsonl(path, encoding="latin-1")[0].input == "café"
    wide = tmp_path / "wide.csv"
    wide.write_bytes("input,target\nnaïve,y\n".encode("utf-16"))
    assert load_csv(wide, encoding="utf-16")[0].input == "naïve"


def test_options_reject_bad_fields_encoding_and_delimiter(tmp_path):
    with pytest.raises(ValidationError, match="unknown field"):
        JsonlSource.Options(path="x", fields={"lable": "y"})
    with pytest.raises(ValidationError, match="both map the input field"):
        JsonlSource.Options(path="x", fields={"input": "a", "prompt": "b"})
    with pytest.raises(ValidationError, match="unknown encoding"):
        JsonlSource.Options(path="x", encoding="utf-9")
    with pytest.raises(ValidationError, match="one character"):
        CsvSource.Options(path="x", delimiter=";;")
    with pytest.raises(ValidationError):
        JsonlSource.Options(path="x", split="holdout")


# ------------------------------------------------------------------------------------------------
# Every bad input is a DataError naming the file and line
# ------------------------------------------------------------------------------------------------


def test_malformed_json_names_file_and_line(tmp_path):
    path = jsonl(tmp_path / "d.jsonl", [{"input": "a"}, {"input": "b"}, '{"input": "broken'])
    error = data_error(load_jsonl, path)
    assert (error.source, error.line) == (str(path), 3)
    assert str(error).startswith(f"{path}:3: invalid JSON")


@pytest.mark.parametrize("line", ["NaN", '{"input": "a", "target": Infinity}', "[" * 100_000])
def test_nonstandard_or_absurd_json_is_invalid(tmp_path, line):
    error = data_error(load_jsonl, jsonl(tmp_path / "d.jsonl", [line]))
    assert error.line == 1 and "invalid JSON" in str(error)


@pytest.mark.parametrize("value, kind", [([1, 2], "an array"), ("text", "a string"),
                                         (5, "a number"), (None, "null")])
def test_record_that_is_not_an_object(tmp_path, value, kind):
    path = jsonl(tmp_path / "d.jsonl", [{"input": "ok"}, json.dumps(value)])
    error = data_error(load_jsonl, path)
    assert error.line == 2
    assert f"must be a JSON object, got {kind}" in str(error)


def test_missing_input_names_field_and_lists_keys(tmp_path):
    path = jsonl(tmp_path / "d.jsonl", [{"text": "a", "label": "x"}])
    error = data_error(load_jsonl, path)
    assert error.line == 1
    assert 'missing input field "input" (or "prompt")' in str(error)
    assert '"text", "label"' in str(error)
    mapped = data_error(load_jsonl, path, fields={"input": "question"})
    assert 'missing input field "question"' in str(mapped)


def test_explicitly_mapped_target_must_exist(tmp_path):
    path = jsonl(tmp_path / "d.jsonl", [{"input": "a", "label": "x"}, {"input": "b"}])
    error = data_error(load_jsonl, path, fields={"target": "label"})
    assert error.line == 2 and 'missing target field "label"' in str(error)


@pytest.mark.parametrize("record, message", [
    ({"input": 3}, 'input ("input") must be a string, got a number'),
    ({"input": None}, "must be a string, got null"),
    ({"input": ["a"]}, "must be a string, got an array"),
    ({"input": "a", "target": True}, "must be a string or a number, got a boolean"),
    ({"input": "a", "target": {"x": 1}}, "must be a string or a number, got an object"),
    ('{"input": "a", "target": 1e400}', "finite number"),  # parses as float inf
])
def test_wrong_types(tmp_path, record, message):
    path = jsonl(tmp_path / "d.jsonl", [{"input": "fine"}, record])
    error = data_error(load_jsonl, path)
    assert error.line == 2 and message in str(error)


@pytest.mark.parametrize("weight", [0, -1, "heavy", True, [1], "nan", "inf"])
def test_bad_weights(tmp_path, weight):
    path = jsonl(tmp_path / "d.jsonl", [{"input": "a", "w": weight}])
    error = data_error(load_jsonl, path, fields={"weight": "w"})
    assert error.line == 1 and 'weight ("w")' in str(error)


def test_unpaired_surrogate_escape_is_a_data_error(tmp_path):
    path = jsonl(tmp_path / "d.jsonl", ['{"input": "bad \\ud800 half"}'])
    error = data_error(load_jsonl, path)
    assert error.line == 1 and "unpaired surrogate" in str(error)


def test_non_utf8_bytes_name_the_line(tmp_path):
    path = tmp_path / "d.jsonl"
    good = b'{"input": "caf\xc3\xa9"}\n'
    path.write_bytes(good * 3 + b'{"input": "caf\xe9"}\n' + good)
    error = data_error(load_jsonl, path)
    assert (error.source, error.line) == (str(path), 4)
    assert "not valid utf-8: byte 0xe9 at column 15" in str(error)
    csv_path = tmp_path / "d.csv"
    csv_path.write_bytes(b"input,target\nok,x\n\xff\xfe,y\n")
    error = data_error(load_csv, csv_path)
    assert error.line == 3 and "byte 0xff" in str(error)


def test_bad_byte_deep_in_a_large_file_names_its_own_line(tmp_path):
    # the decoder reads ahead in chunks; the error must still name the exact line
    path = tmp_path / "d.jsonl"
    path.write_bytes(b'{"input": "x"}\n' * 5000 + b'{"input": "\x80"}\n' + b'{"input": "y"}\n' * 10)
    assert data_error(load_jsonl, path).line == 5001


@pytest.mark.parametrize("content", [b"", b"\n\n   \n"])
def test_empty_file_has_no_records(tmp_path, content):
    path = tmp_path / "d.jsonl"
    path.write_bytes(content)
    error = data_error(load_jsonl, path)
    assert error.source == str(path) and error.line is None and "no records" in str(error)
    csv_path = tmp_path / "d.csv"
    csv_path.write_bytes(content)
    assert "no records" in str(data_error(load_csv, csv_path))
    csv_path.write_text("input,target\n\n")
    assert "no records" in str(data_error(load_csv, csv_path))


def test_missing_and_unreadable_paths(tmp_path):
    missing = tmp_path / "nope.jsonl"
    error = data_error(load_jsonl, missing)
    assert error.source == str(missing) and "file not found" in str(error)
    assert "is a directory" in str(data_error(load_csv, tmp_path))
    if os.name == "posix" and os.geteuid() != 0:  # root reads anything
        locked = jsonl(tmp_path / "locked.jsonl", [{"input": "a"}])
        locked.chmod(0)
        try:
            assert "permission denied" in str(data_error(load_jsonl, locked))
        finally:
            locked.chmod(0o600)


def test_csv_structure_errors(tmp_path):
    path = tmp_path / "d.csv"
    path.write_text("text,label\nhello,x\n")
    error = data_error(load_csv, path)
    assert error.line == 1 and 'no input column "input" (or "prompt")' in str(error)
    assert '"text", "label"' in str(error)
    error = data_error(load_csv, path, fields={"input": "text", "target": "intent"})
    assert error.line == 1 and 'no target column "intent"' in str(error)
    path.write_text("input,target\na,b\nc,d,e\n")
    error = data_error(load_csv, path)
    assert error.line == 3 and "3 cells, the header has 2" in str(error)
    path.write_text("input,input\na,b\n")
    assert "repeats column" in str(data_error(load_csv, path))
    path.write_text('input,target\n"a"b,c\n')
    error = data_error(load_csv, path)
    assert error.line == 2 and "invalid CSV" in str(error)


# ------------------------------------------------------------------------------------------------
# Streaming
# ------------------------------------------------------------------------------------------------


def test_large_file_streams_without_holding_it_in_memory(tmp_path):
    path = tmp_path / "big.jsonl"
    lines = 100_000
    record = '{"input": "' + "word " * 20 + '%d", "target": "label"}\n'
    with path.open("w", encoding="utf-8") as handle:
        handle.writelines(record % number for number in range(lines - 1))
        handle.write("not json at the very end\n")
    size = path.stat().st_size
    assert size > 10_000_000

    # Reading the first example costs a line, not the file: a source that read or parsed the whole
    # file up front would allocate at least its size here (and trip over the broken last line).
    tracemalloc.start()
    try:
        examples = JsonlSource(JsonlSource.Options(path=str(path))).load()
        assert inspect.isgenerator(examples)
        assert next(examples).input.endswith("0")
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < size / 50, f"peak {peak} bytes for a {size}-byte file"

    # The rest streams through to the broken last line, named by number.
    count = 1
    with pytest.raises(DataError) as info:
        for _ in examples:
            count += 1
    assert info.value.line == lines and count == lines - 1


def test_csv_streams_too(tmp_path):
    path = tmp_path / "d.csv"
    path.write_text("input,target\n" + "a,b\n" * 10 + '"never closed\n')
    examples = CsvSource(CsvSource.Options(path=str(path))).load()
    assert inspect.isgenerator(examples)
    assert next(examples).input == "a"
    with pytest.raises(DataError) as info:
        list(examples)
    assert info.value.line == 12


# ------------------------------------------------------------------------------------------------
# Property: random bytes and random JSON give clean examples or a DataError, nothing else
# ------------------------------------------------------------------------------------------------

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda children: st.lists(children, max_size=3)
    | st.dictionaries(st.text(max_size=6), children, max_size=3),
    max_leaves=8)
field_values = json_values | st.text(max_size=12)
# Mostly well-formed records (so the clean path is exercised too), any JSON value in any field.
plausible = st.fixed_dictionaries(
    {"input": st.text(max_size=12)},
    optional={"target": st.none() | st.text(max_size=6) | st.integers() | st.floats(),
              "group": st.none() | st.text(max_size=4) | st.integers(),
              "w": st.none() | st.floats(min_value=0.01, max_value=1e6) | st.integers(-2, 5)})
anything = st.fixed_dictionaries({}, optional={
    "input": field_values, "target": field_values, "group": field_values, "w": field_values})
lines = st.one_of(
    plausible.map(json.dumps),
    plausible.map(json.dumps),
    anything.map(json.dumps),
    json_values.map(json.dumps),
    st.just(""),
    st.binary(max_size=40).map(lambda raw: raw.decode("latin-1")),
)


@pytest.fixture(scope="module")
def scratch():
    with tempfile.TemporaryDirectory() as directory:
        yield Path(directory)


def check_clean(examples: list[Example]) -> None:
    assert examples
    for example in examples:
        assert isinstance(example.input, str)
        assert example.target is None or isinstance(example.target, str)
        assert example.group is None or isinstance(example.group, str)
        assert example.weight > 0 and example.weight != float("inf")
        example.input.encode("utf-8")  # storable


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(content=st.lists(lines, max_size=6).map("\n".join) | st.binary(max_size=200))
def test_jsonl_never_raises_anything_but_data_error(scratch, content):
    path = scratch / "fuzz.jsonl"
    # JSON lines are ASCII (json.dumps escapes), random byte lines are latin-1 decoded bytes
    path.write_bytes(content.encode("latin-1") if isinstance(content, str) else content)
    for options in ({}, {"fields": {"weight": "w", "group": "group"}}):
        try:
            examples = load_jsonl(path, **options)
        except DataError as error:
            assert error.source == str(path)
            continue
        check_clean(examples)


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(content=st.binary(max_size=200)
       | st.lists(st.lists(st.text(max_size=6), max_size=4).map(",".join), max_size=5)
       .map(lambda rows: ("input,target\n" + "\n".join(rows)).encode("utf-8", "surrogatepass")))
def test_csv_never_raises_anything_but_data_error(scratch, content):
    path = scratch / "fuzz.csv"
    path.write_bytes(content)
    try:
        examples = load_csv(path)
    except DataError as error:
        assert error.source == str(path)
        return
    check_clean(examples)
