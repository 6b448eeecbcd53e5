"""The example plugins, installed with pip, load through their entry points and pass their tests;
so do the packages `tuneloop plugins new` writes.

The three packages in ``examples/`` are built and installed with one pip call into a temporary
folder (``--target``) that is then put on ``sys.path``: ``importlib.metadata`` finds the
``.dist-info`` folders there, so the plugin manager sees the entry points as it would in a real
environment, and nothing is left behind in the test environment. The sources are copied first
because setuptools builds in the source tree. (CI also installs them, editable, with
``.ci/bootstrap``; these tests do not rely on that.)
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

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
# folder -> (entry point, module, distribution, {registry kind: [component names]}, hooks)
PACKAGES = {
    "tuneloop-text-folder": ("text-folder", "tuneloop_text_folder", "tuneloop-text-folder",
                             {"data_sources": ["text_folder"]}, ["register_data_sources"]),
    "tuneloop-keyword-coverage": ("keyword-coverage", "tuneloop_keyword_coverage",
                                  "tuneloop-keyword-coverage", {"metrics": ["keyword_coverage"]},
                                  ["register_metrics"]),
    "tuneloop-changed-sampler": ("changed-sampler", "tuneloop_changed_sampler",
                                 "tuneloop-changed-sampler",
                                 {"review_samplers": ["changed_answers"]},
                                 ["register_review_samplers"]),
}
ENTRY_POINTS = [entry for entry, *_ in PACKAGES.values()]


def test_every_example_package_is_listed_here():
    """A new example must be installed and tested below, not sit untested in examples/."""
    found = sorted(path.name for path in EXAMPLES.iterdir() if (path / "pyproject.toml").is_file())
    assert found == sorted(PACKAGES)


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory):
    """Install every example into one fresh folder on sys.path; remove every trace afterwards."""
    root = tmp_path_factory.mktemp("example_plugins")
    target = root / "site"
    sources = []
    for folder in PACKAGES:
        source = root / "source" / folder
        shutil.copytree(EXAMPLES / folder, source,
                        ignore=shutil.ignore_patterns("__pycache__", "*.egg-info", "build",
                                                      ".pytest_cache"))
        sources.append(str(source))
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation",
         "--no-index", "--disable-pip-version-check", "--target", str(target), *sources],
        check=True, capture_output=True, text=True, timeout=300,
    )
    sys.path.insert(0, str(target))
    importlib.invalidate_caches()
    try:
        yield target
    finally:
        sys.path.remove(str(target))
        modules = {module for _, module, *_ in PACKAGES.values()}
        for name in [name for name in sys.modules if name.split(".")[0] in modules]:
            del sys.modules[name]
        importlib.invalidate_caches()
        plugin_manager.reset_for_tests()


def entry_points() -> dict[str, importlib.metadata.EntryPoint]:
    return {ep.name: ep for ep in importlib.metadata.entry_points(group="tuneloop")
            if ep.name in ENTRY_POINTS}


@pytest.mark.parametrize("folder", PACKAGES)
def test_pip_installs_each_distribution_with_its_entry_point(installed, folder):
    entry, module, distribution, _, _ = PACKAGES[folder]
    assert (installed / module / "__init__.py").is_file()
    entry_point = entry_points()[entry]
    assert entry_point.value == module
    assert entry_point.dist is not None
    assert (entry_point.dist.name, entry_point.dist.version) == (distribution, "0.1.0")


ALL = ",".join(ENTRY_POINTS)


@pytest.mark.parametrize("allow", [None, ALL, "other, " + ALL])
def test_plugins_load_when_allowed(installed, monkeypatch, allow):
    if allow is None:
        monkeypatch.delenv("TUNELOOP_LOAD_PLUGINS", raising=False)
    else:
        monkeypatch.setenv("TUNELOOP_LOAD_PLUGINS", allow)
    plugin_manager.reset_for_tests()
    plugin_manager.load_plugins()
    found = registries.build()
    infos = {info.name: info for info in plugin_manager.plugin_infos()}
    for entry, module, distribution, components, hooks in PACKAGES.values():
        plugin = plugin_manager.pm.get_plugin(entry)
        assert plugin is not None and plugin.__name__ == module
        assert Path(plugin.__file__).is_relative_to(installed)  # the installed copy, not the source
        assert found.components_of(entry) == components
        info = infos[entry]
        assert (info.builtin, info.distribution, info.version) == (False, distribution, "0.1.0")
        assert info.hooks == hooks and info.requires == ">=0.1,<1"


@pytest.mark.parametrize("allow", ["", "other", "text-folder"])
def test_plugins_are_left_out_when_not_allowed(installed, monkeypatch, allow):
    monkeypatch.setenv("TUNELOOP_LOAD_PLUGINS", allow)
    plugin_manager.reset_for_tests()
    plugin_manager.load_plugins()
    assert set(entry_points()) == set(ENTRY_POINTS), "installed, only not allowed"
    loaded = {entry for entry in ENTRY_POINTS if plugin_manager.pm.get_plugin(entry) is not None}
    assert loaded == ({"text-folder"} if allow == "text-folder" else set())
    found = registries.build()
    with pytest.raises(UnknownComponentError, match='unknown metric "keyword_coverage"'):
        found.metrics.get("keyword_coverage")
    assert "changed_answers" not in found.review_samplers
    listed = {info.name: info for info in plugin_manager.plugin_listing()}
    assert not listed["keyword-coverage"].loaded  # listed all the same, so it can be found
    assert listed["keyword-coverage"].distribution == "tuneloop-keyword-coverage"


def test_the_example_and_scaffolded_packages_own_tests_pass(installed, tmp_path):
    """The root suite does not collect examples/ nor what `tuneloop plugins new` writes: run their
    tests here, in one pytest process (one torch import): each example's against its installed
    copy, and those of a new package of every kind from its source folder, as its author would
    right after `plugins new`. So neither can rot unnoticed."""
    from tuneloop.scaffold import KINDS, scaffold

    suites = []
    for folder in PACKAGES:
        suites.append(shutil.copytree(EXAMPLES / folder / "tests", tmp_path / "examples" / folder))
    scaffolds = [scaffold(f"new-{kind}", kind, tmp_path / "new") for kind in KINDS]
    suites += [root / "tests" for root in scaffolds]
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--rootdir",
         str(tmp_path), *map(str, suites)],
        capture_output=True, text=True, timeout=600, cwd=tmp_path,
        env={**os.environ, "PYTHONDONTWRITEBYTECODE": "1",
             "PYTHONPATH": os.pathsep.join([str(installed), *map(str, scaffolds)])},
    )
    assert result.returncode == 0, result.stdout[-8000:] + result.stderr[-3000:]
    passed = re.search(r"(\d+) passed", result.stdout)
    written = sum(len(re.findall(r"^def test_", path.read_text(), re.MULTILINE))
                  for suite in suites for path in suite.glob("test_*.py"))
    assert passed and int(passed.group(1)) == written >= 25 + 3 * len(KINDS), result.stdout
