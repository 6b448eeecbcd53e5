"""``tuneloop plugins new``: a pip-installable plugin package with one working component.

The package is written from the templates in ``plugin_template/`` (package data): a
``pyproject.toml`` with the ``tuneloop`` entry point, a module with one component of the chosen kind
and its ``register_*`` hookimpl, a README, and tests that use ``tuneloop.testing`` (the component
called directly, looked up through the registry, and used by a real one-epoch cycle). A new plugin
passes its own tests before its author changes a line, so every later failure is theirs to read.

Templates are plain text with ``{{ name }}`` placeholders, filled by :func:`render`; an unknown
placeholder is an error, so a template and this module cannot drift apart silently.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass
from importlib import resources
from pathlib import Path

from tuneloop.errors import TuneloopError

# ``--kind`` value -> (registry kind, registration hook, docs page)
KINDS: dict[str, tuple[str, str, str]] = {
    "data-source": ("data_sources", "register_data_sources", "data-sources.md"),
    "cleaner": ("cleaners", "register_cleaners", "cleaners.md"),
    "augmenter": ("augmenters", "register_augmenters", "augmenters.md"),
    "regularizer": ("regularizers", "register_regularizers", "regularizers.md"),
    "trainer": ("trainers", "register_trainers", "trainers.md"),
    "metric": ("metrics", "register_metrics", "metrics.md"),
    "feedback-policy": ("feedback_policies", "register_feedback_policies",
                        "feedback-policies.md"),
    "review-sampler": ("review_samplers", "register_review_samplers", "review-samplers.md"),
}

_NAME = re.compile(r"[a-z][a-z0-9]*(?:[-_][a-z0-9]+)*")
_PLACEHOLDER = re.compile(r"\{\{\s*(\w+)\s*\}\}")


@dataclass(frozen=True)
class PluginNames:
    """Every name a plugin goes by, derived from the one the author chose."""

    plugin: str  # the entry point: what TUNELOOP_LOAD_PLUGINS, errors and `plugins list` show
    distribution: str  # what pip installs and uninstalls
    module: str  # the import name
    component: str  # what a config writes
    class_name: str


def plugin_names(name: str) -> PluginNames:
    """``keyword-coverage`` (or ``tuneloop-keyword-coverage``) -> every name the plugin needs."""
    base = name.strip().lower()
    for prefix in ("tuneloop-", "tuneloop_"):
        base = base.removeprefix(prefix)
    if not _NAME.fullmatch(base):
        raise TuneloopError(f'plugin name "{name}": use lowercase letters, digits and single '
                            f"hyphens, starting with a letter (e.g. keyword-coverage)")
    words = re.split(r"[-_]", base)
    return PluginNames(plugin="-".join(words), distribution="tuneloop-" + "-".join(words),
                       module="tuneloop_" + "_".join(words), component="_".join(words),
                       class_name="".join(word.capitalize() for word in words))


def supported_range(version: str) -> str:
    """The tuneloop versions a new plugin declares: this release up to the next major one."""
    numbers = [int(part) for part in re.findall(r"\d+", version.split("+")[0])[:2]] + [0, 0]
    major, minor = numbers[0], numbers[1]
    return f">={major}.{minor},<{major + 1}"


def render(template: str, values: dict[str, str]) -> str:
    """Fill ``{{ name }}`` placeholders; a placeholder without a value is an error."""

    def fill(match: re.Match[str]) -> str:
        key = match.group(1)
        if key not in values:
            raise KeyError(f"template placeholder {{{{ {key} }}}} has no value")
        return values[key]

    return _PLACEHOLDER.sub(fill, template)


def template_values(names: PluginNames, kind: str, tuneloop_version: str) -> dict[str, str]:
    registry_kind, hook, page = KINDS[kind]
    return {**asdict(names), "kind": kind, "kind_title": kind.replace("-", " "),
            "registry_kind": registry_kind, "hook": hook, "doc_page": page,
            "tuneloop_requires": supported_range(tuneloop_version)}


def files_for(names: PluginNames, kind: str, tuneloop_version: str) -> dict[str, str]:
    """The new package's files, relative path -> text."""
    if kind not in KINDS:
        raise TuneloopError(f'unknown kind "{kind}"; choose one of {", ".join(KINDS)}')
    templates = resources.files("tuneloop") / "plugin_template"
    values = template_values(names, kind, tuneloop_version)
    values["usage"] = render(
        (templates / "kinds" / kind / "usage.yaml.tmpl").read_text(encoding="utf-8"),
        values).rstrip("\n")

    def read(*parts: str) -> str:
        return render(templates.joinpath(*parts).read_text(encoding="utf-8"), values)

    return {
        "pyproject.toml": read("pyproject.toml.tmpl"),
        "README.md": read("README.md.tmpl"),
        ".gitignore": read("gitignore.tmpl"),
        f"{names.module}/__init__.py": read("kinds", kind, "module.py.tmpl"),
        "tests/conftest.py": read("tests", "conftest.py.tmpl"),
        f"tests/test_{names.module}.py": read("kinds", kind, "test_module.py.tmpl"),
    }


def scaffold(name: str, kind: str, directory: str | Path = ".") -> Path:
    """Write a new plugin package into ``directory/<distribution>``; return that folder."""
    from tuneloop.plugin_manager import tuneloop_version

    names = plugin_names(name)
    files = files_for(names, kind, tuneloop_version())
    root = Path(directory) / names.distribution
    if root.exists():
        raise TuneloopError(f"{root} already exists; choose another name or folder")
    for relative, text in files.items():
        path = root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    return root
