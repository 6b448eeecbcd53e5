"""``tuneloop feedback export|import``: ratings as JSON Lines, in and out of a project database.

The work is in ``tuneloop.feedback_io``; this module only parses options and prints. Nothing heavy
is imported at start-up: ``tuneloop --help`` loads every command module.
"""

from __future__ import annotations

import sys
from pathlib import Path

import click

from tuneloop.cli.review import database_options
from tuneloop.errors import TuneloopError


@click.group()
def feedback() -> None:
    """Move expert ratings in and out of the project database (JSON Lines)."""


@feedback.command(name="export")
@database_options
@click.option("--out", "-o", type=click.Path(dir_okay=False, writable=True),
              help="write here instead of stdout")
@click.option("--cycle", "cycle_id", type=int, help="only ratings of this cycle's outputs")
@click.option("--all-versions", is_flag=True,
              help="also the ratings later edits superseded (the full history)")
def export_command(database: Path, out: str | None, cycle_id: int | None,
                   all_versions: bool) -> None:
    """Write ratings, one JSON object per line: who rated which output how, what it superseded,
    and which cycles trained on it (``used_by``)."""
    from tuneloop.feedback_io import export_rows, write_jsonl
    from tuneloop.store import Store

    if not database.is_file():
        raise TuneloopError(f"{database}: no database yet")
    with Store(database) as store:
        rows = list(export_rows(store, cycle_id=cycle_id, all_versions=all_versions))
    if out is None:
        write_jsonl(iter(rows), sys.stdout)
        return
    with open(out, "w", encoding="utf-8") as stream:
        count = write_jsonl(iter(rows), stream)
    click.echo(f"Wrote {count} ratings to {out}", err=True)


@feedback.command(name="import")
@click.argument("path", type=click.Path(dir_okay=False, exists=True))
@database_options
@click.option("--skip-invalid", is_flag=True,
              help="import the good rows even if some are bad (the bad ones are listed)")
@click.option("--dry-run", is_flag=True, help="check every row, write nothing")
def import_command(database: Path, path: str, skip_invalid: bool, dry_run: bool) -> None:
    """Add ratings from a JSON Lines file (as written by ``feedback export``).

    Every row is checked first; a bad row is reported with its line number. Unless
    --skip-invalid is given, one bad row means nothing is imported.
    """
    from tuneloop.feedback_io import import_jsonl
    from tuneloop.store import Store

    if not database.is_file():
        raise TuneloopError(f"{database}: no database yet")
    with Store(database) as store, open(path, encoding="utf-8", errors="replace") as lines:
        report = import_jsonl(store, lines, source=path, skip_invalid=skip_invalid,
                              dry_run=dry_run)
    for line, reason in report.rejected:
        click.secho(f"{path}:{line}: rejected: {reason}", fg="yellow", err=True)
    verb = "would import" if dry_run else "imported"
    click.echo(f"{report.imported} ratings {verb}, {report.unchanged} already present, "
               f"{len(report.rejected)} rejected")


commands = [feedback]
