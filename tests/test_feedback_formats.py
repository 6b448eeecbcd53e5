"""``tuneloop feedback export|import --format jsonl|csv|datasets|argilla``: every format carries
the experts' ratings out and back in unchanged, and bad rows are reported by number."""

from __future__ import annotations

import json

import pytest
from test_feedback_io import fill, run_cli

from tuneloop import Example, Prediction
from tuneloop.feedback_formats import ARGILLA_QUESTIONS, reviewer_uuid
from tuneloop.store import Store


def fresh_copy(path) -> dict[str, list[int]]:
    """The source's outputs under other ids, and its reviewers, with no ratings."""
    with Store(path) as fresh:
        first = fresh.create_cycle(project="p", task="causal-lm", seed=1, config={}, plugins=[],
                                   base_model="m", start_model="m", parent_id=None)
        examples = [Example(input="Capital of France?", target=" Paris"),
                    Example(input="2+2=", target=" 4")]
        fresh.add_outputs(first, [Prediction("x", "filler")], [Example(input="filler")])
        fresh.add_outputs(first, [Prediction("x", " Lyon"), Prediction("x", " 5")], examples)
        fresh.add_outputs(first, [Prediction("x", " Paris"), Prediction("x", " 4")], examples)
        for name in ("ann", "bob", "cy"):
            fresh.add_reviewer(name, "h", "expert")
    return {}


def ratings(path, *, with_times: bool = False) -> set[tuple]:
    """Every current rating by content (ids differ between databases)."""
    with Store(path) as store:
        rows = store.query(
            "SELECT v.name, o.input, o.output, p.output AS pair_output, r.verdict, r.score, "
            "r.corrected, r.comment, r.pair_score, r.created_at, "
            "(SELECT output FROM outputs WHERE id = r.preferred_output_id) AS preferred, "
            "(SELECT output FROM outputs WHERE id = r.left_output_id) AS left_shown "
            "FROM ratings r JOIN reviewers v ON v.id = r.reviewer_id "
            "JOIN outputs o ON o.id = r.output_id LEFT JOIN outputs p ON p.id = r.pair_output_id "
            "WHERE NOT EXISTS (SELECT 1 FROM ratings later WHERE later.supersedes_id = r.id)")
    return {tuple(value for key, value in row.items() if with_times or key != "created_at")
            for row in rows}


@pytest.fixture
def source(tmp_path):
    with Store(tmp_path / "source.db") as store:
        fill(store)
    return tmp_path / "source.db"


@pytest.mark.parametrize("kind, name", [("jsonl", "r.jsonl"), ("csv", "r.csv"),
                                        ("datasets", "r_dataset"), ("argilla", "r.json")])
def test_each_format_round_trips_the_current_ratings(source, tmp_path, kind, name):
    out = tmp_path / name
    exported = run_cli("feedback", "export", "--db", str(source), "--format", kind,
                       "--out", str(out))
    assert exported.exit_code == 0, exported.output
    assert f"Wrote 3 ratings to {out} ({kind})" in exported.output
    target = tmp_path / "target.db"
    fresh_copy(target)
    imported = run_cli("feedback", "import", str(out), "--db", str(target))  # format: guessed
    assert imported.exit_code == 0, imported.output
    assert "3 ratings imported, 0 already present, 0 rejected" in imported.output
    assert ratings(target, with_times=kind != "argilla") == \
        ratings(source, with_times=kind != "argilla")
    again = run_cli("feedback", "import", str(out), "--db", str(target), "--format", kind)
    assert "0 ratings imported, 3 already present" in again.output, again.output


@pytest.mark.parametrize("kind, name", [("csv", "all.csv"), ("datasets", "all_dataset")])
def test_flat_formats_carry_the_full_history(source, tmp_path, kind, name):
    out = tmp_path / name
    assert run_cli("feedback", "export", "--db", str(source), "--format", kind, "--out",
                   str(out), "--all-versions").exit_code == 0
    target = tmp_path / "target.db"
    fresh_copy(target)
    result = run_cli("feedback", "import", str(out), "--db", str(target))
    assert "4 ratings imported" in result.output, result.output
    with Store(source) as before, Store(target) as after:
        history = "SELECT verdict, corrected, created_at FROM ratings ORDER BY created_at, id"
        assert after.query(history) == before.query(history)


