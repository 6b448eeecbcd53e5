"""What prepared data must not hide: empty evaluation splits, empty targets, unseen labels.

Each of these once let a cycle run to ``done`` without a word: a causal-LM file whose answers were
all different split 230 / 0 / 0 and measured nothing; a row with an empty target quietly became an
unlabeled example; a test label no training example had was scored as a certain miss. The cycle
(``prepare_data``) gathers them here into ``report["problems"]``, a list of
``{"level": "error" | "warning", "where": ..., "message": ...}``:

- ``tuneloop data inspect`` prints every one of them and stops for none (it is for looking);
- ``tuneloop run`` (and ``tune``) stop on the first error before the cycle row is written, with
  exit code 2 and the one line ``where: message`` (:func:`stop_on_errors`), and print the warnings.

Errors: a split that has a fraction above 0 but no example (no labelled one for train,
validation and test; every configured split must get examples, or the cycle would train on
nothing, measure nothing or queue nothing for review), and, when
the config asks to refuse them (``data.on_empty_target: refuse``, ``data.on_unseen_label:
refuse``), empty targets and unseen labels. Warnings: empty targets and unseen labels otherwise.

An *empty target* is a blank one (``""``, only whitespace: no label and no completion, so it is
made ``None``) or a missing one, on an example from a source whose other examples have targets and
that is not pinned to ``review`` (a review pool is unlabeled on purpose; so is a source that has no
targets at all). An *unseen label* (classification) is a validation or test label that no training
example has (for ``multi_label`` trainers, each label of a target is checked).
"""

from __future__ import annotations

import dataclasses
import logging
from collections import Counter
from typing import Any, Mapping

from tuneloop.components import SPLITS, Example
from tuneloop.data_checks import where
from tuneloop.errors import DataError

logger = logging.getLogger("tuneloop.data")
"""Where ``tuneloop run`` reports the warnings (stderr, one line each, also under ``--quiet``)."""

EVALUATION_SPLITS = ("validation", "test")
SHOWN = 5


# --------------------------------------------------------------------------------------------------
# Empty targets (before the split)
# --------------------------------------------------------------------------------------------------


def settle_empty_targets(examples: list[Example], report: dict[str, Any]) -> list[Example]:
    """Make blank targets ``None`` and count the empty targets (see the module docstring) in
    ``report["empty_targets"]``; returns the examples (a blank-target one replaced by a copy)."""
    labelled_sources = {example.source for example in examples
                        if example.target is not None and example.target.strip()}
    settled: list[Example] = []
    found: list[Example] = []
    for example in examples:
        if example.target is not None and not example.target.strip():
            example = dataclasses.replace(example, target=None, id="")
        if (example.target is None and example.split != "review"
                and example.source in labelled_sources):
            found.append(example)
        settled.append(example)
    if found:
        report["empty_targets"] = {
            "count": len(found), "first": where(found[0]),
            "by_source": dict(Counter(example.source or "data" for example in found)),
            "examples": [where(example) for example in found[:SHOWN]]}
    return settled


# --------------------------------------------------------------------------------------------------
# Unseen labels (after augmentation, feedback and the leakage check)
# --------------------------------------------------------------------------------------------------


def unseen_labels(config: Any, splits: Mapping[str, list[Example]]) -> dict[str, Any]:
    """``{split: {"examples", "labels", "first"}}`` for validation and test examples whose label
    no training example has (classification; empty for causal LMs)."""
    if config.task != "classification":
        return {}
    options = config.trainer_ref.options
    separator = options.get("label_separator", ",") if options.get("multi_label") else None

    def labels(target: str) -> list[str]:
        if separator is None:
            return [target]
        return [part.strip() for part in target.split(separator) if part.strip()]

    trained = {label for example in splits.get("train") or [] if example.target is not None
               for label in labels(example.target)}
    found: dict[str, Any] = {}
    for split in EVALUATION_SPLITS:
        unseen = [example for example in splits.get(split) or [] if example.target is not None
                  and any(label not in trained for label in labels(example.target))]
        if unseen:
            names = sorted({label for example in unseen for label in labels(example.target or "")
                            if label not in trained})
            found[split] = {"examples": len(unseen), "labels": names[:20],
                            "distinct": len(names), "first": where(unseen[0])}
    return found


# --------------------------------------------------------------------------------------------------
# Empty evaluation splits, and the list of problems
# --------------------------------------------------------------------------------------------------


