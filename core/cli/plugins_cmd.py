"""``tuneloop plugins``: what is installed, which hooks each plugin implements, what it registers."""

from __future__ import annotations

import json

import click
from rich.console import Console
from rich.table import Table


@click.group()
def plugins() -> None:
    """Inspect the installed plugins."""


@plugins.command(name="list")
@click.option("--json", "as_json", is_flag=True, help="machine-readable output")
def list_plugins(as_json: bool) -> None:
    """Each plugin with its version, hooks and registered components."""
    from tuneloop import registries
    from tuneloop.plugin_manager import plugin_infos

    found = registries.build()
    rows = []
    for info in plugin_infos():
        rows.append({"name": info.name, "version": info.version, "builtin": info.builtin,
                     "distribution": info.distribution, "hooks": info.hooks,
                     "components": found.components_of(info.name)})
    if as_json:
        click.echo(json.dumps(rows, indent=2))
        return
    table = Table(title="tuneloop plugins")
    for column in ("plugin", "version", "hooks", "components"):
        table.add_column(column)
    for row in rows:
        components = "; ".join(f"{kind}: {', '.join(names)}"
                               for kind, names in row["components"].items())
        name = row["name"] + ("" if row["builtin"] else " (installed)")
        table.add_row(name, row["version"], ", ".join(row["hooks"]), components or "-")
    Console().print(table)


commands = [plugins]