def test_the_csv_and_dataset_columns_are_flat_and_typed(source, tmp_path):
    from datasets import load_from_disk

    csv_file, folder = tmp_path / "r.csv", tmp_path / "r_dataset"
    for kind, out in (("csv", csv_file), ("datasets", folder)):
        run_cli("feedback", "export", "--db", str(source), "--format", kind, "--out", str(out))
    header = csv_file.read_text(encoding="utf-8").splitlines()[0]
    assert header.startswith("rating_id,supersedes_id,created_at,current,reviewer,")
    dataset = load_from_disk(str(folder))
    assert dataset.num_rows == 3
    assert dataset.features["pair_score"].dtype == "int64"
    assert dataset.features["current"].dtype == "bool"
    bob = next(row for row in dataset if row["reviewer"] == "bob")
    assert (bob["pair_output"], bob["pair_score"], bob["preferred"]) == (" 5", 1, "output")


def test_the_jsonl_export_loads_with_hugging_face_datasets(source, tmp_path):
    from datasets import Dataset

    out = tmp_path / "r.jsonl"
    run_cli("feedback", "export", "--db", str(source), "--out", str(out))
    dataset = Dataset.from_json(str(out), cache_dir=str(tmp_path / "cache"))
    assert dataset.num_rows == 3 and {"reviewer", "verdict", "pair"} <= set(dataset.features)


def test_argilla_records_follow_the_argilla_2_layout(source, tmp_path):
    out = tmp_path / "r.json"
    run_cli("feedback", "export", "--db", str(source), "--format", "argilla", "--out", str(out))
    records = json.loads(out.read_text(encoding="utf-8"))
    assert len(records) == 3  # one per rated item: two outputs and one pair
    for record in records:
        assert set(record) == {"id", "fields", "metadata", "suggestions", "responses",
                               "vectors", "_server_id"}
        assert set(record["responses"]) <= set(ARGILLA_QUESTIONS)
    ann = next(r for r in records if r["fields"]["output"] == " Lyon")
    assert ann["fields"] == {"input": "Capital of France?", "output": " Lyon"}
    assert ann["suggestions"]["correction"]["value"] == " Lyon"
    assert ann["responses"]["verdict"] == [{"value": "reject", "user_id": reviewer_uuid("ann")}]
    assert ann["responses"]["correction"][0]["value"] == " Paris"
    pair = next(r for r in records if "pair_output" in r["fields"])
    assert pair["responses"]["preferred"][0]["value"] == "output"
    assert pair["responses"]["shown_left"][0]["value"] == "pair"


def test_bad_rows_are_named_by_line_or_record_and_nothing_is_imported(source, tmp_path):
    csv_file = tmp_path / "bad.csv"
    csv_file.write_text("reviewer,verdict,input,output,score\n"
                        "ann,approve,2+2=, 5,\n"
                        "ann,approve,2+2=, 5,lots\n", encoding="utf-8")
    result = run_cli("feedback", "import", str(csv_file), "--db", str(source))
    assert result.exit_code == 2
    assert f"{csv_file}:3: score must be a whole number, not 'lots'" in result.output
    records = tmp_path / "bad.json"
    records.write_text(json.dumps([{"fields": {"input": "2+2=", "output": " 5"},
                                    "responses": {"mood": [{"value": 1, "user_id": "ann"}]}}]))
    result = run_cli("feedback", "import", str(records), "--db", str(source))
    assert result.exit_code == 2 and f"{records}:1: unknown questions: mood" in result.output
    with Store(source) as store:
        assert store.query("SELECT COUNT(*) AS n FROM ratings")[0]["n"] == 4


def test_an_argilla_user_id_may_be_a_reviewer_name(source, tmp_path):
    records = tmp_path / "by_name.json"
    records.write_text(json.dumps([{
        "id": "x", "fields": {"input": "2+2=", "output": " 5"}, "metadata": {},
        "suggestions": {}, "vectors": {}, "_server_id": None,
        "responses": {"verdict": [{"value": "reject", "user_id": "cy"}],
                      "correction": [{"value": " 4", "user_id": "cy"}]}}]))
    result = run_cli("feedback", "import", str(records), "--db", str(source))
    assert "1 ratings imported" in result.output, result.output
    with Store(source) as store:
        assert store.one("SELECT corrected FROM ratings ORDER BY id DESC LIMIT 1") == \
            {"corrected": " 4"}
