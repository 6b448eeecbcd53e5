"""prepare_data end to end on small projects: sources mixed (fraction, max_examples, weight) and
streamed through the cleaners, on_error skip reported, the tokenizer shared, labels checked with
file and line, augmentation kept in train, splits by column, and the leakage check."""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

import pytest
import yaml

from tuneloop import (Cleaner, DataError, DataSource, Example, PluginError, hookimpl,
                      registries)
from tuneloop.config import load_config
from tuneloop.cycle import prepare_data
from tuneloop.testing import register_plugin


def write_jsonl(path: Path, rows: list[Any]) -> Path:
    path.write_text("".join((row if isinstance(row, str) else json.dumps(row)) + "\n"
                            for row in rows), encoding="utf-8")
    return path


def rows(prefix: str, labels: tuple[str, ...] = ("a", "b"), count: int = 20) -> list[dict]:
    # distinct enough that no two are near duplicates of each other
    rng = random.Random(prefix)
    words = ["alpha", "bravo", "charlie", "delta", "echo", "foxtrot", "golf", "hotel", "india",
             "juliet", "kilo", "lima", "mike", "november", "oscar", "papa"]
    return [{"text": f"{prefix} {n} " + " ".join(rng.sample(words, 6)),
             "label": labels[n % len(labels)]} for n in range(count)]


def project(tmp_path: Path, data: dict[str, Any], model: str = "unused-model",
            task: str = "classification") -> Any:
    config = {"project": "p", "task": task, "model": {"name": model, "max_length": 32},
              "data": {"split": {"train": 0.6, "validation": 0.2, "test": 0.2, "seed": 1},
                       **data}}
    path = tmp_path / "tuneloop.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")
    return load_config(path)


def prepare(config) -> Any:
    return prepare_data(config, registries.build(), store=None)


def every_example(prepared) -> list[Example]:
    return [example for examples in prepared.splits.values() for example in examples]


# ------------------------------------------------------------------------------------------------
# Mixing sources
# ------------------------------------------------------------------------------------------------


def test_fraction_cap_and_weight_mix_sources_deterministically(tmp_path):
    write_jsonl(tmp_path / "big.jsonl", rows("big", count=200))
    write_jsonl(tmp_path / "small.jsonl", rows("small", count=10))
    data = {"sources": [
        {"type": "jsonl", "path": "big.jsonl", "fields": {"input": "text"}, "max_examples": 30},
        {"type": "jsonl", "path": "small.jsonl", "fields": {"input": "text"}, "weight": 3.0,
         "fraction": 0.5}]}
    prepared = prepare(project(tmp_path, data))
    sources = prepared.report["sources"]
    assert [(s["source"], s["read"], s["kept"]) for s in sources][0] == ("big.jsonl", 200, 30)
    assert sources[1]["read"] == 10 and 2 <= sources[1]["kept"] <= 8
    examples = every_example(prepared)
    assert sum(e.source == "big.jsonl" for e in examples) == 30
    small = [e for e in examples if e.source == "small.jsonl"]
    assert len(small) == sources[1]["kept"] and all(e.weight == 3.0 for e in small)
    assert all(e.weight == 1.0 for e in examples if e.source == "big.jsonl")

    # the same examples are chosen from the same data in another order
    chosen = {e.input for e in examples}
    shuffled = rows("big", count=200)
    random.Random(5).shuffle(shuffled)
    write_jsonl(tmp_path / "big.jsonl", shuffled)
    assert {e.input for e in every_example(prepare(project(tmp_path, data)))} == chosen


def test_mixing_keys_are_validated_and_kept_out_of_the_source_options(tmp_path):
    from tuneloop.errors import ConfigError

    write_jsonl(tmp_path / "d.jsonl", rows("d"))
    config = project(tmp_path, {"sources": [{"type": "jsonl", "path": "d.jsonl", "weight": 2,
                                             "fields": {"input": "text"}}]})
    assert config.data.sources[0].options == {"path": "d.jsonl", "fields": {"input": "text"}}
    for bad in ({"fraction": 0}, {"fraction": 1.5}, {"max_examples": 0}, {"weight": -1}):
        with pytest.raises(ConfigError):
            project(tmp_path, {"sources": [{"type": "jsonl", "path": "d.jsonl", **bad}]})


