"""The classification recipe's step budget: optimizer steps sized to the data, not epochs.

A fixed number of epochs trains a small labelled set far too little and a large one more than it
needs: on CLINC150 with 10 labelled examples per intent, 4 epochs at 1e-4 left the training loss at
3.1 with validation accuracy still rising (56% test accuracy), while simply training again gained
25 points. The budget instead counts passes over the data, many for a small set and few for a
large one (``PASSES_TARGET / examples``, between ``MIN_PASSES`` and ``MAX_PASSES``), turned into
optimizer steps with a generous ceiling (``MAX_STEPS``). Validation runs ``evaluations`` times over
the budget, the best checkpoint is kept, and training stops once ``patience`` validations in a
row brought no improvement: the budget is a ceiling, the validation figure decides.

A config that sets ``training.epochs`` keeps epochs (the user asked for them); ``steps: epochs``
says so explicitly, and ``steps: N`` fixes the budget.
"""

from __future__ import annotations

import math
from typing import Any

PASSES_TARGET = 16_000  # examples seen, spread over the data: 1,200 examples -> 13 passes
MIN_PASSES = 3.0
MAX_PASSES = 40.0
MIN_STEPS = 50
MAX_STEPS = 6_000


def auto_steps(train_examples: int, examples_per_step: int) -> int:
    """Optimizer steps for ``train_examples``: many passes over a small set, few over a large
    one, within ``MIN_STEPS``..``MAX_STEPS``."""
    passes = min(MAX_PASSES, max(MIN_PASSES, PASSES_TARGET / max(train_examples, 1)))
    steps = math.ceil(passes * train_examples / max(examples_per_step, 1))
    return int(min(MAX_STEPS, max(MIN_STEPS, steps)))


def uses_budget(steps: Any, training: Any) -> bool:
    """Whether the recipe trains to a step budget (else ``training.epochs``)."""
    if steps == "epochs":
        return False
    if steps == "auto":
        return "epochs" not in training.model_fields_set  # epochs the user wrote win
    return True


def configure(args: dict[str, Any], steps: Any, evaluations: int, training: Any,
              train_examples: int) -> dict[str, Any]:
    """Set ``max_steps`` and the validation schedule in the ``TrainingArguments`` keywords;
    returns what was decided (recorded with the cycle)."""
    if not uses_budget(steps, training):
        return {"budget": "epochs", "epochs": training.epochs}
    per_step = (args["per_device_train_batch_size"] * args["gradient_accumulation_steps"])
    budget = steps if isinstance(steps, int) else auto_steps(train_examples, per_step)
    args["max_steps"] = budget
    report: dict[str, Any] = {"budget": "steps", "max_steps": budget,
                              "passes": round(budget * per_step / max(train_examples, 1), 2)}
    if training.eval_every == "epoch":  # epochs mean nothing here: validate over the budget
        every = max(1, math.ceil(budget / evaluations))
        args["save_strategy"] = "steps"
        args["save_steps"] = every
        if "eval_strategy" in args:
            args["eval_strategy"] = "steps"
            args["eval_steps"] = every
        report["eval_steps"] = every
    return report
