"""The json, tsv, parquet, hf_dataset and sqlite sources: happy paths, field mapping, and every
bad input as a DataError naming the file and the line (or row); property tests that random bytes and
random JSON give clean examples or a DataError, nothing else."""

from __future__ import annotations

import json
import os
import sqlite3
import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from tuneloop import DataError, Example, registries
from tuneloop.plugins.sources import (HfDatasetSource, JsonSource, ParquetSource, SqliteSource,
                                      TsvSource)


def load(source_class, **options) -> list[Example]:
    return list(source_class(source_class.Options(**options)).load())


def data_error(source_class, **options) -> DataError:
    with pytest.raises(DataError) as info:
        load(source_class, **options)
    return info.value


CLINC_LIKE = {
    "oos_val": [["tell me a joke about cats", "oos"]],
    "train": [["what is my balance", "balance"], ["freeze my card", "freeze_account"],
              ["how much money do i have", "balance"]],
    "val": [["is my card frozen", "freeze_account"]],
}


def write_json(path: Path, document, indent: int | None = 4) -> Path:
    path.write_text(json.dumps(document, indent=indent), encoding="utf-8")
    return path


def test_every_source_is_registered_through_the_registry():
    found = registries.build()
    names = set(found.data_sources.names())
    assert {"jsonl", "json", "csv", "tsv", "parquet", "hf_dataset", "sqlite"} <= names
    for name in ("json", "tsv", "parquet", "hf_dataset", "sqlite"):
        assert found.data_sources.entry(name).plugin == "tuneloop.plugins.sources"
    assert found.data_sources.get("json") is JsonSource


# ------------------------------------------------------------------------------------------------
# JSON documents
# ------------------------------------------------------------------------------------------------


def test_json_record_path_with_positional_fields_reads_a_clinc_layout(tmp_path):
    path = write_json(tmp_path / "data_full.json", CLINC_LIKE)
    examples = load(JsonSource, path=str(path), record_path="train",
                    fields={"input": 0, "target": 1}, split="train")
    assert [(e.input, e.target, e.split) for e in examples] == [
        ("what is my balance", "balance", "train"), ("freeze my card", "freeze_account", "train"),
        ("how much money do i have", "balance", "train")]
    assert {e.source for e in examples} == {"data_full.json#train"}
    # pretty-printed: each record's line is where it starts, its index its place in the array
    text = path.read_text().splitlines()
    first = examples[0].provenance
    assert first["index"] == 0 and '"what is my balance"' in text[first["line"]]
    assert examples[2].provenance["index"] == 2
    # positions may also be written as strings (as YAML keys often are)
    again = load(JsonSource, path=str(path), record_path="val", fields={"input": "0", "target": "1"})
    assert [(e.input, e.target) for e in again] == [("is my card frozen", "freeze_account")]


def test_json_top_level_array_of_objects_and_nested_paths(tmp_path):
    flat = write_json(tmp_path / "flat.json", [{"text": "hi", "label": "greet"},
                                               {"text": "bye", "label": "leave"}], indent=None)
    assert [(e.input, e.target) for e in load(JsonSource, path=str(flat),
                                               fields={"input": "text"})] == [
        ("hi", "greet"), ("bye", "leave")]  # "label" is a default target column
    nested = write_json(tmp_path / "nested.json", {
        "meta": {"version": 2, "notes": ["a", {"b": [1, 2]}]},
        "data": {"splits": [{"name": "x"}, {"items": [{"input": "q", "target": "t"}]}]},
        "after": [1, 2, 3]})
    assert [(e.input, e.target) for e in load(JsonSource, path=str(nested),
                                               record_path="data.splits.1.items")] == [("q", "t")]
    assert [e.input for e in load(JsonSource, path=str(nested),
                                  record_path=["data", "splits", 1, "items"])] == ["q"]
    assert load(JsonSource, path=str(nested),
                record_path="data.splits.1.items")[0].source == "nested.json#data.splits.1.items"


