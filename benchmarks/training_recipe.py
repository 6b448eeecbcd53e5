"""Default recipe quality: CLINC150 with 10 labelled examples per intent, cycle 1, three ways.

    .venv/bin/python benchmarks/training_recipe.py [--quick] [--full]

In one run, on the same 1,500 labelled utterances (10 per in-scope intent, ``_fewshot``) and
CLINC150's in-scope test split (4,500 utterances, pinned to ``test``), all-MiniLM-L6-v2:

1. **default recipe**: a whole tuneloop cycle with the ``training:`` section ``tuneloop init``
   writes (read from the package, so this measures what users get): a step budget sized to the
   data with early stopping on validation, a larger learning rate for the new head, mean pooling
   for the sentence encoder, temperature calibration;
2. **previous default**: the same cycle with the recipe shipped before (4 epochs at 1e-4 for
   head and body alike, the ``[CLS]`` pooler);
3. **hand-written loop**: 20 lines of plain PyTorch (``AutoModelForSequenceClassification``,
   AdamW 1e-4, batch 16, 5 epochs over all 1,500 examples, no validation).

Published 10-shot results on CLINC150 are 83-85% (fine-tuned BERT-base, dual sentence encoders;
Casanueva et al. 2020). The figure is accuracy on the in-scope test split, which the cycle
reports and never uses to choose anything. ``--quick``: 600 test utterances and a 60-step budget
(a smoke run, not the figure). ``--full``: the default recipe on the full training set (15,000,
CLINC150's own validation split), against fine-tuned BERT's ~96% (Larson et al. 2019).
Threads: one per free usable core (``tuneloop.threads``); the load average is printed beside the
figures: on a shared machine the wall times move with it, the accuracies do not.
"""

from __future__ import annotations

import copy
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _fewshot as fewshot  # noqa: E402
import _training_common as common  # noqa: E402

PREVIOUS_DEFAULT = {  # the training section tuneloop init wrote before the step budget
    "trainer": {"name": "sequence_classification", "steps": "epochs", "head_learning_rate": None,
                "pooling": "cls", "calibrate": False},
    "epochs": 4, "learning_rate": 1.0e-4, "batch_size": 16, "warmup_ratio": 0.1,
    "eval_every": "epoch", "select_metric": "f1", "seed": 13,
    "regularizers": [{"name": "weight_decay", "value": 0.01}, {"name": "dropout", "p": 0.1}],
}


def load() -> str:
    return f"load average {os.getloadavg()[0]:.1f}"


def run_cycle(folder: Path, training: dict | None, quick: bool) -> dict:
    """One tuneloop cycle on the few-shot project; test accuracy, wall time, what trained."""
    import json

    from tuneloop.config import load_config
    from tuneloop.cycle import run_cycle as cycle
    from tuneloop.store import Store

    if quick:
        training = copy.deepcopy(training if training is not None
                                 else fewshot.shipped_config()["training"])
        trainer = training.setdefault("trainer", {"name": "sequence_classification"})
        if isinstance(trainer, str):
            trainer = training["trainer"] = {"name": trainer}
        if trainer.get("steps", "auto") == "auto":
            trainer["steps"] = 60
            trainer["evaluations"] = 4
        else:
            training["epochs"] = 1
    config = load_config(fewshot.project(folder, training, test_limit=600 if quick else None))
    started = time.perf_counter()
    result = cycle(config, quiet=True)
    wall = time.perf_counter() - started
    with Store(config.database_path) as store:
        stats = json.loads(store.cycle(result.cycle_id)["stats"])
    trained = stats.get("training", {})
    return {"accuracy": result.metrics["test"]["accuracy"],
            "validation": result.metrics["validation"]["accuracy"], "wall": wall,
            "train": stats["splits"]["train"]["examples"],
            "validation_examples": stats["splits"]["validation"]["examples"],
            "test": stats["splits"]["test"]["examples"],
            "recipe": trained.get("recipe", {}), "load": load()}


