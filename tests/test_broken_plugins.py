"""Deliberately broken installed plugins, through the real command line.

Each way a plugin can be broken (an import error, a hook that raises, a bad return value, an
incompatible version) gives one line naming the plugin, exit code 2, and the way out; and
``TUNELOOP_LOAD_PLUGINS=`` or ``--no-plugins`` gets the command line working again. The plugins
are installed by hand into a folder on ``PYTHONPATH`` (see ``plugin_env.fake_install``), so no pip
runs here; ``test_plugin_install.py`` covers pip.
"""

from __future__ import annotations

import json
import sys

import pytest

from plugin_env import fake_install, one_line_error, run_cli
from projects import classification_project, stub_model
from tuneloop.plugin_manager import tuneloop_version

HINT = ('to start without it run "tuneloop --no-plugins ...", to remove it '
        '"tuneloop --no-plugins plugins uninstall {name}"')


def cli(site, *arguments, **env):
    return run_cli(sys.executable, *arguments, env={"PYTHONPATH": str(site), **env})


def listed(result) -> dict[str, dict]:
    assert result.returncode == 0, result.stderr
    return {row["name"]: row for row in json.loads(result.stdout)}


IMPORT_ERROR = "import module_that_does_not_exist\n"

RAISES_IN_REGISTER_COMMANDS = """
    import tuneloop

    @tuneloop.hookimpl
    def register_commands(cli):
        raise RuntimeError("no terminal today")
"""

RAISES_IN_REGISTER_METRICS = """
    import tuneloop

    @tuneloop.hookimpl
    def register_metrics(register):
        raise KeyError("metric table")
"""

REGISTERS_A_NON_COMPONENT = """
    import tuneloop

    @tuneloop.hookimpl
    def register_metrics(register):
        register(dict)
"""

MISSPELLED_HOOK = """
    import tuneloop

    @tuneloop.hookimpl
    def register_metric(register):
        pass
"""

SOURCE_YIELDING_DICTS = """
    import tuneloop

    class Dicts(tuneloop.DataSource):
        name = "dicts"

        def load(self):
            yield {"input": "hello", "target": "greeting"}

    @tuneloop.hookimpl
    def register_data_sources(register):
        register(Dicts)
"""

FUTURE_ONLY = """
    TUNELOOP_REQUIRES = ">=99"
"""


def test_import_error_is_named_and_the_allowlist_gets_the_cli_back(tmp_path):
    fake_install(tmp_path, "broken", IMPORT_ERROR)
    result = cli(tmp_path, "plugins", "list")
    assert result.returncode == 2
    assert one_line_error(result) == (
        'Error: plugin "broken": failed to import (ModuleNotFoundError: No module named '
        "'module_that_does_not_exist'); " + HINT.format(name="broken"))

    for recovered in (cli(tmp_path, "plugins", "list", "--json", TUNELOOP_LOAD_PLUGINS=""),
                      cli(tmp_path, "--no-plugins", "plugins", "list", "--json"),
                      cli(tmp_path, "plugins", "list", "--json", TUNELOOP_NO_PLUGINS="1"),
                      cli(tmp_path, "plugins", "list", "--json", TUNELOOP_LOAD_PLUGINS="other")):
        row = listed(recovered)["broken"]  # still listed, from its metadata, so it can be found
        assert (row["loaded"], row["distribution"], row["version"]) == (
            False, "tuneloop-fake-broken", "1.0.0")
        assert row["not_loaded_because"] in ("--no-plugins", "not in TUNELOOP_LOAD_PLUGINS")

    show = cli(tmp_path, "--no-plugins", "plugins", "show", "broken")
    assert show.returncode == 0 and "not loaded: --no-plugins" in show.stdout


