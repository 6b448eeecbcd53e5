"""Framework overhead: a training step of tuneloop's classification trainer against a minimal
hand-written PyTorch loop, on the same model, data, batches and batch size.

    .venv/bin/python benchmarks/training_overhead.py [--quick]

Both train all-MiniLM-L6-v2 with a fresh 150-intent head on CLINC150 utterances, batch size 32,
fused AdamW with a linear schedule and gradient clipping at norm 1 (tuneloop's defaults, so both do
the same arithmetic), on the same length-grouped batches in the same order. The time of a step is
the time between two consecutive step ends: it includes loading and collating the batch, the
forward and backward passes, the optimizer, and whatever the framework does around them
(callbacks, logging, the padding count). Checkpoint and model saving happen after the last step
and are not part of any step. The two loops alternate (four rounds each, two with ``--quick``) in
one process, so a change in the machine's load hits both; the figure is the ratio of the median
step times. Target: at most 1.05x.
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
LEARNING_RATE = 1e-4
MAX_LENGTH = 64
WARMUP_STEPS = 3  # step times before these are dropped (allocations, first-call work)


def labels_of(rows):
    return sorted({intent for _, intent in rows})


def tuneloop_steps(rows, seed: int) -> list[float]:
    """Step-end times of one epoch with tuneloop's trainer."""
    from transformers import TrainerCallback

    from tuneloop import Example, Regularizer
    from tuneloop.plugins.trainers.classification import SequenceClassificationTrainer
    from tuneloop.testing import cycle_context

    ends: list[float] = []

    class StepClock(Regularizer):
        name = "step_clock"

        def callbacks(self):
            class Clock(TrainerCallback):
                def on_step_end(self, args, state, control, **kwargs):
                    ends.append(time.perf_counter())

            return [Clock()]

    with tempfile.TemporaryDirectory() as folder:
        context = cycle_context(folder, task="classification", start_model=common.minilm(),
                                labels=labels_of(rows), max_length=MAX_LENGTH,
                                training={"epochs": 1, "learning_rate": LEARNING_RATE,
                                          "batch_size": BATCH_SIZE, "seed": seed,
                                          "tensorboard": False})
        SequenceClassificationTrainer().train(
            context, {"train": [Example(text, intent) for text, intent in rows]}, [StepClock()])
    return ends


def hand_written_steps(rows, seed: int) -> list[float]:
    """Step-end times of one epoch of a minimal PyTorch loop over the same batches."""
    import random

    import torch
    from transformers import (AutoModelForSequenceClassification, AutoTokenizer,
                              DataCollatorWithPadding, get_linear_schedule_with_warmup, set_seed)

    from tuneloop.plugins.trainers.batching import length_grouped_indices

    labels = labels_of(rows)
    set_seed(seed)
    tokenizer = AutoTokenizer.from_pretrained(common.minilm())
    model = AutoModelForSequenceClassification.from_pretrained(common.minilm(),
                                                               num_labels=len(labels))
    features = [dict(tokenizer(text, truncation=True, max_length=MAX_LENGTH),
                     labels=labels.index(intent)) for text, intent in rows]
    order = length_grouped_indices([len(f["input_ids"]) for f in features], BATCH_SIZE,
                                   random.Random(seed))  # the batches tuneloop's epoch 0 uses
    batches = [order[start:start + BATCH_SIZE] for start in range(0, len(order), BATCH_SIZE)]
    collate = DataCollatorWithPadding(tokenizer)
    decay = [p for n, p in model.named_parameters() if "bias" not in n and "LayerNorm" not in n]
    rest = [p for n, p in model.named_parameters() if "bias" in n or "LayerNorm" in n]
    optimizer = torch.optim.AdamW([{"params": decay, "weight_decay": 0.0},
                                   {"params": rest, "weight_decay": 0.0}], lr=LEARNING_RATE,
                                  fused=True)
    schedule = get_linear_schedule_with_warmup(optimizer, 0, len(batches))
    model.train()
    ends: list[float] = []
    for batch_indices in batches:
        batch = collate([features[index] for index in batch_indices])
        loss = torch.nn.functional.cross_entropy(
            model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"],
                  token_type_ids=batch.get("token_type_ids")).logits, batch["labels"])
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        schedule.step()
        optimizer.zero_grad(set_to_none=True)
        ends.append(time.perf_counter())
    return ends


def step_times(ends: list[float]) -> list[float]:
    return [later - earlier for earlier, later in zip(ends, ends[1:])][WARMUP_STEPS:]


def main(quick: bool = False) -> dict[str, float]:
    rows = common.clinc("train", 256 if quick else 640, seed=1)
    rounds = 2 if quick else 4
    times = {"tuneloop": [], "hand-written": []}
    for _ in range(rounds):  # alternate, so a change in the machine's load hits both
        times["tuneloop"] += step_times(tuneloop_steps(rows, seed=1))
        times["hand-written"] += step_times(hand_written_steps(rows, seed=1))
    medians = {name: statistics.median(values) for name, values in times.items()}
    ratio = medians["tuneloop"] / medians["hand-written"]
    print(f"Training step, all-MiniLM-L6-v2 + 150-intent head, batch {BATCH_SIZE}, "
          f"{len(rows)} CLINC150 utterances, {rounds} alternating round(s) each")
    print(f"{'loop':<14}{'median step (ms)':>18}{'steps timed':>13}")
    for name, values in times.items():
        print(f"{name:<14}{medians[name] * 1000:>18.1f}{len(values):>13}")
    print(f"overhead ratio (tuneloop / hand-written): {ratio:.3f}x   target <= 1.05x")
    print(common.machine())
    return {"ratio": ratio, **{f"{name}_ms": value * 1000 for name, value in medians.items()}}


if __name__ == "__main__":
    main(quick="--quick" in sys.argv)
