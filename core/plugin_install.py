"""``tuneloop plugins install`` and ``uninstall``: pip in tuneloop's own environment, then a check.

pip does the installing: it understands names, paths, VCS URLs, wheels and extras. What pip cannot
know is whether what it installed is a tuneloop plugin that loads and passes validation. So after
pip, the new plugins are loaded and checked (``tuneloop plugins check``) in a fresh interpreter
(this one has already imported the old version of anything pip upgraded), and when the check
fails, what the install added is uninstalled again: a bad plugin never stays behind to break the
next command. Uninstalling reads package metadata only and never imports a plugin, so it works on
the broken ones too.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import os
import subprocess
import sys
from dataclasses import dataclass, field
from typing import Callable, Sequence

from tuneloop import plugin_manager
from tuneloop.errors import PluginError, TuneloopError

# pip options that would install somewhere tuneloop does not load plugins from
ELSEWHERE = ("--target", "-t", "--prefix", "--root", "--user")

Echo = Callable[[str], None]


@dataclass
class InstallResult:
    """What an install changed: distributions (new or another version) and the plugins they give."""

    changed: dict[str, str] = field(default_factory=dict)  # distribution -> version
    plugins: list[str] = field(default_factory=list)
    report: str = ""  # what `tuneloop plugins check` said about them


def distributions() -> dict[str, tuple[str, str]]:
    """Installed distributions: canonical name -> (name as published, version)."""
    from packaging.utils import canonicalize_name

    importlib.invalidate_caches()
    found: dict[str, tuple[str, str]] = {}
    for dist in importlib.metadata.distributions():
        name = dist.metadata["Name"]
        if name:  # the first on sys.path wins, as for imports
            found.setdefault(canonicalize_name(name), (name, dist.version))
    return found


def pip(arguments: Sequence[str]) -> subprocess.CompletedProcess[str]:
    """Run pip with this interpreter: it installs into the environment tuneloop runs in."""
    command = [sys.executable, "-m", "pip", *arguments]
    return subprocess.run(command, capture_output=True, text=True,
                          env={**os.environ, "PIP_DISABLE_PIP_VERSION_CHECK": "1"})


def pip_failure(result: subprocess.CompletedProcess[str]) -> str:
    """pip's own reason, one line: its last ``ERROR:`` line, else its last line."""
    lines = [line.strip() for line in (result.stderr + result.stdout).splitlines() if line.strip()]
    errors = [line for line in lines if line.startswith("ERROR:")]
    return (errors or lines or ["pip failed without a message"])[-1]


def install(arguments: Sequence[str], echo: Echo = lambda message: None) -> InstallResult:
    """``pip install ARGUMENTS``, then load and check the plugins it brought; roll back on failure.

    :param arguments: what ``pip install`` gets: specs (a name, a path, a VCS URL) and pip options
        (``-U``, ``-e PATH``, ``--no-index``...), in order.
    :raises TuneloopError: pip failed, nothing installed was a plugin, or a plugin failed to load
        or to validate (then everything the install added has been uninstalled again).
    """
    elsewhere = [argument for argument in arguments
                 if argument.split("=")[0] in ELSEWHERE]
    if elsewhere:
        raise TuneloopError(f"{elsewhere[0]} installs outside tuneloop's environment, where "
                            f"tuneloop would not find the plugin; use pip directly for that")
    before = distributions()
    echo(f"pip install {' '.join(arguments)}")
    result = pip(["install", *arguments])
    if result.returncode != 0:
        raise TuneloopError(f"pip could not install {' '.join(arguments)}: {pip_failure(result)}")
    after = distributions()
    changed = {key: value for key, value in after.items() if before.get(key) != value}
    if not changed:
        return InstallResult()
    plugins = sorted(plugin.name for plugin in plugin_manager.installed_plugins()
                     if plugin.distribution is not None and _canonical(plugin.distribution)
                     in changed)
    installed = ", ".join(f"{name} {version}" for name, version in changed.values())
    if not plugins:
        undone = roll_back(before, changed, arguments)
        raise TuneloopError(f"{installed} has no entry point in the group \"tuneloop\", so it is "
                            f"not a tuneloop plugin; {undone}")
    echo(f"checking {', '.join(plugins)} in a fresh process")
    passed, report = check_in_fresh_process(plugins)
    if not passed:
        undone = roll_back(before, changed, arguments)
        raise TuneloopError(f"{report}; {undone}")
    return InstallResult({name: version for name, version in changed.values()}, plugins,
                         report)


