"""`tuneloop plugins install / list / show / uninstall` with real pip, in a throwaway environment.

A plugin made by `tuneloop plugins new` is installed with `tuneloop plugins install` (pip, offline,
from its folder), then a real cycle finds it through its entry point, uses it and records its
distribution and version.
Plugins that fail to load or to validate are uninstalled again with a message saying why. Every
pip call runs in a venv layered on the test environment (``plugin_env.layered_venv``), so the test
environment is never changed.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from click.testing import CliRunner

from plugin_env import layered_venv, one_line_error, run_cli
from projects import classification_project, vocabulary_texts
from tuneloop.cli import cli
from tuneloop.errors import TuneloopError
from tuneloop.scaffold import scaffold
from tuneloop.store import Store

OFFLINE = ("--no-index", "--no-build-isolation")


@pytest.fixture(scope="module")
def python(tmp_path_factory):
    return layered_venv(tmp_path_factory.mktemp("venv") / "venv")


@pytest.fixture(scope="module")
def installed(python, tmp_path_factory):
    """`plugins new tiny-metric --kind metric`, then `plugins install` it (module-wide)."""
    source = scaffold("tiny-metric", "metric", tmp_path_factory.mktemp("plugins"))
    result = run_cli(python, "plugins", "install", *OFFLINE, str(source))
    assert result.returncode == 0, result.stdout + result.stderr
    return result


def distributions(python) -> dict[str, str]:
    code = ("import json, importlib.metadata as m; print(json.dumps({d.metadata['Name']: "
            "d.version for d in m.distributions()}))")
    out = subprocess.run([str(python), "-c", code], capture_output=True, text=True, check=True)
    return json.loads(out.stdout)


def test_install_reports_what_it_installed_and_checked(installed):
    assert "Installed tuneloop-tiny-metric 0.1.0" in installed.stdout
    assert "plugin tiny-metric 0.1.0: metric: tiny_metric, hooks register_metrics" in \
        installed.stdout


def test_list_and_show_give_version_hooks_and_components(python, installed):
    rows = {row["name"]: row for row in json.loads(
        run_cli(python, "plugins", "list", "--json").stdout)}
    row = rows["tiny-metric"]
    assert (row["distribution"], row["version"], row["loaded"], row["builtin"]) == (
        "tuneloop-tiny-metric", "0.1.0", True, False)
    assert row["hooks"] == ["register_metrics"]
    assert row["components"] == {"metrics": ["tiny_metric"]}

    detail = json.loads(run_cli(python, "plugins", "show", "tiny-metric", "--json").stdout)
    assert detail["tuneloop_requirement"] == "tuneloop<1,>=0.1"
    assert detail["requires"] == ">=0.1,<1"
    assert detail["file"].endswith("tuneloop_tiny_metric/__init__.py")
    [component] = detail["components"]
    assert component["class"] == "tuneloop_tiny_metric.TinyMetric"
    assert component["kind_label"] == "metric" and component["options"] == []
    assert component["description"].startswith("Exact match after lowercasing")

    text = run_cli(python, "plugins", "show", "tiny-metric").stdout
    assert "tiny-metric 0.1.0 (distribution tuneloop-tiny-metric)" in text
    assert "metric tiny_metric" in text


def test_a_cycle_uses_the_installed_plugin_and_records_its_version(python, installed, tmp_path,
                                                                  monkeypatch):
    """The cycle runs in this process (torch is imported already), on the venv's packages: the
    plugin is found through the entry point pip installed, not registered by hand."""
    from tuneloop import plugin_manager
    from tuneloop.config import load_config
    from tuneloop.cycle import run_cycle
    from tuneloop.testing import tiny_bert

    monkeypatch.syspath_prepend(site_packages(python))
    monkeypatch.setenv("TUNELOOP_LOAD_PLUGINS", "tiny-metric")
    plugin_manager.reset_for_tests()
    try:
        model = tiny_bert(tmp_path / "model", vocabulary_texts())
        config = classification_project(tmp_path, model, evaluation={
            "metrics": ["accuracy", "f1", "tiny_metric"]}, training={"epochs": 1})
        result = run_cycle(load_config(config), quiet=True)
        assert plugin_manager.pm.get_plugin("tiny-metric").__file__.startswith(
            site_packages(python))
    finally:
        for name in [name for name in sys.modules if name.startswith("tuneloop_tiny_metric")]:
            del sys.modules[name]
    with Store(tmp_path / "tuneloop.db") as store:
        cycle = store.cycle(result.cycle_id)
    assert cycle["status"] == "done"
    plugins = {plugin["name"]: plugin for plugin in json.loads(cycle["plugins"])}
    assert plugins["tiny-metric"]["version"] == "0.1.0"
    assert plugins["tiny-metric"]["distribution"] == "tuneloop-tiny-metric"
    used = json.loads(cycle["components"])["metrics"]
    assert {"name": "tiny_metric", "plugin": "tiny-metric", "options": {}} in used
    figures = result.metrics["validation"]
    assert figures["tiny_metric"] == pytest.approx(figures["accuracy"])


def site_packages(python) -> str:
    return subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()"
                                              "['purelib'])"],
                          capture_output=True, text=True, check=True).stdout.strip()


def test_uninstall_removes_it_by_plugin_name(python, installed):
    result = run_cli(python, "plugins", "uninstall", "tiny-metric", "--yes")
    assert result.returncode == 0, result.stderr
    assert "Uninstalled tuneloop-tiny-metric: plugins tiny-metric removed" in result.stdout
    assert "tuneloop-tiny-metric" not in distributions(python)
    missing = run_cli(python, "plugins", "uninstall", "tiny-metric", "--yes")
    assert one_line_error(missing).startswith('Error: no installed plugin "tiny-metric"')


# --------------------------------------------------------------------------------------------------
# Plugins that must not stay installed
# --------------------------------------------------------------------------------------------------


def break_it(source, old: str, new: str) -> None:
    module = next(source.glob("tuneloop_*/__init__.py"))
    text = module.read_text()
    assert old in text
    module.write_text(text.replace(old, new))


def test_a_plugin_that_fails_validation_is_uninstalled_again(python, tmp_path):
    source = scaffold("half-done", "metric", tmp_path)
    break_it(source, "    def compute(", "    def _compute(")  # no compute: cannot score
    result = run_cli(python, "plugins", "install", *OFFLINE, str(source))
    assert result.returncode == 2
    assert one_line_error(result) == (
        'Error: plugin "half-done": metric "half_done" does not implement compute(predictions, '
        "references); uninstalled tuneloop-half-done again")
    assert "tuneloop-half-done" not in distributions(python)
    assert run_cli(python, "plugins", "list").returncode == 0  # the CLI still works


# --------------------------------------------------------------------------------------------------
# What install decides, with pip replaced: the paths that need no real package
# --------------------------------------------------------------------------------------------------


class FakePip:
    """Stands in for pip: records its calls and changes the installed distributions as told."""

    def __init__(self, monkeypatch, states, plugins=()):
        from tuneloop import plugin_install, plugin_manager

        self.calls = []
        self.states = list(states)  # what distributions() returns, call by call
        monkeypatch.setattr(plugin_install, "pip", self.pip)
        monkeypatch.setattr(plugin_install, "distributions", lambda: self.states.pop(0))
        monkeypatch.setattr(plugin_manager, "installed_plugins", lambda: list(plugins))
        monkeypatch.setattr(plugin_install, "check_in_fresh_process",
                            lambda names: (False, f'plugin "{names[0]}": broken'))

    def pip(self, arguments):
        self.calls.append(list(arguments))
        return subprocess.CompletedProcess(arguments, 0, "Successfully uninstalled x\n", "")


def test_nothing_changed_is_not_an_error(monkeypatch):
    from tuneloop.plugin_install import install

    before = {"tuneloop-x": ("tuneloop-x", "1.0")}
    fake = FakePip(monkeypatch, [before, before])
    assert install(["tuneloop-x"]).changed == {}
    assert fake.calls == [["install", "tuneloop-x"]]


def test_a_distribution_without_entry_point_is_uninstalled_with_its_new_dependencies(monkeypatch):
    from tuneloop.plugin_install import install

    before = {"numpy": ("numpy", "2.0")}
    after = {**before, "thing": ("thing", "1.0"), "dep": ("dep", "0.5")}
    fake = FakePip(monkeypatch, [before, after])
    with pytest.raises(TuneloopError) as raised:
        install(["thing"])
    assert str(raised.value) == ('thing 1.0, dep 0.5 has no entry point in the group "tuneloop", '
                                 "so it is not a tuneloop plugin; uninstalled thing, dep again")
    assert fake.calls[-1] == ["uninstall", "-y", "thing", "dep"]


def test_a_failed_upgrade_puts_the_earlier_version_back(monkeypatch):
    from tuneloop.plugin_install import install
    from tuneloop.plugin_manager import InstalledPlugin

    before = {"tuneloop-x": ("tuneloop-x", "1.0")}
    after = {"tuneloop-x": ("tuneloop-x", "2.0")}
    plugin = InstalledPlugin("x", "tuneloop_x", "tuneloop-x", "2.0")
    fake = FakePip(monkeypatch, [before, after], plugins=[plugin])
    with pytest.raises(TuneloopError, match=r'^plugin "x": broken; put back tuneloop-x 1.0$'):
        install(["-U", "--find-links", "/wheels", "tuneloop-x"])
    assert fake.calls[-1] == ["install", "--no-deps", "--find-links", "/wheels",
                              "tuneloop-x==1.0"]


def test_pip_failures_and_other_environments_are_refused_in_one_line(tmp_path):
    runner = CliRunner()
    elsewhere = runner.invoke(cli, ["plugins", "install", "--target", str(tmp_path), "x"])
    assert elsewhere.exit_code == 2
    assert "--target installs outside tuneloop's environment" in elsewhere.output
    missing = runner.invoke(cli, ["plugins", "install", "--no-index", str(tmp_path / "nothing")])
    assert missing.exit_code == 2
    assert missing.output.splitlines()[-1].startswith("Error: pip could not install --no-index ")
    builtin = runner.invoke(cli, ["plugins", "uninstall", "tuneloop.plugins.metrics", "-y"])
    assert builtin.exit_code == 2 and "built into tuneloop" in builtin.output
