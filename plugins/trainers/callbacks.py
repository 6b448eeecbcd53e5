"""Trainer callbacks that report: figures to the cycle, one live progress bar, TensorBoard.

The cycle stores what ``context.log`` receives (the ``metrics`` table, split ``train``, with the
step) and passes it to the ``training_log`` hook; in a multi-process run only the main process's
context has a store, so the figures are written once.
"""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Any, Callable

import transformers

from tuneloop.context import CycleContext, Progress

SHOWN_FIGURES = ("loss", "eval_loss")  # always on the bar; plus the selection metric


class ContextLogCallback(transformers.TrainerCallback):
    """Streams every logged figure (loss, learning rate, validation figures) to the cycle."""

    def __init__(self, context: CycleContext):
        self.context = context

    def on_log(self, args: Any, state: Any, control: Any, logs: dict[str, Any] | None = None,
               **kwargs: Any) -> None:
        numbers = {name: float(value) for name, value in (logs or {}).items()
                   if isinstance(value, (int, float)) and not isinstance(value, bool)}
        if numbers:
            self.context.log(state.global_step, numbers)


class ProgressCallback(transformers.TrainerCallback):
    """One progress bar over all optimizer steps, with the latest loss and validation figures.

    The bar lives in ``scope`` (an ``ExitStack`` the training function owns), so it closes even
    when training raises. Validation gets no bar of its own: progress bars do not nest.
    """

    def __init__(self, progress: Progress, scope: contextlib.ExitStack):
        self.progress = progress
        self.scope = scope
        self.advance: Callable[..., None] | None = None
        self.figures: dict[str, float] = {}

    def on_train_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        self.advance = self.scope.enter_context(self.progress.task("training", state.max_steps))
        if state.global_step:  # resumed from a checkpoint
            self.advance(state.global_step)

    def on_log(self, args: Any, state: Any, control: Any, logs: dict[str, Any] | None = None,
               **kwargs: Any) -> None:
        shown = set(SHOWN_FIGURES) | {f"eval_{args.metric_for_best_model}"}
        for name, value in (logs or {}).items():
            if name in shown and isinstance(value, (int, float)):
                self.figures[name] = float(value)
        if self.advance is not None:
            self.advance(0, info=self.describe())

    def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        if self.advance is not None:
            self.advance(1)

    def describe(self) -> str:
        """``loss 0.4123  val loss 0.3811  val f1 0.9023``: training loss first, then validation."""
        order = sorted(self.figures, key=lambda name: (name.startswith("eval_"),
                                                       name != "eval_loss"))
        return "  ".join(("val " + name.removeprefix("eval_") if name.startswith("eval_") else name)
                         + f" {self.figures[name]:.4g}" for name in order)


def tensorboard(log_dir: Path) -> transformers.TrainerCallback:
    """transformers' TensorBoard callback, writing event files into ``log_dir``."""
    from torch.utils.tensorboard import SummaryWriter
    from transformers.integrations import TensorBoardCallback

    return TensorBoardCallback(tb_writer=SummaryWriter(log_dir=str(log_dir)))


def forget_logs_after(context: CycleContext, step: int) -> None:
    """Drop the training figures an interrupted run stored after its last complete checkpoint:
    the resumed run logs those steps again."""
    from tuneloop import distributed

    store = context.store
    if store is None or not distributed.is_main_process():
        return
    with store.write() as db:  # figures of the final model have no step and stay
        db.execute("DELETE FROM metrics WHERE cycle_id = ? AND step > ?",
                   [context.cycle_id, step])
