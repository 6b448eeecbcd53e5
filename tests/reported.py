"""A project database filled by hand, so the report and comparison tests control every figure and
prediction: three cycles (promoted, rejected, failed), benchmarks and a base model, expert figures,
and a label and an input that try to inject script."""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

from projects import classification_project
from tuneloop import Example, Prediction
from tuneloop.config import load_config
from tuneloop.evaluation import record_predictions
from tuneloop.store import Store, now

EVIL = '<script>window.__pwned = 1</script><img src=x onerror="window.__pwned = 2">'
LABELS = ["billing", "shipping", EVIL]


def predictions_for(rng: random.Random, examples: list[Example],
                    accuracy: float) -> list[Prediction]:
    answers = []
    for example in examples:
        right = rng.random() < accuracy
        output = example.target if right else rng.choice(
            [label for label in LABELS if label != example.target])
        confidence = round(rng.uniform(0.55, 0.99) if right else rng.uniform(0.34, 0.9), 3)
        answers.append(Prediction(example.id, output, confidence))
    return answers


def reported_project(directory: Path) -> dict[str, Any]:
    """Write the config and fill its database; returns the config and the cycle ids."""
    config = load_config(classification_project(directory, "base-model"),
                         check_components=False)
    rng = random.Random(5)
    examples = {split: [Example(f"{split} question {n} " + (EVIL if n == 0 else ""),
                                LABELS[n % 3]) for n in range(count)]
                for split, count in (("validation", 30), ("test", 24))}
    with Store(config.database_path) as store:
        cycles = []
        for number, (accuracy, stage) in enumerate([(0.6, "promoted"), (0.8, "rejected")]):
            parent = cycles[-1] if cycles else None
            start = f"/runs/cycle-{parent}/model" if parent else config.model_location()
            cycle = store.create_cycle(project="toy", task="classification", seed=1,
                                       config=config.snapshot(), plugins=[],
                                       base_model=config.model_location(), start_model=start,
                                       parent_id=parent)
            figures: dict[str, dict[str, float]] = {}
            for split, split_examples in examples.items():
                answers = predictions_for(rng, split_examples, accuracy)
                record_predictions(store, cycle, split, split_examples, answers)
                right = sum(a.output == e.target for a, e in zip(answers, split_examples))
                figures[split] = {"accuracy": right / len(split_examples),
                                  "f1": right / len(split_examples) - 0.05,
                                  "loss": 1.2 - accuracy}
                store.add_metrics(cycle, split, figures[split])
            figures["benchmark"] = {"lm_eval.capitals.acc": 0.55 - 0.05 * number,
                                    "lm_eval.capitals.acc_stderr": 0.04}
            store.add_metrics(cycle, "benchmark", figures["benchmark"])
            store.update_cycle(cycle, status="done", model_path=f"/runs/cycle-{cycle}/model",
                               finished_at=now(), stats={"labels": LABELS})
            reasons = (["pass: validation.f1 = 0.55; nothing to compare with"] if stage ==
                       "promoted" else [f"fail: validation.f1 = 0.75 < 0.8, {EVIL}"])
            store.add_model(cycle, f"/runs/cycle-{cycle}/model", figures, stage, reasons)
            cycles.append(cycle)
        store.add_metrics(cycles[0], "human", {"ratings": 10, "reviewers": 2,
                                               "approval_rate": 0.7, "mean_score": 3.5,
                                               "corrections_per_output": 0.3,
                                               "krippendorff_alpha": 0.41, "cohen_kappa": 0.4})
        store.add_metrics(cycles[1], "human", {"ratings": 6, "reviewers": 2,
                                               "approval_rate": 0.8,
                                               "corrections_per_output": 0.2,
                                               "krippendorff_alpha": 0.52})
        with store.write() as db:
            db["base_metrics"].insert({"project": "toy", "model": config.model_location(),
                                       "metric": "lm_eval", "setup": "{}",
                                       "name": "lm_eval.capitals.acc", "value": 0.6,
                                       "created_at": now()})
        failed = store.create_cycle(project="toy", task="classification", seed=1,
                                    config=config.snapshot(), plugins=[],
                                    base_model=config.model_location(),
                                    start_model=f"/runs/cycle-{cycles[0]}/model",
                                    parent_id=cycles[1])
        store.update_cycle(failed, status="failed", error="DataError: data.jsonl:3: not JSON")
    return {"config": config, "promoted": cycles[0], "rejected": cycles[1], "failed": failed,
            "examples": examples}
