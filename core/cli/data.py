"""``tuneloop data inspect`` and ``tuneloop data export``: the prepared data, without training.

Both run the cycle's own data preparation (sources, cleaners, split, augmenters, feedback, leakage
check), so what they show is exactly what the next cycle would train and evaluate on. Neither
creates a database: with no database yet, the split is the one a first cycle would make; with one,
earlier split assignments and unused ratings are taken into account, as a cycle would.
"""

from __future__ import annotations

import json
import sys
from typing import Any

import click
from rich.console import Console

from tuneloop.components import SPLITS



def report_console() -> Console:
    """The terminal's width; 120 columns when the report goes to a file or a pipe."""
    return Console() if sys.stdout.isatty() else Console(width=120)


@click.group()
def data() -> None:
    """Inspect or export the prepared data of a project, without training."""


def _prepare(config_path: str) -> tuple[Any, Any]:
    """The config and the data a cycle would prepare from it (nothing written)."""
    from tuneloop import registries
    from tuneloop.config import load_config
    from tuneloop.cycle import prepare_data
    from tuneloop.store import Store

    config = load_config(config_path)
    found = registries.build()
    if not config.database_path.exists():
        return config, prepare_data(config, found, None)
    with Store(config.database_path) as store:
        return config, prepare_data(config, found, store)


@data.command()
@click.argument("config", default="tuneloop.yaml", type=click.Path(dir_okay=False))
@click.option("--json", "as_json", is_flag=True, help="print the report as JSON")
@click.option("--samples", default=3, show_default=True, type=click.IntRange(0, 100),
              help="rows shown per split")
@click.option("--max-labels", default=200, show_default=True, type=click.IntRange(1),
              help="labels shown in the distribution table")
def inspect(config: str, as_json: bool, samples: int, max_labels: int) -> None:
    """Counts per source and split, labels, token lengths, cleaning, leaks, sample rows."""
    from tuneloop import data_report

    loaded, prepared = _prepare(config)
    report = data_report.build(loaded, prepared, samples=samples)
    if as_json:
        click.echo(json.dumps(report, indent=2, ensure_ascii=False, default=str))
    else:
        data_report.render(report, report_console(), max_labels=max_labels)


@data.command()
@click.argument("config", default="tuneloop.yaml", type=click.Path(dir_okay=False))
@click.option("--split", "split", type=click.Choice(SPLITS), default="train", show_default=True,
              help="which split to write")
@click.option("--output", "-o", type=click.Path(dir_okay=False, allow_dash=True), default="-",
              help="file to write (default: standard output)")
def export(config: str, split: str, output: str) -> None:
    """Write one prepared split as JSON Lines (id, input, target, weight, group, source,
    provenance), augmented and feedback examples included."""
    _, prepared = _prepare(config)
    examples = prepared.splits.get(split) or []
    lines = (json.dumps({"id": example.id, "input": example.input, "target": example.target,
                         "weight": example.weight, "group": example.group,
                         "source": example.source, "split": split,
                         "provenance": example.provenance}, ensure_ascii=False) + "\n"
             for example in examples)
    if output == "-":
        sys.stdout.writelines(lines)
        sys.stdout.flush()
        return
    from tuneloop.errors import TuneloopError

    try:
        with open(output, "w", encoding="utf-8") as handle:
            handle.writelines(lines)
    except OSError as error:
        raise TuneloopError(f"{output}: cannot write: {error.strerror or error}") from None
    click.echo(f"Wrote {len(examples)} {split} examples to {output}", err=True)


commands = [data]
