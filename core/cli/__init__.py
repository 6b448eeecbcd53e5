"""The ``tuneloop`` command line.

Start-up imports only click, rich, pydantic and yaml: torch, transformers and evaluate are imported
by the commands that need them, so ``tuneloop --help`` answers at once. A user error prints one
line and exits with code 2; ``TUNELOOP_DEBUG=1`` shows the traceback instead.
"""

from __future__ import annotations

import os
import sqlite3
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
            from tuneloop.plugin_manager import with_recovery_hint

            fail(with_recovery_hint(error))
        except sqlite3.Error as error:
            # a damaged, locked or full database met outside the Store's own methods: still
            # one line naming the file and what to do (tuneloop.store.problems)
            from tuneloop.store import explain_for_last_opened

            problem = explain_for_last_opened(error)
            if problem is None:
                raise
            fail(problem)


def _builtins_only(ctx: click.Context, param: click.Parameter, value: bool) -> None:
    if value:
        from tuneloop.plugin_manager import use_builtins_only

        use_builtins_only()


@click.group(cls=TuneloopGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="tuneloop")
@click.option("--no-plugins", is_flag=True, is_eager=True, expose_value=False,
              callback=_builtins_only,
              help="Start with the built-in plugins only (also TUNELOOP_NO_PLUGINS=1), e.g. to "
                   "remove a broken plugin: tuneloop --no-plugins plugins uninstall NAME")
def cli() -> None:
    """Evaluation-driven finetuning with a human feedback loop.

    \b
    Start here:
      tuneloop demo              finetune a real model on a demo project
      tuneloop review            let experts rate outputs in the browser
      tuneloop run               run the next cycle, learning from the ratings
    """


def _add_builtin_commands() -> None:
    from tuneloop.cli import data, feedback, models, plugins_cmd, project, reports, review, tune

    for module in (project, data, review, feedback, models, reports, tune, plugins_cmd):
        for command in module.commands:
            cli.add_command(command)


_add_builtin_commands()


def add_plugin_commands() -> None:
    """Let installed plugins add commands (``register_commands``)."""
    from tuneloop.plugin_manager import call_hook

    call_hook("register_commands", cli=cli)


def main() -> None:
    # --no-plugins must act before register_commands loads the installed plugins, which happens
    # before click parses anything; it is a leading option (no group option takes a value).
    leading = []
    for argument in sys.argv[1:]:
        if not argument.startswith("-"):
            break
        leading.append(argument)
    if "--no-plugins" in leading:
        from tuneloop.plugin_manager import use_builtins_only

        use_builtins_only()
    try:
        add_plugin_commands()
    except TuneloopError as error:
        from tuneloop.plugin_manager import with_recovery_hint

        fail(with_recovery_hint(error))
    cli(prog_name="tuneloop")