# ------------------------------------------------------------------------------------------------
# Streaming, and what components are given
# ------------------------------------------------------------------------------------------------


def test_sources_stream_through_the_cleaners(tmp_path):
    events: list[str] = []

    class Counting(DataSource):
        """Yields five examples, noting each."""

        name = "counting"

        def load(self):
            for number in range(5):
                events.append(f"read {number}")
                yield Example(f"example number {number} with some words", "x")

    class Noting(Cleaner):
        """Notes each example it sees."""

        name = "noting"

        def clean(self, examples, removed):
            for example in examples:
                events.append("cleaned " + example.input.split()[2])
                yield example

    class Plugin:
        @hookimpl
        def register_data_sources(self, register):
            register(Counting)

        @hookimpl
        def register_cleaners(self, register):
            register(Noting)

    with register_plugin(Plugin(), name="streaming"):
        config = project(tmp_path, {"sources": [{"type": "counting", "path": "unused"}],
                                    "cleaners": ["noting"], "leakage": {"action": "report"}})
        prepare(config)
    assert events[:4] == ["read 0", "cleaned 0", "read 1", "cleaned 1"]


def test_the_tokenizer_is_loaded_once_and_shared(tmp_path, monkeypatch):
    import transformers

    from tuneloop import data_pipeline
    from tuneloop.testing import tiny_bert

    data = rows("tok", count=20)
    model = tiny_bert(tmp_path / "model", [row["text"] for row in data])
    write_jsonl(tmp_path / "d.jsonl", data + [{"text": "tok short", "label": "a"},
                                              {"text": "tok tiny", "label": "b"}])
    calls = []
    original = transformers.AutoTokenizer.from_pretrained

    def counting(*args, **kwargs):
        calls.append(args[0])
        return original(*args, **kwargs)

    monkeypatch.setattr(transformers.AutoTokenizer, "from_pretrained", counting)
    monkeypatch.setattr(data_pipeline, "_tokenizers", {})
    seen = []
    monkeypatch.setattr(data_pipeline.Services, "build", _recording(data_pipeline.Services.build,
                                                                    seen))
    config = project(tmp_path, {"sources": [{"type": "jsonl", "path": "d.jsonl",
                                             "fields": {"input": "text"}}],
                                "cleaners": [{"name": "token_length_filter", "max_tokens": 10},
                                             {"name": "token_length_filter", "min_tokens": 5}],
                                "leakage": {"action": "report"}},
                     model=model)
    prepared = prepare(config)
    assert calls == [model]
    filters = [component for component in seen if component.name == "token_length_filter"]
    assert len(filters) == 2 and filters[0].tokenizer is filters[1].tokenizer is not None
    # "tok N" + six words + [CLS] [SEP] is 10 tokens, "[CLS] tok short [SEP]" 4
    assert prepared.report["removed"]["token_length_filter"] == {}
    assert prepared.report["removed"]["token_length_filter (2)"] == {"shorter than 5 tokens": 2}
    assert len(every_example(prepared)) == 20


def _recording(build, seen):
    def wrapper(self, found, kind, ref):
        component = build(self, found, kind, ref)
        seen.append(component)
        return component
    return wrapper


def test_a_tokenizer_that_cannot_load_is_named(tmp_path):
    from tuneloop import TuneloopError

    write_jsonl(tmp_path / "d.jsonl", rows("d"))
    config = project(tmp_path, {"sources": [{"type": "jsonl", "path": "d.jsonl",
                                             "fields": {"input": "text"}}],
                                "cleaners": [{"name": "token_length_filter", "max_tokens": 8}]},
                     model=str(tmp_path / "no-model"))
    with pytest.raises(TuneloopError, match='cannot load the tokenizer .* cleaner '
                                            '"token_length_filter"'):
        prepare(config)


