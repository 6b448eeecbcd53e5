"""``tuneloop plugins``: write, install, inspect, check and remove plugins.

``list`` and ``show`` say what each plugin is (distribution, version, hooks, components) and show
installed plugins that were left out too, read from package metadata without importing them, so a
broken plugin can be found; ``uninstall`` never imports one, so ``tuneloop --no-plugins plugins
uninstall NAME`` removes a plugin that breaks at import. ``install`` checks what it installed in a
fresh process and rolls back on failure. Heavy modules are imported inside the commands.
"""

from __future__ import annotations

import json
from typing import Any

import click
from rich.console import Console

from tuneloop.errors import TuneloopError

console = Console(soft_wrap=True)  # paths and names are printed whole, to be copied


@click.group()
def plugins() -> None:
    """Write, install, inspect and remove plugins."""


# --------------------------------------------------------------------------------------------------
# Inspecting
# --------------------------------------------------------------------------------------------------


def plugin_rows() -> list[dict[str, Any]]:
    """Every plugin, loaded or left out, as ``list --json`` prints it."""
    from tuneloop import registries
    from tuneloop.plugin_manager import not_loaded_reason, plugin_listing

    found = registries.build()
    rows = []
    for info in plugin_listing():
        rows.append({"name": info.name, "version": info.version, "builtin": info.builtin,
                     "loaded": info.loaded, "distribution": info.distribution,
                     "module": info.module, "requires": info.requires, "hooks": info.hooks,
                     "components": found.components_of(info.name) if info.loaded else {},
                     "not_loaded_because": None if info.loaded else not_loaded_reason()})
    return rows


@plugins.command(name="list")
@click.option("--json", "as_json", is_flag=True, help="machine-readable output")
def list_plugins(as_json: bool) -> None:
    """Each plugin with its distribution's version, its hooks and its components."""
    rows = plugin_rows()
    if as_json:
        click.echo(json.dumps(rows, indent=2))
        return
    for row in rows:
        for line in plugin_block(row):
            console.print(line, soft_wrap=False)  # wrapped between names, at the width


def plugin_block(row: dict[str, Any]) -> list[Any]:
    """One plugin as a heading line and indented lines (hooks, then components by kind).

    A block, not a four-column table: at 80 columns a table's narrow cells broke names like
    ``register_feedback_policies`` mid-word. Lines wrap between names, each wrapped line keeps
    the indent, and the same text reads the same in a log file (no terminal: 80 columns).
    """
    from rich.padding import Padding
    from rich.text import Text

    origin = "built-in" if row["builtin"] else row["distribution"]
    heading = Text.assemble((row["name"], "bold"), f"  {row['version']}",
                            f" ({origin})" if origin else "")
    lines: list[Any] = [heading]
    if row["loaded"]:
        lines.append(Text.assemble(("hooks: ", "dim"), ", ".join(row["hooks"]) or "-"))
        lines += [Text.assemble((f"{kind}: ", "dim"), names)
                  for kind, names in components_lines(row["components"])]
    else:
        lines.append(Text(f"not loaded: {row['not_loaded_because']}", style="yellow"))
    return [lines[0], *(Padding(line, (0, 0, 0, 2), expand=False) for line in lines[1:]),
            Text("")]


def components_lines(components: dict[str, list[str]]) -> list[tuple[str, str]]:
    from tuneloop.components import COMPONENT_KINDS

    return [(COMPONENT_KINDS[kind].kind, ", ".join(names)) for kind, names in components.items()]


def components_text(components: dict[str, list[str]]) -> str:
    from tuneloop.components import COMPONENT_KINDS

    return "\n".join(f"{COMPONENT_KINDS[kind].kind}: {', '.join(names)}"
                     for kind, names in components.items()) or "-"


