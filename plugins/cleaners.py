"""Built-in cleaners: drop empty examples and exact duplicates.

Cleaners are generators: they see one example at a time and keep only what they need to decide
(``drop_duplicates`` keeps a digest per distinct example), so a large source streams through.
Every removal is reported through ``removed(example, reason)``, because data that silently
disappears between the file and the model is a debugging trap. Reasons are short fixed phrases
(``empty input``, ``missing target``, ``duplicate``): the cycle report counts examples per reason,
and the example itself (with its source and line in ``provenance``) says which one went.
"""

from __future__ import annotations

import hashlib
import json
from typing import Iterable, Iterator

from tuneloop import Cleaner, Example, Options, hookimpl
from tuneloop.components import Removal


def normalise(text: str) -> str:
    """Case-folded, whitespace-collapsed text: the same normalisation ``Example.split_key`` uses."""
    return " ".join(text.lower().split())


class DropEmptyOptions(Options):
    """``require_target``: also drop examples without a target (missing, or only whitespace)."""

    require_target: bool = False


class DropEmpty(Cleaner):
    """Drops examples whose input is empty or whitespace, and optionally those without a target.

    An empty input teaches nothing and, for a classifier, pushes every label towards the prior.
    Unlabeled examples are kept by default because a review pool is unlabeled on purpose; set
    ``require_target`` when every example must be trainable. A whitespace-only target counts as
    missing: it is no label and no completion.
    """

    name = "drop_empty"
    Options = DropEmptyOptions
    options: DropEmptyOptions

    def clean(self, examples: Iterable[Example], removed: Removal) -> Iterator[Example]:
        require_target = self.options.require_target
        for example in examples:
            if not example.input.strip():
                removed(example, "empty input")
            elif require_target and (example.target is None or not example.target.strip()):
                removed(example, "missing target")
            else:
                yield example


class DropDuplicates(Cleaner):
    """Drops exact duplicates of (normalised input, target), keeping the first.

    The input is compared case- and whitespace-insensitively (as the split key is), the target
    exactly. The same input with a *different* target is not a duplicate: it is a conflicting
    label, kept so the split keeps both copies together and a reviewer can settle it. A duplicate
    would otherwise count twice in training and, worse, in the metrics.
    """

    name = "drop_duplicates"

    def clean(self, examples: Iterable[Example], removed: Removal) -> Iterator[Example]:
        seen: set[bytes] = set()  # digests of (normalised input, target): 20 bytes per example
        for example in examples:
            payload = json.dumps([normalise(example.input), example.target], ensure_ascii=False)
            digest = hashlib.sha1(payload.encode("utf-8", "surrogatepass")).digest()
            if digest in seen:
                removed(example, "duplicate")
                continue
            seen.add(digest)
            yield example


@hookimpl
def register_cleaners(register):
    """The built-in cleaners."""
    register(DropEmpty)
    register(DropDuplicates)
