"""The data steps of a cycle before the split: sources mixed and streamed through the cleaners.

``prepare_data`` (in ``cycle.py``) reads top to bottom; this module holds the parts of it that deal
with many components at once:

- **Streaming.** Sources are generators and cleaners are generators over them, chained: a record
  goes from its file through every cleaner before the next is read, so the only list is the one
  of cleaned examples the split needs. A million-line file is never held as raw records.
- **Mixing.** Each source may keep a ``fraction`` of its examples or at most ``max_examples``, and
  may carry a sampling ``weight``. The choice is by a seeded hash of each example's split key, not
  by position, so the same examples are chosen in every cycle and in any file order.
- **What components need.** A component that needs the model's tokenizer (``needs_tokenizer``)
  gets it, loaded once per process and shared (the tokenizer only: the model is loaded once, by the
  trainer). A component whose options have ``on_error`` gets ``data.on_error`` unless it sets its
  own; one with a ``base_dir`` attribute gets the config's folder (to resolve model paths).
- **Accounting.** Per source: examples read, kept by sampling, records skipped (where, and why);
  per cleaner: removals by reason, with a few of the removed examples, and fixes by reason.
"""

from __future__ import annotations

import heapq
import random
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any, Iterable, Iterator

from tuneloop.components import Example
from tuneloop.config import ComponentRef, ProjectConfig, instantiate
from tuneloop.data_checks import example_error, where
from tuneloop.errors import DataError, PluginError, TuneloopError
from tuneloop.plugin_manager import blame

SAMPLES_PER_REASON = 3
_INFINITY = float("inf")
SKIPPED_SHOWN = 10

_tokenizers: dict[str, Any] = {}


def load_tokenizer(location: str, needed_by: str) -> Any:
    """The tokenizer at ``location``, loaded once per process (transformers imported here)."""
    if location not in _tokenizers:
        from transformers import AutoTokenizer

        try:
            _tokenizers[location] = AutoTokenizer.from_pretrained(location)
        except (OSError, ValueError) as error:
            raise TuneloopError(f'model.name: cannot load the tokenizer of "{location}" (needed by '
                                f"{needed_by}): {str(error).strip().splitlines()[0]}") from None
    return _tokenizers[location]


class Services:
    """What data components may need from the cycle, made once and handed to each."""

    def __init__(self, config: ProjectConfig):
        self.config = config

    def tokenizer(self, needed_by: str) -> Any:
        return load_tokenizer(self.config.model_location(), needed_by)

    def build(self, found: Any, kind: str, ref: ComponentRef) -> Any:
        """Instantiate a component and give it what it declares it needs."""
        component_class = found[kind].get(ref.name)
        fields = getattr(component_class.Options, "model_fields", {})
        if "on_error" in fields and "on_error" not in ref.options:
            ref = ref.model_copy(update={"options": {**ref.options,
                                                     "on_error": self.config.data.on_error}})
        component = instantiate(found, kind, ref, self.config)
        if getattr(component, "needs_tokenizer", False):
            component.tokenizer = self.tokenizer(f'{found[kind].label} "{ref.name}"')
        if hasattr(component, "base_dir"):
            component.base_dir = self.config.base_dir
        return component


def checked(found: Any, kind: str, name: str, method: str,
            items: Iterable[Any]) -> Iterator[Example]:
    """Yield a component's items, blaming its plugin for an exception or a non-Example."""
    from tuneloop.interface_checks import example_problem

    registry = found[kind]
    plugin = registry.entry(name).plugin
    with blame(plugin, f'{registry.label} "{name}" {method}'):
        for number, item in enumerate(items, 1):
            # the common case checked inline (this runs once per example per step); anything
            # unusual gets the full check and its message
            if not (type(item) is Example and type(item.input) is str
                    and (item.target is None or type(item.target) is str)
                    and type(item.weight) is float and 0 <= item.weight < _INFINITY
                    and type(item.provenance) is dict):
                problem = example_problem(item)
                if problem:
                    raise PluginError(plugin, f'{registry.label} "{name}" {method} yielded '
                                              f"{problem} (item {number})")
            yield item