@pytest.mark.parametrize("source, message", [
    (RAISES_IN_REGISTER_COMMANDS,
     'plugin "raiser" in hook register_commands: RuntimeError: no terminal today'),
    (RAISES_IN_REGISTER_METRICS,
     "plugin \"raiser\" in hook register_metrics: KeyError: 'metric table'"),
])
def test_a_hook_that_raises_is_named_with_its_hook(tmp_path, source, message):
    fake_install(tmp_path, "raiser", source)
    result = cli(tmp_path, "plugins", "list")
    assert result.returncode == 2
    assert one_line_error(result) == f"Error: {message}; " + HINT.format(name="raiser")
    assert listed(cli(tmp_path, "plugins", "list", "--json", TUNELOOP_LOAD_PLUGINS=""))


def test_a_hook_that_raises_at_start_up_says_how_to_start_without_it(tmp_path):
    fake_install(tmp_path, "raiser", RAISES_IN_REGISTER_COMMANDS)
    result = cli(tmp_path, "--help")
    assert one_line_error(result).endswith("; " + HINT.format(name="raiser"))
    assert cli(tmp_path, "--no-plugins", "--help").returncode == 0


def test_registering_something_that_is_not_a_component_is_named(tmp_path):
    fake_install(tmp_path, "wrong", REGISTERS_A_NON_COMPONENT)
    result = cli(tmp_path, "plugins", "list")
    assert one_line_error(result) == (
        "Error: plugin \"wrong\": registered <class 'dict'> as a metric, but it is not a "
        "subclass of tuneloop.Metric")


def test_a_misspelled_hook_is_named_with_the_way_out(tmp_path):
    fake_install(tmp_path, "typo", MISSPELLED_HOOK)
    line = one_line_error(cli(tmp_path, "plugins", "list"))
    assert line.startswith('Error: plugin "typo": unknown hook \'register_metric\'')
    assert line.endswith(HINT.format(name="typo"))


def test_a_component_returning_the_wrong_type_is_named_and_nothing_is_written(tmp_path):
    fake_install(tmp_path / "site", "dicts", SOURCE_YIELDING_DICTS)
    config = classification_project(tmp_path, stub_model(tmp_path),
                                    data={"sources": [{"type": "dicts", "path": "x"}]})
    result = cli(tmp_path / "site", "run", str(config), "--quiet")
    assert result.returncode == 2
    assert one_line_error(result) == ('Error: plugin "dicts": data source "dicts" load yielded '
                                      "a dict, not a tuneloop.Example (item 1)")
    assert not (tmp_path / "runs").exists()


def test_an_incompatible_version_is_refused_with_the_reason(tmp_path):
    fake_install(tmp_path, "future", FUTURE_ONLY)
    line = one_line_error(cli(tmp_path, "plugins", "list"))
    assert line.startswith(f'Error: plugin "future": needs tuneloop >=99, this is tuneloop '
                           f"{tuneloop_version()}; ")
    assert listed(cli(tmp_path, "plugins", "list", "--json", TUNELOOP_LOAD_PLUGINS=""))


def test_a_distribution_requiring_another_tuneloop_is_refused_before_it_is_imported(tmp_path):
    # the module would fail to import against this tuneloop; the version is the reason to give
    fake_install(tmp_path, "old", IMPORT_ERROR, version="0.3.0",
                 requires=["tuneloop<0.1", "pytest; extra == 'test'"])
    line = one_line_error(cli(tmp_path, "plugins", "list"))
    assert line.startswith(f'Error: plugin "old": needs tuneloop <0.1 (distribution '
                           f"tuneloop-fake-old 0.3.0 requires it), this is tuneloop "
                           f"{tuneloop_version()}; ")


def test_a_compatible_distribution_requirement_loads(tmp_path):
    fake_install(tmp_path, "fine", "import tuneloop\n", requires=["tuneloop>=0.1",
                                                                  "tuneloop<0.1; extra == 'old'"])
    assert listed(cli(tmp_path, "plugins", "list", "--json"))["fine"]["loaded"]
