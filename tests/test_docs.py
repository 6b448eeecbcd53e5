"""docs/plugin_hooks.md documents every hook and every component method under its exact signature.

A hook's heading is its name and its parameter names, as in its hookspec
(``## register_data_sources(register)``); a component method's heading is the class, the method and
its parameter names without ``self`` (``### Trainer.train(context, splits, regularizers)``). Adding
a hook or a parameter, or a method to a component base class, without documenting it fails here.
"""

from __future__ import annotations

import inspect
import re
from pathlib import Path

import pytest

from tuneloop import components, hookspecs

DOCS = Path(__file__).resolve().parent.parent / "docs" / "plugin_hooks.md"

# The component methods plugin authors implement; discovered below as well, so a method added to a
# base class is caught even before this list is updated.
EXPECTED_METHODS = {
    "DataSource": ["load"],
    "Cleaner": ["clean"],
    "Augmenter": ["augment"],
    "Regularizer": ["configure", "prepare", "penalty", "callbacks"],
    "Trainer": ["train", "predict"],
    "Metric": ["compute"],
    "FeedbackPolicy": ["examples"],
    "ReviewSampler": ["select"],
}


def headings(text: str) -> list[str]:
    """Markdown ATX headings outside fenced code blocks, without the #'s and backticks."""
    found, fenced = [], False
    for line in text.splitlines():
        if line.lstrip().startswith("```"):
            fenced = not fenced
            continue
        match = re.match(r"^#{1,6}\s+(.*?)\s*#*\s*$", line)
        if match and not fenced:
            found.append(match.group(1).replace("`", "").strip())
    return found


def sections(text: str) -> dict[str, str]:
    """Heading text to the section's body (up to the next heading of the same or a higher level)."""
    lines = text.splitlines()
    starts: list[tuple[int, int, str]] = []
    fenced = False
    for number, line in enumerate(lines):
        if line.lstrip().startswith("```"):
            fenced = not fenced
            continue
        match = re.match(r"^(#{1,6})\s+(.*?)\s*#*\s*$", line)
        if match and not fenced:
            starts.append((number, len(match.group(1)), match.group(2).replace("`", "").strip()))
    body: dict[str, str] = {}
    for index, (number, level, title) in enumerate(starts):
        end = next((start for start, other_level, _ in starts[index + 1:] if other_level <= level),
                   len(lines))
        body[title] = "\n".join(lines[number + 1:end])
    return body


def hook_signature(name: str) -> str:
    parameters = inspect.signature(getattr(hookspecs, name)).parameters
    return f"{name}({', '.join(parameters)})"


def method_signature(cls: type, method: str) -> str:
    parameters = [name for name in inspect.signature(getattr(cls, method)).parameters
                  if name != "self"]
    return f"{cls.__name__}.{method}({', '.join(parameters)})"


def component_methods() -> list[tuple[type, str]]:
    """Every public method a component base class defines, from ``COMPONENT_KINDS``."""
    found = []
    for base in components.COMPONENT_KINDS.values():
        for name, value in vars(base).items():
            if not name.startswith("_") and inspect.isfunction(value):
                found.append((base, name))
    return found


@pytest.fixture(scope="module")
def docs_text() -> str:
    return DOCS.read_text(encoding="utf-8")


def test_hook_names_are_discovered():
    # guards the tests below against an empty HOOK_NAMES passing them vacuously
    assert "register_data_sources" in hookspecs.HOOK_NAMES
    assert "cycle_failed" in hookspecs.HOOK_NAMES
    assert len(hookspecs.HOOK_NAMES) >= 17


@pytest.mark.parametrize("name", hookspecs.HOOK_NAMES)
def test_every_hook_has_a_section_headed_by_its_signature(name, docs_text):
    expected = hook_signature(name)
    assert expected in headings(docs_text), (
        f'docs/plugin_hooks.md has no section headed "## {expected}"')


@pytest.mark.parametrize("name", hookspecs.HOOK_NAMES)
def test_every_hook_section_documents_parameters_and_has_an_example(name, docs_text):
    body = sections(docs_text).get(hook_signature(name))
    assert body is not None, f"docs/plugin_hooks.md has no section for {hook_signature(name)}"
    for parameter in inspect.signature(getattr(hookspecs, name)).parameters:
        assert f"`{parameter}`" in body, f"{name}: parameter `{parameter}` is not described"
    assert "@hookimpl" in body and re.search(rf"def {name}\(", body), (
        f"{name}: the section has no example hookimpl")
    assert "**When it is called:**" in body, f"{name}: the section does not say when it is called"
    assert "**Errors:**" in body, f"{name}: the section does not say what errors look like"


def test_component_methods_are_discovered():
    discovered = {(base.__name__, method) for base, method in component_methods()}
    expected = {(cls, method) for cls, methods in EXPECTED_METHODS.items() for method in methods}
    assert expected <= discovered, f"not found on the base classes: {sorted(expected - discovered)}"


@pytest.mark.parametrize("base, method", component_methods(),
                         ids=lambda value: value if isinstance(value, str) else value.__name__)
def test_every_component_method_has_a_section_headed_by_its_signature(base, method, docs_text):
    expected = method_signature(base, method)
    assert expected in headings(docs_text), (
        f'docs/plugin_hooks.md has no heading "### {expected}"')


def test_no_heading_documents_a_hook_or_method_that_does_not_exist(docs_text):
    """A heading that looks like a signature must match a current hook or method exactly."""
    current = {hook_signature(name) for name in hookspecs.HOOK_NAMES}
    current |= {method_signature(base, method) for base, method in component_methods()}
    stale = [title for title in headings(docs_text)
             if re.fullmatch(r"[A-Za-z_][\w.]*\(.*\)", title) and title not in current]
    assert not stale, f"headings for hooks or methods that do not exist (or changed): {stale}"


def test_the_intro_covers_installing_and_controlling_plugins(docs_text):
    assert "Writing and installing a plugin" in headings(docs_text)
    for needle in ("[project.entry-points.tuneloop]", "TUNELOOP_LOAD_PLUGINS",
                   "TUNELOOP_REQUIRES", 'plugin "'):
        assert needle in docs_text, f"the intro does not mention {needle}"


def test_signature_helpers_on_known_cases():
    assert hook_signature("register_data_sources") == "register_data_sources(register)"
    assert hook_signature("training_log") == "training_log(cycle, step, logs)"
    assert method_signature(components.Trainer, "train") == \
        "Trainer.train(context, splits, regularizers)"
    assert method_signature(components.DataSource, "load") == "DataSource.load()"
    text = "# T\n## a(x)\n```\n## not(a, heading)\n```\n### `B.c(d)`\nbody\n## e()\n"
    assert headings(text) == ["T", "a(x)", "B.c(d)", "e()"]
    assert sections(text)["a(x)"].strip().endswith("body")
    assert sections(text)["B.c(d)"].strip() == "body"
