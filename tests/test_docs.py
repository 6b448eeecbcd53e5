"""The plugin guide documents every hook and every component interface under its exact signature.

Two places, one job each:

- ``docs/plugin_hooks.md``, the hook reference: a section per hook headed by its name and its
  parameter names, as in its hookspec (``## register_data_sources(register)``), with its
  parameters, when it is called, an example and its errors.
- ``docs/plugins/<kind>.md``, one page per component kind: a section per method of the kind's base
  class headed by the class, the method and its parameters without ``self``
  (``### Trainer.train(context, splits, regularizers)``), with an example and its errors, plus how
  to start one, what tuneloop checks and how to test it. ``docs/plugins/README.md`` is the guide's
  front page: writing, testing, installing, inspecting and trusting plugins.

Adding a hook or a parameter, or a method to a component base class, without documenting it fails
here, and so does a heading for a hook or method that no longer exists.
"""

from __future__ import annotations

import ast
import inspect
import re
import textwrap
from pathlib import Path

import pytest

from tuneloop import components, hookspecs, testing
from tuneloop.scaffold import KINDS

ROOT = Path(__file__).resolve().parent.parent
HOOKS_DOC = ROOT / "docs" / "plugin_hooks.md"
GUIDE = ROOT / "docs" / "plugins"
# registry kind -> (the --kind of `tuneloop plugins new`, its page, its registration hook)
PAGES = {registry_kind: (kind, page, hook) for kind, (registry_kind, hook, page) in KINDS.items()}

