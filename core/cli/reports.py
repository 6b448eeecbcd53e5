"""``tuneloop cycles list|show``, ``tuneloop compare`` and ``tuneloop report``: reading results.

Each figure is shown with its split (``validation.f1``, ``test.f1``, ``benchmark...``,
``human...``) beside the previous and the best cycle's, so a change is read against what came
before. Nothing here loads a model: per-example comparisons use the predictions each cycle stored.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click
from rich.console import Console
from rich.table import Table
from rich.text import Text

from tuneloop.cli.models import config_option, figure, open_project

console = Console()

AGREEMENT_FIGURES = ("kappa", "alpha")
# The review app's dashboard uses the same basis and says so in the same words.
AGREEMENT_BASIS = ("human.*_kappa / human.krippendorff_alpha: agreement on the verdict "
                   "(approve/reject) of outputs rated by more than one expert")


def delta_text(name: str, mine: float | None, other: float | None) -> Text:
    """``+0.0123`` green when better, red when worse (respecting lower-is-better figures)."""
    from tuneloop.comparison import improvement

    if mine is None or other is None:
        return Text("")
    delta = mine - other
    if abs(delta) < 5e-5:
        return Text(f"{delta:+.4f}", style="dim")
    gain = improvement(name.partition(".")[2], delta)
    return Text(f"{delta:+.4f}", style="green" if gain > 0 else "red" if gain < 0 else "")


def print_beside(store: Any, config: Any, cycle_id: int, per_label: bool = False) -> None:
    """The cycle's figures beside the previous and the best cycle's."""
    from tuneloop.comparison import metrics_beside

    beside = metrics_beside(store, config, cycle_id, per_label=per_label)
    previous = f"previous (cycle {beside.previous['id']})" if beside.previous else "previous"
    best = f"best (cycle {beside.best['id']})" if beside.best else "best"
    table = Table(title=f"Cycle {cycle_id}: {beside.cycle['status']}")
    for column, justify in (("figure", "left"), ("this cycle", "right"), (previous, "right"),
                            ("Δ", "right"), (best, "right"), ("Δ ", "right")):
        table.add_column(column, justify=justify)  # type: ignore[arg-type]
    for name, mine, before, top in beside.rows:
        table.add_row(Text(name), figure(mine, name), figure(before, name),
                      delta_text(name, mine, before), figure(top, name),
                      delta_text(name, mine, top))
    if beside.rows:
        console.print(table)
        if any(row[0].startswith("human.") and row[0].endswith(AGREEMENT_FIGURES)
               for row in beside.rows):
            console.print(AGREEMENT_BASIS, style="dim")
    else:
        console.print(f"Cycle {cycle_id} has no figures yet ({beside.cycle['status']}).")


def cycles_table(store: Any, config: Any) -> Table:
    """Every cycle: status, start, where it started from, selection figures (validation, and
    test beside it, reported only), the model's stage and the ratings it trained on."""
    table = Table(title=f"Project {config.project}")
    metric = config.select_metric
    for column in ("cycle", "status", "started (UTC)", "from", f"val {metric}", f"test {metric}",
                   "model", "ratings used"):
        table.add_column(column)
    models = {model["cycle_id"]: model for model in store.models(config.project)}
    for cycle in store.cycles(config.project):
        figures = store.final_metrics(cycle["id"])
        used = store.one("SELECT COUNT(DISTINCT rating_id) AS n FROM feedback_usage "
                         "WHERE cycle_id = ?", [cycle["id"]])
        model = models.get(cycle["id"])
        error = cycle["error"] or ""
        status = cycle["status"] + (f" ({error[:60]}{'…' if len(error) > 60 else ''})"
                                    if error else "")
        table.add_row(str(cycle["id"]), Text(status), cycle["started_at"][5:16].replace("T", " "),
                      "promoted" if cycle["start_model"] != cycle["base_model"] else "base",
                      figure(figures.get("validation", {}).get(metric)),
                      figure(figures.get("test", {}).get(metric)),
                      model["stage"] if model else "-", str(used["n"] if used else 0))
    return table


@click.group()
def cycles() -> None:
    """Cycles and their figures."""


@cycles.command("list")
@config_option
def list_cycles(config: str) -> None:
    """Every cycle: status, where it started, its selection figures and the gate's decision."""
    loaded, store = open_project(config)
    with store:
        console.print(cycles_table(store, loaded))


