"""Loading plugins: entry points, the allowlist, and every way a plugin can be wrong."""

from __future__ import annotations

import json
import sys
import textwrap

import pytest

import tuneloop
from tuneloop import hookimpl, plugin_manager, registries
from tuneloop.errors import DuplicateComponentError, PluginError, UnknownComponentError
from tuneloop.testing import register_plugin


@pytest.fixture
def installed_plugin(tmp_path, monkeypatch):
    """Install a plugin the way pip does: a module plus a dist-info with an entry point."""

    def install(module_source: str, name: str = "fake", version: str = "1.2.3"):
        module = f"tuneloop_fake_{name}"
        (tmp_path / f"{module}.py").write_text(textwrap.dedent(module_source))
        dist = tmp_path / f"tuneloop_fake_{name}-{version}.dist-info"
        dist.mkdir()
        (dist / "METADATA").write_text(f"Metadata-Version: 2.1\nName: tuneloop-fake-{name}\n"
                                       f"Version: {version}\n")
        (dist / "entry_points.txt").write_text(f"[tuneloop]\n{name} = {module}\n")
        monkeypatch.syspath_prepend(str(tmp_path))
        return module

    yield install
    for key in [key for key in sys.modules if key.startswith("tuneloop_fake_")]:
        del sys.modules[key]


GOOD_PLUGIN = """
    import tuneloop

    class Upper(tuneloop.Cleaner):
        name = "uppercase"
        def clean(self, examples, removed):
            for example in examples:
                example.input = example.input.upper()
                yield example

    @tuneloop.hookimpl
    def register_cleaners(register):
        register(Upper)
"""


def test_an_installed_plugin_loads_through_its_entry_point(installed_plugin, monkeypatch):
    installed_plugin(GOOD_PLUGIN)
    monkeypatch.delenv("TUNELOOP_LOAD_PLUGINS")
    found = registries.build()
    assert found.cleaners.entry("uppercase").plugin == "fake"
    info = {i.name: i for i in plugin_manager.plugin_infos()}["fake"]
    assert (info.version, info.distribution, info.builtin) == ("1.2.3", "tuneloop-fake-fake",
                                                               False)
    assert info.hooks == ["register_cleaners"]


def test_load_plugins_allowlist_is_honoured(installed_plugin, monkeypatch):
    installed_plugin(GOOD_PLUGIN)
    monkeypatch.setenv("TUNELOOP_LOAD_PLUGINS", "")
    assert "uppercase" not in registries.build().cleaners
    plugin_manager.reset_for_tests()
    monkeypatch.setenv("TUNELOOP_LOAD_PLUGINS", "something-else, fake")
    assert "uppercase" in registries.build().cleaners


def test_a_plugin_that_fails_to_import_is_named(installed_plugin, monkeypatch):
    installed_plugin("import module_that_does_not_exist\n", name="broken")
    monkeypatch.delenv("TUNELOOP_LOAD_PLUGINS")
    with pytest.raises(PluginError, match=r'plugin "broken": failed to import '
                                          r"\(ModuleNotFoundError"):
        plugin_manager.load_plugins()


def test_an_incompatible_plugin_is_refused_with_the_reason(installed_plugin, monkeypatch):
    installed_plugin('TUNELOOP_REQUIRES = ">=99"\n', name="future")
    monkeypatch.delenv("TUNELOOP_LOAD_PLUGINS")
    monkeypatch.setattr(plugin_manager, "tuneloop_version", lambda: "0.1.0")
    with pytest.raises(PluginError, match=r'plugin "future": needs tuneloop >=99, this is '
                                          r"tuneloop 0.1.0"):
        plugin_manager.load_plugins()


def test_a_misspelled_hook_fails_loudly():
    class Typo:
        @hookimpl
        def register_cleanres(self, register):
            pass

    with pytest.raises(PluginError, match=r'plugin "typo".*register_cleanres'):
        with register_plugin(Typo(), name="typo"):
            pass
    assert plugin_manager.pm.get_plugin("typo") is None


class Dedupe(tuneloop.Cleaner):
    name = "drop_duplicates"

    def clean(self, examples, removed):
        yield from examples


def test_duplicate_names_are_rejected_naming_both_plugins():
    class Clash:
        @hookimpl
        def register_cleaners(self, register):
            register(Dedupe)

    with register_plugin(Clash(), name="clash"):
        with pytest.raises(DuplicateComponentError) as raised:
            registries.build()
    assert str(raised.value) == ('cleaner "drop_duplicates" is registered by both plugin '
                                 '"tuneloop.plugins.cleaners" and plugin "clash"')


def test_a_component_of_the_wrong_kind_is_refused_naming_the_plugin():
    class Wrong:
        @hookimpl
        def register_metrics(self, register):
            register(Dedupe)

    with register_plugin(Wrong(), name="wrong-kind"):
        with pytest.raises(PluginError, match=r'plugin "wrong-kind": registered .* as a metric, '
                                              r"but it is not a subclass of tuneloop.Metric"):
            registries.build()