# ------------------------------------------------------------------------------------------------
# Bad records, labels
# ------------------------------------------------------------------------------------------------


def test_on_error_skip_is_reported_per_source(tmp_path):
    write_jsonl(tmp_path / "d.jsonl", rows("d") + ['{"broken', {"text": 5, "label": "a"}])
    source = {"type": "jsonl", "path": "d.jsonl", "fields": {"input": "text"}}
    with pytest.raises(DataError, match=r"d.jsonl:21: invalid JSON"):
        prepare(project(tmp_path, {"sources": [source]}))
    prepared = prepare(project(tmp_path, {"sources": [source], "on_error": "skip"}))
    [entry] = prepared.report["sources"]
    assert (entry["read"], entry["skipped"]) == (20, 2)
    assert entry["skipped_at"][0].endswith("d.jsonl:21: invalid JSON: Unterminated string "
                                           "starting at column 2")
    assert ":22: input" in entry["skipped_at"][1]
    # a source's own on_error wins over data.on_error
    with pytest.raises(DataError):
        prepare(project(tmp_path, {"sources": [{**source, "on_error": "raise"}],
                                   "on_error": "skip"}))


def test_labels_outside_data_labels_name_the_file_and_line_or_are_skipped(tmp_path):
    write_jsonl(tmp_path / "d.jsonl", rows("d") + [{"text": "stray label here", "label": "zzz"}])
    data = {"sources": [{"type": "jsonl", "path": "d.jsonl", "fields": {"input": "text"}}],
            "labels": ["a", "b"]}
    with pytest.raises(DataError) as info:
        prepare(project(tmp_path, data))
    assert str(info.value) == 'd.jsonl:21: label "zzz" is not in data.labels'
    prepared = prepare(project(tmp_path, {**data, "on_error": "skip"}))
    assert prepared.report["removed"]["data.labels"] == {"label not in data.labels": 1}
    assert "zzz" not in {e.target for e in every_example(prepared)}


def test_allowed_labels_cleaner_follows_data_on_error(tmp_path):
    write_jsonl(tmp_path / "d.jsonl", rows("d") + [{"text": "stray", "label": "zzz"}])
    data = {"sources": [{"type": "jsonl", "path": "d.jsonl", "fields": {"input": "text"}}],
            "cleaners": [{"name": "allowed_labels", "labels": ["a", "b"]}]}
    with pytest.raises(DataError, match=r'^d.jsonl:21: label "zzz" is not one of the allowed'):
        prepare(project(tmp_path, data))
    prepared = prepare(project(tmp_path, {**data, "on_error": "skip"}))
    assert prepared.report["removed"]["allowed_labels"] == {"label not allowed": 1}


def test_cleaning_report_has_reasons_samples_and_changes(tmp_path):
    data_rows = rows("d") + [{"text": "  " + rows("d")[0]["text"] + "  ", "label": "a"},
                             {"text": "", "label": "a"}]
    write_jsonl(tmp_path / "d.jsonl", data_rows)
    prepared = prepare(project(tmp_path, {
        "sources": [{"type": "jsonl", "path": "d.jsonl", "fields": {"input": "text"}}],
        "cleaners": ["normalize_whitespace", "drop_empty", "drop_duplicates"]}))
    report = prepared.report
    assert report["removed"] == {"normalize_whitespace": {}, "drop_empty": {"empty input": 1},
                                 "drop_duplicates": {"duplicate": 1}}
    assert report["changed"] == {"normalize_whitespace": {"whitespace normalised": 1}}
    assert report["removed_samples"]["drop_duplicates"]["duplicate"] == [
        f'd.jsonl:21: "{data_rows[0]["text"]}"']