def test_json_record_path_errors_name_what_is_there(tmp_path):
    path = write_json(tmp_path / "d.json", CLINC_LIKE)
    error = data_error(JsonSource, path=str(path), record_path="training", fields={"input": 0})
    assert 'no key "training" at the top of the document' in str(error)
    assert '"oos_val", "train", "val"' in str(error)
    error = data_error(JsonSource, path=str(path), fields={"input": 0})
    assert "the document is an object, not an array of records" in str(error)
    assert "set record_path" in str(error) and '"train"' in str(error)
    error = data_error(JsonSource, path=str(path), record_path="train.0.1", fields={"input": 0})
    assert "train.0.1 is a string, not an array of records" in str(error)
    error = data_error(JsonSource, path=str(path), record_path="train.x", fields={"input": 0})
    assert '"x" is a key, but train is an array' in str(error)
    error = data_error(JsonSource, path=str(path), record_path="train.9", fields={"input": 0})
    assert "train has no item 9" in str(error)
    with pytest.raises(ValidationError, match="empty key"):
        JsonSource.Options(path="x", record_path="a..b")


def test_json_array_records_need_positions(tmp_path):
    path = write_json(tmp_path / "d.json", CLINC_LIKE)
    error = data_error(JsonSource, path=str(path), record_path="train")
    assert error.line is not None and "record 0" in str(error)
    assert "map fields by position, e.g. fields: {input: 0, target: 1}" in str(error)
    error = data_error(JsonSource, path=str(path), record_path="train",
                       fields={"input": 0, "target": 5})
    assert 'missing target field "5"' in str(error) and "2 items" in str(error)


def test_json_bad_records_name_line_and_index(tmp_path):
    path = tmp_path / "d.json"
    path.write_text('{"train": [\n  ["fine", "a"],\n  [3, "b"],\n  ["also fine", "c"]\n]}\n')
    error = data_error(JsonSource, path=str(path), record_path="train",
                       fields={"input": 0, "target": 1})
    assert (error.source, error.line) == (str(path), 3)
    assert "record 1: input (\"0\") must be a string, got a number" in str(error)
    source = JsonSource(JsonSource.Options(path=str(path), record_path="train",
                                           fields={"input": 0, "target": 1}, on_error="skip"))
    assert [e.input for e in source.load()] == ["fine", "also fine"]
    assert [error.line for error in source.skipped] == [3]


def test_invalid_json_anywhere_in_the_document_names_its_line(tmp_path):
    path = tmp_path / "d.json"
    path.write_text('{"train": [["a", "x"]],\n "val": [["b", "y"]\n}\n')  # val never closed
    error = data_error(JsonSource, path=str(path), record_path="train", fields={"input": 0})
    assert error.line == 3 and "invalid JSON" in str(error)
    path.write_text('[{"input": "a"}]\n[{"input": "b"}]\n')
    error = data_error(JsonSource, path=str(path))
    assert error.line == 2 and "extra data" in str(error)
    path.write_text('[{"input": "a"}, {"input": NaN}]')
    assert "NaN is not valid JSON" in str(data_error(JsonSource, path=str(path)))


def test_json_non_utf8_bytes_are_the_error_of_their_record(tmp_path):
    path = tmp_path / "d.json"
    path.write_bytes(b'[\n{"input": "ok"},\n{"input": "caf\xe9"},\n{"input": "fine"}\n]\n')
    error = data_error(JsonSource, path=str(path))
    assert error.line == 3 and "not valid utf-8: byte 0xe9" in str(error)
    source = JsonSource(JsonSource.Options(path=str(path), on_error="skip"))
    assert [e.input for e in source.load()] == ["ok", "fine"] and len(source.skipped) == 1


@pytest.mark.parametrize("content, message", [
    (b"", "no records (the file is empty)"), (b"  \n ", "no records (the file is empty)"),
    (b"[]", "no records"), (b'{"train": []}', "no records")])