def describe(name: str) -> dict[str, Any]:
    """Everything ``show`` says about one plugin."""
    import importlib.metadata
    import inspect

    from tuneloop import registries
    from tuneloop.components import COMPONENT_KINDS
    from tuneloop.plugin_manager import pm

    rows = {row["name"]: row for row in plugin_rows()}
    if name not in rows:
        raise TuneloopError(f'no plugin "{name}"; plugins: {", ".join(sorted(rows))}')
    detail = dict(rows[name])
    plugin = pm.get_plugin(name)
    detail["file"] = getattr(inspect.getmodule(plugin), "__file__", None) if plugin else None
    detail["tuneloop_requirement"] = None
    if detail["distribution"]:
        from packaging.requirements import Requirement

        for text in importlib.metadata.requires(detail["distribution"]) or []:
            requirement = Requirement(text)
            if requirement.name.lower() == "tuneloop" and requirement.marker is None:
                detail["tuneloop_requirement"] = str(requirement)
    found = registries.build()
    detail["components"] = [
        component_detail(kind, COMPONENT_KINDS[kind].kind, found[kind].get(component))
        for kind, names in detail["components"].items() for component in names]
    return detail


def component_detail(kind: str, label: str, component: type) -> dict[str, Any]:
    from pydantic_core import PydanticUndefined, to_jsonable_python

    options = []
    for option, info in component.Options.model_fields.items():
        annotation = info.annotation
        shown = (annotation.__name__ if isinstance(annotation, type)
                 else str(annotation).replace("typing.", ""))
        default = None if info.default is PydanticUndefined else info.default
        options.append({"name": option, "type": shown, "required": info.is_required(),
                        "default": to_jsonable_python(default, fallback=repr),
                        "description": info.description})
    doc = (component.__doc__ or "").strip()
    return {"kind": kind, "kind_label": label, "name": component.name,
            "class": f"{component.__module__}.{component.__qualname__}",
            "tasks": list(component.tasks), "description": " ".join(doc.split("\n\n")[0].split()),
            "options": options}


@plugins.command()
@click.argument("name")
@click.option("--json", "as_json", is_flag=True, help="machine-readable output")
def show(name: str, as_json: bool) -> None:
    """One plugin in detail: where it comes from, its hooks, its components and their options."""
    detail = describe(name)
    if as_json:
        click.echo(json.dumps(detail, indent=2))
        return
    origin = "built into tuneloop" if detail["builtin"] else (
        f"distribution {detail['distribution']}" if detail["distribution"] else "registered")
    console.print(f"[bold]{detail['name']}[/] {detail['version']} ({origin})")
    if not detail["loaded"]:
        console.print(f"[yellow]not loaded: {detail['not_loaded_because']}[/]")
    console.print(f"module:   {detail['module']}" +
                  (f"  ({detail['file']})" if detail["file"] else ""), markup=False)
    requires = [text for text in (detail["requires"] and f"TUNELOOP_REQUIRES {detail['requires']}",
                                  detail["tuneloop_requirement"]) if text]
    if requires:
        console.print(f"requires: {'; '.join(requires)}")
    console.print(f"hooks:    {', '.join(detail['hooks']) or '-'}")
    for component in detail["components"]:
        console.print(f"\n[bold]{component['kind_label']} {component['name']}[/]  "
                      f"({component['class']}; tasks: {', '.join(component['tasks'])})")
        if component["description"]:
            console.print(f"  {component['description']}", markup=False)
        for option in component["options"]:
            default = "required" if option["required"] else f"default {option['default']!r}"
            console.print(f"  {option['name']}: {option['type']}, {default}", markup=False)


@plugins.command()
@click.argument("names", nargs=-1)
def check(names: tuple[str, ...]) -> None:
    """Load plugins and check their components against their interfaces (all installed ones
    by default). Exit code 2 when one fails; `plugins install` runs this on what it installed."""
    from tuneloop import registries
    from tuneloop.plugin_checks import component_problems, component_warnings
    from tuneloop.plugin_manager import not_loaded_reason, plugin_infos

    infos = {info.name: info for info in plugin_infos()}  # loads: import and version errors
    found = registries.build()  # registration hooks: duplicates, wrong kinds
    targets = list(names) or [name for name, info in infos.items() if not info.builtin]
    if not targets:
        click.echo("No installed plugins to check.")
    problems: list[str] = []
    for name in targets:
        if name not in infos:
            problems.append(f'plugin "{name}" is not loaded '
                            f"({not_loaded_reason() if _installed(name) else 'not installed'})")
            continue
        components = found.components_of(name)
        for kind, component_names in components.items():
            for component_name in component_names:
                component = found[kind].get(component_name)
                problems += [f'plugin "{name}": {problem}'
                             for problem in component_problems(kind, component)]
                for warning in component_warnings(kind, component):
                    click.echo(f'warning: plugin "{name}": {warning}', err=True)
        what = components_text(components).replace("\n", "; ")
        click.echo(f"{name} {infos[name].version}: {what if components else 'no components'}, "
                   f"hooks {', '.join(infos[name].hooks) or '-'}")
    if problems:
        raise TuneloopError("; ".join(problems))


