"""CLINC150 with 10 labelled examples per intent, as a tuneloop project (shared by the
``training_recipe`` and ``feedback_loop`` benchmarks; not a benchmark itself).

The 1,500 labelled examples (a seeded sample of 10 per in-scope intent from CLINC150's training
split) are written to a JSONL file in the benchmark's temporary folder and split by the config's
fractions into train and validation; CLINC150's official test split (4,500 in-scope utterances) is
pinned to ``test``. Optionally the rest of the training split (13,500) is an unlabelled review pool
(``split: review``, no target): the feedback benchmark's experts label it. The training recipe is
the one ``tuneloop init`` writes (read from the package), unless a benchmark arm replaces it.
"""

from __future__ import annotations

import json
import random
from importlib import resources
from pathlib import Path
from typing import Any

import _training_common as common

PER_INTENT = 10
SEED = 0
# the fractions for the labelled examples when the test set is pinned to its own source: the
# validation split only has to choose a checkpoint (1.5 examples per intent here)
SPLIT = {"train": 0.85, "validation": 0.15, "test": 0.0, "review": 0.0, "seed": 13}


def shipped_config() -> dict[str, Any]:
    """The config ``tuneloop init`` writes, as data."""
    import yaml

    return yaml.safe_load(resources.files("tuneloop.demo_data").joinpath("tuneloop.yaml")
                          .read_text(encoding="utf-8"))


def few_shot(per_intent: int = PER_INTENT, seed: int = SEED
             ) -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
    """``per_intent`` labelled utterances of each intent, and the rest of the training split."""
    rows = common.clinc("train")
    by_intent: dict[str, list[tuple[str, str]]] = {}
    for row in rows:
        by_intent.setdefault(row[1], []).append(row)
    rng = random.Random(seed)
    labelled: list[tuple[str, str]] = []
    for intent in sorted(by_intent):
        labelled += rng.sample(by_intent[intent], per_intent)
    chosen = set(labelled)
    return labelled, [row for row in rows if row not in chosen]


def project(folder: Path, training: dict[str, Any] | None = None, *, pool: bool = False,
            test_limit: int | None = None, review: dict[str, Any] | None = None,
            feedback: dict[str, Any] | None = None, name: str = "clinc-10shot") -> Path:
    """Write the project (config and the labelled JSONL) into ``folder``; returns the config."""
    import yaml

    labelled, rest = few_shot()
    folder.mkdir(parents=True, exist_ok=True)
    with (folder / "labelled.jsonl").open("w", encoding="utf-8") as out:
        for text, intent in labelled:
            out.write(json.dumps({"text": text, "intent": intent}) + "\n")
    sources: list[dict[str, Any]] = [
        {"type": "jsonl", "path": "labelled.jsonl", "fields": {"input": "text", "target": "intent"}},
        {"type": "json", "path": str(common.CLINC150), "record_path": "test",
         "fields": {"input": 0, "target": 1}, "split": "test"},
    ]
    if test_limit is not None:
        sources[1]["max_examples"] = test_limit
    if pool:
        with (folder / "pool.jsonl").open("w", encoding="utf-8") as out:
            for text, _ in rest:
                out.write(json.dumps({"text": text}) + "\n")
        sources.append({"type": "jsonl", "path": "pool.jsonl", "fields": {"input": "text"},
                        "split": "review"})
    shipped = shipped_config()
    config = {
        "project": name,
        "task": "classification",
        "model": {"name": common.MINILM, "max_length": 64},
        "data": {"sources": sources, "cleaners": ["drop_empty", "drop_duplicates"],
                 "split": SPLIT,
                 # CLINC150 repeats a few inputs across its splits: never train on a test input
                 "leakage": {"action": "drop"}},
        "training": training if training is not None else shipped["training"],
        "evaluation": {"metrics": ["accuracy", "f1"]},
        "review": review if review is not None else {"size": 0},
    }
    if feedback is not None:
        config["feedback"] = feedback
    path = folder / "tuneloop.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path
