"""Small projects for end-to-end tests: a toy dataset, a tiny random model, a config file."""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

import yaml

INTENT_WORDS = {
    "billing": ["invoice", "charge", "bill", "payment", "refund", "fee"],
    "shipping": ["parcel", "delivery", "courier", "tracking", "shipment", "arrive"],
    "account": ["password", "login", "username", "profile", "email", "account"],
}
FILLERS = ["please", "help", "my", "the", "about", "with", "i", "need", "question", "urgent"]


def classification_rows(per_label: int = 24, seed: int = 0) -> list[dict[str, str]]:
    """Texts whose label is given away by one keyword: learnable by a tiny model in a few steps."""
    rng = random.Random(seed)
    rows = []
    for label, words in INTENT_WORDS.items():
        for number in range(per_label):
            text = " ".join(rng.sample(FILLERS, 3) + [words[number % len(words)]] +
                            rng.sample(FILLERS, 2) + [str(number)])
            rows.append({"text": text, "intent": label})
    return rows


def causal_rows(count: int = 48, seed: int = 0) -> list[dict[str, str]]:
    rng = random.Random(seed)
    colours = ["red", "blue", "green", "black"]
    rows = []
    for number in range(count):
        colour = rng.choice(colours)
        rows.append({"prompt": f"item {number} colour is {colour} . answer :",
                     "completion": f" {colour}"})
    return rows


def write_jsonl(path: Path, rows: list[dict[str, Any]]) -> Path:
    path.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")
    return path


def classification_project(directory: Path, model_dir: str, **overrides: Any) -> Path:
    """Write data + config for a classification project; returns the config path."""
    write_jsonl(directory / "data.jsonl", classification_rows())
    config: dict[str, Any] = {
        "project": "toy",
        "task": "classification",
        "model": {"name": model_dir, "max_length": 16},
        "data": {
            "sources": [{"type": "jsonl", "path": "data.jsonl",
                         "fields": {"input": "text", "target": "intent"}}],
            "split": {"train": 0.5, "validation": 0.2, "test": 0.1, "review": 0.2, "seed": 3},
        },
        "training": {"epochs": 2, "learning_rate": 0.005, "batch_size": 8, "seed": 1},
        "review": {"size": 10, "sampler": "least_confident"},
        "feedback": {"policies": [{"name": "corrections", "weight": 2.0}, "approvals"]},
    }
    _merge(config, overrides)
    return write_config(directory, config)


def causal_project(directory: Path, model_dir: str, **overrides: Any) -> Path:
    write_jsonl(directory / "data.jsonl", causal_rows())
    config: dict[str, Any] = {
        "project": "toy-lm",
        "task": "causal-lm",
        "model": {"name": model_dir, "max_length": 24},
        "data": {
            "sources": [{"type": "jsonl", "path": "data.jsonl",
                         "fields": {"prompt": "prompt", "completion": "completion"}}],
            "split": {"train": 0.5, "validation": 0.2, "test": 0.1, "review": 0.2, "seed": 3},
        },
        "training": {"epochs": 2, "learning_rate": 0.005, "batch_size": 8, "seed": 1,
                     "max_new_tokens": 3},
        "review": {"size": 8, "sampler": "least_confident"},
        "feedback": {"policies": [{"name": "corrections", "weight": 2.0}, "approvals"]},
    }
    _merge(config, overrides)
    return write_config(directory, config)


def write_config(directory: Path, config: dict[str, Any]) -> Path:
    """Write ``config`` as the project's tuneloop.yaml; returns its path."""
    path = directory / "tuneloop.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")
    return path


def _merge(base: dict[str, Any], overrides: dict[str, Any]) -> None:
    for key, value in overrides.items():
        if isinstance(value, dict) and isinstance(base.get(key), dict):
            _merge(base[key], value)
        else:
            base[key] = value


def vocabulary_texts() -> list[str]:
    """Texts covering every word the toy projects use, for training test tokenizers."""
    texts = [row["text"] for row in classification_rows()]
    texts += [row["prompt"] + row["completion"] for row in causal_rows()]
    return texts


def stub_model(directory: Path) -> str:
    """A model folder as ``validate`` and the start of ``run`` check it (a ``config.json``), for
    tests whose cycle stops before any model is loaded (bad data, a broken plugin)."""
    folder = directory / "stub-model"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "config.json").write_text(json.dumps({"model_type": "bert", "num_hidden_layers": 2}),
                                        encoding="utf-8")
    return str(folder)
