"""What ``tuneloop data inspect`` shows: the prepared data, before any training.

Counts per source and split, the label distribution, input lengths in the model's tokens (as a
histogram, with how many would be truncated at ``model.max_length``), what each cleaner removed and
changed (with examples), records skipped, leaks across splits and pins that were overridden, how
the split was made, the problems that would stop a cycle or that it warns about (empty evaluation
splits, empty targets, unseen labels: ``tuneloop.data_problems``), and a few rows of each split.
:func:`build` gathers it into a JSON-serialisable dict (``--json``); :func:`render` prints it with
rich.

Token lengths use the model's tokenizer when it can be loaded (offline: a local folder, a package,
or the cache), and whitespace-separated words otherwise; the report says which.
"""

from __future__ import annotations

import math
import statistics
from collections import Counter
from typing import Any

from tuneloop.components import SPLITS, Example
from tuneloop.config import ProjectConfig

HISTOGRAM_BINS = 12


# --------------------------------------------------------------------------------------------------
# Gathering
# --------------------------------------------------------------------------------------------------


def build(config: ProjectConfig, prepared: Any, samples: int = 3) -> dict[str, Any]:
    """The inspection report of prepared data (``cycle.PreparedData``)."""
    splits: dict[str, list[Example]] = prepared.splits
    report = dict(prepared.report)
    report["project"] = config.project
    report["task"] = config.task
    report["label_distribution"] = label_distribution(splits) if config.task == "classification" \
        else None
    report["lengths"] = lengths(config, splits)
    report["samples"] = {split: [_row(example) for example in examples[:samples]]
                         for split, examples in splits.items() if examples}
    augmented = [example for example in splits.get("train", [])
                 if (example.provenance or {}).get("kind") == "augmented"]
    if augmented:
        report["samples"]["train (augmented)"] = [_row(example) for example in augmented[:samples]]
    return report


def label_distribution(splits: dict[str, list[Example]]) -> dict[str, dict[str, int]]:
    """``{label: {split: count, ..., "total": n}}``, the most common label first."""
    table: dict[str, Counter[str]] = {}
    for split, examples in splits.items():
        for example in examples:
            if example.target is not None:
                table.setdefault(example.target, Counter())[split] += 1
    rows = {label: {**{split: counts.get(split, 0) for split in SPLITS},
                    "total": sum(counts.values())} for label, counts in table.items()}
    return dict(sorted(rows.items(), key=lambda item: (-item[1]["total"], item[0])))


def lengths(config: ProjectConfig, splits: dict[str, list[Example]]) -> dict[str, Any]:
    """Length statistics and a histogram per split, in tokens (or words, when the tokenizer
    cannot be loaded)."""
    from tuneloop.data_pipeline import load_tokenizer
    from tuneloop.errors import TuneloopError

    try:
        tokenizer = load_tokenizer(config.model_location(), "data inspect")
        unit, note = "tokens", None
    except TuneloopError as error:
        tokenizer, unit, note = None, "words", f"{error}; lengths are in words"
    counted: dict[str, list[int]] = {}
    for split, examples in splits.items():
        if not examples:
            continue
        counted[split] = _measure(tokenizer, examples, config.task)
    every = [value for values in counted.values() for value in values]
    edges = _edges(max(every) if every else 0)
    result: dict[str, Any] = {"unit": unit, "max_length": config.model.max_length, "note": note,
                              "edges": edges, "splits": {}}
    for split, values in counted.items():
        ordered = sorted(values)
        result["splits"][split] = {
            "examples": len(values), "min": ordered[0], "median": statistics.median(ordered),
            "p95": ordered[min(len(ordered) - 1, math.ceil(0.95 * len(ordered)) - 1)],
            "max": ordered[-1],
            "over_max_length": sum(value > config.model.max_length for value in values)
            if unit == "tokens" else None,
            "histogram": _histogram(values, edges)}
    return result


def _measure(tokenizer: Any, examples: list[Example], task: str) -> list[int]:
    texts = [example.input for example in examples]
    if tokenizer is None:
        counts = [len(text.split()) for text in texts]
        if task == "causal-lm":
            counts = [count + len((example.target or "").split())
                      for count, example in zip(counts, examples)]
        return counts
    counts = []
    for begin in range(0, len(texts), 1024):
        encoded = tokenizer(texts[begin:begin + 1024], add_special_tokens=True,
                            truncation=False)["input_ids"]
        counts.extend(len(ids) for ids in encoded)
    if task == "causal-lm":
        targets = [example.target or "" for example in examples]
        extra = []
        for begin in range(0, len(targets), 1024):
            encoded = tokenizer(targets[begin:begin + 1024], add_special_tokens=False,
                                truncation=False)["input_ids"]
            extra.extend(len(ids) for ids in encoded)
        counts = [count + more for count, more in zip(counts, extra)]
    return counts


