"""``tuneloop data inspect`` and ``data export``, and the bad-input list through the CLI: one line
naming the file and line (or the field), exit code 2, and no cycle row left behind."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from projects import stub_model
from tuneloop.cli import cli
from tuneloop.store import Store

INTENTS = {"balance": ["what is my balance", "how much money do i have", "show my balance now",
                       "balance of my savings account", "tell me my current balance"],
           "freeze": ["freeze my card", "block my credit card", "my card was stolen lock it",
                      "please freeze the debit card", "stop my card from working"],
           "transfer": ["send money to mom", "transfer fifty dollars", "move cash to savings",
                        "wire money to my landlord", "pay my friend back twenty"]}
OOS = {"train": ["what is the tallest mountain"], "val": ["who wrote hamlet"],
       "test": ["sing me a song about whales", "how far is the moon"]}


@pytest.fixture
def runner():
    return CliRunner()


def clinc_project(tmp_path: Path, **data: object) -> Path:
    """A CLINC150-shaped file (record paths, [text, intent] pairs, oos splits) and its config."""
    document: dict[str, list] = {"train": [], "val": [], "test": []}
    for intent, texts in INTENTS.items():
        document["train"] += [[text, intent] for text in texts[:3]]
        document["val"].append([texts[3], intent])
        document["test"].append([texts[4], intent])
    for split, texts in OOS.items():
        document[f"oos_{split}"] = [[text, "oos"] for text in texts]
    (tmp_path / "data_full.json").write_text(json.dumps(document, indent=4), encoding="utf-8")
    sources = [{"type": "json", "path": "data_full.json", "record_path": key,
                "fields": {"input": 0, "target": 1}, "split": split}
               for key, split in (("train", "train"), ("val", "validation"), ("test", "test"),
                                  ("oos_train", "train"), ("oos_val", "validation"),
                                  ("oos_test", "test"))]
    config = {"project": "clinc-like", "task": "classification",
              "model": {"name": "no-such-model", "max_length": 16},
              "data": {"sources": sources, "split": {"by": "column"}, **data}}
    path = tmp_path / "tuneloop.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")
    return path


def one_line(result) -> str:
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1, result.output
    return lines[0]


def test_inspect_shows_sources_splits_labels_lengths_cleaning_and_samples(runner, tmp_path):
    config = clinc_project(tmp_path, cleaners=["normalize_whitespace", "drop_duplicates"])
    result = runner.invoke(cli, ["data", "inspect", str(config), "--samples", "1"])
    assert result.exit_code == 0, result.output
    output = result.output
    for needle in ("Sources", "data_full.json#train", "data_full.json#oos_test", "Cleaning",
                   "drop_duplicates", "Splits", "Labels (4)", "oos", "balance", "Lengths in words",
                   "Length histogram", "No duplicates across splits", "Sample rows"):
        assert needle in output, needle
    assert not (tmp_path / "tuneloop.db").exists()  # inspecting writes nothing


def test_inspect_json_report(runner, tmp_path):
    config = clinc_project(tmp_path)
    result = runner.invoke(cli, ["data", "inspect", str(config), "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    labels = report["label_distribution"]
    assert set(labels) == {"balance", "freeze", "transfer", "oos"}
    assert labels["oos"] == {"train": 1, "validation": 1, "test": 2, "review": 0, "total": 4}
    assert labels["balance"]["train"] == 3 and labels["balance"]["total"] == 5
    assert [(s["source"], s["read"]) for s in report["sources"]][:2] == [
        ("data_full.json#train", 9), ("data_full.json#val", 3)]
    assert report["by_source"]["data_full.json#oos_test"] == {"test": 2}
    lengths = report["lengths"]
    assert lengths["unit"] == "words" and "no-such-model" in lengths["note"]
    assert sum(lengths["splits"]["train"]["histogram"]) == 10
    assert lengths["splits"]["train"]["max"] == 6  # "my card was stolen lock it"
    assert report["leakage"]["leaks"] == 0 and report["splits"]["test"]["examples"] == 5


def test_inspect_counts_tokens_with_the_models_tokenizer(runner, tmp_path):
    from tuneloop.testing import tiny_bert

    texts = [text for group in INTENTS.values() for text in group]
    model = tiny_bert(tmp_path / "model", texts)
    config = clinc_project(tmp_path)
    raw = yaml.safe_load(config.read_text())
    raw["model"]["name"] = model
    config.write_text(yaml.safe_dump(raw))
    report = json.loads(runner.invoke(cli, ["data", "inspect", str(config), "--json"]).output)
    lengths = report["lengths"]
    assert lengths["unit"] == "tokens" and lengths["note"] is None
    assert lengths["splits"]["train"]["max"] == 8  # 6 words + [CLS] + [SEP]
    assert lengths["splits"]["train"]["over_max_length"] == 0


def test_inspect_reports_skipped_records_and_leaks(runner, tmp_path):
    config = clinc_project(tmp_path, on_error="skip", leakage={"action": "report"})
    path = tmp_path / "data_full.json"
    document = json.loads(path.read_text())
    document["train"].append([5, "balance"])
    document["test"].append(["Show my balance now!", "balance"])  # a train input, punctuated
    document["test"].append(["how much money  do I have", "transfer"])  # same key: moved
    path.write_text(json.dumps(document, indent=4))
    result = runner.invoke(cli, ["data", "inspect", str(config)])
    assert result.exit_code == 0, result.output
    assert "skipped" in result.output and "must be a string, got a number" in result.output
    assert "Duplicates across splits" in result.output and "pinned example(s) moved" in result.output
    report = json.loads(runner.invoke(cli, ["data", "inspect", str(config), "--json"]).output)
    assert report["sources"][0]["skipped"] == 1
    assert report["leakage"]["pairs"] == {"train~test (exact)": 1}
    assert report["split_conflicts"]["count"] == 1
    assert report["split_conflicts"]["examples"] == [
        "data_full.json#train: pinned to train, put in test"]


def test_export_writes_the_prepared_split_as_jsonl(runner, tmp_path):
    config = clinc_project(tmp_path, augmenters=[{"name": "word_swap"}])
    target = tmp_path / "train.jsonl"
    result = runner.invoke(cli, ["data", "export", str(config), "--split", "train", "-o",
                                 str(target)])
    assert result.exit_code == 0, result.output
    rows = [json.loads(line) for line in target.read_text().splitlines()]
    originals = [row for row in rows if row["provenance"]["kind"] == "original"]
    augmented = [row for row in rows if row["provenance"]["kind"] == "augmented"]
    assert len(originals) == 10 and augmented
    assert {row["split"] for row in rows} == {"train"}
    assert {row["provenance"]["from"] for row in augmented} <= {row["id"] for row in originals}
    stdout = runner.invoke(cli, ["data", "export", str(config), "--split", "test"])
    assert stdout.exit_code == 0
    assert len(stdout.output.splitlines()) == 5
    bad = runner.invoke(cli, ["data", "export", str(config), "-o", str(tmp_path / "no" / "x")])
    assert bad.exit_code == 2 and "cannot write" in one_line(bad)


# ------------------------------------------------------------------------------------------------
# The bad-input list: one line, exit 2, nothing left in the database
# ------------------------------------------------------------------------------------------------

GOOD = [{"text": f"sentence number {n} about {word}", "intent": word}
        for n, word in enumerate(["cards", "loans", "fees", "cards", "loans", "fees"] * 3)]


def jsonl_project(tmp_path: Path, content: bytes | None, **data: object) -> Path:
    path = tmp_path / "data.jsonl"
    if content is not None:
        path.write_bytes(content)
    config = {"project": "bad", "task": "classification",  # run stops at the data: no model
              "model": {"name": stub_model(tmp_path), "max_length": 16},
              "data": {"sources": [{"type": "jsonl", "path": "data.jsonl",
                                    "fields": {"input": "text", "target": "intent"}}], **data}}
    config_path = tmp_path / "tuneloop.yaml"
    config_path.write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")
    return config_path


def good_lines() -> bytes:
    return b"".join(json.dumps(row).encode() + b"\n" for row in GOOD)


BAD_INPUTS = {
    "malformed line": (good_lines() + b'{"text": "cut off\n', {}, ":19: invalid JSON"),
    "wrong type": (good_lines() + b'{"text": ["a"], "intent": "x"}\n', {},
                   ':19: input ("text") must be a string, got an array'),
    "missing field": (good_lines() + b'{"body": "a", "intent": "x"}\n', {},
                      ':19: missing input field "text"'),
    "non-UTF-8 bytes": (good_lines() + b'{"text": "caf\xe9", "intent": "x"}\n', {},
                        ":19: not valid utf-8: byte 0xe9 at column 14"),
    "empty file": (b"", {}, "data.jsonl: no records"),
    "label outside the allowed set": (
        good_lines() + b'{"text": "a new kind", "intent": "mortgages"}\n',
        {"labels": ["cards", "loans", "fees"]}, ':19: label "mortgages" is not in data.labels'),
    "label outside an allowed_labels cleaner": (
        good_lines() + b'{"text": "a new kind", "intent": "mortgages"}\n',
        {"cleaners": [{"name": "allowed_labels", "labels": ["cards", "loans", "fees"]}]},
        ':19: label "mortgages" is not one of the allowed labels'),
    "unreadable path": (None, {}, "data.jsonl: file not found"),
}


@pytest.mark.parametrize("case", list(BAD_INPUTS))
@pytest.mark.parametrize("command", ["run", "data inspect"])
def test_bad_input_is_one_line_exit_2_and_no_cycle(runner, tmp_path, case, command):
    content, data, expected = BAD_INPUTS[case]
    config = jsonl_project(tmp_path, content, **data)
    arguments = ["run", "--quiet"] if command == "run" else ["data", "inspect"]
    result = runner.invoke(cli, [*arguments, str(config)])
    assert result.exit_code == 2, result.output
    line = one_line(result)
    assert line.startswith("Error: ") and str(tmp_path / "data.jsonl") in line or \
        line.startswith("Error: data.jsonl:"), line
    assert expected in line, line
    database = tmp_path / "tuneloop.db"
    if database.exists():
        with Store(database) as store:
            assert store.cycles() == []


def test_on_error_skip_goes_on_and_says_where(runner, tmp_path):
    content = good_lines() + b'{"text": "cut off\n' + b'{"text": 3, "intent": "x"}\n'
    config = jsonl_project(tmp_path, content, on_error="skip")
    result = runner.invoke(cli, ["data", "inspect", str(config), "--json"])
    assert result.exit_code == 0, result.output
    [source] = json.loads(result.output)["sources"]
    assert source["skipped"] == 2 and source["read"] == 18
    assert [entry.split("data.jsonl")[1][:4] for entry in source["skipped_at"]] == [":19:", ":20:"]


def test_the_shipped_clinc150_config_is_valid():
    """benchmarks/clinc150.yaml names the shared CLINC150 file; the config itself must validate
    (the data is not needed for that, nor in the repository)."""
    from tuneloop.config import load_config

    config = load_config(Path(__file__).resolve().parent.parent / "benchmarks" / "clinc150.yaml")
    assert [ref.options["record_path"] for ref in config.data.sources] == [
        "train", "val", "test", "oos_train", "oos_val", "oos_test"]
    assert config.data.split.by == "column" and config.data.leakage.action == "drop"


# ------------------------------------------------------------------------------------------------
# Problems a cycle stops on (or warns about): inspect shows them, run stops before any row
# ------------------------------------------------------------------------------------------------


def test_an_empty_validation_split_is_shown_by_inspect_and_stops_run(runner, tmp_path):
    config = jsonl_project(tmp_path, good_lines())
    raw = yaml.safe_load(config.read_text())
    raw["data"]["sources"][0]["split"] = "train"  # every example pinned: nothing to share out
    config.write_text(yaml.safe_dump(raw, sort_keys=False))
    expected = ("data.split: validation is empty: 0 of 18 examples (fractions train 0.8 / "
                "validation 0.1 / test 0.1 / review 0): every example is pinned to a split by its "
                "source (data.jsonl: train 18), and the fractions only share out unpinned "
                "examples; give it examples, or set data.split.validation: 0 for a project "
                "without one")
    shown = runner.invoke(cli, ["data", "inspect", str(config)])
    assert shown.exit_code == 0, shown.output
    printed = " ".join(shown.output.split())
    assert "error: " + expected in printed
    assert "error: data.split: test is empty: 0 of 18 examples" in printed
    report = json.loads(runner.invoke(cli, ["data", "inspect", str(config), "--json"]).output)
    assert [(p["level"], p["where"]) for p in report["problems"]] == [
        ("error", "data.split"), ("error", "data.split")]
    assert report["split_method"] == {"stratified": True, "keys": 18, "pinned_keys": 18,
                                      "known_keys": 0, "new_keys": 0}

    result = runner.invoke(cli, ["run", "--quiet", str(config)])
    assert result.exit_code == 2
    assert one_line(result) == "Error: " + expected
    with Store(tmp_path / "tuneloop.db") as store:
        assert store.cycles() == [] and store.split_assignments() == {}


def test_inspect_warns_about_empty_targets_and_run_can_refuse_them(runner, tmp_path):
    content = good_lines() + b'{"text": "a sentence nobody labelled", "intent": ""}\n'
    config = jsonl_project(tmp_path, content)
    shown = runner.invoke(cli, ["data", "inspect", str(config)])
    assert shown.exit_code == 0, shown.output
    assert "warning: data.jsonl:19: empty target: 1 example(s) with no target" in \
        " ".join(shown.output.split())
    refusing = jsonl_project(tmp_path, content, on_empty_target="refuse")
    result = runner.invoke(cli, ["run", "--quiet", str(refusing)])
    assert result.exit_code == 2
    assert one_line(result).startswith("Error: data.jsonl:19: empty target: 1 example(s)")
    with Store(tmp_path / "tuneloop.db") as store:
        assert store.cycles() == []
