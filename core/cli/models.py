"""``tuneloop models list|show|promote|export`` (the model registry) and ``tuneloop predict``.

Every finished cycle registers its model with the gate's decision: ``promoted`` (the latest
promoted one is current: the next cycle continues from it, ``predict`` uses it) or ``rejected``
with its reasons; ``archived`` when a later promotion by hand rolled back past it. The store,
torch and transformers are imported inside the commands: ``tuneloop --help`` stays fast.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import click
from rich.console import Console
from rich.table import Table
from rich.text import Text

from tuneloop.errors import TuneloopError

console = Console()
DEFAULT_CONFIG = "tuneloop.yaml"
config_option = click.option("--config", default=DEFAULT_CONFIG, show_default=True,
                             type=click.Path(dir_okay=False), help="the project config")


def open_project(config: str) -> tuple[Any, Any]:
    """The loaded config and an open store; an error if the project has no database yet."""
    from tuneloop.config import load_config
    from tuneloop.store import Store

    loaded = load_config(config, check_components=False)
    if not loaded.database_path.exists():
        raise TuneloopError(f"{loaded.database_path}: no cycles yet; run tuneloop run {config}")
    return loaded, Store(loaded.database_path)


# Figures that count things (experts' ratings, raters, items): printed as whole numbers.
COUNTS = frozenset({"ratings", "rated_outputs", "reviewers", "agreement_items", "examples",
                    "items"})


def figure(value: float | None, name: str | None = None) -> str:
    """A figure for a table: four decimals, or a whole number for a count ("17", not
    "17.0000"); ``name`` may be dotted (``human.ratings``)."""
    if value is None:
        return "-"
    if name is not None and name.rpartition(".")[2] in COUNTS and float(value).is_integer():
        return str(int(value))
    return f"{value:.4f}"


@click.group()
def models() -> None:
    """The model registry: every cycle's model, promoted or not, and why."""


@models.command("list")
@click.option("--json", "as_json", is_flag=True, help="print the registry as JSON")
@config_option
def list_models(as_json: bool, config: str) -> None:
    """Every registered model with its stage and selection figures."""
    from tuneloop.promotion import current_model

    loaded, store = open_project(config)
    with store:
        rows = store.models(loaded.project)
        current = current_model(store, loaded.project)
        metric = loaded.select_metric
        if as_json:
            click.echo(json.dumps([
                {"cycle": model["cycle_id"], "stage": model["stage"],
                 "current": bool(current and current["id"] == model["id"]),
                 "path": model["path"], "metrics": json.loads(model["metrics"]),
                 "reasons": json.loads(model["reasons"] or "[]"),
                 "created_at": model["created_at"]} for model in rows], indent=2))
            return
        table = Table(title=f"Models of {loaded.project}")
        for column in ("cycle", "stage", f"val {metric}", f"test {metric}", "created (UTC)",
                       "decision"):
            table.add_column(column)
        for model in rows:
            figures = json.loads(model["metrics"])
            stage = model["stage"] + (" (current)" if current and current["id"] == model["id"]
                                      else "")
            reasons = json.loads(model["reasons"] or "[]")
            failed = [reason for reason in reasons if reason.startswith("fail")]
            decision = (failed or reasons or ["-"])[-1]
            table.add_row(str(model["cycle_id"]), stage,
                          figure(figures.get("validation", {}).get(metric)),
                          figure(figures.get("test", {}).get(metric)),
                          model["created_at"][:16].replace("T", " "), Text(decision))
        console.print(table if rows else "No models yet: run a cycle first.")


@models.command("show")
@click.argument("cycle", type=int)
@config_option
def show_model(cycle: int, config: str) -> None:
    """One model: where it is, its figures, the gate's reasons, the ratings that trained it."""
    from tuneloop.model_card import lineage, training_ratings

    loaded, store = open_project(config)
    with store:
        model = store.one("SELECT m.* FROM models m JOIN cycles c ON c.id = m.cycle_id "
                          "WHERE m.cycle_id = ? AND c.project = ?", [cycle, loaded.project])
        if model is None:
            raise TuneloopError(f"project {loaded.project} has no model for cycle {cycle}")
        console.print(f"[bold]Cycle {cycle}[/]: {model['stage']}, {model['path']}"
                      + ("" if Path(model["path"]).exists() else " [red](folder gone)[/]"))
        for reason in json.loads(model["reasons"] or "[]"):
            console.print(Text(f"  {reason}"))
        table = Table(title="Figures")
        for column in ("split", "figure", "value"):
            table.add_column(column)
        for split, figures in store.final_metrics(cycle).items():
            for name, value in figures.items():
                if "[" not in name:
                    table.add_row(split, Text(name), figure(value))
        console.print(table)
        chain = lineage(store, cycle)
        console.print("Lineage: " + " <- ".join(f"cycle {c['id']}" for c in chain)
                      + f" <- base {chain[-1]['base_model'] if chain else '?'}")
        ratings = training_ratings(store, cycle)
        console.print(f"Ratings that trained it: {len({r['rating_id'] for r in ratings})}"
                      + (" (" + ", ".join(f"{n} by {name}" for name, n in
                                          _count(ratings, "reviewer").items()) + ")"
                         if ratings else ""))