# The component methods plugin authors implement; discovered below as well, so a method added to a
# base class is caught even before this list is updated.
EXPECTED_METHODS = {
    "DataSource": ["load"],
    "Cleaner": ["clean"],
    "Augmenter": ["augment"],
    "Regularizer": ["configure", "prepare", "penalty", "callbacks"],
    "Trainer": ["train", "predict"],
    "Metric": ["compute", "figure_names"],
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


def python_blocks(text: str) -> list[str]:
    return re.findall(r"^```python\n(.*?)^```", text, re.MULTILINE | re.DOTALL)


def hook_signature(name: str) -> str:
    parameters = inspect.signature(getattr(hookspecs, name)).parameters
    return f"{name}({', '.join(parameters)})"


def method_signature(cls: type, method: str) -> str:
    parameters = [name for name in inspect.signature(getattr(cls, method)).parameters
                  if name != "self"]
    return f"{cls.__name__}.{method}({', '.join(parameters)})"


def component_methods() -> list[tuple[str, type, str]]:
    """Every public method a component base class defines, from ``COMPONENT_KINDS``."""
    found = []
    for kind, base in components.COMPONENT_KINDS.items():
        for name, value in vars(base).items():
            if not name.startswith("_") and inspect.isfunction(value):
                found.append((kind, base, name))
    return found


def page_of(kind: str) -> Path:
    return GUIDE / PAGES[kind][1]


def all_docs() -> list[Path]:
    return [HOOKS_DOC, *sorted(GUIDE.glob("*.md"))]


@pytest.fixture(scope="module")
def hooks_text() -> str:
    return HOOKS_DOC.read_text(encoding="utf-8")


@pytest.fixture(scope="module")
def guide_text() -> str:
    return (GUIDE / "README.md").read_text(encoding="utf-8")


# --------------------------------------------------------------------------------------------------
# Hooks: docs/plugin_hooks.md
# --------------------------------------------------------------------------------------------------


def test_hook_names_are_discovered():
    # guards the tests below against an empty HOOK_NAMES passing them vacuously
    assert "register_data_sources" in hookspecs.HOOK_NAMES
    assert "cycle_failed" in hookspecs.HOOK_NAMES
    assert len(hookspecs.HOOK_NAMES) >= 17


@pytest.mark.parametrize("name", hookspecs.HOOK_NAMES)
def test_every_hook_has_a_section_headed_by_its_signature(name, hooks_text):
    expected = hook_signature(name)
    assert expected in headings(hooks_text), (
        f'docs/plugin_hooks.md has no section headed "## {expected}"')


@pytest.mark.parametrize("name", hookspecs.HOOK_NAMES)
def test_every_hook_section_documents_parameters_and_has_an_example(name, hooks_text):
    body = sections(hooks_text).get(hook_signature(name))
    assert body is not None, f"docs/plugin_hooks.md has no section for {hook_signature(name)}"
    for parameter in inspect.signature(getattr(hookspecs, name)).parameters:
        assert f"`{parameter}`" in body, f"{name}: parameter `{parameter}` is not described"
    assert "@hookimpl" in body and re.search(rf"def {name}\(", body), (
        f"{name}: the section has no example hookimpl")
    assert "**When it is called:**" in body, f"{name}: the section does not say when it is called"
    assert "**Errors:**" in body, f"{name}: the section does not say what errors look like"


def test_the_hook_reference_leads_to_the_guide(hooks_text):
    assert "Writing and installing a plugin" in headings(hooks_text)
    for kind, (_, page, _) in PAGES.items():
        assert f"plugins/{page}" in hooks_text, f"docs/plugin_hooks.md does not link {page}"
    assert "plugins/README.md" in hooks_text


# --------------------------------------------------------------------------------------------------
# Component interfaces: one page per kind in docs/plugins/
# --------------------------------------------------------------------------------------------------


def test_component_methods_are_discovered():
    discovered = {(base.__name__, method) for _, base, method in component_methods()}
    expected = {(cls, method) for cls, methods in EXPECTED_METHODS.items() for method in methods}
    assert expected <= discovered, f"not found on the base classes: {sorted(expected - discovered)}"


def test_every_component_kind_has_a_page_and_a_scaffold():
    assert set(PAGES) == set(components.COMPONENT_KINDS)
    for kind in components.COMPONENT_KINDS:
        assert page_of(kind).is_file(), f"no page {page_of(kind)} for {kind}"


@pytest.mark.parametrize("kind, base, method", component_methods(),
                         ids=lambda value: value if isinstance(value, str) else value.__name__)
def test_every_component_method_has_a_section_on_its_kinds_page(kind, base, method):
    text = page_of(kind).read_text(encoding="utf-8")
    expected = method_signature(base, method)
    assert expected in headings(text), (
        f'docs/plugins/{PAGES[kind][1]} has no heading "### {expected}"')
    body = sections(text)[expected]
    assert "```python" in body, f"{expected}: no example"
    assert "**Errors:**" in body, f"{expected}: the section does not say what errors look like"


@pytest.mark.parametrize("kind", sorted(PAGES))
def test_every_kind_page_says_how_to_start_register_check_and_test(kind):
    scaffold_kind, page, hook = PAGES[kind]
    text = (GUIDE / page).read_text(encoding="utf-8")
    assert f"--kind {scaffold_kind}" in text, f"{page}: no `tuneloop plugins new` line"
    assert f"../plugin_hooks.md#{hook}register" in text, f"{page}: no link to {hook}"
    assert f"def {hook}(register)" in text, f"{page}: no example of {hook}"
    for heading in ("The interface", "What tuneloop checks", "Testing it"):
        assert heading in headings(text), f'{page}: no section "{heading}"'
    assert "run_tiny_cycle" in sections(text)["Testing it"], f"{page}: test without a cycle"


def test_component_methods_are_documented_once(hooks_text):
    """Methods live on their kind's page; a copy in the hook reference would drift."""
    signatures = {method_signature(base, method) for _, base, method in component_methods()}
    misplaced = [title for title in headings(hooks_text) if title in signatures]
    assert not misplaced, f"move these sections to their docs/plugins/ page: {misplaced}"


# --------------------------------------------------------------------------------------------------
# Every page
# --------------------------------------------------------------------------------------------------


def test_no_heading_documents_a_hook_or_method_that_does_not_exist():
    """A heading that looks like a signature must match a current hook or method exactly."""
    current = {hook_signature(name) for name in hookspecs.HOOK_NAMES}
    current |= {method_signature(base, method) for _, base, method in component_methods()}
    for path in all_docs():
        stale = [title for title in headings(path.read_text(encoding="utf-8"))
                 if re.fullmatch(r"[A-Za-z_][\w.]*\(.*\)", title) and title not in current]
        assert not stale, f"{path.name}: headings for hooks or methods that do not exist: {stale}"


@pytest.mark.parametrize("path", all_docs(), ids=lambda path: path.name)
def test_python_examples_are_valid_python(path):
    for block in python_blocks(path.read_text(encoding="utf-8")):
        try:
            ast.parse(textwrap.dedent(block))
        except SyntaxError as error:
            pytest.fail(f"{path.name}: a python example does not parse ({error}):\n{block}")


def anchor(title: str) -> str:
    """GitHub's id for a heading: lowercase, punctuation dropped, spaces to hyphens."""
    return re.sub(r"[^\w\- ]", "", title.lower()).replace(" ", "-")


def test_relative_links_point_to_files_and_headings_that_exist():
    for path in all_docs():
        for target, fragment in re.findall(r"\]\(([^)#:]*)(?:#([^)]*))?\)",
                                           path.read_text(encoding="utf-8")):
            linked = path.parent / target if target else path
            assert linked.exists(), f"{path.name} links to missing {target}"
            if fragment and linked.suffix == ".md":
                ids = {anchor(title) for title in headings(linked.read_text(encoding="utf-8"))}
                assert fragment in ids, f"{path.name} links to missing #{fragment} in {linked.name}"


# --------------------------------------------------------------------------------------------------
# The guide's front page: writing, testing, installing, inspecting, trusting
# --------------------------------------------------------------------------------------------------


def test_the_guide_covers_every_command_and_switch(guide_text):
    for needle in ("tuneloop plugins new", "tuneloop plugins install", "tuneloop plugins uninstall",
                   "tuneloop plugins list", "tuneloop plugins show", "tuneloop plugins check",
                   "--no-plugins", "TUNELOOP_NO_PLUGINS", "TUNELOOP_LOAD_PLUGINS",
                   "TUNELOOP_REQUIRES", "[project.entry-points.tuneloop]", 'plugin "',
                   "cycles.plugins", "cycles.components"):
        assert needle in guide_text, f"docs/plugins/README.md does not mention {needle}"
    for kind in KINDS:
        assert f"`{kind}`" in guide_text, f"the guide does not list --kind {kind}"


def test_the_guide_documents_every_test_helper(guide_text):
    public = [name for name, value in vars(testing).items()
              if not name.startswith("_") and getattr(value, "__module__", "") == testing.__name__
              and (inspect.isfunction(value) or inspect.isclass(value))]
    assert "run_tiny_cycle" in public and "register_plugin" in public
    missing = [name for name in public if f"`{name}" not in guide_text]
    assert not missing, f"docs/plugins/README.md does not document tuneloop.testing.{missing}"


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
    assert python_blocks("x\n```python\na = 1\n```\n```text\nb\n```\n") == ["a = 1\n"]
    assert anchor("register_data_sources(register)") == "register_data_sourcesregister"
    assert anchor("What tuneloop checks") == "what-tuneloop-checks"