def check_in_fresh_process(plugins: Sequence[str]) -> tuple[bool, str]:
    """Load tuneloop with the new plugins in a new interpreter and check them.

    Returns whether they passed, and ``tuneloop plugins check``'s report (or its error, one line).

    The plugins load next to the ones the user already loads (``TUNELOOP_LOAD_PLUGINS``), so a
    component name that clashes with one of theirs is caught now, not at the next cycle.
    """
    environment = {key: value for key, value in os.environ.items()
                   if key not in ("TUNELOOP_NO_PLUGINS", "TUNELOOP_DEBUG")}
    allowed = plugin_manager.allowed_entry_points()
    if allowed is not None:
        environment["TUNELOOP_LOAD_PLUGINS"] = ",".join(sorted(allowed | set(plugins)))
    result = subprocess.run(
        [sys.executable, "-m", "tuneloop.cli", "plugins", "check", *plugins],
        capture_output=True, text=True, env=environment)
    if result.returncode == 0:
        return True, result.stdout.strip()
    lines = [line.strip() for line in (result.stderr + result.stdout).splitlines()
             if line.strip()]
    errors = [line.removeprefix("Error: ") for line in lines if line.startswith("Error: ")]
    error = (errors or lines or [f"tuneloop exited with code {result.returncode}"])[-1]
    for plugin in plugins:  # the plugin is about to be uninstalled: no need to say how
        error = error.replace("; " + plugin_manager.RECOVERY_HINT.format(name=plugin), "")
    return False, error


def roll_back(before: dict[str, tuple[str, str]], changed: dict[str, tuple[str, str]],
              arguments: Sequence[str]) -> str:
    """Undo an install: uninstall what is new, put back the earlier version of what changed.

    Returns what was done, for the error message. Putting back an earlier version needs pip to
    find it (an index or a cache); when it cannot, the message says what to reinstall.
    """
    new = [name for key, (name, _) in changed.items() if key not in before]
    notes = []
    if new:
        result = pip(["uninstall", "-y", *new])
        notes.append(f"uninstalled {', '.join(new)} again" if result.returncode == 0 else
                     f"could not uninstall {', '.join(new)}: {pip_failure(result)}")
    index_options = _index_options(arguments)
    for key in changed:
        if key in before:
            name, version = before[key]
            result = pip(["install", "--no-deps", *index_options, f"{name}=={version}"])
            notes.append(f"put back {name} {version}" if result.returncode == 0 else
                         f"could not put back {name} {version} (pip install "
                         f"'{name}=={version}' does it)")
    return "; ".join(notes) or "nothing to undo"


def find_distribution(name: str) -> tuple[str, list[str]]:
    """The distribution that provides plugin ``name`` (or is named ``name``), and its plugins.

    Reads package metadata only: nothing is imported, so a plugin that breaks at import can be
    found and removed (with ``tuneloop --no-plugins``).
    """
    if name in plugin_manager.DEFAULT_PLUGINS:
        raise TuneloopError(f'"{name}" is built into tuneloop and cannot be uninstalled')
    installed = plugin_manager.installed_plugins()
    match = [plugin for plugin in installed if plugin.name == name] or [
        plugin for plugin in installed
        if plugin.distribution and _canonical(plugin.distribution) == _canonical(name)]
    if not match:
        names = ", ".join(sorted({plugin.name for plugin in installed})) or "none"
        raise TuneloopError(f'no installed plugin "{name}"; installed plugins: {names}')
    distribution = match[0].distribution
    if distribution is None:
        raise PluginError(name, "its entry point belongs to no distribution pip knows; "
                                "remove it from sys.path")
    if _canonical(distribution) == "tuneloop":
        raise TuneloopError("that would uninstall tuneloop itself; use pip if you mean it")
    plugins = sorted(plugin.name for plugin in installed if plugin.distribution
                     and _canonical(plugin.distribution) == _canonical(distribution))
    return distribution, plugins


def uninstall(distribution: str) -> None:
    """``pip uninstall -y DISTRIBUTION``; a distribution pip does not remove is an error."""
    result = pip(["uninstall", "-y", distribution])
    if result.returncode != 0 or "Successfully uninstalled" not in result.stdout:
        raise TuneloopError(f"pip could not uninstall {distribution}: {pip_failure(result)}")


def _canonical(name: str) -> str:
    from packaging.utils import canonicalize_name

    return canonicalize_name(name)


def _index_options(arguments: Sequence[str]) -> list[str]:
    """The options that tell pip where to find packages, to find an earlier version again."""
    wanted = ("--index-url", "-i", "--extra-index-url", "--find-links", "-f", "--no-index")
    kept: list[str] = []
    arguments = list(arguments)
    for position, argument in enumerate(arguments):
        option = argument.split("=")[0]
        if option not in wanted:
            continue
        kept.append(argument)
        takes_value = option != "--no-index" and "=" not in argument
        if takes_value and position + 1 < len(arguments):
            kept.append(arguments[position + 1])
    return kept
