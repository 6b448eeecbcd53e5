"""Toy data the training tests share: a sentiment task a tiny BERT learns in a few dozen steps.

Three filler words and one sentiment word, shuffled: trivially separable, never identical, and a
random model starts at chance, so a test can tell training that works from training that does not.
"""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

from projects import write_config, write_jsonl
from tuneloop import Example

POSITIVE = ["good", "great", "excellent", "lovely"]
NEGATIVE = ["bad", "awful", "terrible", "poor"]
FILLER = ["the", "movie", "was", "really", "quite", "plot", "acting"]


def sentiment_examples(count: int, seed: int) -> list[Example]:
    rng = random.Random(seed)
    examples = []
    for number in range(count):
        label = "pos" if number % 2 == 0 else "neg"
        words = rng.sample(FILLER, 3) + [rng.choice(POSITIVE if label == "pos" else NEGATIVE)]
        rng.shuffle(words)
        examples.append(Example(" ".join(words), label))
    return examples


def sentiment_texts() -> list[str]:
    """Every word the sentiment task uses, for the tiny tokenizer."""
    return [" ".join(FILLER + POSITIVE + NEGATIVE)]


def sentiment_project(directory: Path, model_dir: str, count: int = 96,
                      **training: Any) -> Path:
    """A classification project on the sentiment task; ``training`` overrides the training
    section. Returns the config path."""
    directory.mkdir(parents=True, exist_ok=True)
    rows = []
    for number, example in enumerate(sentiment_examples(count, seed=7)):
        rows.append({"text": f"{example.input} {number}", "label": example.target})
    write_jsonl(directory / "data.jsonl", rows)
    config: dict[str, Any] = {
        "project": "sentiment",
        "task": "classification",
        "model": {"name": model_dir, "max_length": 16},
        "data": {
            "sources": [{"type": "jsonl", "path": "data.jsonl",
                         "fields": {"input": "text", "target": "label"}}],
            "split": {"train": 0.6, "validation": 0.2, "test": 0.1, "review": 0.1, "seed": 3},
        },
        "training": {"epochs": 6, "learning_rate": 0.005, "batch_size": 8, "seed": 1,
                     "tensorboard": False, **training},
        "review": {"size": 5},
    }
    return write_config(directory, config)


def numbered_vocabulary(count: int = 96) -> list[str]:
    """The sentiment words and the numbers ``sentiment_project`` appends to each input."""
    return sentiment_texts() + [" ".join(str(number) for number in range(count))]