def test_nothing_left_after_cleaning_says_what_took_it(tmp_path):
    write_jsonl(tmp_path / "d.jsonl", [{"text": " ", "label": "a"}])
    with pytest.raises(DataError, match=r"no examples left after cleaning \(1 read; drop_empty "
                                        r"removed 1\)"):
        prepare(project(tmp_path, {"sources": [{"type": "jsonl", "path": "d.jsonl",
                                                "fields": {"input": "text"}}]}))


# ------------------------------------------------------------------------------------------------
# Split by column, augmentation, leakage
# ------------------------------------------------------------------------------------------------


def clinc_like(tmp_path: Path) -> Path:
    document = {"train": [[r["text"], r["label"]] for r in rows("train", count=30)],
                "val": [[r["text"], r["label"]] for r in rows("val", count=6)],
                "test": [[r["text"], r["label"]] for r in rows("test", count=8)],
                "oos_train": [["what is the meaning of life", "oos"]],
                "oos_test": [["sing me a song about whales", "oos"]]}
    path = tmp_path / "data_full.json"
    path.write_text(json.dumps(document, indent=2), encoding="utf-8")
    return path


def clinc_sources(*parts: tuple[str, str]) -> list[dict]:
    return [{"type": "json", "path": "data_full.json", "record_path": key,
             "fields": {"input": 0, "target": 1}, "split": split} for key, split in parts]


def test_splits_named_by_the_data_are_kept(tmp_path):
    clinc_like(tmp_path)
    prepared = prepare(project(tmp_path, {
        "sources": clinc_sources(("train", "train"), ("val", "validation"), ("test", "test"),
                                 ("oos_train", "train"), ("oos_test", "test")),
        "split": {"by": "column"}}))
    counts = {split: len(examples) for split, examples in prepared.splits.items()}
    assert counts == {"train": 31, "validation": 6, "test": 9, "review": 0}
    assert prepared.report["by_source"]["data_full.json#oos_test"] == {"test": 1}
    assert set(prepared.report["labels"]) == {"a", "b", "oos"}
    assert set(prepared.new_assignments.values()) == {"train", "validation", "test"}


def test_split_by_column_refuses_an_example_without_a_split(tmp_path):
    write_jsonl(tmp_path / "d.jsonl", [{"text": "x y z", "label": "a", "fold": "train"},
                                       {"text": "u v w", "label": "a", "fold": None}])
    with pytest.raises(DataError, match=r"^d.jsonl:2: no split"):
        prepare(project(tmp_path, {"sources": [{"type": "jsonl", "path": "d.jsonl",
                                                "fields": {"input": "text", "split": "fold"}}],
                                   "split": {"by": "column"}}))


def test_augmented_examples_stay_in_train_and_record_their_origin(tmp_path):
    write_jsonl(tmp_path / "d.jsonl", rows("d", count=40))
    prepared = prepare(project(tmp_path, {
        "sources": [{"type": "jsonl", "path": "d.jsonl", "fields": {"input": "text"}}],
        "augmenters": [{"name": "char_noise", "copies": 2}, "word_swap"]}))
    originals = {e.id: e for split in ("train", "validation", "test")
                 for e in prepared.splits[split] if e.provenance["kind"] == "original"}
    augmented = [e for e in prepared.splits["train"] if e.provenance["kind"] == "augmented"]
    assert len(augmented) == prepared.report["augmented"]["char_noise"] + \
        prepared.report["augmented"]["word_swap"]
    assert prepared.report["augmented"]["char_noise"] == 2 * 24  # 24 training originals
    for split in ("validation", "test", "review"):
        assert all(e.provenance["kind"] == "original" for e in prepared.splits[split])
    train_ids = {e.id for e in prepared.splits["train"]}
    for variant in augmented:
        origin = variant.provenance["from"]
        assert origin in train_ids  # an original, or a char_noise variant for word_swap
        assert variant.provenance["augmenter"] in ("char_noise", "word_swap")
    assert prepared.report["by_source"]["d.jsonl (augmented)"] == {"train": len(augmented)}
    assert all(origin in originals or origin in train_ids
               for origin in (v.provenance["from"] for v in augmented))


