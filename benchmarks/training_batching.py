"""Length grouping: training throughput with length-grouped batches against random batches.

    .venv/bin/python benchmarks/training_batching.py [--quick]

tuneloop's classification trainer trains all-MiniLM-L6-v2 (fresh 150-intent head) for one epoch
over CLINC150 training utterances, batch size 32, once with ``training.group_by_length: true``
(the default: batches of similar lengths, padded to their longest) and once with ``false``
(uniformly random batches, padded the same way). Throughput is real (not padding) tokens trained
per second, timed from the first step's start to the last step's end; the padded fraction is the
share of padding among the tokens the model processed, as the trainer records it for the cycle.
The two run back to back, five pairs in one process (the machine is shared, and its load changes
slowly: a pair sees about the same load); the figure is the median of the pairs' ratios.
Targets: at least 1.5x the tokens per second, at most 5% padding.
"""

from __future__ import annotations

import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _training_common as common  # noqa: E402

BATCH_SIZE = 32
MAX_LENGTH = 64


def one_epoch(rows, grouped: bool) -> tuple[float, float]:
    """(real tokens per second, padded fraction) of one epoch."""
    from transformers import AutoTokenizer, TrainerCallback

    from tuneloop import Example, Regularizer
    from tuneloop.plugins.trainers.classification import SequenceClassificationTrainer
    from tuneloop.testing import cycle_context

    clock: dict[str, float] = {}

    class Clock(Regularizer):
        name = "clock"

        def callbacks(self):
            class Times(TrainerCallback):
                def on_step_begin(self, args, state, control, **kwargs):
                    clock.setdefault("start", time.perf_counter())

                def on_step_end(self, args, state, control, **kwargs):
                    clock["end"] = time.perf_counter()

            return [Times()]

    tokenizer = AutoTokenizer.from_pretrained(common.minilm())
    tokens = sum(len(tokenizer(text, truncation=True, max_length=MAX_LENGTH)["input_ids"])
                 for text, _ in rows)
    with tempfile.TemporaryDirectory() as folder:
        context = cycle_context(folder, task="classification", start_model=common.minilm(),
                                labels=sorted({intent for _, intent in rows}),
                                max_length=MAX_LENGTH,
                                training={"epochs": 1, "learning_rate": 1e-4,
                                          "batch_size": BATCH_SIZE, "seed": 1,
                                          "group_by_length": grouped, "tensorboard": False})
        result = SequenceClassificationTrainer().train(
            context, {"train": [Example(text, intent) for text, intent in rows]}, [Clock()])
    return tokens / (clock["end"] - clock["start"]), result.extra["padding_fraction"]


def main(quick: bool = False) -> dict[str, float]:
    rows = common.clinc("train", 640 if quick else 1536, seed=2)
    runs: dict[str, list[tuple[float, float]]] = {"length-grouped": [], "random": []}
    ratios = []
    for _ in range(1 if quick else 5):  # pairs measured back to back: the load changes slowly
        runs["length-grouped"].append(one_epoch(rows, grouped=True))
        runs["random"].append(one_epoch(rows, grouped=False))
        ratios.append(runs["length-grouped"][-1][0] / runs["random"][-1][0])
    speed = {name: statistics.median(run[0] for run in values) for name, values in runs.items()}
    padding = {name: statistics.median(run[1] for run in values) for name, values in runs.items()}
    ratio = statistics.median(ratios)
    print(f"One epoch, all-MiniLM-L6-v2 + 150-intent head, batch {BATCH_SIZE}, {len(rows)} "
          f"CLINC150 utterances, {len(ratios)} pair(s) of runs")
    print(f"{'batches':<16}{'real tokens/s':>15}{'padded fraction':>18}")
    for name in runs:
        print(f"{name:<16}{speed[name]:>15.0f}{padding[name]:>18.1%}")
    print(f"throughput ratio (grouped / random), median of the pairs: {ratio:.2f}x "
          f"(pairs: {', '.join(f'{value:.2f}' for value in ratios)})   target >= 1.5x")
    print(f"padded fraction with length grouping: {padding['length-grouped']:.1%}   "
          f"target <= 5%")
    print(common.machine())
    return {"ratio": ratio, "padding_grouped": padding["length-grouped"],
            "padding_random": padding["random"]}


if __name__ == "__main__":
    main(quick="--quick" in sys.argv)
