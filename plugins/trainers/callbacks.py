"""Trainer callbacks that report: figures to the cycle, one live progress bar, and the experiment
trackers of ``training.report_to`` (TensorBoard, MLflow, Weights & Biases).

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


def trackers(names: list[str], context: CycleContext) -> list[transformers.TrainerCallback]:
    """The callbacks of ``training.report_to`` (``TrainingConfig.trackers``): transformers' own
    integrations, each with tuneloop's defaults for where and under what name a cycle goes."""
    made: list[transformers.TrainerCallback] = []
    for name in names:
        if name == "tensorboard":
            made.append(tensorboard(context.run_dir / "tensorboard"))
        elif name == "mlflow":
            made.append(mlflow_callback(context))
        elif name == "wandb":
            made.append(wandb_callback(context))
    return made


def mlflow_callback(context: CycleContext) -> transformers.TrainerCallback:
    """transformers' ``MLflowCallback``, with defaults where its environment variables are unset:
    the tracking store ``sqlite:///<runs_dir>/mlflow.db`` (``MLFLOW_TRACKING_URI``; set
    ``file:<folder>`` with ``MLFLOW_ALLOW_FILE_STORE=true`` for MLflow's file store) and the
    project as the experiment (``MLFLOW_EXPERIMENT_NAME``). The run is named ``cycle-N``
    (``TrainingArguments.run_name``) and tagged with the project and cycle."""
    import os

    from transformers.integrations import MLflowCallback

    project, cycle_id = context.config.project, context.cycle_id
    default_store = f"sqlite:///{context.config.runs_path.resolve() / 'mlflow.db'}"

    class CycleMLflowCallback(MLflowCallback):
        def setup(self, args: Any, state: Any, model: Any) -> None:
            if state.is_world_process_zero:
                if not self._ml_flow.is_tracking_uri_set():
                    context.config.runs_path.mkdir(parents=True, exist_ok=True)
                    self._ml_flow.set_tracking_uri(default_store)
                if not os.getenv("MLFLOW_EXPERIMENT_NAME") and self._ml_flow.active_run() is None:
                    self._ml_flow.set_experiment(project)
            super().setup(args, state, model)
            if state.is_world_process_zero and self._ml_flow.active_run() is not None:
                self._ml_flow.set_tags({"tuneloop.project": project,
                                        "tuneloop.cycle": str(cycle_id)})

    return CycleMLflowCallback()


def wandb_callback(context: CycleContext) -> transformers.TrainerCallback:
    """transformers' ``WandbCallback``; the run is started here (unless one is active) so that
    it goes under the project (``WANDB_PROJECT`` overrides), is named ``cycle-N`` and writes its
    files into the cycle's run folder (``WANDB_DIR`` overrides), and it is finished when training
    ends, so an offline run (``WANDB_MODE=offline``) is complete on disk for ``wandb sync``."""
    import os

    from transformers.integrations import WandbCallback

    project, cycle_id, run_dir = context.config.project, context.cycle_id, context.run_dir

    class CycleWandbCallback(WandbCallback):
        def setup(self, args: Any, state: Any, model: Any, **kwargs: Any) -> None:
            if state.is_world_process_zero and self._wandb.run is None:
                folder = os.getenv("WANDB_DIR") or str(run_dir)
                Path(folder).mkdir(parents=True, exist_ok=True)
                self._wandb.init(project=os.getenv("WANDB_PROJECT", project),
                                 name=f"cycle-{cycle_id}", dir=folder,
                                 config={"tuneloop": {"project": project, "cycle": cycle_id}})
            super().setup(args, state, model, **kwargs)

        def on_train_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
            super().on_train_end(args, state, control, **kwargs)
            if state.is_world_process_zero and self._wandb.run is not None:
                self._wandb.finish()

    return CycleWandbCallback()


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
