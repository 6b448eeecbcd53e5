"""``tuneloop feedback export|import``: ratings as JSON Lines, every version and every use,
checked row by row on the way in."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from tuneloop import Example, Prediction
from tuneloop.errors import DataError
from tuneloop.feedback_io import export_rows, import_jsonl
from tuneloop.store import Store


def run_cli(*args: str):
    from tuneloop.cli import cli

    return CliRunner().invoke(cli, list(args))


def fill(store: Store) -> dict[str, int]:
    """Two cycles answering the same two questions, three reviewers, a few ratings."""
    first = store.create_cycle(project="p", task="causal-lm", seed=1, config={}, plugins=[],
                               base_model="m", start_model="m", parent_id=None)
    second = store.create_cycle(project="p", task="causal-lm", seed=1, config={}, plugins=[],
                                base_model="m", start_model="m", parent_id=first)
    examples = [Example(input="Capital of France?", target=" Paris"),
                Example(input="2+2=", target=" 4")]
    old = store.add_outputs(first, [Prediction("x", " Lyon"), Prediction("x", " 5")], examples)
    new = store.add_outputs(second, [Prediction("x", " Paris"), Prediction("x", " 4")], examples)
    ids = {"ann": store.add_reviewer("ann", "h", "expert"),
           "bob": store.add_reviewer("bob", "h", "expert"),
           "cy": store.add_reviewer("cy", "h", "expert")}
    ids["edited"] = store.add_rating(reviewer_id=ids["ann"], output_id=old[0], verdict="approve")
    ids["edit"] = store.add_rating(reviewer_id=ids["ann"], output_id=old[0], verdict="reject",
                                   corrected=" Paris", score=1, comment="wrong city")
    ids["pair"] = store.add_rating(reviewer_id=ids["bob"], output_id=new[1],
                                   pair_output_id=old[1], verdict="approve",
                                   preferred_output_id=new[1], score=5, pair_score=1,
                                   left_output_id=old[1])
    store.add_rating(reviewer_id=ids["cy"], output_id=new[0], verdict="unclear",
                     comment="ambiguous")
    store.record_feedback_usage(second, [(ids["edit"], "corrections", "example-1")])
    store.update_cycle(second, status="done")
    return {**ids, "old0": old[0], "old1": old[1], "new0": new[0], "new1": new[1],
            "first": first, "second": second}


@pytest.fixture
def source(tmp_path):
    with Store(tmp_path / "source.db") as store:
        ids = fill(store)
    return tmp_path / "source.db", ids


def test_export_writes_current_ratings_with_their_uses(source, tmp_path):
    path, ids = source
    out = tmp_path / "ratings.jsonl"
    result = run_cli("feedback", "export", "--db", str(path), "--out", str(out))
    assert result.exit_code == 0, result.output
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert [(row["reviewer"], row["verdict"]) for row in rows] == [
        ("ann", "reject"), ("bob", "approve"), ("cy", "unclear")]
    edit, pair, _ = rows
    assert edit["rating_id"] == ids["edit"] and edit["supersedes_id"] == ids["edited"]
    assert (edit["input"], edit["output"], edit["corrected"], edit["comment"]) == (
        "Capital of France?", " Lyon", " Paris", "wrong city")
    assert edit["used_by"] == [{"cycle_id": ids["second"], "policy": "corrections",
                                "example_id": "example-1"}]
    assert pair["pair"]["output"] == " 5" and pair["pair"]["score"] == 1
    assert (pair["preferred"], pair["left"], pair["score"]) == ("output", "pair", 5)
    everything = run_cli("feedback", "export", "--db", str(path), "--all-versions")
    lines = [json.loads(line) for line in everything.output.splitlines()]
    assert [row["rating_id"] for row in lines] == sorted(row["rating_id"] for row in lines)
    assert [row["current"] for row in lines] == [False, True, True, True]
    one_cycle = run_cli("feedback", "export", "--db", str(path), "--cycle", str(ids["first"]))
    assert [json.loads(line)["reviewer"] for line in one_cycle.output.splitlines()] == ["ann"]


def test_import_into_another_database_lands_on_the_same_outputs(source, tmp_path):
    path, _ = source
    exported = run_cli("feedback", "export", "--db", str(path), "--all-versions")
    file = tmp_path / "all.jsonl"
    file.write_text(exported.output)
    with Store(tmp_path / "target.db") as target:
        ids = fill(target)  # the same outputs, with the same ratings already in
        for name in ("ann", "bob", "cy"):
            assert target.reviewer(name)
        before = target.query("SELECT COUNT(*) AS n FROM ratings")[0]["n"]
    again = run_cli("feedback", "import", str(file), "--db", str(tmp_path / "target.db"))
    assert again.exit_code == 0, again.output
    # replaying the history over the same ratings: the older version supersedes the current
    # one, then the current one is added back; the file imported twice changes nothing more
    twice = run_cli("feedback", "import", str(file), "--db", str(tmp_path / "target.db"))
    assert twice.exit_code == 0 and twice.output.startswith("0 ratings imported"), twice.output
    with Store(tmp_path / "target.db") as target:
        current = {(r.reviewer, r.output_id, r.verdict, r.corrected, r.pair_output_id)
                   for r in target.current_ratings(unused_only=False)}
        assert current == {("ann", ids["old0"], "reject", " Paris", None),
                           ("bob", ids["new1"], "approve", None, ids["old1"]),
                           ("cy", ids["new0"], "unclear", None, None)}
        assert target.query("SELECT COUNT(*) AS n FROM ratings")[0]["n"] > before


def test_import_into_an_empty_copy_of_the_outputs(source, tmp_path):
    path, _ = source
    file = tmp_path / "current.jsonl"
    file.write_text(run_cli("feedback", "export", "--db", str(path)).output)
    with Store(tmp_path / "fresh.db") as fresh:
        first = fresh.create_cycle(project="p", task="causal-lm", seed=1, config={}, plugins=[],
                                   base_model="m", start_model="m", parent_id=None)
        examples = [Example(input="Capital of France?", target=" Paris"),
                    Example(input="2+2=", target=" 4")]
        # other ids than in the source: rows find their outputs by content
        fresh.add_outputs(first, [Prediction("x", "filler")], [Example(input="filler")])
        old = fresh.add_outputs(first, [Prediction("x", " Lyon"), Prediction("x", " 5")],
                                examples)
        new = fresh.add_outputs(first, [Prediction("x", " Paris"), Prediction("x", " 4")],
                                examples)
        for name in ("ann", "bob", "cy"):
            fresh.add_reviewer(name, "h", "expert")
    result = run_cli("feedback", "import", str(file), "--db", str(tmp_path / "fresh.db"))
    assert result.exit_code == 0, result.output
    assert "3 ratings imported, 0 already present, 0 rejected" in result.output
    with Store(tmp_path / "fresh.db") as fresh:
        rows = {r.reviewer: r for r in fresh.current_ratings(unused_only=False)}
        assert (rows["ann"].output_id, rows["ann"].corrected, rows["ann"].score) == (
            old[0], " Paris", 1)
        assert (rows["bob"].output_id, rows["bob"].pair_output_id,
                rows["bob"].preferred_output_id, rows["bob"].pair_score) == (
            new[1], old[1], new[1], 1)
        assert rows["cy"].output_id == new[0]
        assert fresh.query("SELECT COUNT(*) AS n FROM feedback_usage")[0]["n"] == 0


BAD_ROWS = [
    ("not json", "not JSON"),
    ("[1, 2]", "a row must be a JSON object"),
    ('{"reviewer": "ann", "verdict": "approve", "input": "2+2=", "output": " 5", "x": 1}',
     "unknown fields: x"),
    ('{"reviewer": "zed", "verdict": "approve", "input": "2+2=", "output": " 5"}',
     'unknown reviewer "zed"'),
    ('{"reviewer": "ann", "verdict": "maybe", "input": "2+2=", "output": " 5"}',
     "verdict must be one of"),
    ('{"reviewer": "ann", "verdict": "approve", "input": "2+2=", "output": " 6"}',
     "no output with this input and output text"),
    ('{"reviewer": "ann", "verdict": "approve", "input": "2+2=", "output": " 5", "score": 9}',
     "score must be a whole number from 1 to 5"),
    ('{"reviewer": "ann", "verdict": "approve", "input": "2+2=", "output": " 5", '
     '"preferred": "output"}', "preferred and left need a pair"),
    ('{"reviewer": "ann", "verdict": "skip", "input": "2+2=", "output": " 4", "pair": '
     '{"output": " 5"}, "preferred": "pair"}', "a skip prefers neither output"),
    ('{"reviewer": "ann", "verdict": "approve", "input": "2+2=", "output": " 4", "pair": '
     '{"output": " 4"}}', "a pair compares two different outputs"),
    ('{"reviewer": "ann", "verdict": "reject", "input": "2+2=", "output": " 5", '
     '"corrected": 4}', "corrected must be a string"),
]


def test_import_reports_bad_rows_by_line_and_writes_nothing(source, tmp_path):
    path, ids = source
    good = ('{"reviewer": "cy", "verdict": "reject", "input": "2+2=", "output": " 5", '
            '"corrected": " 4"}')
    file = tmp_path / "mixed.jsonl"
    file.write_text("\n".join([good] + [row for row, _ in BAD_ROWS] + [""]) + "\n")
    with Store(path) as store:
        before = store.query("SELECT * FROM ratings")
        with pytest.raises(DataError) as caught:
            import_jsonl(store, iter(file.read_text().splitlines()), source=str(file))
        assert str(caught.value).startswith(f"{file}:2: not JSON")
        assert f"(and {len(BAD_ROWS) - 1} more bad rows); nothing imported" in str(caught.value)
        assert store.query("SELECT * FROM ratings") == before
        report = import_jsonl(store, iter(file.read_text().splitlines()), skip_invalid=True)
        assert report.imported == 1
        assert [line for line, _ in report.rejected] == list(range(2, 2 + len(BAD_ROWS)))
        for (line, reason), (_, expected) in zip(report.rejected, BAD_ROWS):
            assert expected in reason, (line, reason)
    cli = run_cli("feedback", "import", str(file), "--db", str(path))
    assert cli.exit_code == 2 and "mixed.jsonl:2: not JSON" in cli.output
    dry = run_cli("feedback", "import", str(file), "--db", str(path), "--skip-invalid",
                  "--dry-run")
    assert dry.exit_code == 0 and "rejected: unknown reviewer" in dry.output
    assert "1 ratings would import" in dry.output


def test_a_disabled_reviewers_rows_are_rejected(source, tmp_path):
    path, ids = source
    with Store(path) as store:
        store.update_reviewer(ids["cy"], disabled=1)
        rows = '{"reviewer": "cy", "verdict": "approve", "input": "2+2=", "output": " 5"}\n'
        report = import_jsonl(store, iter(rows.splitlines()), skip_invalid=True)
    assert report.rejected == [(1, 'reviewer "cy" is disabled')]


def test_export_rows_are_what_import_reads(source):
    path, _ = source
    with Store(path) as store:
        rows = list(export_rows(store, all_versions=True))
        report = import_jsonl(store, (json.dumps(row) for row in rows), dry_run=True)
    assert report.rejected == [] and report.imported == len(rows)


def test_missing_database_is_a_one_line_error(tmp_path):
    result = run_cli("feedback", "export", "--db", str(tmp_path / "none.db"))
    assert result.exit_code == 2 and "no database yet" in result.output
