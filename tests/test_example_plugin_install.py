"""The example plugin, installed with pip, is found through its entry point and loads as a plugin.

The package is built and installed with pip into a temporary folder (``--target``) that is then
put on ``sys.path``: ``importlib.metadata`` finds the ``.dist-info`` there, so the plugin manager
sees the entry point as it would in a real environment, and nothing is left behind in the test
environment. The source is copied first because setuptools builds in the source tree.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tuneloop import plugin_manager, registries
from tuneloop.errors import UnknownComponentError

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "tuneloop-example-plugin"
MODULE = "tuneloop_example_plugin"


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory):
    """Install the example into a fresh folder on sys.path; remove every trace afterwards."""
    root = tmp_path_factory.mktemp("example_plugin")
    source, target = root / "source", root / "site"
    shutil.copytree(EXAMPLE, source,
                    ignore=shutil.ignore_patterns("__pycache__", "*.egg-info", "build",
                                                  ".pytest_cache"))
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation",
         "--no-index", "--disable-pip-version-check", "--target", str(target), str(source)],
        check=True, capture_output=True, text=True, timeout=300,
    )
    sys.path.insert(0, str(target))
    importlib.invalidate_caches()
    try:
        yield target
    finally:
        sys.path.remove(str(target))
        for name in [name for name in sys.modules if name.split(".")[0] == MODULE]:
            del sys.modules[name]
        importlib.invalidate_caches()
        plugin_manager.reset_for_tests()


def example_entry_points() -> list[importlib.metadata.EntryPoint]:
    return [ep for ep in importlib.metadata.entry_points(group="tuneloop") if ep.name == "example"]


def test_pip_installs_the_distribution_with_its_entry_point(installed):
    assert (installed / MODULE / "__init__.py").is_file()
    [entry_point] = example_entry_points()
    assert entry_point.value == MODULE
    assert entry_point.dist is not None
    assert entry_point.dist.name == "tuneloop-example-plugin"
    assert entry_point.dist.version == "0.1.0"


@pytest.mark.parametrize("allow", [None, "example", "other, example"])
def test_plugin_loads_when_allowed(installed, monkeypatch, allow):
    if allow is None:
        monkeypatch.delenv("TUNELOOP_LOAD_PLUGINS", raising=False)
    else:
        monkeypatch.setenv("TUNELOOP_LOAD_PLUGINS", allow)
    plugin_manager.reset_for_tests()
    try:
        plugin_manager.load_plugins()
        plugin = plugin_manager.pm.get_plugin("example")
        assert plugin is not None and plugin.__name__ == MODULE
        assert Path(plugin.__file__).is_relative_to(installed)  # the installed copy, not the source

        found = registries.build()
        source = found.data_sources.get("text_folder")
        assert source.__module__ == MODULE
        assert found.metrics.get("keyword_coverage").__module__ == MODULE
        assert found.data_sources.entry("text_folder").plugin == "example"
        assert found.components_of("example") == {"data_sources": ["text_folder"],
                                                  "metrics": ["keyword_coverage"]}

        [info] = [info for info in plugin_manager.plugin_infos() if info.name == "example"]
        assert not info.builtin
        assert info.distribution == "tuneloop-example-plugin"
        assert info.version == "0.1.0"
        assert info.hooks == ["register_data_sources", "register_metrics"]
    finally:
        plugin_manager.reset_for_tests()


@pytest.mark.parametrize("allow", ["", "other"])
def test_plugin_is_left_out_when_not_allowed(installed, monkeypatch, allow):
    monkeypatch.setenv("TUNELOOP_LOAD_PLUGINS", allow)
    plugin_manager.reset_for_tests()
    try:
        plugin_manager.load_plugins()
        assert example_entry_points(), "the entry point is installed, only not allowed"
        assert plugin_manager.pm.get_plugin("example") is None
        found = registries.build()
        with pytest.raises(UnknownComponentError, match='unknown data source "text_folder"'):
            found.data_sources.get("text_folder")
        assert "keyword_coverage" not in found.metrics
    finally:
        plugin_manager.reset_for_tests()


def test_installed_source_reads_a_folder_through_the_registry(installed, monkeypatch, tmp_path):
    monkeypatch.setenv("TUNELOOP_LOAD_PLUGINS", "example")
    plugin_manager.reset_for_tests()
    try:
        (tmp_path / "billing").mkdir()
        (tmp_path / "billing" / "charged-twice.txt").write_text("I was charged twice\n")
        (tmp_path / "shipping").mkdir()
        (tmp_path / "shipping" / "late.txt").write_text("Where is my parcel?")
        source_class = registries.build().data_sources.get("text_folder")
        source = source_class(source_class.Options(path=str(tmp_path)))
        assert [(e.input, e.target) for e in source.load()] == [
            ("I was charged twice", "billing"), ("Where is my parcel?", "shipping")]
    finally:
        plugin_manager.reset_for_tests()


def test_the_example_packages_own_tests_pass(installed, tmp_path):
    """The root suite does not collect examples/; run the example's tests, against the installed
    copy, so they cannot rot unnoticed."""
    tests = shutil.copytree(EXAMPLE / "tests", tmp_path / "tests")
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--rootdir", str(tmp_path),
         str(tests)],
        capture_output=True, text=True, timeout=300, cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": str(installed), "PYTHONDONTWRITEBYTECODE": "1"},
    )
    assert result.returncode == 0, result.stdout + result.stderr
    passed = re.search(r"(\d+) passed", result.stdout)
    assert passed and int(passed.group(1)) >= 15, result.stdout  # they ran, and all of them