def collect(config: Any, splits: Mapping[str, list[Example]], report: dict[str, Any],
            examples: int, pins: Mapping[tuple[str, str], int],
            split_stats: Mapping[str, Any]) -> list[dict[str, str]]:
    """Every problem of the prepared data, errors first.

    :param examples: how many examples were split (after cleaning).
    :param pins: ``(source, split) -> examples`` that sources pinned, counted before the split.
    :param split_stats: what ``assign_splits`` reports in its ``stats``.
    """
    problems: list[dict[str, str]] = []
    for split in SPLITS:
        problem = _empty_split(config, split, splits, report, examples, pins, split_stats)
        if problem:
            problems.append({"level": "error", "where": "data.split", "message": problem})

    empty = report.get("empty_targets")
    if empty:
        refuse = config.data.on_empty_target == "refuse"
        sources = ", ".join(f"{source} {count}" for source, count in empty["by_source"].items())
        problems.append({
            "level": "error" if refuse else "warning", "where": empty["first"],
            "message": f"empty target: {empty['count']} example(s) with no target in sources "
                       f"whose other examples have one ({sources}); "
                       + ("data.on_empty_target is refuse: fill them or drop them (drop_empty "
                          "with require_target)" if refuse else
                          "they are kept unlabeled (reviewed, never trained or scored); "
                          "data.on_empty_target: refuse stops the cycle instead")})

    unseen = report.get("unseen_labels") or {}
    for split, entry in unseen.items():
        refuse = config.data.on_unseen_label == "refuse"
        shown = ", ".join(f'"{label}"' for label in entry["labels"][:SHOWN])
        more = f" and {entry['distinct'] - SHOWN} more" if entry["distinct"] > SHOWN else ""
        problems.append({
            "level": "error" if refuse else "warning", "where": entry["first"],
            "message": f"{entry['examples']} {split} example(s) have a label that no training "
                       f"example has ({shown}{more}): the model never learnt it; "
                       + ("data.on_unseen_label is refuse" if refuse else
                          "data.on_unseen_label: refuse stops the cycle instead")})
    problems.sort(key=lambda problem: problem["level"] != "error")
    return problems


def _empty_split(config: Any, split: str, splits: Mapping[str, list[Example]],
                 report: dict[str, Any], examples: int, pins: Mapping[tuple[str, str], int],
                 split_stats: Mapping[str, Any]) -> str | None:
    """Why ``split`` is empty although the config gives it a fraction; None if it is not."""
    fraction = getattr(config.data.split, split)
    if fraction <= 0 or splits.get(split):
        return None
    shares = " / ".join(f"{name} {getattr(config.data.split, name):g}" for name in SPLITS)
    head = f"{split} is empty: 0 of {examples} examples (fractions {shares}"
    if config.data.split.by == "column":
        head += ", by column"
    head += ")"
    reasons = []
    left_out = (report.get("unlabeled_left_out") or {}).get(split)
    if left_out:
        reasons.append(f"its {left_out} example(s) are unlabeled, and only labelled examples are "
                       f"{'trained on' if split == 'train' else 'scored'}")
    dropped = sum(count for name, count in ((report.get("leakage") or {}).get("pairs") or {}
                                            ).items() if name.startswith(f"{split}~"))
    if dropped and (report.get("leakage") or {}).get("dropped"):
        reasons.append(f"the leakage check dropped {dropped} of its examples")
    if not reasons:
        free = split_stats.get("known_keys", 0) + split_stats.get("new_keys", 0)
        if config.data.split.by == "column":
            reasons.append(f"no source names {split} for any example (fields.split or a "
                           f"source's split)")
        elif free == 0:
            pinned = "; ".join(f"{source}: {name} {count}"
                               for (source, name), count in sorted(pins.items()))
            reasons.append(f"every example is pinned to a split by its source ({pinned}), and the "
                           f"fractions only share out unpinned examples")
        elif split_stats.get("new_keys", 0) == 0:
            reasons.append(f"all {free} unpinned inputs keep the split an earlier cycle gave "
                           f"them (known inputs never move) and none is in {split}; new data "
                           f"fills it")
        elif free * fraction < 1:
            reasons.append(f"{free} unpinned input(s) are too few for a share of {fraction:g}")
        elif split_stats.get("stratified"):
            reasons.append(f"{free} unpinned inputs split per label, and no label has enough "
                           f"of them for a {split} share (data.split.stratify: none splits them "
                           f"by hash)")
        else:
            reasons.append(f"none of the {free} unpinned inputs was given {split}")
    if split == "train":
        return f"{head}: {'; '.join(reasons)}; give it examples"
    return (f"{head}: {'; '.join(reasons)}; give it examples, or set data.split.{split}: 0 for "
            f"a project without one")


def stop_on_errors(report: Mapping[str, Any]) -> None:
    """Raise the first error of ``report["problems"]`` as a one-line DataError (exit code 2)."""
    for problem in report.get("problems") or []:
        if problem["level"] == "error":
            raise DataError(problem["where"], problem["message"])


def warnings(report: Mapping[str, Any]) -> list[str]:
    """The warnings of ``report["problems"]``, each as one line."""
    return [f"{problem['where']}: {problem['message']}"
            for problem in report.get("problems") or [] if problem["level"] == "warning"]
