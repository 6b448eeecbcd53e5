"""Dedup and split CLINC150: tuneloop against pandas (+ scikit-learn) and Hugging Face datasets.

    .venv/bin/python benchmarks/data_clinc150.py

Reads /work/shared/data/clinc150/data_full.json (23,700 utterances, 151 labels; it is not part of
the repository), and times the same steps with each tool in one process, best of three:

1. load all six record lists (train, val, test and the out-of-scope ones) as (text, intent);
2. drop exact duplicates of (case- and whitespace-normalised text, intent);
3. split 80/10/10, stratified by intent.

tuneloop does them with its ``json`` source (``record_path``, positional fields),
``drop_duplicates`` and ``assign_splits`` (keyed, seeded, frozen: the same input gets the same split
in every later cycle); pandas with ``drop_duplicates`` and two stratified ``train_test_split``s;
datasets with ``map``/``filter`` and ``train_test_split(stratify_by_column=...)``. tuneloop's
near-duplicate cleaner (MinHash, similarity 0.9) and its leakage check across the three splits are
timed separately: the others have no counterpart. The machine is shared: compare ratios.
"""

from __future__ import annotations

import json
import random
import time
from pathlib import Path
from typing import Callable

CLINC150 = Path("/work/shared/data/clinc150/data_full.json")
KEYS = ("train", "val", "test", "oos_train", "oos_val", "oos_test")
FRACTIONS = {"train": 0.8, "validation": 0.1, "test": 0.1}
SEED = 13


def best_of(repeats: int, work: Callable[[], dict]) -> tuple[float, dict]:
    best, result = float("inf"), {}
    for _ in range(repeats):
        started = time.perf_counter()
        result = work()
        best = min(best, time.perf_counter() - started)
    return best, result


def with_tuneloop() -> dict:
    from tuneloop.plugins.cleaners import DropDuplicates
    from tuneloop.plugins.sources import JsonSource
    from tuneloop.splitting import assign_splits

    examples = []
    for key in KEYS:
        source = JsonSource(JsonSource.Options(path=str(CLINC150), record_path=key,
                                               fields={"input": 0, "target": 1}))
        examples.extend(source.load())
    kept = list(DropDuplicates().clean(examples, lambda example, reason: None))
    splits, _ = assign_splits(kept, FRACTIONS, SEED, {}, copy=False)
    return {"loaded": len(examples), "kept": len(kept),
            **{split: len(splits[split]) for split in FRACTIONS}}


def with_pandas() -> dict:
    import pandas as pd
    from sklearn.model_selection import train_test_split

    document = json.loads(CLINC150.read_text(encoding="utf-8"))
    frame = pd.DataFrame([pair for key in KEYS for pair in document[key]],
                         columns=["text", "intent"])
    loaded = len(frame)
    key = frame["text"].str.lower().str.split().str.join(" ")
    frame = frame.assign(key=key).drop_duplicates(subset=["key", "intent"])
    train, rest = train_test_split(frame, test_size=0.2, stratify=frame["intent"],
                                   random_state=SEED)
    validation, test = train_test_split(rest, test_size=0.5, stratify=rest["intent"],
                                        random_state=SEED)
    return {"loaded": loaded, "kept": len(frame), "train": len(train),
            "validation": len(validation), "test": len(test)}


def with_datasets() -> dict:
    import datasets

    datasets.disable_progress_bars()
    document = json.loads(CLINC150.read_text(encoding="utf-8"))
    pairs = [pair for key in KEYS for pair in document[key]]
    dataset = datasets.Dataset.from_dict({"text": [p[0] for p in pairs],
                                          "intent": [p[1] for p in pairs]})
    seen: set = set()

    def first(batch):
        keep = []
        for text, intent in zip(batch["text"], batch["intent"]):
            key = (" ".join(text.lower().split()), intent)
            keep.append(key not in seen)
            seen.add(key)
        return keep

    dataset = dataset.filter(first, batched=True, batch_size=5000)
    dataset = dataset.class_encode_column("intent")
    first_cut = dataset.train_test_split(test_size=0.2, stratify_by_column="intent", seed=SEED)
    second_cut = first_cut["test"].train_test_split(test_size=0.5, stratify_by_column="intent",
                                                    seed=SEED)
    return {"loaded": len(pairs), "kept": len(dataset), "train": len(first_cut["train"]),
            "validation": len(second_cut["train"]), "test": len(second_cut["test"])}


def tuneloop_extras() -> list[tuple[str, float, str]]:
    """Steps only tuneloop has: near-duplicate removal and the cross-split leakage check."""
    from tuneloop import Example
    from tuneloop.leakage import find_leaks
    from tuneloop.plugins.cleaners import DropNearDuplicates
    from tuneloop.splitting import assign_splits

    document = json.loads(CLINC150.read_text(encoding="utf-8"))
    examples = [Example(text, intent) for key in KEYS for text, intent in document[key]]
    cleaner = DropNearDuplicates(DropNearDuplicates.Options(threshold=0.9))
    removed: list = []
    seconds, kept = best_of(1, lambda: {"kept": list(cleaner.clean(
        examples, lambda example, reason: removed.append(example)))})
    rows = [("drop_near_duplicates (0.9)", seconds, f"{len(removed)} removed")]
    official = {"train": "train", "val": "validation", "test": "test", "oos_train": "train",
                "oos_val": "validation", "oos_test": "test"}
    pinned = [Example(text, intent, split=official[key]) for key in KEYS
              for text, intent in document[key]]
    splits, _ = assign_splits(pinned, FRACTIONS, SEED, {}, on_conflict=lambda *a: None)
    seconds, found = best_of(1, lambda: {"leaks": find_leaks(splits, 0.9)})
    rows.append(("leakage check, official splits (0.9)", seconds, f"{len(found['leaks'])} leaks"))
    return rows


def main() -> list[dict]:
    if not CLINC150.exists():
        print(f"\nCLINC150 benchmark skipped: {CLINC150} not found")
        return []
    random.seed(SEED)
    print(f"\nDedup and split of CLINC150 ({CLINC150.name}), best of 3, same process")
    results = []
    for name, work in (("tuneloop", with_tuneloop), ("pandas + sklearn", with_pandas),
                       ("datasets", with_datasets)):
        work()  # warm up: imports and file cache
        seconds, counts = best_of(3, work)
        results.append({"tool": name, "seconds": seconds, **counts})
    base = results[0]["seconds"]
    print(f"{'tool':<18}{'seconds':>9}{'vs tuneloop':>13}{'loaded':>8}{'kept':>7}{'train':>7}"
          f"{'val':>6}{'test':>6}")
    for row in results:
        print(f"{row['tool']:<18}{row['seconds']:>9.3f}{row['seconds'] / base:>12.2f}x"
              f"{row['loaded']:>8}{row['kept']:>7}{row['train']:>7}{row['validation']:>6}"
              f"{row['test']:>6}")
    print("tuneloop only:")
    for name, seconds, what in tuneloop_extras():
        print(f"  {name:<38}{seconds:>8.3f} s   {what}")
    return results


if __name__ == "__main__":
    main()
