"""The ``tuneloop`` command line.

Start-up imports only click, rich, pydantic and yaml: torch, transformers and evaluate are imported
by the commands that need them, so ``tuneloop --help`` answers at once. A user error prints one
line and exits with code 2; ``TUNELOOP_DEBUG=1`` shows the traceback instead.
"""

from __future__ import annotations

import os
import sys
from typing import Any

import click

from tuneloop.errors import TuneloopError


def debug_enabled() -> bool:
    return os.environ.get("TUNELOOP_DEBUG", "") not in ("", "0", "false")


def fail(error: BaseException) -> None:
    """Print a user error as one line on stderr and exit 2 (or re-raise when debugging)."""
    if debug_enabled():
        raise error
    message = str(error).strip().replace("\n", " ")
    click.secho(f"Error: {message}", err=True, fg="red")
    sys.exit(getattr(error, "exit_code", 2))


class TuneloopGroup(click.Group):
    """A click group that turns TuneloopError into a one-line message and exit code 2."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except TuneloopError as error:
            fail(error)


@click.group(cls=TuneloopGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="tuneloop")
def cli() -> None:
    """Evaluation-driven finetuning with a human feedback loop.

    \b
    Start here:
      tuneloop demo              finetune a real model on a demo project
      tuneloop review            let experts rate outputs in the browser
      tuneloop run               run the next cycle, learning from the ratings
    """


def _add_builtin_commands() -> None:
    from tuneloop.cli import plugins_cmd, project, review

    for module in (project, review, plugins_cmd):
        for command in module.commands:
            cli.add_command(command)


_add_builtin_commands()


def add_plugin_commands() -> None:
    """Let installed plugins add commands (``register_commands``)."""
    from tuneloop.plugin_manager import call_hook

    call_hook("register_commands", cli=cli)


def main() -> None:
    try:
        add_plugin_commands()
    except TuneloopError as error:
        fail(error)
    cli(prog_name="tuneloop")
