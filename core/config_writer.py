"""Writing values into a project's YAML config text, keeping its comments and layout.

``tuneloop tune --apply`` writes the best hyperparameters into the config the next cycle runs
with. A YAML library that loads and dumps would drop every comment the user wrote, so values are
edited in the text: a value that is already there is replaced where it stands (block or flow
style), and a missing key is added to its block mapping with the mapping's indentation. When that
cannot work (a missing section in flow style, say) ``edit_text`` returns ``None`` and the caller
rewrites the file from its data.

Paths are tuples of mapping keys and list indices into the file's YAML structure:
``("training", "learning_rate")``, ``("training", "regularizers", 1, "p")``.
"""

from __future__ import annotations

from typing import Any

import yaml

YamlPath = tuple  # ("training", "lora", "r")


def scalar_text(value: Any) -> str:
    """``value`` as a YAML scalar (``0.0003``, ``16``, ``true``, ``'a: b'``)."""
    return yaml.safe_dump([value], default_flow_style=True, width=10_000).strip()[1:-1]


def edit_text(text: str, values: dict[YamlPath, Any]) -> str | None:
    """``text`` with ``values`` written in place, or ``None`` when a value needs a rewrite."""
    root = yaml.compose(text)
    if not isinstance(root, yaml.MappingNode):
        return None
    edits: list[tuple[int, int, str, int]] = []  # (start, end, replacement, indent)
    for keys, value in values.items():
        node, missing = locate(root, keys)
        if not missing:
            if not isinstance(node, yaml.ScalarNode):
                return None
            edits.append((node.start_mark.index, node.end_mark.index, scalar_text(value), 0))
            continue
        if not (isinstance(node, yaml.MappingNode) and not node.flow_style and node.value
                and all(isinstance(key, str) for key in missing)):
            return None
        edits.append(insertion(text, node, missing, value))
    # from the end backwards, so earlier positions stay valid; insertions at one position go
    # shallowest first, so a nested mapping's new entry lands inside it, before its parent's
    for start, end, replacement, _ in sorted(edits, key=lambda edit: (edit[0], -edit[3]),
                                             reverse=True):
        text = text[:start] + replacement + text[end:]
    return text


def locate(root: yaml.Node, keys: YamlPath) -> tuple[yaml.Node, YamlPath]:
    """The deepest node on ``keys`` that exists, and the keys below it that do not."""
    node = root
    for depth, key in enumerate(keys):
        child = None
        if isinstance(node, yaml.MappingNode):
            child = next((value for name, value in node.value if name.value == key), None)
        elif isinstance(node, yaml.SequenceNode) and isinstance(key, int) \
                and key < len(node.value):
            child = node.value[key]
        if child is None or (isinstance(child, yaml.ScalarNode) and child.tag.endswith(":null")
                             and depth < len(keys) - 1):
            return node, keys[depth:]
        node = child
    return node, ()


def insertion(text: str, mapping: yaml.MappingNode, missing: YamlPath,
              value: Any) -> tuple[int, int, str, int]:
    """Add ``missing: value`` (nested when ``missing`` has several keys) as the last entry of a
    block ``mapping``, indented like its keys."""
    indent = mapping.value[0][0].start_mark.column
    nested: Any = value
    for key in reversed(missing):
        nested = {key: nested}
    lines = yaml.safe_dump(nested, sort_keys=False, default_flow_style=False).splitlines()
    block = "\n".join(" " * indent + line for line in lines)
    end = mapping.end_mark
    if end.column == 0:  # the mapping ends at the start of a line: insert before that line
        return end.index, end.index, block + "\n", indent
    line_end = text.find("\n", end.index)
    line_end = len(text) if line_end == -1 else line_end
    return line_end, line_end, "\n" + block, indent
