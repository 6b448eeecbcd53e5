"""`tuneloop plugins new`: every kind gives a package that registers a component meeting its
interface.

The scaffolded packages' own tests run in test_example_plugin_install.py, in the same pytest
process as the example plugins' tests (one torch import for both); test_plugin_install.py installs
a scaffolded plugin with pip and runs a cycle with it.
"""

from __future__ import annotations

import importlib
import re
import sys
import tomllib

import pytest
from click.testing import CliRunner

from tuneloop import registries
from tuneloop.cli import cli
from tuneloop.errors import TuneloopError
from tuneloop.plugin_checks import component_problems
from tuneloop.scaffold import KINDS, plugin_names, render, scaffold, supported_range
from tuneloop.testing import register_plugin


def test_names_follow_from_the_one_the_author_chose():
    names = plugin_names("Keyword-Coverage")
    assert (names.plugin, names.distribution, names.module, names.component, names.class_name) \
        == ("keyword-coverage", "tuneloop-keyword-coverage", "tuneloop_keyword_coverage",
            "keyword_coverage", "KeywordCoverage")
    assert plugin_names("tuneloop-keyword_coverage") == names
    for bad in ("", "2fast", "with space", "double--dash", "ümlaut", "-x"):
        with pytest.raises(TuneloopError, match="use lowercase letters, digits and single"):
            plugin_names(bad)


def test_supported_range_runs_to_the_next_major_version():
    assert supported_range("0.1.0") == ">=0.1,<1"
    assert supported_range("2.3.4") == ">=2.3,<3"
    assert supported_range("0+unknown") == ">=0.0,<1"


def test_render_refuses_a_placeholder_without_value():
    assert render("{{ a }}-{{b}}", {"a": "1", "b": "2"}) == "1-2"
    with pytest.raises(KeyError, match="missing"):
        render("{{ missing }}", {})


def test_new_writes_the_package_and_says_what_next(tmp_path):
    result = CliRunner().invoke(cli, ["plugins", "new", "ticket-words", "--kind", "cleaner",
                                      "-d", str(tmp_path)])
    assert result.exit_code == 0, result.output
    root = tmp_path / "tuneloop-ticket-words"
    assert sorted(str(path.relative_to(root)) for path in root.rglob("*") if path.is_file()) == [
        ".gitignore", "README.md", "pyproject.toml", "tests/conftest.py",
        "tests/test_tuneloop_ticket_words.py", "tuneloop_ticket_words/__init__.py"]
    assert f"tuneloop plugins install -e {root}" in result.output
    project = tomllib.loads((root / "pyproject.toml").read_text())
    assert project["project"]["name"] == "tuneloop-ticket-words"
    assert project["project"]["entry-points"]["tuneloop"] == {
        "ticket-words": "tuneloop_ticket_words"}
    assert project["project"]["dependencies"] == ["tuneloop>=0.1,<1"]
    readme = (root / "README.md").read_text()
    assert "{name: ticket_words, min_words: 3}" in readme and "{{" not in readme

    again = CliRunner().invoke(cli, ["plugins", "new", "ticket-words", "-d", str(tmp_path)])
    assert again.exit_code == 2 and "already exists" in again.output


@pytest.fixture(scope="module")
def every_kind(tmp_path_factory):
    """One scaffolded package per kind, importable from its source folder."""
    root = tmp_path_factory.mktemp("scaffolds")
    packages = {kind: scaffold(f"my-{kind}", kind, root) for kind in KINDS}
    sys.path[:0] = [str(path) for path in packages.values()]
    importlib.invalidate_caches()
    try:
        yield packages
    finally:
        for path in packages.values():
            sys.path.remove(str(path))
        for name in [name for name in sys.modules if name.startswith("tuneloop_my_")]:
            del sys.modules[name]


@pytest.mark.parametrize("kind", KINDS)
def test_each_kind_registers_one_component_that_meets_its_interface(every_kind, kind):
    names = plugin_names(f"my-{kind}")
    module = importlib.import_module(names.module)
    registry_kind, hook, _ = KINDS[kind]
    assert module.TUNELOOP_REQUIRES == ">=0.1,<1"
    with register_plugin(module, name=names.plugin):
        found = registries.build()
        assert found.components_of(names.plugin) == {registry_kind: [names.component]}
        component = found[registry_kind].get(names.component)
    assert component.__name__ == names.class_name and (component.__doc__ or "").strip()
    assert component_problems(registry_kind, component) == []
    assert hasattr(getattr(module, hook), "tuneloop_impl")


def test_every_template_ships_as_package_data():
    """A template outside the globs in pyproject.toml would be missing from a built wheel."""
    from pathlib import Path

    def matches(path: str, glob: str) -> bool:  # setuptools' globs: * stays within a folder
        return re.fullmatch(re.escape(glob).replace(r"\*", "[^/]*"), path) is not None

    root = Path(__file__).resolve().parent.parent
    globs = tomllib.loads((root / "pyproject.toml").read_text())["tool"]["setuptools"][
        "package-data"]["tuneloop"]
    templates = [path.relative_to(root / "core").as_posix()
                 for path in (root / "core" / "plugin_template").rglob("*") if path.is_file()
                 and "__pycache__" not in path.parts]
    assert len(templates) == 4 + 3 * len(KINDS)
    assert [path for path in templates if not any(matches(path, glob) for glob in globs)] == []
    assert not matches("plugin_template/kinds/x/y.tmpl", "plugin_template/*.tmpl")
