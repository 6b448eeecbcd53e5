"""``tuneloop status``, ``cycles show``, ``compare`` and ``report``: figures beside the previous and
best cycles, per-example changes, and the HTML report's content checked against scikit-learn."""

from __future__ import annotations

import json
import re

import pytest
from click.testing import CliRunner
from sklearn import metrics as sk

from reported import EVIL, LABELS, reported_project
from tuneloop import Example, Prediction
from tuneloop.cli import cli
from tuneloop.comparison import compare_cycles, metrics_beside
from tuneloop.evaluation import record_predictions, stored_predictions
from tuneloop.report import build_report, calibration, confusion, per_label
from tuneloop.store import Store


@pytest.fixture
def project(tmp_path):
    return reported_project(tmp_path)


def invoke(*args: str):
    return CliRunner(env={"COLUMNS": "200"}).invoke(cli, list(args))  # no wrapped tables


def test_figures_beside_the_previous_and_best_cycles(project):
    config = project["config"]
    with Store(config.database_path) as store:
        beside = metrics_beside(store, config, project["rejected"])
        figures = {split: store.final_metrics(cycle)
                   for split, cycle in (("mine", project["rejected"]),
                                        ("best", project["promoted"]))}
    assert beside.previous["id"] == project["promoted"]
    assert beside.best["id"] == project["promoted"]  # the best promoted cycle
    rows = {name: (mine, previous, best) for name, mine, previous, best in beside.rows}
    assert rows["validation.f1"] == (figures["mine"]["validation"]["f1"],
                                     figures["best"]["validation"]["f1"],
                                     figures["best"]["validation"]["f1"])
    assert rows["benchmark.lm_eval.capitals.acc"] == (pytest.approx(0.5), 0.55, 0.55)
    assert rows["human.approval_rate"] == (0.8, 0.7, 0.7)
    names = list(rows)
    assert names.index("validation.f1") < names.index("test.f1") < \
        names.index("benchmark.lm_eval.capitals.acc") < names.index("human.approval_rate")


def test_status_and_cycles_show(project):
    config_path = str(project["config"].config_path)
    status = invoke("status", config_path)
    assert status.exit_code == 0, status.output
    assert "failed" in status.output and "Review queue" in status.output
    # the latest cycle with figures, beside the previous and best: not the failed one
    assert f"Cycle {project['rejected']}: done" in status.output
    assert "validation.f1" in status.output
    shown = invoke("cycles", "show", str(project["rejected"]), "--config", config_path)
    assert shown.exit_code == 0, shown.output
    assert f"previous (cycle {project['promoted']})" in shown.output
    assert "validation.f1" in shown.output and "Model: rejected" in shown.output
    listed = invoke("cycles", "list", "--config", config_path)
    assert listed.exit_code == 0 and listed.output.count("done") == 2
    missing = invoke("cycles", "show", "42", "--config", config_path)
    assert missing.exit_code == 2 and "has no cycle 42" in missing.output


def test_compare_sorts_the_most_confident_regressions_first(tmp_path):
    from projects import classification_project

    from tuneloop.config import load_config

    config = load_config(classification_project(tmp_path, "unused"), check_components=False)
    examples = [Example(f"question {n}", "yes") for n in range(6)]
    plan = [  # (cycle A's answer, cycle B's answer, B's confidence)
        ("yes", "yes", 0.9),   # still right
        ("no", "yes", 0.8),    # fixed
        ("yes", "no", 0.7),    # broken
        ("yes", "no", 0.95),   # broken, surer: listed first
        ("no", "no", 0.6),     # still wrong
    ]
    with Store(config.database_path) as store:
        cycles = [store.create_cycle(project="toy", task="classification", seed=1, config={},
                                     plugins=[], base_model="m", start_model="m", parent_id=None)
                  for _ in range(2)]
        for side, cycle in enumerate(cycles):
            chosen = examples[:5] if side == 0 else examples  # the last only in cycle B
            answers = [Prediction(e.id, plan[n][side] if n < 5 else "yes",
                                  plan[n][2] if side and n < 5 else 0.5)
                       for n, e in enumerate(chosen)]
            record_predictions(store, cycle, "validation", chosen, answers)
            store.add_metrics(cycle, "validation", {"accuracy": [0.6, 0.5][side]})
        result = compare_cycles(store, "toy", *cycles)
    assert [change.example_id for change in result.broken] == [examples[3].id, examples[2].id]
    assert [change.example_id for change in result.fixed] == [examples[1].id]
    assert [change.example_id for change in result.still_wrong] == [examples[4].id]
    assert (result.still_right, result.only_in_one) == (1, 1)
    assert result.deltas == [("validation.accuracy", 0.6, 0.5)]
    shown = invoke("compare", str(cycles[0]), str(cycles[1]), "--json", "--config",
                   str(config.config_path))
    assert shown.exit_code == 0, shown.output
    data = json.loads(shown.output)
    assert data["counts"] == {"fixed": 1, "broken": 2, "still_wrong": 1, "still_right": 1,
                              "only_in_one": 1}
    assert data["deltas"] == [{"figure": "validation.accuracy", "a": 0.6, "b": 0.5,
                               "delta": pytest.approx(-0.1)}]
    assert data["broken"][0]["confidence_after"] == 0.95
    table = invoke("compare", str(cycles[0]), str(cycles[1]), "--config",
                   str(config.config_path))
    assert table.exit_code == 0 and "1 fixed" in table.output and "2 broken" in table.output
    no_test = invoke("compare", str(cycles[0]), str(cycles[1]), "--split", "test", "--config",
                     str(config.config_path))
    assert no_test.exit_code == 2 and "no stored test predictions" in no_test.output