def test_an_augmenter_that_hides_its_origin_is_named(tmp_path):
    from tuneloop import Augmenter

    class Careless(Augmenter):
        """Forgets provenance."""

        name = "careless"

        def augment(self, examples, rng):
            yield Example("brand new text", examples[0].target)

    class Plugin:
        @hookimpl
        def register_augmenters(self, register):
            register(Careless)

    write_jsonl(tmp_path / "d.jsonl", rows("d"))
    with register_plugin(Plugin(), name="careless-plugin"):
        config = project(tmp_path, {"sources": [{"type": "jsonl", "path": "d.jsonl",
                                                 "fields": {"input": "text"}}],
                                    "augmenters": ["careless"]})
        with pytest.raises(PluginError, match='plugin "careless-plugin": augmenter "careless"'):
            prepare(config)


def test_leakage_refused_by_default_dropped_or_reported(tmp_path):
    train = rows("shared", count=10)
    test = [{"text": row["text"] + "!", "label": row["label"]} for row in train[:3]]
    test += [{"text": row["text"] + "s", "label": row["label"]} for row in train[3:5]]  # near
    write_jsonl(tmp_path / "train.jsonl", train)
    write_jsonl(tmp_path / "test.jsonl", test)
    sources = [{"type": "jsonl", "path": "train.jsonl", "fields": {"input": "text"},
                "split": "train"},
               {"type": "jsonl", "path": "test.jsonl", "fields": {"input": "text"},
                "split": "test"}]
    with pytest.raises(DataError, match=r"5 example\(s\) duplicate an input"):
        prepare(project(tmp_path, {"sources": sources}))
    dropped = prepare(project(tmp_path, {"sources": sources, "leakage": {"action": "drop"}}))
    assert len(dropped.splits["train"]) == 5 and len(dropped.splits["test"]) == 5
    assert dropped.report["leakage"]["pairs"] == {"train~test (exact)": 3,
                                                  "train~test (near)": 2}
    exact_only = prepare(project(tmp_path, {"sources": sources, "leakage": {
        "action": "report", "near_threshold": None}}))
    assert exact_only.report["leakage"]["leaks"] == 3 and len(exact_only.splits["train"]) == 10


# ------------------------------------------------------------------------------------------------
# Splits that protect evaluation data; what must not pass silently (tuneloop.data_problems)
# ------------------------------------------------------------------------------------------------


def errors(prepared) -> list[str]:
    return [f"{p['where']}: {p['message']}" for p in prepared.report["problems"]
            if p["level"] == "error"]


def warnings_of(prepared) -> list[str]:
    return [f"{p['where']}: {p['message']}" for p in prepared.report["problems"]
            if p["level"] == "warning"]


def alpaca_rows(count: int = 230) -> list[dict]:
    """Instruction / answer pairs whose answers are all different."""
    rng = random.Random("alpaca")
    words = ["river", "market", "engine", "garden", "letter", "winter", "planet", "doctor",
             "bridge", "kitchen", "signal", "forest", "museum", "ticket", "island", "battery",
             "camera", "harbor", "violin", "desert"]
    return [{"instruction": f"{n}: " + " ".join(rng.sample(words, 7)),
             "output": f"Answer {n}: " + " ".join(rng.sample(words, 5))} for n in range(count)]


def test_causal_lm_data_with_all_unique_answers_splits_near_the_fractions(tmp_path):
    write_jsonl(tmp_path / "alpaca.jsonl", alpaca_rows())
    sources = [{"type": "jsonl", "path": "alpaca.jsonl",
                "fields": {"prompt": "instruction", "completion": "output"}}]
    config = project(tmp_path, {"sources": sources, "split": {
        "train": 0.7, "validation": 0.1, "test": 0.1, "review": 0.1, "seed": 13}},
        task="causal-lm")
    prepared = prepare(config)
    counts = {split: len(examples) for split, examples in prepared.splits.items()}
    assert counts == {"train": 161, "validation": 23, "test": 23, "review": 23}
    assert prepared.report["split_method"]["stratified"] is False
    assert prepared.report["problems"] == []
    # stratified by the completion (the old way) every answer is a stratum of one: all in train
    stratified = prepare(project(tmp_path, {
        "sources": sources,
        "split": {"train": 0.7, "validation": 0.1, "test": 0.1, "review": 0.1, "seed": 13,
                  "stratify": "label"}}, task="causal-lm"))
    assert len(stratified.splits["train"]) == 230
    assert [line.split(" (")[0] for line in errors(stratified)] == [
        f"data.split: {split} is empty: 0 of 230 examples"
        for split in ("validation", "test", "review")]
    assert "no label has enough of them" in errors(stratified)[0]