def test_empty_json_documents(tmp_path, content, message):
    path = tmp_path / "d.json"
    path.write_bytes(content)
    options = {"record_path": "train"} if b"train" in content else {}
    assert message in str(data_error(JsonSource, path=str(path), **options))


def test_json_unreadable_paths(tmp_path):
    assert "file not found" in str(data_error(JsonSource, path=str(tmp_path / "nope.json")))
    assert "is a directory" in str(data_error(JsonSource, path=str(tmp_path)))


# ------------------------------------------------------------------------------------------------
# TSV
# ------------------------------------------------------------------------------------------------


def test_tsv_reads_tabs_and_takes_quotes_as_text(tmp_path):
    path = tmp_path / "d.tsv"
    path.write_text('text\tlabel\nsay "hi"\tgreet\n"open\tquote\n', encoding="utf-8")
    examples = load(TsvSource, path=str(path), fields={"input": "text"})
    assert [(e.input, e.target) for e in examples] == [('say "hi"', "greet"), ('"open', "quote")]
    path.write_text("text\tlabel\none cell only\n")
    error = data_error(TsvSource, path=str(path), fields={"input": "text"})
    assert error.line == 2 and "1 cells, the header has 2" in str(error)


# ------------------------------------------------------------------------------------------------
# Parquet
# ------------------------------------------------------------------------------------------------


def write_parquet(path: Path, columns: dict) -> Path:
    import pyarrow as pa
    import pyarrow.parquet as pq

    pq.write_table(pa.table(columns), path, row_group_size=2)
    return path


def test_parquet_reads_mapped_columns_in_batches(tmp_path):
    path = write_parquet(tmp_path / "t.parquet", {
        "text": ["a", "b", "c", "d", "e"], "intent": ["x", "y", None, "x", "y"],
        "doc": [1, 1, 2, 2, 3], "w": [1.0, 2.0, 1.0, 1.0, 0.5], "blob": [b"z"] * 5})
    examples = load(ParquetSource, path=str(path),
                    fields={"input": "text", "target": "intent", "group": "doc", "weight": "w"})
    assert [(e.input, e.target, e.group, e.weight) for e in examples] == [
        ("a", "x", "1", 1.0), ("b", "y", "1", 2.0), ("c", None, "2", 1.0), ("d", "x", "2", 1.0),
        ("e", "y", "3", 0.5)]
    assert examples[3].provenance == {"kind": "original", "row": 4}
    assert examples[0].source == "t.parquet"


def test_parquet_errors_name_the_row_or_the_column(tmp_path):
    path = write_parquet(tmp_path / "t.parquet", {"text": ["a", None, "c"], "label": ["x"] * 3})
    error = data_error(ParquetSource, path=str(path), fields={"input": "text"})
    assert str(error) == f'{path}: row 2: input ("text") must be a string, got null'
    error = data_error(ParquetSource, path=str(path), fields={"input": "body"})
    assert 'no input column "body"' in str(error) and '"text", "label"' in str(error)
    source = ParquetSource(ParquetSource.Options(path=str(path), fields={"input": "text"},
                                                 on_error="skip"))
    assert [e.input for e in source.load()] == ["a", "c"] and len(source.skipped) == 1
    broken = tmp_path / "broken.parquet"
    broken.write_bytes(b"PAR1 this is not really parquet")
    assert "not a readable Parquet file" in str(data_error(ParquetSource, path=str(broken)))
    assert "file not found" in str(data_error(ParquetSource, path=str(tmp_path / "no.parquet")))
    empty = write_parquet(tmp_path / "empty.parquet", {"input": pa_strings([])})
    assert "no records" in str(data_error(ParquetSource, path=str(empty)))


def pa_strings(values):
    import pyarrow as pa

    return pa.array(values, type=pa.string())