def _installed(name: str) -> bool:
    from tuneloop.plugin_manager import installed_plugins

    return any(plugin.name == name for plugin in installed_plugins())


# --------------------------------------------------------------------------------------------------
# Writing
# --------------------------------------------------------------------------------------------------


@plugins.command()
@click.argument("name")
@click.option("--kind", type=click.Choice(["data-source", "cleaner", "augmenter", "regularizer",
                                           "trainer", "metric", "feedback-policy",
                                           "review-sampler"]),
              default="metric", show_default=True, help="the component the plugin starts with")
@click.option("--directory", "-d", type=click.Path(file_okay=False), default=".",
              show_default=True, help="where to create the package folder")
def new(name: str, kind: str, directory: str) -> None:
    """Create a plugin package NAME: pyproject with the entry point, one working component of
    KIND, a README and tests using tuneloop.testing."""
    from tuneloop.scaffold import plugin_names, scaffold

    root = scaffold(name, kind, directory)
    names = plugin_names(name)
    shown = str(root) if root.is_absolute() else f"./{root}"  # pip -e needs it to look like a path
    click.echo(f"Created {shown}: plugin {names.plugin} with the {kind.replace('-', ' ')} "
               f"{names.component}")
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        click.echo(f"  {path.relative_to(root)}")
    click.echo("Next:")  # paths are printed whole (no wrapping), to be copied
    click.echo(f'  cd {shown} && pip install -e ".[test]" && pytest')
    click.echo(f"  tuneloop plugins install -e {shown}")


# --------------------------------------------------------------------------------------------------
# Installing and removing
# --------------------------------------------------------------------------------------------------


@plugins.command(context_settings={"ignore_unknown_options": True})
@click.argument("arguments", nargs=-1, required=True, type=click.UNPROCESSED)
def install(arguments: tuple[str, ...]) -> None:
    """Install plugins with pip into tuneloop's environment, then load and check them.

    ARGUMENTS go to pip install: a name, a path, a VCS URL, a wheel, and pip options
    (-U, -e PATH, --no-index, --find-links DIR). If an installed plugin fails to load or to
    validate, everything the install added is uninstalled again and the error says why.
    """
    from tuneloop.plugin_install import install as pip_install

    result = pip_install(arguments, echo=lambda message: click.secho(message, dim=True))
    if not result.changed:
        click.echo("Nothing changed: already installed (add -U to upgrade).")
        return
    installed = ", ".join(f"{name} {version}" for name, version in result.changed.items())
    click.echo(f"Installed {installed}")
    for line in result.report.splitlines():
        click.echo(f"  plugin {line}")


@plugins.command()
@click.argument("name")
@click.option("-y", "--yes", is_flag=True, help="do not ask for confirmation")
def uninstall(name: str, yes: bool) -> None:
    """Uninstall the distribution that provides plugin NAME (NAME may be the distribution).

    Never imports the plugin: a broken one is removed with
    `tuneloop --no-plugins plugins uninstall NAME`.
    """
    import os

    from tuneloop.plugin_install import find_distribution, uninstall as pip_uninstall

    distribution, provided = find_distribution(name)
    if not yes:
        click.confirm(f"Uninstall {distribution} (plugins: {', '.join(provided)})?", abort=True)
    pip_uninstall(distribution)
    click.echo(f"Uninstalled {distribution}: plugins {', '.join(provided)} removed")
    listed = {item.strip() for item in os.environ.get("TUNELOOP_LOAD_PLUGINS", "").split(",")}
    if listed & set(provided):
        stale = ", ".join(sorted(listed & set(provided)))
        click.echo(f"TUNELOOP_LOAD_PLUGINS still names {stale}: remove it there too")


commands = [plugins]
