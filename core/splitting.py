"""Deterministic, frozen splits: stratified where labels repeat, by prompt hash where they do not.

The split is the one thing that must never go wrong silently: a test input that reaches training
makes every reported figure a lie, and nothing downstream can detect it. So the rules are few and
each has a reason.

1. **The unit is the split key, not the example.** ``Example.split_key`` is the group when there is
   one, else the normalised input (the prompt, for a causal LM). Every example sharing a key lands
   on the same side: exact and near duplicates (case, whitespace), relabelled copies of an input
   (a corrected label must not carry a test input into training), several answers to one prompt,
   and all chunks of one document (a group).
2. **Known keys never move.** ``known`` holds the assignments earlier cycles persisted. A key in it
   keeps its split forever, whatever the seed, the fractions or the rest of the data do, so the
   test set stays frozen as data grows and feedback arrives, and cycles stay comparable.
3. **A source may pin its examples** (``split: test`` on a curated test file, ``review`` on an
   unlabeled pool; feedback examples come pinned to ``train``). A pinned example keeps its split,
   and a new key's pin is recorded so the key stays there. A pin that disagrees with its key's
   split is kept only where no evaluation input can reach training through it:

   - ``review`` pins are always kept: the review split is neither trained on nor scored, and
     feedback on a key recorded as validation or test is refused by the cycle;
   - a ``train`` pin on a ``review`` key is kept: an expert-labelled review item becoming
     training data is the feedback loop working, not a leak;
   - anything else (train against validation or test, validation against test, a validation or
     test pin on a review key, whose feedback would otherwise go to training) would put one input
     on both sides of an evaluation split: the example goes to its key's split instead, and
     ``on_conflict(example, pinned, assigned)`` reports it (by default, a logged warning).

   A new key pinned to several splits takes the most protective one: test, then validation,
   review, train.
4. **The fractions share out the unpinned keys.** A key with a pin in this data (known or new) is
   not counted in any split's total: a curated test file pinned to ``test`` must not use up the
   test share and push every other key into train, leaving validation empty. Known keys without
   a pin count, so on later cycles new keys fill whichever split has fallen behind.
5. **Stratified where a label has few values.** ``stratify=True`` (classification) splits each
   label's keys by the fractions; a key's label is its examples' most common target (ties: the
   smallest), and unlabeled keys form their own stratum. ``stratify=False`` puts every key in one
   stratum: a causal LM's completions are nearly all distinct, and a stratum of one key always
   goes to train (train is furthest below its share), so stratifying by them would leave
   validation and test empty. ``stratify=None`` decides from the data: by label when the labels
   repeat enough for every split to get its share of each (on average at least ``1 / f`` keys per
   label, ``f`` the smallest fraction above 0), else as one stratum.
6. **Greedy by deficit, in seeded-hash order.** New keys are taken in the order of
   ``sha256(seed, key)``, a fixed pseudo-random order that does not depend on the order of the
   input (so near-identical prompts, which share a key, stay together and everything else is
   spread evenly). Each goes to the split whose count of keys in its stratum is furthest below its
   fraction of the stratum's total; a tie goes to the split furthest below its share over all
   strata, then in the order train, validation, test, review. On the first cycle every stratum is
   split as exactly as whole keys allow (each split within one key of its share), and the
   tie-break spreads the odd keys of small strata over validation and test instead of always
   giving them to validation.

7. **By column** (``data.split.by: column``): the data names each example's split (a column
   mapped as ``fields.split``, or a source's ``split``), as in datasets that ship their official
   train/validation/test. Every example must then be pinned; rules 1-3 still hold, so an input
   that the data puts in both train and test goes to test (the conflict is reported), and known
   keys still never move.

Grouping (rule 1) is how grouped splits are asked for: map a column to ``fields.group`` (a
document, a customer, a conversation) and all its examples share one side.

The comparison is done in integers (fractions are read as the decimals they were written as), so
``0.1 * 10`` ties with ``1`` exactly and the documented tie order holds.

Same examples, seed and known assignments give the same result in any input order: examples are
grouped by key, keys are ordered by their hash, and each split's examples come out in that order.

This module only assigns; whether every configured split got examples is checked by the cycle
(``tuneloop.data_problems``), which stops before anything is written when one is empty.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import math
from collections import Counter, defaultdict
from fractions import Fraction
from typing import Any, Callable, Iterable, Mapping, Sequence

from tuneloop.components import SPLITS, Example
from tuneloop.errors import DataError

logger = logging.getLogger(__name__)

PIN_PRECEDENCE: tuple[str, ...] = ("test", "validation", "review", "train")
"""Which split a new key pinned to several splits takes: the one whose leak would cost most."""

Conflict = Callable[[Example, str, str], None]


def key_hash(seed: int, key: str) -> str:
    """The seeded hash that orders keys: sha256 of the seed and the key."""
    return _digest(seed, key).hex()


def _digest(seed: int, key: str) -> bytes:
    """:func:`key_hash` as raw bytes: the same order, 65 bytes a key instead of 113."""
    payload = f"{seed}\x00{key}".encode("utf-8", "surrogatepass")
    return hashlib.sha256(payload).digest()


def _pin_is_safe(pinned: str, assigned: str) -> bool:
    """Whether an example may stay in its pinned split while its key is assigned elsewhere
    (see rule 3 above): only where no validation or test input can reach training through it."""
    return pinned == "review" or (pinned == "train" and assigned == "review")


def _log_conflict(example: Example, pinned: str, assigned: str) -> None:
    logger.warning('%s: an example pinned to %s was put in %s, where its split key %r is '
                   '(one input never sits on both sides of an evaluation split)',
                   example.source or "data", pinned, assigned, example.split_key)


def _integer_weights(fractions: Mapping[str, float]) -> dict[str, int]:
    """Fractions as integers with the same ratios (0.8/0.1/0.1 -> 8/1/1), so that comparisons of
    deficits are exact."""
    exact: dict[str, Fraction] = {}
    for split, value in fractions.items():
        if split not in SPLITS:
            raise ValueError(f'unknown split "{split}" in fractions; '
                             f'splits are {", ".join(SPLITS)}')
        number = float(value)
        if not math.isfinite(number) or number < 0:
            raise ValueError(f"split fraction for {split} must be a number >= 0, got {value!r}")
        exact[split] = Fraction(str(number))
    if not any(exact.values()):
        raise ValueError("at least one split fraction must be above 0")
    denominator = math.lcm(*(value.denominator for value in exact.values()))
    return {split: int(exact.get(split, 0) * denominator) for split in SPLITS}


def _stratum(examples: Sequence[Example]) -> str | None:
    """A key's label: its examples' most common target (ties: the smallest); None if unlabeled."""
    if len(examples) == 1:
        return examples[0].target
    counts = Counter(example.target for example in examples if example.target is not None)
    if not counts:
        return None
    top = max(counts.values())
    return min(target for target, count in counts.items() if count == top)


def _order(example: Example) -> tuple[Any, ...]:
    """A total order on examples that share a key, so output order never depends on input order."""
    return (example.id, example.source, example.weight, example.group or "", example.target or "",
            example.input, json.dumps(example.provenance, sort_keys=True, default=str))


def assign_splits(examples: Iterable[Example], fractions: Mapping[str, float], seed: int,
                  known: Mapping[str, str], *, on_conflict: Conflict | None = None,
                  by_column: bool = False, copy: bool = True, stratify: bool | None = True,
                  stats: dict[str, Any] | None = None,
                  ) -> tuple[dict[str, list[Example]], dict[str, str]]:
    """Split ``examples``; return them by split and the new assignments to persist.

    :param examples: the cleaned examples; an example's ``split`` (set by its source) pins it.
    :param fractions: target share per split name (``train``, ``validation``, ``test``,
        ``review``) of the unpinned keys; missing splits get 0. Only the ratios matter.
    :param seed: the project's split seed; it orders new keys, so it decides which keys go where.
    :param known: ``split_key -> split`` persisted by earlier cycles; these keys never move.
    :param on_conflict: called as ``(example, pinned, assigned)`` when a pin is overridden so that
        no input sits on both sides of an evaluation split; by default a warning is logged.
    :param by_column: every example must come pinned (its split named in the data, rule 7); one
        that is not is a DataError naming its file and line.
    :param copy: return copies (the default) or set ``split`` on the given examples themselves,
        when the caller owns them and a million copies would cost memory.
    :param stratify: ``True`` by label, ``False`` one stratum (split by the seeded hash of the
        key alone), ``None`` by label only where labels repeat enough (rule 5).
    :param stats: if given, filled with what the split was made of (for the cycle report and
        the empty-split message): ``stratified`` (bool), ``keys``, ``pinned_keys`` (keys with a
        pin, not shared out by the fractions), ``known_keys`` (unpinned keys an earlier cycle
        placed) and ``new_keys`` (unpinned keys placed now).
    :returns: ``(splits, new)``: every split name mapped to its examples (copies with ``split``
        set, unless ``copy`` is false), and ``split_key -> split`` for every key not in
        ``known``, pinned ones included.
    :raises DataError: an example pinned to a split that does not exist, or (``by_column``) an
        example with no split.
    """
    weights = _integer_weights(fractions)
    total_weight = sum(weights.values())
    for key, split in known.items():
        if split not in SPLITS:
            raise ValueError(f'known assignment of {key!r} is "{split}", not one of '
                             f'{", ".join(SPLITS)}')
    report = on_conflict or _log_conflict

    # 1. Group by split key. Most keys hold one example: that example, not a list of one (a
    #    million lists would cost 88 MB); members() gives either as a sequence.
    by_key: dict[str, Example | list[Example]] = {}

    def members(key: str) -> Sequence[Example]:
        held = by_key[key]
        return held if isinstance(held, list) else (held,)

    for example in examples:
        if example.split is not None and example.split not in SPLITS:
            raise DataError(example.source or "data", f'split "{example.split}" is not one of '
                                                      f'{", ".join(SPLITS)}')
        if by_column and example.split is None:
            from tuneloop.data_checks import example_error

            raise example_error(example, "no split: data.split.by is column, so every example "
                                         "needs one (map fields.split, or set the source's split)")
        key = example.split_key
        held = by_key.get(key)
        if held is None:
            by_key[key] = example
        elif isinstance(held, list):
            held.append(example)
        else:
            by_key[key] = [held, example]

    # 2. Each key's split: known, else pinned, else pending. Keys with a pin are left out of the
    #    shares (rule 4); known keys without one count towards them.
    # a key's split is new[key], else known[key] (no third dict of a million keys)
    new: dict[str, str] = {}
    pending: list[str] = []
    counted: dict[str, str] = {}  # known, unpinned key -> its split
    pinned_keys = 0
    for key in by_key:
        group = members(key)
        pins = {example.split for example in group if example.split is not None}
        if pins:
            pinned_keys += 1
        if key in known:  # its split is known[key]
            if not pins:
                counted[key] = known[key]
        elif pins:
            new[key] = next(split for split in PIN_PRECEDENCE if split in pins)
        else:
            pending.append(key)

    # 3. Strata (rule 5), then new keys in seeded-hash order, each to the split furthest below
    #    its share of the key's stratum; ties to the split furthest below its share overall.
    # deficit(split) * total_weight = weight(split) * total - count(split) * total_weight
    open_splits = [split for split in SPLITS if weights[split] > 0]
    free = [*counted, *pending]
    labels = {key: _stratum(members(key)) for key in free}
    if stratify is None:
        smallest = min(weights[split] for split in open_splits)
        stratify = len(free) * smallest >= len(set(labels.values())) * total_weight
    stratum_of = labels if stratify else dict.fromkeys(free)
    totals: Counter[str | None] = Counter(stratum_of.values())
    counts: dict[str | None, Counter[str]] = defaultdict(Counter)
    for key, split in counted.items():
        counts[stratum_of[key]][split] += 1
    overall: Counter[str] = Counter(counted.values())
    everything = len(free)
    # seeded-hash order (key_hash's, as raw digests: half the memory; sha256 never ties),
    # computed while sorting rather than kept for every key
    for key in sorted(pending, key=lambda k: _digest(seed, k)):
        total, count = totals[stratum_of[key]], counts[stratum_of[key]]
        split = max(open_splits, key=lambda s: (
            weights[s] * total - count[s] * total_weight,
            weights[s] * everything - overall[s] * total_weight, -SPLITS.index(s)))
        new[key] = split
        count[split] += 1
        overall[split] += 1
    if stats is not None:
        stats.update(stratified=bool(stratify), keys=len(by_key), pinned_keys=pinned_keys,
                     known_keys=len(counted), new_keys=len(pending))

    # 4. Place every example with its key; a disagreeing pin is kept only where it is safe.
    splits: dict[str, list[Example]] = {split: [] for split in SPLITS}
    for key in sorted(by_key, key=lambda k: _digest(seed, k)):
        target = new[key] if key in new else known[key]
        group = members(key)
        for example in (sorted(group, key=_order) if len(group) > 1 else group):
            placed = target
            pinned = example.split
            if pinned is not None and pinned != target:
                if _pin_is_safe(pinned, target):
                    placed = pinned
                else:
                    report(example, pinned, target)
            if copy:
                example = dataclasses.replace(example, split=placed)
            else:
                example.split = placed
            splits[placed].append(example)
    return splits, new


def split_summary(splits: Mapping[str, list[Example]], max_labels: int = 50) -> dict[str, Any]:
    """Counts per split and label, for the cycle report (JSON-serialisable).

    Each split maps to ``examples``, ``labeled``, ``unlabeled``, ``distinct_labels`` and
    ``labels`` (label to count, sorted). ``labels`` is left out where a split has more than
    ``max_labels`` distinct targets: causal-LM completions are nearly all distinct, and a count
    per completion is noise in a report.
    """
    summary: dict[str, Any] = {}
    for split, examples in splits.items():
        labels = Counter(example.target for example in examples if example.target is not None)
        labeled = sum(labels.values())
        entry: dict[str, Any] = {"examples": len(examples), "labeled": labeled,
                                 "unlabeled": len(examples) - labeled,
                                 "distinct_labels": len(labels)}
        if len(labels) <= max_labels:
            entry["labels"] = dict(sorted(labels.items()))
        summary[split] = entry
    return summary