def _count(rows: list[dict[str, Any]], key: str) -> dict[str, int]:
    counts: dict[str, int] = {}
    for row in rows:
        counts[row[key]] = counts.get(row[key], 0) + 1
    return counts


@models.command("promote")
@click.argument("cycle", type=int)
@click.option("--reason", required=True, help="why the gate is overridden (kept with the model)")
@config_option
def promote(cycle: int, reason: str, config: str) -> None:
    """Make CYCLE's model the current one, overriding the gate (later promoted models are
    archived: promoting an earlier model is a rollback)."""
    from tuneloop.promotion import promote_by_hand

    loaded, store = open_project(config)
    with store:
        archived = promote_by_hand(store, loaded.project, cycle, reason)
    console.print(f"Cycle {cycle}'s model is now the current model; the next cycle continues "
                  f"from it.")
    if archived:
        console.print(f"Archived the later promoted models of cycles "
                      f"{', '.join(map(str, archived))}.")


@models.command("export")
@click.argument("destination", type=click.Path(file_okay=False))
@click.option("--cycle", type=int, help="the cycle whose model to export (default: the current)")
@click.option("--force", is_flag=True, help="replace DESTINATION if it is not empty")
@config_option
def export(destination: str, cycle: int | None, force: bool, config: str) -> None:
    """Write a model as a standard transformers folder with a model card (README.md) and its
    provenance (tuneloop.json): data, figures, and the ratings that trained it."""
    from tuneloop.model_card import export_model
    from tuneloop.promotion import current_model

    loaded, store = open_project(config)
    with store:
        if cycle is None:
            current = current_model(store, loaded.project)
            if current is None:
                raise TuneloopError(f"project {loaded.project} has no promoted model; choose "
                                    f"one with --cycle N (see tuneloop models list)")
            cycle = current["cycle_id"]
        elif store.cycle(cycle) is None or store.cycle(cycle)["project"] != loaded.project:
            raise TuneloopError(f"project {loaded.project} has no cycle {cycle}")
        path = export_model(store, cycle, Path(destination), force=force)
    console.print(f"Exported cycle {cycle}'s model to {path}")
    console.print(f"Run it: [bold]tuneloop predict {path} --input inputs.jsonl[/]")


@click.command()
@click.argument("model")
@click.option("--input", "input_path", required=True, type=click.Path(dir_okay=False),
              help="JSONL: one object per line with the text in --field (or a JSON string)")
@click.option("--output", "output_path", type=click.Path(dir_okay=False),
              help="where to write the answers (JSONL); default: standard output")
@click.option("--field", default="input", show_default=True, help="the text field of the input")
@click.option("--batch-size", default=32, show_default=True, type=click.IntRange(1))
@click.option("--scores", is_flag=True, help="add every label's probability (classification)")
@click.option("--config", type=click.Path(dir_okay=False),
              help="the project config, for a registered MODEL (current or a cycle number)")
def predict(model: str, input_path: str, output_path: str | None, field: str, batch_size: int,
            scores: bool, config: str | None) -> None:
    """Run MODEL on new inputs: an exported folder, any transformers folder, or a registered
    model (current, or a cycle number, with --config). Each input line comes back with output
    and confidence."""
    from tuneloop import deploy

    deployed = deploy.resolve(model, config or (DEFAULT_CONFIG if Path(DEFAULT_CONFIG).is_file()
                                                else None))
    rows = deploy.read_inputs(Path(input_path), field)
    out = open(output_path, "w", encoding="utf-8") if output_path else sys.stdout
    written = 0
    try:
        # chunks bound the memory a large file needs; each chunk is batched by length
        for chunk in deploy.chunks(rows, 8192):
            predictions = deploy.predict(deployed, [text for _, text in chunk], batch_size,
                                         quiet=output_path is None)
            written += deploy.write_outputs(
                zip((record for record, _ in chunk), predictions), out, scores=scores)
    finally:
        if output_path:
            out.close()
    if output_path:
        console.print(f"Wrote {written} answers from {deployed.path} ({deployed.task}) to "
                      f"{output_path}")


commands = [models, predict]