# ------------------------------------------------------------------------------------------------
# Hugging Face datasets (local folders; the hub is out of reach in tests)
# ------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def saved_datasets(tmp_path_factory):
    import datasets

    folder = tmp_path_factory.mktemp("hf")
    datasets.disable_progress_bars()
    single = datasets.Dataset.from_dict(
        {"text": ["hello", "bye", "thanks"], "label": [0, 1, 0]},
        features=datasets.Features({"text": datasets.Value("string"),
                                    "label": datasets.ClassLabel(names=["greet", "leave"])}))
    single.save_to_disk(str(folder / "single"))
    datasets.DatasetDict({"train": single, "test": single.select([2])}).save_to_disk(
        str(folder / "dict"))
    return folder


def test_hf_dataset_folder_with_class_label_names(saved_datasets):
    examples = load(HfDatasetSource, path=str(saved_datasets / "single"), fields={"input": "text"})
    assert [(e.input, e.target) for e in examples] == [
        ("hello", "greet"), ("bye", "leave"), ("thanks", "greet")]
    assert examples[0].source == "single" and examples[1].provenance["row"] == 2


def test_hf_dataset_dict_needs_a_split(saved_datasets):
    path = str(saved_datasets / "dict")
    error = data_error(HfDatasetSource, path=path, fields={"input": "text"})
    assert "splits train, test; set dataset_split" in str(error)
    examples = load(HfDatasetSource, path=path, fields={"input": "text"}, dataset_split="test")
    assert [e.input for e in examples] == ["thanks"] and examples[0].source == "dict#test"
    assert 'no split "dev"' in str(data_error(HfDatasetSource, path=path, dataset_split="dev",
                                              fields={"input": "text"}))


def test_hf_dataset_errors(saved_datasets, tmp_path):
    assert "folder not found" in str(data_error(HfDatasetSource, path=str(tmp_path / "none")))
    assert "cannot load the dataset" in str(data_error(HfDatasetSource, path=str(tmp_path)))
    error = data_error(HfDatasetSource, name="surely/not-a-dataset", dataset_split="train")
    assert error.source == "hub:surely/not-a-dataset" and "cannot load the dataset" in str(error)
    assert 'no input column "body"' in str(data_error(
        HfDatasetSource, path=str(saved_datasets / "single"), fields={"input": "body"}))
    with pytest.raises(ValidationError, match="either path"):
        HfDatasetSource.Options(path="a", name="b")
    with pytest.raises(ValidationError, match="either path"):
        HfDatasetSource.Options()


# ------------------------------------------------------------------------------------------------
# SQLite
# ------------------------------------------------------------------------------------------------


@pytest.fixture
def database(tmp_path) -> Path:
    path = tmp_path / "tickets.db"
    with sqlite3.connect(path) as connection:
        connection.execute("CREATE TABLE tickets (body TEXT, queue TEXT, customer INTEGER)")
        connection.executemany("INSERT INTO tickets VALUES (?, ?, ?)", [
            ("card lost", "cards", 1), ("refund please", "billing", 2), ("where is it", None, 1),
            (None, "cards", 3)])
    return path


def test_sqlite_query_rows_become_examples(database):
    examples = load(SqliteSource, path=str(database),
                    query="SELECT body, queue, customer FROM tickets WHERE body IS NOT NULL",
                    fields={"input": "body", "target": "queue", "group": "customer"})
    assert [(e.input, e.target, e.group) for e in examples] == [
        ("card lost", "cards", "1"), ("refund please", "billing", "2"), ("where is it", None, "1")]
    assert examples[2].provenance == {"kind": "original", "row": 3}
    aliased = load(SqliteSource, path=str(database),
                   query="SELECT body AS input, queue AS target FROM tickets LIMIT 1")
    assert [(e.input, e.target) for e in aliased] == [("card lost", "cards")]


