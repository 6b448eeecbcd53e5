"""The leakage check: the same, or nearly the same, input on both sides of an evaluation split.

The split keeps every example of a split key together, but a key is the input lower-cased with its
whitespace collapsed, or a group: "What's my balance?" and "whats my balance" are two keys and may
land in train and test; the same sentence in two groups (two documents quoting it) too; an augmented
variant or a feedback example can come within a typo of a test input. A model that saw one is not
being tested on the other, and nothing downstream can tell: so the check runs on the final splits,
after augmentation and feedback, and before anything is written.

Pairs checked, with the side that is protected (never dropped) second:

    train → validation, train → test, review → validation, review → test, validation → test

Review counts as a training side: a rated review item becomes training data in the next cycle.
*Exact* duplicates are inputs equal after ``near_duplicates.normalise`` (Unicode forms, case,
punctuation, whitespace); *near* duplicates have a character-shingle Jaccard similarity at or above
the threshold (MinHash candidates, each confirmed exactly).

The near check reads the first ``near_duplicates.MAX_CHARS`` characters of each normalised input
(what one input contributes is capped, so a 50 MB line costs no more than a long paragraph); the
report counts the inputs cut (``inputs_cut``, when there are any) and names the cap
(``near_chars_per_input``).

``action``: ``refuse`` raises a DataError naming a leaking pair; ``drop`` removes the example on
the less protected side (a test example is never dropped, so the test set stays frozen); ``report``
keeps everything and counts.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from tuneloop.components import Example
from tuneloop.data_checks import where
from tuneloop.errors import DataError

PROTECTED: dict[str, tuple[str, ...]] = {
    # a split -> the more protected splits it must not share an input with
    "train": ("test", "validation"),
    "review": ("test", "validation"),
    "validation": ("test",),
}


@dataclass
class Leak:
    """``example`` (in ``split``) duplicates ``protected`` (in ``protected_split``)."""

    kind: str  # "exact" or "near"
    split: str
    example: Example
    protected_split: str
    protected: Example
    similarity: float

    def describe(self, width: int = 60) -> str:
        return (f'{self.split} {where(self.example)} "{_short(self.example.input, width)}" ~ '
                f'{self.protected_split} {where(self.protected)} '
                f'"{_short(self.protected.input, width)}" ({self.kind}, {self.similarity:.2f})')


def _short(text: str, width: int) -> str:
    text = " ".join(text.split())
    return text if len(text) <= width else text[:width - 1] + "…"


def find_leaks(splits: dict[str, list[Example]], near_threshold: float | None) -> list[Leak]:
    """Every example that duplicates (exactly, or at ``near_threshold``) an example of a more
    protected split; each example is reported once, against its most protected match."""
    from tuneloop.near_duplicates import NearDuplicateIndex, normalise

    leaks: list[Leak] = []
    exact: dict[str, dict[str, Example]] = {}
    indexes: dict[str, Any] = {}
    members: dict[str, list[Example]] = {}
    for protected in ("test", "validation"):
        examples = splits.get(protected) or []
        table: dict[str, Example] = {}
        for example in examples:
            table.setdefault(normalise(example.input), example)
        exact[protected] = table
        if near_threshold is not None and examples:
            index = NearDuplicateIndex(near_threshold)
            index.add(example.input for example in examples)
            indexes[protected] = index
            members[protected] = examples

    for split, against in PROTECTED.items():
        examples = splits.get(split) or []
        if not examples:
            continue
        found: dict[int, Leak] = {}
        for position, example in enumerate(examples):
            key = normalise(example.input)
            for protected in against:
                match = exact[protected].get(key)
                if match is not None:
                    found[position] = Leak("exact", split, example, protected, match, 1.0)
                    break
        if near_threshold is not None:
            remaining = [p for p in range(len(examples)) if p not in found]
            for protected in against:
                index = indexes.get(protected)
                if index is None or not remaining:
                    continue
                matches = index.match([examples[p].input for p in remaining])
                still = []
                for position, match in zip(remaining, matches):
                    if match is None:
                        still.append(position)
                        continue
                    found[position] = Leak("near", split, examples[position], protected,
                                           members[protected][match[0]], match[1])
                remaining = still
        leaks.extend(found[position] for position in sorted(found))
    return leaks


def check_leakage(splits: dict[str, list[Example]], action: str,
                  near_threshold: float | None) -> dict[str, Any]:
    """Find leaks and act on them (``refuse``, ``drop``, ``report``); returns the report entry.

    ``splits`` is changed in place when ``action`` is ``drop``.
    """
    from tuneloop.near_duplicates import MAX_CHARS, is_cut

    leaks = find_leaks(splits, near_threshold)
    counts: dict[str, int] = {}
    for leak in leaks:
        name = f"{leak.split}~{leak.protected_split} ({leak.kind})"
        counts[name] = counts.get(name, 0) + 1
    report: dict[str, Any] = {"action": action, "near_threshold": near_threshold,
                              "leaks": len(leaks), "pairs": counts,
                              "examples": [leak.describe() for leak in leaks[:10]], "dropped": 0}
    cut = sum(1 for examples in splits.values() for example in examples
              if len(example.input) > MAX_CHARS and is_cut(example.input)
              ) if near_threshold is not None else 0
    if cut:  # the near check read only the first MAX_CHARS characters of these: say so
        report["inputs_cut"] = cut
        report["near_chars_per_input"] = MAX_CHARS
    if not leaks:
        return report
    if action == "refuse":
        kinds = ", ".join(f"{count} {name}" for name, count in counts.items())
        raise DataError("data", f"{len(leaks)} example(s) duplicate an input of a more protected "
                                f"split ({kinds}); e.g. {leaks[0].describe()}; set "
                                f"data.leakage.action to drop (or report), or clean the data")
    if action == "drop":
        leaving = {(leak.split, id(leak.example)) for leak in leaks}
        for split in PROTECTED:
            if split in splits:
                splits[split] = [example for example in splits[split]
                                 if (split, id(example)) not in leaving]
        report["dropped"] = len(leaks)
    return report
