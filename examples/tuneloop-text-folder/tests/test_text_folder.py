"""Tests for text_folder: used directly, found through the registry, read by a real cycle."""

from __future__ import annotations

import pydantic
import pytest

import tuneloop
from tuneloop import DataError, Example, registries
from tuneloop.testing import register_plugin, run_tiny_cycle, tiny_examples

import tuneloop_text_folder as plugin
from tuneloop_text_folder import TextFolderSource


def source(path, **options) -> TextFolderSource:
    return TextFolderSource(TextFolderSource.Options(path=str(path), **options))


def write(path, text: str | bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text, encoding="utf-8")


# --------------------------------------------------------------------------------------------------
# text_folder
# --------------------------------------------------------------------------------------------------


def test_text_folder_labels_come_from_sub_folders(tmp_path):
    write(tmp_path / "billing" / "b.txt", "I was charged twice.\n")
    write(tmp_path / "billing" / "a.txt", "  Wrong amount on my invoice  ")
    write(tmp_path / "shipping" / "late.txt", "My parcel is late")
    write(tmp_path / "unsorted.txt", "Hello?")

    examples = list(source(tmp_path).load())

    assert [(e.input, e.target) for e in examples] == [
        ("Wrong amount on my invoice", "billing"),  # sorted by path, whitespace stripped
        ("I was charged twice.", "billing"),
        ("My parcel is late", "shipping"),
        ("Hello?", None),  # directly in the folder: unlabeled
    ]
    assert all(isinstance(e, Example) for e in examples)
    assert examples[0].provenance == {"kind": "original", "file": "billing/a.txt"}
    assert examples[0].source == tmp_path.name
    assert examples[0].id == tuneloop.components.content_id("Wrong amount on my invoice", "billing")
    assert all(e.split is None for e in examples)


def test_text_folder_nested_files_take_the_top_sub_folder_as_label(tmp_path):
    write(tmp_path / "billing" / "2024" / "march" / "x.txt", "old invoice")
    [example] = source(tmp_path).load()
    assert example.target == "billing"
    assert example.provenance["file"] == "billing/2024/march/x.txt"


def test_text_folder_ignores_hidden_and_other_files(tmp_path):
    write(tmp_path / "billing" / "keep.txt", "keep me")
    write(tmp_path / "billing" / ".draft.txt", "hidden file")
    write(tmp_path / ".git" / "notes.txt", "hidden folder")
    write(tmp_path / "billing" / "scan.pdf", b"%PDF-1.4")
    write(tmp_path / "billing" / "readme.md", "not a .txt")
    assert [e.input for e in source(tmp_path).load()] == ["keep me"]


def test_text_folder_split_and_strip_options(tmp_path):
    write(tmp_path / "a" / "1.txt", "  padded\n")
    [example] = source(tmp_path, split="review", strip=False).load()
    assert example.split == "review"
    assert example.input == "  padded\n"


def test_text_folder_keeps_empty_files_for_the_cleaners(tmp_path):
    write(tmp_path / "a" / "empty.txt", "\n")
    [example] = source(tmp_path).load()
    assert example.input == "" and example.target == "a"


def test_text_folder_other_encodings_and_byte_order_mark(tmp_path):
    write(tmp_path / "latin" / "fr" / "1.txt", "Où est ma commande ?".encode("latin-1"))
    write(tmp_path / "bom" / "fr" / "2.txt", "\ufeffRemboursement".encode("utf-8"))
    [latin] = source(tmp_path / "latin", encoding="latin-1").load()
    assert latin.input == "Où est ma commande ?"
    [bom] = source(tmp_path / "bom").load()
    assert bom.input == "Remboursement"


def test_text_folder_missing_folder_is_a_data_error(tmp_path):
    missing = tmp_path / "nope"
    with pytest.raises(DataError) as caught:
        list(source(missing).load())
    assert str(caught.value) == f"{missing}: folder not found"


def test_text_folder_empty_folder_is_a_data_error(tmp_path):
    write(tmp_path / "labels" / "notes.md", "no txt here")
    with pytest.raises(DataError, match=r"no \.txt files") as caught:
        list(source(tmp_path).load())
    assert caught.value.source == str(tmp_path)


def test_text_folder_path_to_a_file_is_a_data_error(tmp_path):
    file = tmp_path / "a.txt"
    write(file, "x")
    with pytest.raises(DataError, match="is a file"):
        list(source(file).load())


def test_text_folder_undecodable_file_names_file_and_line(tmp_path):
    bad = tmp_path / "a" / "bad.txt"
    write(bad, b"first line\nsecond \xff line\n")
    with pytest.raises(DataError) as caught:
        list(source(tmp_path).load())
    assert caught.value.source == str(bad)
    assert caught.value.line == 2
    assert "not valid utf-8: byte 0xff" in str(caught.value)


def test_text_folder_options_are_checked():
    with pytest.raises(pydantic.ValidationError, match="no fields to map"):
        TextFolderSource.Options(path="x", fields={"input": "text"})
    with pytest.raises(pydantic.ValidationError, match="unknown encoding"):
        TextFolderSource.Options(path="x", encoding="no-such-codec")
    with pytest.raises(pydantic.ValidationError, match="Extra inputs are not permitted"):
        TextFolderSource.Options(path="x", recursive=True)
    with pytest.raises(pydantic.ValidationError):
        TextFolderSource.Options()  # path is required
    assert issubclass(TextFolderSource.Options, tuneloop.SourceOptions)


# --------------------------------------------------------------------------------------------------
# Inside tuneloop: the registry, the version range, a real cycle
# --------------------------------------------------------------------------------------------------


def test_registers_through_its_hook():
    with register_plugin(plugin, name="text-folder") as name:
        entry = registries.build().data_sources.entry("text_folder")
    assert entry.component is TextFolderSource and entry.plugin == name


def test_declares_the_tuneloop_versions_it_supports():
    from packaging.specifiers import SpecifierSet

    from tuneloop.plugin_manager import check_compatibility

    spec = SpecifierSet(plugin.TUNELOOP_REQUIRES)
    assert "0.1.0" in spec and "1.0.0" not in spec
    check_compatibility("text-folder", plugin)  # raises PluginError if this tuneloop is excluded


def test_a_tiny_cycle_trains_on_a_folder(tmp_path):
    folder = tmp_path / "tickets"
    for number, example in enumerate(tiny_examples()):
        write(folder / example.target / f"{number:02d}.txt", example.input + "\n")
    write(tmp_path / "inbox" / "new.txt", "hello about my order")  # unlabeled: for experts
    cycle = run_tiny_cycle(tmp_path / "project", plugins=[plugin], config={
        "data": {"sources": [{"type": "text_folder", "path": str(folder)},
                             {"type": "text_folder", "path": str(tmp_path / "inbox"),
                              "split": "review"}]}})
    assert cycle.result.status == "done"
    assert [used["name"] for used in cycle.record()["components"]["data_sources"]] == [
        "text_folder", "text_folder"]
    stored = cycle.examples()
    assert len(stored) == len(tiny_examples()) + 1
    assert {row["target"] for row in stored} == {"billing", "shipping", "account", None}
    [unlabeled] = [row for row in stored if row["target"] is None]
    assert unlabeled["split"] == "review" and unlabeled["input"] == "hello about my order"