def test_a_pinned_test_source_leaves_validation_its_share(tmp_path):
    write_jsonl(tmp_path / "train.jsonl", rows("train", count=40))
    write_jsonl(tmp_path / "test.jsonl", rows("official test", count=60))
    sources = [{"type": "jsonl", "path": "train.jsonl", "fields": {"input": "text"}},
               {"type": "jsonl", "path": "test.jsonl", "fields": {"input": "text"},
                "split": "test"}]
    prepared = prepare(project(tmp_path, {
        "sources": sources, "split": {"train": 0.8, "validation": 0.2, "test": 0.0}}))
    counts = {split: len(examples) for split, examples in prepared.splits.items()}
    assert counts == {"train": 32, "validation": 8, "test": 60, "review": 0}
    assert prepared.report["problems"] == []


def test_every_example_pinned_leaves_validation_empty_and_says_why(tmp_path):
    write_jsonl(tmp_path / "train.jsonl", rows("train", count=40))
    write_jsonl(tmp_path / "test.jsonl", rows("official test", count=10))
    sources = [{"type": "jsonl", "path": "train.jsonl", "fields": {"input": "text"},
                "split": "train"},
               {"type": "jsonl", "path": "test.jsonl", "fields": {"input": "text"},
                "split": "test"}]
    prepared = prepare(project(tmp_path, {
        "sources": sources, "split": {"train": 0.9, "validation": 0.1, "test": 0.0}}))
    assert errors(prepared) == [
        "data.split: validation is empty: 0 of 50 examples (fractions train 0.9 / validation 0.1 "
        "/ test 0 / review 0): every example is pinned to a split by its source (test.jsonl: test "
        "10; train.jsonl: train 40), and the fractions only share out unpinned examples; give it "
        "examples, or set data.split.validation: 0 for a project without one"]
    # validation: 0 says the project has none: nothing to stop for
    without = prepare(project(tmp_path, {"sources": sources, "split": {
        "train": 1.0, "validation": 0.0, "test": 0.0}}))
    assert without.splits["validation"] == [] and errors(without) == []


def test_a_training_duplicate_never_takes_a_test_row(tmp_path):
    # the official test file is read after the training file, and one training row is a test
    # row plus a trailing newline: drop_duplicates keeps the test copy
    train = rows("shared", count=20)
    test = rows("official", count=9) + [{"text": train[4]["text"], "label": train[4]["label"]}]
    train[4]["text"] += "\n"
    write_jsonl(tmp_path / "train.jsonl", train)
    write_jsonl(tmp_path / "test.jsonl", test)
    sources = [{"type": "jsonl", "path": "train.jsonl", "fields": {"input": "text"}},
               {"type": "jsonl", "path": "test.jsonl", "fields": {"input": "text"},
                "split": "test"}]
    prepared = prepare(project(tmp_path, {
        "sources": sources, "split": {"train": 0.8, "validation": 0.2, "test": 0.0}}))
    test_rows = [(e.source, e.provenance["line"]) for e in prepared.splits["test"]]
    assert sorted(test_rows) == [("test.jsonl", line) for line in range(1, 11)]
    assert prepared.report["removed"]["drop_duplicates"] == {"duplicate": 1}
    assert prepared.report["removed_samples"]["drop_duplicates"]["duplicate"][0].startswith(
        "train.jsonl:5:")
    every = every_example(prepared)
    assert len(every) == 29 and not [e for e in every if e.input == train[4]["text"]]