def test_confusion_per_label_and_calibration_match_scikit_learn_and_the_ece_metric(project):
    from tuneloop import registries

    with Store(project["config"].database_path) as store:
        rows = stored_predictions(store, project["rejected"], "test")
    references = [row["reference"] for row in rows]
    outputs = [row["output"] for row in rows]
    labels, matrix, trimmed = confusion(rows)
    assert labels == sorted(LABELS) and not trimmed
    assert matrix == sk.confusion_matrix(references, outputs, labels=labels).tolist()
    precision, recall, f1, support = sk.precision_recall_fscore_support(
        references, outputs, labels=labels, zero_division=0)
    for (label, p, r, f, n), expected in zip(per_label(rows),
                                             zip(labels, precision, recall, f1, support)):
        assert (label, p, r, f, n) == (expected[0], pytest.approx(expected[1]),
                                       pytest.approx(expected[2]), pytest.approx(expected[3]),
                                       expected[4])
    bins, ece = calibration(rows, bins=10)
    assert sum(count for _, _, count in bins) == len(rows)
    component = registries.build()["metrics"].get("ece")
    examples = project["examples"]["test"]
    by_id = {row["example_id"]: row for row in rows}
    answers = [Prediction(e.id, by_id[e.id]["output"], by_id[e.id]["confidence"])
               for e in examples]
    assert component().compute(answers, examples) == {"ece": pytest.approx(ece)}


def test_a_confusion_matrix_of_many_labels_keeps_the_most_confused():
    rows = [{"reference": f"label{n}", "output": f"label{n}"} for n in range(40)]
    rows += [{"reference": "label0", "output": "label1"}] * 3
    labels, matrix, trimmed = confusion(rows)
    assert trimmed and len(labels) == 30 and {"label0", "label1"} <= set(labels)
    assert matrix[labels.index("label0")][labels.index("label1")] == 3


def test_the_report_has_every_section_and_escapes_what_data_says(project, tmp_path):
    config = project["config"]
    output = tmp_path / "report.html"
    result = invoke("report", str(config.config_path), "--output", str(output))
    assert result.exit_code == 0, result.output
    html = output.read_text()
    for title in ("Cycles", "Metrics across cycles", "Benchmarks against the base model",
                  "Human metrics", f"Cycle {project['rejected']} beside the previous and best "
                  f"cycles", f"Cycle {project['rejected']} on test"):
        assert f"<h2>{title}</h2>" in html
    assert EVIL not in html and "&lt;script&gt;window.__pwned" in html
    assert "<script" not in html and "http://" not in html.replace(
        'xmlns="http://www.w3.org/2000/svg"', "")  # nothing to run, nothing to fetch
    charts = re.findall(r'<svg class="chart', html)
    # accuracy, f1, loss; one benchmark (stderr not charted); five human figures;
    # the confusion matrix and the reliability diagram
    assert len(charts) == 3 + 1 + 5 + 2
    assert html.count('class="cell"') == len(LABELS) ** 2
    assert 'class="reference"' in html  # the base model's dashed line
    detail = build_report(Store(config.database_path), config, project["promoted"], "validation")
    assert f"Cycle {project['promoted']} on validation" in detail


def test_report_needs_a_database(tmp_path):
    from projects import classification_project

    path = classification_project(tmp_path, "unused")
    result = invoke("report", str(path), "--output", str(tmp_path / "r.html"))
    assert result.exit_code == 2 and "no cycles yet" in result.output