def sample_rank(seed: int, example: Example) -> int:
    """A seeded pseudo-random rank in [0, 2**64) from the example's split key."""
    from tuneloop.splitting import key_hash

    return int(key_hash(seed, "sample\x00" + example.split_key)[:16], 16)


class DataPipeline:
    """Sources, mixed and sampled, streamed through the cleaners; counts everything it does."""

    def __init__(self, config: ProjectConfig, found: Any, services: Services | None = None):
        self.config = config
        self.found = found
        self.services = services or Services(config)
        self.sources: list[dict[str, Any]] = []
        self.cleaners: list[tuple[str, Any, dict[str, int], dict[str, list[str]]]] = []
        self._source_objects: list[Any] = []

    # ---- sources ---------------------------------------------------------------------------

    def _source_stream(self, ref: Any) -> Iterator[Example]:
        source = self.services.build(self.found, "data_sources", ref)
        self._source_objects.append(source)
        entry: dict[str, Any] = {"source": _source_label(ref, source), "type": ref.name,
                                 "read": 0, "kept": 0}
        self.sources.append(entry)
        stream = checked(self.found, "data_sources", ref.name, "load", source.load())

        def counted(examples: Iterable[Example]) -> Iterator[Example]:
            for example in examples:
                entry["read"] += 1
                yield example

        stream = counted(stream)
        seed = self.config.data.split.seed
        if ref.fraction is not None:
            threshold = int(ref.fraction * 2 ** 64)
            stream = (example for example in stream if sample_rank(seed, example) < threshold)
        if ref.max_examples is not None:
            stream = _smallest_ranked(stream, ref.max_examples, seed)
        for example in stream:
            if ref.weight != 1.0:
                example.weight = example.weight * ref.weight
            entry["kept"] += 1
            yield example

    def _all_sources(self) -> Iterator[Example]:
        for ref in self.config.data.sources:
            yield from self._source_stream(ref)

    # ---- cleaners --------------------------------------------------------------------------

    def examples(self) -> Iterator[Example]:
        """Every source's examples, through every cleaner in the configured order."""
        stream: Iterable[Example] = self._all_sources()
        for ref in self.config.data.cleaners:
            cleaner = self.services.build(self.found, "cleaners", ref)
            removed: dict[str, int] = {}
            samples: dict[str, list[str]] = defaultdict(list)

            def count(example: Example, reason: str, removed: dict[str, int] = removed,
                      samples: dict[str, list[str]] = samples) -> None:
                removed[reason] = removed.get(reason, 0) + 1
                if len(samples[reason]) < SAMPLES_PER_REASON:
                    samples[reason].append(f'{where(example)}: "{_short(example.input)}"')

            label = ref.name
            taken = {name for name, *_ in self.cleaners}
            number = 2
            while label in taken:  # the same cleaner twice (two bounds) is reported twice
                label, number = f"{ref.name} ({number})", number + 1
            self.cleaners.append((label, cleaner, removed, samples))
            stream = checked(self.found, "cleaners", ref.name, "clean",
                             cleaner.clean(stream, count))
        yield from stream

    # ---- the report ------------------------------------------------------------------------

    def report(self) -> dict[str, Any]:
        """What was read, sampled, skipped, removed and fixed; call after ``examples()`` ran."""
        for entry, source in zip(self.sources, self._source_objects):
            skipped = list(getattr(source, "skipped", None) or [])
            if skipped:
                entry["skipped"] = len(skipped)
                entry["skipped_at"] = [str(error) for error in skipped[:SKIPPED_SHOWN]]
        removed = {name: dict(counts) for name, _, counts, _ in self.cleaners}
        removed_samples = {name: dict(samples) for name, _, _, samples in self.cleaners if samples}
        changed = {}
        for name, cleaner, _, _ in self.cleaners:
            changes = cleaner.changes() if hasattr(cleaner, "changes") else {}
            if changes:
                changed[name] = dict(changes)
        return {"sources": self.sources, "removed": removed, "removed_samples": removed_samples,
                "changed": changed}