def _edges(largest: int) -> list[int]:
    """Equal-width bin edges from 0 past ``largest``, at most ``HISTOGRAM_BINS`` bins."""
    width = max(1, math.ceil((largest + 1) / HISTOGRAM_BINS))
    return [width * number for number in range(math.ceil((largest + 1) / width) + 1)]


def _histogram(values: list[int], edges: list[int]) -> list[int]:
    counts = [0] * (len(edges) - 1)
    width = edges[1] - edges[0] if len(edges) > 1 else 1
    for value in values:
        counts[min(len(counts) - 1, value // width)] += 1
    return counts


def _row(example: Example) -> dict[str, Any]:
    from tuneloop.data_checks import where

    row = {"input": example.input, "target": example.target, "from": where(example)}
    if example.weight != 1.0:
        row["weight"] = example.weight
    provenance = example.provenance or {}
    if provenance.get("kind") != "original":
        row["provenance"] = provenance
    return row


# --------------------------------------------------------------------------------------------------
# Rendering
# --------------------------------------------------------------------------------------------------


def render(report: dict[str, Any], console: Any, max_labels: int = 200) -> None:
    from rich.table import Table

    console.rule(f"[bold]{report['project']}[/]: data ({report['task']})")
    _sources(report, console, Table)
    _cleaning(report, console, Table)
    _splits(report, console, Table)
    if report.get("label_distribution"):
        _labels(report, console, Table, max_labels)
    _lengths(report, console, Table)
    _leakage(report, console)
    _problems(report, console)
    _samples(report, console, Table)


def _sources(report: dict[str, Any], console: Any, Table: Any) -> None:
    table = Table(title="Sources", title_justify="left")
    for column in ("source", "type", "read", "kept", "skipped", *SPLITS):
        table.add_column(column, justify="left" if column in ("source", "type") else "right")
    by_source = report.get("by_source", {})
    listed = set()
    for entry in report["sources"]:
        counts = by_source.get(entry["source"], {})
        listed.add(entry["source"])
        table.add_row(entry["source"], entry["type"], str(entry["read"]), str(entry["kept"]),
                      str(entry.get("skipped", 0)), *(str(counts.get(s, 0)) for s in SPLITS))
    for name, counts in by_source.items():  # augmented and feedback examples
        if name not in listed:
            table.add_row(name, "", "", "", "", *(str(counts.get(s, 0)) for s in SPLITS))
    console.print(table)
    for entry in report["sources"]:
        for error in entry.get("skipped_at", []):
            console.print(f"  [yellow]skipped[/] {error}", soft_wrap=True)


def _cleaning(report: dict[str, Any], console: Any, Table: Any) -> None:
    table = Table(title="Cleaning", title_justify="left")
    table.add_column("cleaner")
    table.add_column("removed", justify="right")
    table.add_column("why")
    table.add_column("changed")
    changed = report.get("changed", {})
    for name, reasons in report["removed"].items():
        why = "; ".join(f"{reason}: {count}" for reason, count in reasons.items()) or "-"
        fixes = "; ".join(f"{reason}: {count}" for reason, count in
                          changed.get(name, {}).items()) or "-"
        table.add_row(name, str(sum(reasons.values())), why, fixes)
    console.print(table)
    for name, reasons in report.get("removed_samples", {}).items():
        for reason, rows in reasons.items():
            for row in rows:
                console.print(f"  [dim]{name} ({reason}):[/] {row}", soft_wrap=True)
    for name, count in report.get("augmented", {}).items():
        console.print(f"Augmenter {name} added {count} training examples")


def _splits(report: dict[str, Any], console: Any, Table: Any) -> None:
    table = Table(title="Splits", title_justify="left")
    for column in ("split", "examples", "labeled", "unlabeled", "labels"):
        table.add_column(column, justify="left" if column == "split" else "right")
    for split, entry in report["splits"].items():
        table.add_row(split, str(entry["examples"]), str(entry["labeled"]),
                      str(entry["unlabeled"]), str(entry["distinct_labels"]))
    console.print(table)
    method = report.get("split_method") or {}
    if method:
        how = ("stratified by label" if method.get("stratified") else
               "by a seeded hash of the prompt (or group), not stratified")
        console.print(f"Split {how}: {method.get('new_keys', 0)} new and "
                      f"{method.get('known_keys', 0)} known inputs shared out by the fractions, "
                      f"{method.get('pinned_keys', 0)} pinned by their source", soft_wrap=True)
    left_out = report.get("unlabeled_left_out")
    if left_out:
        console.print("Unlabeled examples left out of training and scoring: " +
                      ", ".join(f"{split} {count}" for split, count in left_out.items()))


def _labels(report: dict[str, Any], console: Any, Table: Any, max_labels: int) -> None:
    rows = report["label_distribution"]
    table = Table(title=f"Labels ({len(rows)})", title_justify="left")
    table.add_column("label")
    for column in (*SPLITS, "total"):
        table.add_column(column, justify="right")
    for label, counts in list(rows.items())[:max_labels]:
        table.add_row(label, *(str(counts[column]) for column in (*SPLITS, "total")))
    if len(rows) > max_labels:
        table.add_row(f"... {len(rows) - max_labels} more", *([""] * (len(SPLITS) + 1)))
    console.print(table)


def _lengths(report: dict[str, Any], console: Any, Table: Any) -> None:
    lengths_ = report["lengths"]
    unit = lengths_["unit"]
    if lengths_.get("note"):
        console.print(f"[yellow]{lengths_['note']}[/]")
    table = Table(title=f"Lengths in {unit}", title_justify="left")
    for column in ("split", "min", "median", "p95", "max", f"> {lengths_['max_length']}"):
        table.add_column(column, justify="left" if column == "split" else "right")
    for split, entry in lengths_["splits"].items():
        over = entry["over_max_length"]
        table.add_row(split, str(entry["min"]), f"{entry['median']:g}", str(entry["p95"]),
                      str(entry["max"]), "-" if over is None else str(over))
    console.print(table)
    edges = lengths_["edges"]
    totals = [sum(column) for column in zip(*(entry["histogram"]
                                              for entry in lengths_["splits"].values()))]
    if not totals:
        return
    peak = max(totals) or 1
    console.print(f"[bold]Length histogram ({unit}, all splits)[/]")
    for number, count in enumerate(totals):
        bar = "█" * max(1 if count else 0, round(40 * count / peak))
        console.print(f"  {edges[number]:>5}-{edges[number + 1] - 1:<5} {count:>7}  {bar}")


def _leakage(report: dict[str, Any], console: Any) -> None:
    leakage = report.get("leakage") or {}
    if leakage:
        threshold = leakage.get("near_threshold")
        what = f"exact, and near at similarity >= {threshold:g}" if threshold else "exact"
        if leakage.get("inputs_cut"):  # near_duplicates.MAX_CHARS: what one input contributes
            what += (f"; the near check read the first {leakage['near_chars_per_input']:,} "
                     f"characters of {leakage['inputs_cut']} longer input(s)")
        if not leakage.get("leaks"):
            console.print(f"[green]No duplicates across splits[/] ({what}).")
        else:
            pairs = ", ".join(f"{name}: {count}" for name, count in leakage["pairs"].items())
            console.print(f"[yellow]Duplicates across splits[/] ({what}): {pairs}; action "
                          f"{leakage['action']}, dropped {leakage['dropped']}", soft_wrap=True)
            for example in leakage["examples"]:
                console.print(f"  {example}", soft_wrap=True)
    conflicts = report.get("split_conflicts")
    if conflicts:
        console.print(f"[yellow]{conflicts['count']} pinned example(s) moved[/] so that no input "
                      f"sits on both sides of an evaluation split:", soft_wrap=True)
        for example in conflicts["examples"]:
            console.print(f"  {example}", soft_wrap=True)


def _problems(report: dict[str, Any], console: Any) -> None:
    """Empty evaluation splits, empty targets, unseen labels (``tuneloop.data_problems``): an
    error here is what stops ``tuneloop run``."""
    from rich.markup import escape

    for problem in report.get("problems") or []:
        style = "red" if problem["level"] == "error" else "yellow"
        console.print(f"[bold {style}]{problem['level']}:[/] "
                      f"{escape(problem['where'] + ': ' + problem['message'])}", soft_wrap=True)


def _samples(report: dict[str, Any], console: Any, Table: Any) -> None:
    table = Table(title="Sample rows", title_justify="left")
    for column in ("split", "input", "target", "from"):
        table.add_column(column, overflow="fold")
    for split, rows in report.get("samples", {}).items():
        for row in rows:
            table.add_row(split, _clip(row["input"]), _clip(row["target"] or "-"), row["from"])
    console.print(table)


def _clip(text: str, width: int = 80) -> str:
    text = " ".join(text.split())
    return text if len(text) <= width else text[:width - 1] + "…"