def test_a_registration_hook_that_raises_is_named():
    class Raises:
        @hookimpl
        def register_trainers(self, register):
            raise RuntimeError("no GPU today")

    with register_plugin(Raises(), name="raiser"):
        with pytest.raises(PluginError, match=r'plugin "raiser" in hook register_trainers: '
                                              r"RuntimeError: no GPU today"):
            registries.build()


def test_unknown_names_list_what_exists_and_suggest_the_closest():
    with pytest.raises(UnknownComponentError) as raised:
        registries.build().metrics.get("acuracy")
    message = str(raised.value)
    assert message.startswith('unknown metric "acuracy" (did you mean "accuracy"?); available: ')
    assert "f1" in message


# --------------------------------------------------------------------------------------------------
# Starting without installed plugins, and listing them all the same
# --------------------------------------------------------------------------------------------------


def test_no_plugins_switch_unloads_installed_plugins_even_after_loading(installed_plugin,
                                                                        monkeypatch):
    installed_plugin(GOOD_PLUGIN)
    monkeypatch.delenv("TUNELOOP_LOAD_PLUGINS")
    assert "uppercase" in registries.build().cleaners
    plugin_manager.use_builtins_only()
    assert "uppercase" not in registries.build().cleaners
    assert plugin_manager.pm.get_plugin("fake") is None
    [left_out] = [info for info in plugin_manager.plugin_listing() if info.name == "fake"]
    assert (left_out.loaded, left_out.version, left_out.distribution, left_out.hooks) == (
        False, "1.2.3", "tuneloop-fake-fake", [])
    assert plugin_manager.not_loaded_reason() == "--no-plugins"
    plugin_manager.reset_for_tests()  # a new process: the switch is per invocation
    assert "uppercase" in registries.build().cleaners


@pytest.mark.parametrize("value, loads", [("1", False), ("true", False), ("0", True),
                                          ("", True)])
def test_tuneloop_no_plugins_environment_variable(installed_plugin, monkeypatch, value, loads):
    installed_plugin(GOOD_PLUGIN)
    monkeypatch.delenv("TUNELOOP_LOAD_PLUGINS")
    monkeypatch.setenv("TUNELOOP_NO_PLUGINS", value)
    assert ("uppercase" in registries.build().cleaners) is loads


def test_the_no_plugins_option_is_a_global_cli_option(installed_plugin, monkeypatch):
    from click.testing import CliRunner

    from tuneloop.cli import cli

    installed_plugin(GOOD_PLUGIN)
    monkeypatch.delenv("TUNELOOP_LOAD_PLUGINS")
    result = CliRunner().invoke(cli, ["--no-plugins", "plugins", "list", "--json"])
    assert result.exit_code == 0, result.output
    row = {row["name"]: row for row in json.loads(result.output)}["fake"]
    assert row["loaded"] is False and row["components"] == {}
    assert row["not_loaded_because"] == "--no-plugins"


def test_load_errors_of_installed_plugins_say_how_to_start_without_them(installed_plugin,
                                                                       monkeypatch):
    installed_plugin("import module_that_does_not_exist\n", name="broken")
    monkeypatch.delenv("TUNELOOP_LOAD_PLUGINS")
    with pytest.raises(PluginError) as raised:
        plugin_manager.load_plugins()
    assert str(raised.value).endswith(
        '; to start without it run "tuneloop --no-plugins ...", to remove it '
        '"tuneloop --no-plugins plugins uninstall broken"')
    assert raised.value.plugin == "broken"


def test_a_distribution_requirement_is_checked_before_import(installed_plugin, monkeypatch,
                                                             tmp_path):
    module = installed_plugin("raise ImportError('would not get this far')\n", name="strict")
    [metadata] = tmp_path.glob("*.dist-info/METADATA")
    metadata.write_text(metadata.read_text() + "Requires-Dist: tuneloop>=5\n")
    monkeypatch.delenv("TUNELOOP_LOAD_PLUGINS")
    monkeypatch.setattr(plugin_manager, "tuneloop_version", lambda: "0.1.0")
    with pytest.raises(PluginError, match=r'^plugin "strict": needs tuneloop >=5 \(distribution '
                                          r"tuneloop-fake-strict 1.2.3 requires it\), this is "
                                          r"tuneloop 0.1.0; "):
        plugin_manager.load_plugins()
    assert module not in sys.modules


def test_register_plugin_leaves_an_already_loaded_plugin_alone(installed_plugin, monkeypatch):
    import importlib

    module_name = installed_plugin(GOOD_PLUGIN)
    monkeypatch.delenv("TUNELOOP_LOAD_PLUGINS")
    plugin_manager.load_plugins()
    module = importlib.import_module(module_name)
    with register_plugin(module, name="another-name") as name:
        assert name == "fake"
    assert plugin_manager.pm.get_plugin("fake") is module  # still loaded after the block