def _smallest_ranked(examples: Iterable[Example], count: int, seed: int) -> Iterator[Example]:
    """The ``count`` examples with the smallest seeded ranks, in their original order."""
    ranked = ((sample_rank(seed, example), position, example)
              for position, example in enumerate(examples))
    chosen = heapq.nsmallest(count, ranked, key=lambda item: (item[0], item[1]))
    for _, _, example in sorted(chosen, key=lambda item: item[1]):
        yield example


def _source_label(ref: Any, source: Any) -> str:
    label = getattr(source, "label", None)
    if isinstance(label, str) and label:
        return label
    path = ref.options.get("path")
    return Path(str(path)).name if path else ref.name


def _short(text: str, width: int = 60) -> str:
    text = " ".join(text.split())
    return text if len(text) <= width else text[:width - 1] + "…"


# --------------------------------------------------------------------------------------------------
# After cleaning: labels, augmentation, per-source counts
# --------------------------------------------------------------------------------------------------


def check_labels(config: ProjectConfig, examples: list[Example],
                 report: dict[str, Any]) -> list[Example]:
    """Examples whose label is outside ``data.labels`` are an error naming the first one's file
    and line; with ``data.on_error: skip`` they are dropped and counted instead."""
    if config.task != "classification" or config.data.labels is None:
        return examples
    allowed = set(config.data.labels)
    outside = [example for example in examples
               if example.target is not None and example.target not in allowed]
    if not outside:
        return examples
    if config.data.on_error != "skip":
        first = outside[0]
        unknown = sorted({example.target for example in outside if example.target})
        more = f" ({len(unknown)} unknown labels: {', '.join(unknown[:5])})" if len(unknown) > 1 \
            else ""
        raise example_error(first, f'label "{first.target}" is not in data.labels{more}')
    leaving = {id(example) for example in outside}
    report["removed"]["data.labels"] = {"label not in data.labels": len(outside)}
    return [example for example in examples if id(example) not in leaving]


def augment(config: ProjectConfig, found: Any, services: Services,
            splits: dict[str, list[Example]], report: dict[str, Any]) -> None:
    """Run the augmenters on the training split only; each sees the originals and the variants of
    the augmenters before it. Variants are pinned to train and name their augmenter."""
    rng = random.Random(config.data.split.seed)
    for ref in config.data.augmenters:
        augmenter = services.build(found, "augmenters", ref)
        added = list(checked(found, "augmenters", ref.name, "augment",
                             augmenter.augment(list(splits["train"]), rng)))
        for example in added:
            example.split = "train"
            provenance = example.provenance
            if provenance.get("kind") != "augmented" or "from" not in provenance:
                raise PluginError(found["augmenters"].entry(ref.name).plugin,
                                  f'augmenter "{ref.name}" yielded an example whose provenance '
                                  f'is not {{"kind": "augmented", "from": <id>}}')
            example.provenance.setdefault("augmenter", ref.name)
        splits["train"].extend(added)
        report.setdefault("augmented", {})[ref.name] = len(added)


def counts_by_source(splits: dict[str, list[Example]]) -> dict[str, dict[str, int]]:
    """``{source: {split: examples}}``; augmented and feedback examples counted apart."""
    table: dict[str, Counter[str]] = defaultdict(Counter)
    for split, examples in splits.items():
        for example in examples:
            kind = (example.provenance or {}).get("kind", "original")
            name = example.source or "data"
            if kind != "original":
                name = f"{name} ({kind})"
            table[name][split] += 1
    return {name: dict(counts) for name, counts in sorted(table.items())}


def no_examples_error(report: dict[str, Any]) -> DataError:
    """Nothing left after cleaning: say what each step took away."""
    removed = {name: sum(counts.values()) for name, counts in report["removed"].items() if counts}
    read = sum(entry.get("read", 0) for entry in report["sources"])
    detail = ", ".join(f"{name} removed {count}" for name, count in removed.items())
    return DataError("data", f"no examples left after cleaning ({read} read"
                             f"{'; ' + detail if detail else ''}); check data.sources and cleaners")