@cycles.command("show")
@click.argument("cycle", type=int)
@click.option("--per-label", is_flag=True, help="also the figures of single labels (f1[x])")
@config_option
def show_cycle(cycle: int, per_label: bool, config: str) -> None:
    """CYCLE's figures beside the previous and the best cycles', its timings and data."""
    from tuneloop.comparison import require_cycle

    loaded, store = open_project(config)
    with store:
        row = require_cycle(store, loaded.project, cycle)
        origin = "the promoted model" if row["start_model"] != row["base_model"] \
            else "the base model"
        console.print(f"[bold]Cycle {cycle}[/] ({row['status']}), started {row['started_at']} "
                      f"from {origin} {row['start_model']}")
        if row["error"]:
            console.print(Text(f"Error: {row['error']}", style="red"))
        stats = json.loads(row["stats"] or "{}")
        splits = stats.get("splits") or {}
        if splits:
            console.print("Data: " + ", ".join(
                f"{split} {entry.get('examples', 0) if isinstance(entry, dict) else entry}"
                for split, entry in splits.items()))
        timings = json.loads(row["timings"] or "{}")
        if timings:
            console.print("Seconds: " + ", ".join(f"{stage} {value:.1f}"
                                                 for stage, value in timings.items()))
        print_beside(store, loaded, cycle, per_label=per_label)
        model = store.one("SELECT stage, reasons FROM models WHERE cycle_id = ?", [cycle])
        if model:
            console.print(f"Model: {model['stage']}")
            for reason in json.loads(model["reasons"] or "[]"):
                console.print(Text(f"  {reason}"))


@click.command()
@click.argument("a", type=int)
@click.argument("b", type=int)
@click.option("--split", type=click.Choice(["validation", "test"]), default="validation",
              show_default=True, help="whose stored predictions to compare")
@click.option("--limit", default=10, show_default=True, type=click.IntRange(0),
              help="examples listed per kind of change")
@click.option("--json", "as_json", is_flag=True, help="print the comparison as JSON")
@config_option
def compare(a: int, b: int, split: str, limit: int, as_json: bool, config: str) -> None:
    """Cycle A against cycle B: figure deltas, and the examples B fixed, broke or still gets
    wrong (most confident regressions first)."""
    from tuneloop.comparison import compare_cycles

    loaded, store = open_project(config)
    with store:
        result = compare_cycles(store, loaded.project, a, b, split)
    if as_json:
        click.echo(json.dumps(result.as_json(limit), indent=2, ensure_ascii=False))
        return
    table = Table(title=f"Cycle {a} → cycle {b}")
    for column, justify in (("figure", "left"), (f"cycle {a}", "right"), (f"cycle {b}", "right"),
                            ("Δ", "right")):
        table.add_column(column, justify=justify)  # type: ignore[arg-type]
    for name, first, second in result.deltas:
        table.add_row(Text(name), figure(first), figure(second), delta_text(name, second, first))
    console.print(table)
    console.print(f"On {split}: [green]{len(result.fixed)} fixed[/], "
                  f"[red]{len(result.broken)} broken[/], {len(result.still_wrong)} still wrong, "
                  f"{result.still_right} still right"
                  + (f", {result.only_in_one} in one cycle only" if result.only_in_one else ""))
    for title, changes in (("Broken (most confident first)", result.broken),
                           ("Fixed", result.fixed), ("Still wrong", result.still_wrong)):
        if not changes or not limit:
            continue
        listing = Table(title=title)
        for column in ("input", "reference", f"cycle {a}", f"cycle {b}", "confidence"):
            listing.add_column(column)
        for change in changes[:limit]:
            listing.add_row(Text(change.input[:80]), Text(str(change.reference)),
                            Text(change.before[:40]), Text(change.after[:40]),
                            figure(change.confidence_after))
        console.print(listing)


@click.command()
@click.argument("config", default="tuneloop.yaml", type=click.Path(dir_okay=False))
@click.option("--output", "-o", default="tuneloop-report.html", show_default=True,
              type=click.Path(dir_okay=False), help="where to write the HTML file")
@click.option("--cycle", type=int, help="the cycle shown in detail (default: the latest done)")
@click.option("--split", type=click.Choice(["validation", "test"]),
              help="whose predictions the detail shows (default: test, else validation)")
def report(config: str, output: str, cycle: int | None, split: str | None) -> None:
    """Write a self-contained HTML report (opens offline): figures across cycles, benchmarks
    against the base model, human metrics, a confusion matrix and calibration."""
    from tuneloop.comparison import require_cycle
    from tuneloop.report import build_report

    loaded, store = open_project(config)
    with store:
        if cycle is not None:
            require_cycle(store, loaded.project, cycle)
        html = build_report(store, loaded, cycle, split)
    Path(output).write_text(html, encoding="utf-8")
    console.print(f"Wrote {output} ({len(html) // 1024} KiB); open it in a browser.")


commands = [cycles, compare, report]
