"""``tuneloop report``: one self-contained HTML file about a project's cycles.

It opens offline in any browser (inline CSS and SVG, no scripts, no fonts or images to fetch)
and shows: the cycles and the gate's decisions; every figure across cycles (validation and test
side by side, benchmarks against the base model, the experts' figures); and one cycle in detail:
its figures beside the previous and best cycles, its confusion matrix, per-label figures and
calibration, drawn from the predictions stored with the cycle (no model is loaded).
Everything that came from data or a person is HTML-escaped.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass
from html import escape
from typing import TYPE_CHECKING, Any

from tuneloop import svg
from tuneloop.comparison import final_figures, improvement, lower_is_better, metrics_beside

if TYPE_CHECKING:  # pragma: no cover
    from tuneloop.config import ProjectConfig
    from tuneloop.store import Store

MAX_MATRIX_LABELS = 30
HUMAN_FIGURES = ("approval_rate", "mean_score", "corrections_per_output", "krippendorff_alpha",
                 "cohen_kappa", "fleiss_kappa")

STYLE = """
body { font-family: system-ui, sans-serif; margin: 2rem auto; max-width: 1100px; color: #111;
       padding: 0 1rem; }
h1 { margin-bottom: 0.2rem; } h2 { margin-top: 2.2rem; border-bottom: 1px solid #e5e7eb; }
.muted { color: #6b7280; } .grid { display: flex; flex-wrap: wrap; gap: 1rem; }
table { border-collapse: collapse; margin: 0.6rem 0; font-size: 0.9rem; }
th, td { border-bottom: 1px solid #e5e7eb; padding: 0.25rem 0.6rem; text-align: left; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
.better { color: #15803d; } .worse { color: #b91c1c; }
.stage-promoted { color: #15803d; font-weight: 600; } .stage-rejected { color: #b45309; }
svg.chart { background: #fff; border: 1px solid #f3f4f6; border-radius: 6px; }
"""


# --------------------------------------------------------------------------------------------------
# What the report shows, computed from the stored predictions
# --------------------------------------------------------------------------------------------------


def confusion(rows: list[dict[str, Any]]) -> tuple[list[str], list[list[int]], bool]:
    """Labels and counts ``[reference][predicted]`` of scored predictions; with many labels only
    the ``MAX_MATRIX_LABELS`` most involved in mistakes, then the most frequent (third value:
    whether some were left out)."""
    pairs = [(row["reference"], row["output"]) for row in rows if row["reference"] is not None]
    labels = sorted({label for pair in pairs for label in pair})
    trimmed = False
    if len(labels) > MAX_MATRIX_LABELS:
        mistakes: Counter = Counter()
        seen: Counter = Counter()
        for reference, output in pairs:
            seen[reference] += 1
            if reference != output:
                mistakes[reference] += 1
                mistakes[output] += 1
        ranked = sorted(labels, key=lambda label: (-mistakes[label], -seen[label], label))
        labels = sorted(ranked[:MAX_MATRIX_LABELS])
        trimmed = True
    index = {label: number for number, label in enumerate(labels)}
    matrix = [[0] * len(labels) for _ in labels]
    for reference, output in pairs:
        if reference in index and output in index:
            matrix[index[reference]][index[output]] += 1
    return labels, matrix, trimmed


def per_label(rows: list[dict[str, Any]]) -> list[tuple[str, float, float, float, int]]:
    """``(label, precision, recall, f1, support)`` for every label, from scored predictions."""
    pairs = [(row["reference"], row["output"]) for row in rows if row["reference"] is not None]
    labels = sorted({label for pair in pairs for label in pair})
    table = []
    for label in labels:
        true_positive = sum(r == label and o == label for r, o in pairs)
        predicted = sum(o == label for _, o in pairs)
        support = sum(r == label for r, _ in pairs)
        precision = true_positive / predicted if predicted else 0.0
        recall = true_positive / support if support else 0.0
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
        table.append((label, precision, recall, f1, support))
    return table


def calibration(rows: list[dict[str, Any]], bins: int = 10
                ) -> tuple[list[tuple[float, float, int]], float] | None:
    """Reliability bins ``(mean confidence, accuracy, count)`` and the expected calibration
    error, binned as the ``ece`` metric bins (equal width over [0, 1])."""
    scored = [(min(max(row["confidence"], 0.0), 1.0), row["correct"]) for row in rows
              if row["confidence"] is not None and row["correct"] is not None]
    if not scored:
        return None
    totals = [[0.0, 0, 0] for _ in range(bins)]  # confidence sum, right, count
    for confidence, correct in scored:
        slot = totals[min(int(confidence * bins), bins - 1)]
        slot[0] += confidence
        slot[1] += int(correct)
        slot[2] += 1
    result = [(c / n if n else 0.0, r / n if n else 0.0, n) for c, r, n in totals]
    ece = sum(n / len(scored) * abs(accuracy - confidence) for confidence, accuracy, n in result)
    return result, ece


# --------------------------------------------------------------------------------------------------
# The HTML
# --------------------------------------------------------------------------------------------------


@dataclass
class Section:
    title: str
    body: str

    def html(self) -> str:
        anchor = escape(self.title.lower().replace(" ", "-"))
        return f'<section id="{anchor}"><h2>{escape(self.title)}</h2>{self.body}</section>'


def build_report(store: "Store", config: "ProjectConfig", cycle_id: int | None = None,
                 split: str | None = None) -> str:
    """The whole report as one HTML string. ``cycle_id``: the cycle shown in detail (default:
    the latest finished one); ``split``: its predictions (default: test, else validation)."""
    from tuneloop.evaluation import base_figures
    from tuneloop.promotion import current_model
    from tuneloop.store import now

    cycles = store.cycles(config.project)
    done = [cycle for cycle in cycles if cycle["status"] == "done"]
    if cycle_id is None and done:
        cycle_id = done[-1]["id"]
    figures = {cycle["id"]: final_figures(store, cycle["id"]) for cycle in cycles}
    current = current_model(store, config.project)
    sections = [cycles_section(store, config, cycles, figures)]
    sections += metric_sections(config, figures, base_figures(store, config.project,
                                                              config.model_location()))
    if cycle_id is not None:
        sections += detail_sections(store, config, cycle_id, split)
    title = f"tuneloop report: {config.project}"
    header = (f"<h1>{escape(title)}</h1><p class=\"muted\">{escape(config.task)} · base model "
              f"<code>{escape(config.model.name)}</code> · {len(cycles)} cycles · current model: "
              f"{'cycle ' + str(current['cycle_id']) if current else 'none promoted'} · "
              f"generated {escape(now()[:19].replace('T', ' '))} UTC</p>")
    contents = "".join(f'<li><a href="#{escape(s.title.lower().replace(" ", "-"))}">'
                       f"{escape(s.title)}</a></li>" for s in sections)
    return (f'<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">'
            f'<meta name="viewport" content="width=device-width, initial-scale=1">'
            f"<title>{escape(title)}</title><style>{STYLE}</style></head><body>{header}"
            f"<nav><ul>{contents}</ul></nav>{''.join(s.html() for s in sections)}"
            f"</body></html>")


def cycles_section(store: "Store", config: "ProjectConfig", cycles: list[dict[str, Any]],
                   figures: dict[int, dict[str, float]]) -> Section:
    metric = config.select_metric
    models = {model["cycle_id"]: model for model in store.models(config.project)}
    rows = []
    for cycle in cycles:
        model = models.get(cycle["id"])
        stage = model["stage"] if model else "-"
        reasons = json.loads(model["reasons"] or "[]") if model else []
        used = store.one("SELECT COUNT(DISTINCT rating_id) AS n FROM feedback_usage WHERE "
                         "cycle_id = ?", [cycle["id"]])["n"]
        status = cycle["status"] + (f": {cycle['error']}" if cycle["error"] else "")
        rows.append(
            f"<tr><td>{cycle['id']}</td><td>{escape(status)}</td>"
            f"<td>{escape(cycle['started_at'][:16].replace('T', ' '))}</td>"
            f"<td>{'promoted' if cycle['start_model'] != cycle['base_model'] else 'base'}</td>"
            f"<td class=\"num\">{_number(figures[cycle['id']].get(f'validation.{metric}'))}</td>"
            f"<td class=\"num\">{_number(figures[cycle['id']].get(f'test.{metric}'))}</td>"
            f"<td class=\"stage-{escape(stage)}\">{escape(stage)}</td><td class=\"num\">{used}"
            f"</td><td>{'<br>'.join(escape(reason) for reason in reasons)}</td></tr>")
    body = ("<table><tr><th>cycle</th><th>status</th><th>started (UTC)</th><th>from</th>"
            f"<th>val {escape(metric)}</th><th>test {escape(metric)}</th><th>model</th>"
            "<th>ratings used</th><th>promotion gate</th></tr>" + "".join(rows) + "</table>"
            "<p class=\"muted\">Validation figures select checkpoints and decide promotion; test "
            "figures are reported only.</p>")
    return Section("Cycles", body)


def metric_sections(config: "ProjectConfig", figures: dict[int, dict[str, float]],
                    base: dict[str, float]) -> list[Section]:
    """Charts of every figure across cycles: validation and test, benchmarks, human."""
    def series(split: str, name: str) -> list[tuple[int, float]]:
        return [(cycle, values[f"{split}.{name}"]) for cycle, values in figures.items()
                if f"{split}.{name}" in values]

    names: list[str] = []
    for values in figures.values():
        for key in values:
            split, _, name = key.partition(".")
            if split in ("validation", "test") and "[" not in name and name not in names:
                names.append(name)
    names.sort(key=lambda name: (name != config.select_metric, name))
    charts = [svg.line_chart(name + (" (lower is better)" if lower_is_better(name) else ""),
                             {"validation": series("validation", name),
                              "test": series("test", name)})
              for name in names]
    sections = [Section("Metrics across cycles",
                        f'<div class="grid">{"".join(charts)}</div>' if charts else
                        "<p>No figures yet.</p>")]
    benchmark_names = sorted({key.partition(".")[2] for values in figures.values()
                              for key in values if key.startswith("benchmark.")
                              and not key.endswith("_stderr")})
    if benchmark_names:
        charts = [svg.line_chart(name, {"cycles": series("benchmark", name)},
                                 reference={"base model": base[name]} if name in base else None)
                  for name in benchmark_names]
        sections.append(Section("Benchmarks against the base model",
                                '<p class="muted">The forgetting guard: each cycle\'s model on '
                                'the benchmark tasks, the dashed line the base model before '
                                f'finetuning.</p><div class="grid">{"".join(charts)}</div>'))
    human = [name for name in HUMAN_FIGURES if series("human", name)]
    if human:
        charts = [svg.line_chart(name.replace("_", " "), {"experts": series("human", name)})
                  for name in human]
        counts = "".join(
            f"<tr><td>{cycle}</td>" + "".join(
                f'<td class="num">{_number(values.get(f"human.{name}"), name)}</td>'
                for name in ("ratings", "reviewers", *human)) + "</tr>"
            for cycle, values in figures.items() if any(k.startswith("human.") for k in values))
        header = "".join(f"<th>{escape(name)}</th>" for name in ("ratings", "reviewers", *human))
        sections.append(Section("Human metrics",
                                '<p class="muted">From the experts\' ratings of each cycle\'s '
                                "outputs (recorded when the next cycle runs); agreement is on the "
                                "approve/reject verdict, where an output had several raters.</p>"
                                f'<div class="grid">{"".join(charts)}</div><table><tr><th>cycle'
                                f"</th>{header}</tr>{counts}</table>"))
    return sections


def detail_sections(store: "Store", config: "ProjectConfig", cycle_id: int,
                    split: str | None) -> list[Section]:
    from tuneloop.evaluation import stored_predictions

    beside = metrics_beside(store, config, cycle_id)
    columns = ["this cycle", f"previous ({beside.previous['id']})" if beside.previous else
               "previous", f"best ({beside.best['id']})" if beside.best else "best"]
    rows = []
    for name, mine, previous, best in beside.rows:
        cells = []
        for other in (previous, best):
            delta = None if mine is None or other is None else mine - other
            gain = improvement(name.partition(".")[2], delta) if delta else 0.0
            style = "better" if gain > 0 else "worse" if gain < 0 else ""
            cells.append(f'<td class="num">{_number(other, name)}</td><td class="num {style}">'
                         f"{'' if delta is None else f'{delta:+.4f}'}</td>")
        rows.append(f"<tr><td>{escape(name)}</td><td class=\"num\">{_number(mine, name)}</td>"
                    + "".join(cells) + "</tr>")
    table = (f"<table><tr><th>figure</th><th>{columns[0]}</th><th>{escape(columns[1])}</th>"
             f"<th>Δ</th><th>{escape(columns[2])}</th><th>Δ</th></tr>{''.join(rows)}</table>")
    sections = [Section(f"Cycle {cycle_id} beside the previous and best cycles", table)]
    chosen = split or ("test" if stored_predictions(store, cycle_id, "test") else "validation")
    rows_ = stored_predictions(store, cycle_id, chosen)
    if not rows_:
        return sections
    parts = []
    if config.task == "classification":
        labels, matrix, trimmed = confusion(rows_)
        note = (f'<p class="muted">{MAX_MATRIX_LABELS} labels most involved in mistakes '
                f"shown.</p>" if trimmed else "")
        parts.append(svg.heatmap(f"Confusion matrix, cycle {cycle_id}, {chosen}", labels, matrix)
                     + note)
        label_rows = "".join(
            f"<tr><td>{escape(label)}</td><td class=\"num\">{p:.3f}</td><td class=\"num\">"
            f"{r:.3f}</td><td class=\"num\">{f:.3f}</td><td class=\"num\">{n}</td></tr>"
            for label, p, r, f, n in sorted(per_label(rows_), key=lambda row: row[3]))
        parts.append("<div><h3>Per label, worst f1 first</h3><table><tr><th>label</th>"
                     "<th>precision</th><th>recall</th><th>f1</th><th>support</th></tr>"
                     f"{label_rows}</table></div>")
    measured = calibration(rows_)
    if measured:
        bins, ece = measured
        parts.append(svg.reliability_diagram(f"Calibration, {chosen}", bins, ece))
    sections.append(Section(f"Cycle {cycle_id} on {chosen}",
                            f'<div class="grid">{"".join(parts)}</div>'))
    return sections


def _number(value: float | None, name: str | None = None) -> str:
    """Four decimals, or a whole number for a count (see ``tuneloop.cli.models.figure``)."""
    from tuneloop.cli.models import figure

    return figure(value, name)
