"""``tuneloop feedback export|import``: ratings in and out of a project database, as JSON Lines,
CSV, a Hugging Face ``datasets`` folder or Argilla 2.x records (``tuneloop.feedback_formats``).

The work is in ``tuneloop.feedback_io``; this module only parses options and prints. Nothing heavy
is imported at start-up: ``tuneloop --help`` loads every command module.
"""

from __future__ import annotations

import sys
from pathlib import Path

import click

from tuneloop.cli.review import database_options
from tuneloop.errors import TuneloopError


FORMATS = ("jsonl", "csv", "datasets", "argilla")


@click.group()
def feedback() -> None:
    """Move expert ratings in and out of the project database (JSON Lines, CSV, Hugging Face
    datasets, Argilla 2.x records)."""


@feedback.command(name="export")
@database_options
@click.option("--out", "-o", type=click.Path(writable=True),
              help="write here instead of stdout (a folder for --format datasets)")
@click.option("--format", "kind", type=click.Choice(FORMATS), default="jsonl", show_default=True,
              help="jsonl: one JSON object per rating; csv: one flat row per rating; datasets: "
                   "a datasets save_to_disk folder of flat rows; argilla: Argilla 2.x records "
                   "(a JSON array, current ratings only)")
@click.option("--cycle", "cycle_id", type=int, help="only ratings of this cycle's outputs")
@click.option("--all-versions", is_flag=True,
              help="also the ratings later edits superseded (the full history)")
def export_command(database: Path, out: str | None, kind: str, cycle_id: int | None,
                   all_versions: bool) -> None:
    """Write ratings: who rated which output how, what it superseded, and which cycles trained
    on it (``used_by``)."""
    from tuneloop import feedback_formats as formats
    from tuneloop.feedback_io import export_rows, write_jsonl
    from tuneloop.store import Store

    if not database.is_file():
        raise TuneloopError(f"{database}: no database yet")
    if kind == "datasets" and out is None:
        raise TuneloopError("--format datasets writes a folder: give it with --out DIR")
    if kind == "argilla" and all_versions:
        raise TuneloopError("--format argilla holds one rating per expert and item: "
                            "leave out --all-versions")
    if out is not None and Path(out).exists() and (kind == "datasets") != Path(out).is_dir():
        raise TuneloopError(f"{out}: exists and is not a "
                            f"{'folder' if kind == 'datasets' else 'file'}")
    with Store(database) as store:
        rows = list(export_rows(store, cycle_id=cycle_id, all_versions=all_versions))
    writers = {"jsonl": write_jsonl, "csv": formats.write_csv, "argilla": formats.write_argilla}
    if kind == "datasets":
        count = formats.write_datasets(rows, Path(out))  # type: ignore[arg-type]
    elif out is None:
        writers[kind](iter(rows), sys.stdout)
        return
    else:
        with open(out, "w", encoding="utf-8", newline="" if kind == "csv" else None) as stream:
            count = writers[kind](iter(rows), stream)
    click.echo(f"Wrote {count} ratings to {out} ({kind})", err=True)


@feedback.command(name="import")
@click.argument("path", type=click.Path(exists=True))
@database_options
@click.option("--format", "kind", type=click.Choice(("auto", *FORMATS)), default="auto",
              show_default=True,
              help="auto: a folder is datasets, .csv csv, .json argilla, else jsonl")
@click.option("--skip-invalid", is_flag=True,
              help="import the good rows even if some are bad (the bad ones are listed)")
@click.option("--dry-run", is_flag=True, help="check every row, write nothing")
def import_command(database: Path, path: str, kind: str, skip_invalid: bool,
                   dry_run: bool) -> None:
    """Add ratings from a file written by ``feedback export`` (any format), or by Argilla.

    Every row is checked first; a bad row is reported with its line (or record) number. Unless
    --skip-invalid is given, one bad row means nothing is imported.
    """
    from tuneloop import feedback_formats as formats
    from tuneloop.feedback_io import import_jsonl, import_rows
    from tuneloop.store import Store

    if not database.is_file():
        raise TuneloopError(f"{database}: no database yet")
    source = Path(path)
    kind = formats.guess_format(source) if kind == "auto" else kind
    if (kind == "datasets") != source.is_dir():
        raise TuneloopError(f"{path}: --format {kind} reads a "
                            f"{'folder' if kind == 'datasets' else 'file'}")
    options = {"source": path, "skip_invalid": skip_invalid, "dry_run": dry_run}
    with Store(database) as store:
        if kind == "datasets":
            report = import_rows(store, formats.read_datasets(source), **options)
        else:
            with open(path, encoding="utf-8", errors="replace",
                      newline="" if kind == "csv" else None) as stream:
                if kind == "jsonl":
                    report = import_jsonl(store, stream, **options)
                elif kind == "csv":
                    report = import_rows(store, formats.read_csv(stream), **options)
                else:
                    names = [row["name"] for row in store.reviewers()]
                    report = import_rows(store, formats.read_argilla(stream, names), **options)
    for line, reason in report.rejected:
        click.secho(f"{path}:{line}: rejected: {reason}", fg="yellow", err=True)
    verb = "would import" if dry_run else "imported"
    click.echo(f"{report.imported} ratings {verb}, {report.unchanged} already present, "
               f"{len(report.rejected)} rejected")


commands = [feedback]