def test_empty_targets_are_counted_warned_about_or_refused(tmp_path):
    data = rows("d", count=30)
    data[6]["label"] = ""
    data[9]["label"] = None
    data[12]["label"] = "  "
    write_jsonl(tmp_path / "d.jsonl", data)
    write_jsonl(tmp_path / "pool.jsonl", [{"text": f"pool item {n}", "label": None}
                                          for n in range(3)])
    sources = [{"type": "jsonl", "path": "d.jsonl", "fields": {"input": "text"}},
               {"type": "jsonl", "path": "pool.jsonl", "fields": {"input": "text"},
                "split": "review"}]
    prepared = prepare(project(tmp_path, {"sources": sources}))
    assert prepared.report["empty_targets"] == {
        "count": 3, "first": "d.jsonl:7", "by_source": {"d.jsonl": 3},
        "examples": ["d.jsonl:7", "d.jsonl:10", "d.jsonl:13"]}
    assert "" not in prepared.report["labels"] and "  " not in prepared.report["labels"]
    [warning] = warnings_of(prepared)
    assert warning.startswith("d.jsonl:7: empty target: 3 example(s) with no target")
    refused = prepare(project(tmp_path, {"sources": sources, "on_empty_target": "refuse"}))
    [error] = errors(refused)
    assert error.startswith("d.jsonl:7: empty target:") and "refuse" in error


def test_labels_unseen_in_training_are_counted_warned_about_or_refused(tmp_path):
    data = rows("d", count=30)
    write_jsonl(tmp_path / "d.jsonl", data)
    write_jsonl(tmp_path / "test.jsonl", [{"text": "a brand new request", "label": "refund"},
                                          {"text": "another new request", "label": "refund"}])
    sources = [{"type": "jsonl", "path": "d.jsonl", "fields": {"input": "text"}},
               {"type": "jsonl", "path": "test.jsonl", "fields": {"input": "text"},
                "split": "test"}]
    prepared = prepare(project(tmp_path, {"sources": sources}))
    assert prepared.report["unseen_labels"] == {
        "test": {"examples": 2, "labels": ["refund"], "distinct": 1, "first": "test.jsonl:1"}}
    [warning] = warnings_of(prepared)
    assert warning.startswith('test.jsonl:1: 2 test example(s) have a label that no training '
                              'example has ("refund")')
    refused = prepare(project(tmp_path, {"sources": sources, "on_unseen_label": "refuse"}))
    assert errors(refused)[0].startswith("test.jsonl:1: 2 test example(s)")


def test_an_empty_split_names_each_cause(tmp_path):
    from tuneloop.data_problems import collect

    write_jsonl(tmp_path / "d.jsonl", rows("d"))
    config = project(tmp_path, {"sources": [{"type": "jsonl", "path": "d.jsonl",
                                             "fields": {"input": "text"}}]})
    full = {"train": [Example("x", "a")], "validation": [], "test": [Example("y", "a")],
            "review": []}

    def why(report=None, **stats):
        [problem] = collect(config, full, report or {}, 30, {}, {
            "stratified": True, "known_keys": 0, "new_keys": 0, **stats})
        return problem["message"].split("): ", 1)[1]

    # an old database placed every input (known inputs never move)
    assert why(known_keys=30).startswith("all 30 unpinned inputs keep the split an earlier cycle "
                                         "gave them (known inputs never move)")
    assert why(new_keys=4).startswith("4 unpinned input(s) are too few for a share of 0.2")
    assert why({"unlabeled_left_out": {"validation": 4}}, new_keys=30).startswith(
        "its 4 example(s) are unlabeled, and only labelled examples are scored")
    assert why({"leakage": {"pairs": {"validation~test (exact)": 2}, "dropped": 2}},
               new_keys=30).startswith("the leakage check dropped 2 of its examples")
