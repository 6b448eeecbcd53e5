"""A YAML loader that refuses a mapping with the same key twice.

PyYAML's ``safe_load`` keeps the last of two equal keys without a word, so ``epochs: 3`` written
twice (a pasted block, a merge gone wrong) silently trains with the second value. YAML 1.2 says
keys must be unique; this loader holds PyYAML to it and names the line of the repeated key. It is
``SafeLoader`` otherwise (no Python objects), so a config is read exactly as before.
"""

from __future__ import annotations

from typing import Any

import yaml


class UniqueKeyLoader(yaml.SafeLoader):
    """``yaml.SafeLoader`` whose mappings refuse a key given twice (a ``ConstructorError``
    pointing at the repeated key's line)."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        if isinstance(node, yaml.MappingNode):
            # a key may override one merged in with ``<<: *anchor``: only the mapping's own keys
            # must be unique
            seen: dict[Any, yaml.Node] = {}
            for key_node, _ in node.value:
                if key_node.tag == "tag:yaml.org,2002:merge":
                    continue
                key = self.construct_object(key_node, deep=deep)
                try:
                    first = seen.get(key)
                except TypeError:  # an unhashable key: SafeLoader reports it itself
                    continue
                if first is not None:
                    raise yaml.constructor.ConstructorError(
                        "while reading a mapping", node.start_mark,
                        f"key {key!r} given twice (first on line {first.start_mark.line + 1})",
                        key_node.start_mark)
                seen[key] = key_node
        return super().construct_mapping(node, deep=deep)