def hand_written_loop(quick: bool) -> dict:
    """The 20-line PyTorch loop a practitioner writes first (no validation, no selection)."""
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    labelled, _ = fewshot.few_shot()
    test = common.clinc("test", 600 if quick else None, seed=1)
    labels = sorted({intent for _, intent in labelled})
    index = {label: number for number, label in enumerate(labels)}
    started = time.perf_counter()
    # ---- the loop --------------------------------------------------------------------------
    torch.manual_seed(0)
    tokenizer = AutoTokenizer.from_pretrained(common.minilm())
    model = AutoModelForSequenceClassification.from_pretrained(common.minilm(),
                                                               num_labels=len(labels))
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4, weight_decay=0.01)
    epochs = 1 if quick else 5
    model.train()
    for epoch in range(epochs):
        order = torch.randperm(len(labelled), generator=torch.Generator().manual_seed(epoch))
        for start in range(0, len(order), 16):
            batch = [labelled[int(i)] for i in order[start:start + 16]]
            encoded = tokenizer([text for text, _ in batch], padding=True, truncation=True,
                                max_length=64, return_tensors="pt")
            loss = torch.nn.functional.cross_entropy(
                model(**encoded).logits, torch.tensor([index[intent] for _, intent in batch]))
            loss.backward()
            optimizer.step()
            optimizer.zero_grad()
    model.eval()
    right = 0
    with torch.inference_mode():
        for start in range(0, len(test), 128):
            batch = test[start:start + 128]
            encoded = tokenizer([text for text, _ in batch], padding=True, truncation=True,
                                max_length=64, return_tensors="pt")
            predicted = model(**encoded).logits.argmax(-1).tolist()
            right += sum(labels[p] == intent for p, (_, intent) in zip(predicted, batch))
    # -----------------------------------------------------------------------------------------
    return {"accuracy": right / len(test), "wall": time.perf_counter() - started,
            "train": len(labelled), "test": len(test), "load": load()}


def full_training_set() -> None:
    """The default recipe on CLINC150's whole training split (15,000; its validation split)."""
    import yaml

    from tuneloop.config import load_config
    from tuneloop.cycle import run_cycle as cycle

    def source(record_path: str, split: str) -> dict:
        return {"type": "json", "path": str(common.CLINC150), "record_path": record_path,
                "fields": {"input": 0, "target": 1}, "split": split}

    with tempfile.TemporaryDirectory(prefix="tuneloop-clinc-full-") as folder:
        path = Path(folder) / "tuneloop.yaml"
        path.write_text(yaml.safe_dump({
            "project": "clinc150-full", "task": "classification",
            "model": {"name": common.MINILM, "max_length": 64},
            "data": {"sources": [source("train", "train"), source("val", "validation"),
                                 source("test", "test")],
                     "split": {"by": "column"}, "leakage": {"action": "drop"}},
            "training": fewshot.shipped_config()["training"],
            "evaluation": {"metrics": ["accuracy", "f1"]}, "review": {"size": 0}},
            sort_keys=False))
        started = time.perf_counter()
        result = cycle(load_config(path), quiet=True)
        print(f"full training set, default recipe: in-scope test accuracy "
              f"{result.metrics['test']['accuracy']:.2%} (fine-tuned BERT ~96%), "
              f"{time.perf_counter() - started:.0f} s, {load()}")


def main(quick: bool = False) -> dict[str, float]:
    if not common.CLINC150.exists():
        print(f"skipped: {common.CLINC150} is not there (CLINC150 is read in place, never copied)")
        return {}
    print(f"CLINC150, {fewshot.PER_INTENT} labelled per intent (150 intents), all-MiniLM-L6-v2"
          f"{' (QUICK: 60 steps / 1 epoch, 600 test utterances: a smoke run)' if quick else ''}")
    print(f"start: {load()}, {os.cpu_count()} CPU cores", flush=True)
    rows = {}
    with tempfile.TemporaryDirectory(prefix="tuneloop-recipe-") as folder:
        rows["default recipe"] = run_cycle(Path(folder) / "default", None, quick)
        print(f"  default recipe done: {rows['default recipe']}", flush=True)
        rows["previous default"] = run_cycle(Path(folder) / "previous", PREVIOUS_DEFAULT, quick)
        print(f"  previous default done: {rows['previous default']}", flush=True)
    rows["hand-written loop"] = hand_written_loop(quick)
    print(f"{'arm':<20}{'test acc':>10}{'train':>7}{'wall s':>8}  load avg after")
    for name, row in rows.items():
        print(f"{name:<20}{row['accuracy']:>10.2%}{row['train']:>7}{row['wall']:>8.0f}  "
              f"{row['load']}")
    recipe = rows["default recipe"]["recipe"]
    print(f"default recipe decided: {recipe}")
    print("published 10-shot CLINC150 (BERT-base fine-tuned, dual sentence encoders): 83-85%")
    print(common.machine())
    if "--full" in sys.argv:
        full_training_set()
    return {name: row["accuracy"] for name, row in rows.items()}


if __name__ == "__main__":
    main(quick="--quick" in sys.argv)