def test_sqlite_errors(database, tmp_path):
    error = data_error(SqliteSource, path=str(database), query="SELECT body FROM tickets",
                       fields={"input": "body"})
    assert str(error) == f'{database}: row 4: input ("body") must be a string, got null'
    assert "no such table" in str(data_error(SqliteSource, path=str(database),
                                             query="SELECT * FROM nope"))
    assert "readonly" in str(data_error(SqliteSource, path=str(database),
                                        query="DELETE FROM tickets"))
    with sqlite3.connect(database) as connection:  # the read-only query changed nothing
        assert connection.execute("SELECT COUNT(*) FROM tickets").fetchone()[0] == 4
    assert "twice" in str(data_error(SqliteSource, path=str(database),
                                     query="SELECT body AS input, queue AS input FROM tickets"))
    assert "no records" in str(data_error(SqliteSource, path=str(database),
                                          query="SELECT body AS input FROM tickets WHERE 0"))
    not_a_database = tmp_path / "text.db"
    not_a_database.write_text("just text, long enough to have a header " * 5)
    error = data_error(SqliteSource, path=str(not_a_database), query="SELECT * FROM tickets")
    assert "not a SQLite database" in str(error)
    assert "file not found" in str(data_error(SqliteSource, path=str(tmp_path / "none.db"),
                                              query="SELECT 1 AS input"))
    with pytest.raises(ValidationError):
        SqliteSource.Options(path="x", query="   ")


# ------------------------------------------------------------------------------------------------
# Properties: random bytes and random JSON documents
# ------------------------------------------------------------------------------------------------

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda children: st.lists(children, max_size=3)
    | st.dictionaries(st.text(max_size=6), children, max_size=3),
    max_leaves=10)
documents = st.one_of(
    json_values,
    st.dictionaries(st.sampled_from(["train", "val", "x"]),
                    st.lists(st.lists(st.text(max_size=6) | st.integers(), max_size=3)
                             | json_values, max_size=4), max_size=3),
)


@pytest.fixture(scope="module")
def scratch():
    with tempfile.TemporaryDirectory() as directory:
        yield Path(directory)


def only_clean_results(source_class, path: Path, **options) -> None:
    try:
        examples = load(source_class, path=str(path), **options)
    except DataError as error:
        assert error.source == str(path)
        assert "\n" not in str(error).strip()
        return
    for example in examples:
        assert isinstance(example.input, str)
        assert example.target is None or isinstance(example.target, str)
        example.input.encode("utf-8")


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(document=documents, indent=st.sampled_from([None, 1]), cut=st.integers(0, 3))
def test_json_never_raises_anything_but_data_error(scratch, document, indent, cut):
    text = json.dumps(document, indent=indent)
    text = text[:len(text) - cut] if cut else text  # sometimes truncated
    path = scratch / "fuzz.json"
    path.write_text(text, encoding="utf-8")
    for options in ({}, {"record_path": "train", "fields": {"input": 0, "target": 1}},
                    {"record_path": "train", "on_error": "skip"}):
        only_clean_results(JsonSource, path, **options)


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(content=st.binary(max_size=300))
def test_random_bytes_are_clean_errors_for_every_file_source(scratch, content):
    for source_class, name, options in ((JsonSource, "fuzz.json", {}),
                                        (ParquetSource, "fuzz.parquet", {}),
                                        (SqliteSource, "fuzz.db", {"query": "SELECT * FROM t"})):
        path = scratch / name
        path.write_bytes(content)
        only_clean_results(source_class, path, **options)


def test_parquet_and_sqlite_paths_that_are_directories(tmp_path):
    assert "is a directory" in str(data_error(ParquetSource, path=str(tmp_path)))
    assert "is a directory" in str(data_error(SqliteSource, path=str(tmp_path), query="SELECT 1"))


@pytest.mark.skipif(os.name != "posix" or os.geteuid() == 0, reason="root reads anything")
def test_unreadable_files_are_permission_errors(tmp_path):
    path = write_json(tmp_path / "locked.json", [{"input": "a"}])
    path.chmod(0)
    try:
        assert "permission denied" in str(data_error(JsonSource, path=str(path)))
        assert "permission denied" in str(data_error(ParquetSource, path=str(path)))
    finally:
        path.chmod(0o600)
