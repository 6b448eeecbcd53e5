"""The training loop both built-in trainers share, on top of ``transformers.Trainer``.

``train`` reads top to bottom: load, encode, arguments, regularizers, trainer, train, save. What
differs between tasks (how a model is loaded, how an example becomes tensors, which loss each
position gets, what validation computes) comes from a ``TaskRecipe``.

This module imports torch and transformers at its top, so it is imported only from inside trainer
methods: registering the trainers must stay cheap.
"""

from __future__ import annotations

import contextlib
import dataclasses
import shutil
from pathlib import Path
from typing import Any, Callable, Iterator, Protocol, Sequence

import torch
import transformers
from transformers.trainer_utils import get_last_checkpoint
from transformers.utils import logging as transformers_logging

from tuneloop.components import Example, Regularizer, TrainResult
from tuneloop.context import CycleContext, Progress
from tuneloop.errors import PluginError, TuneloopError

LOG_EVERY_STEPS = 10


class TaskRecipe(Protocol):
    """What one task contributes to the shared training loop."""

    def load(self, model_dir: str) -> tuple[Any, Any]:
        """The model and tokenizer to start from."""

    def encode(self, example: Example, tokenizer: Any) -> dict[str, Any]:
        """One example's features: ``input_ids``, ``attention_mask`` and ``labels``."""

    def collator(self, tokenizer: Any) -> Callable[[list[dict[str, Any]]], dict[str, torch.Tensor]]:
        """Pads a batch of encoded examples into tensors."""

    def position_losses(self, logits: torch.Tensor, labels: torch.Tensor,
                        label_smoothing: float) -> tuple[torch.Tensor, torch.Tensor]:
        """Each scored position's loss and a mask of the positions that count, ``[batch, ...]``."""

    def validation_scorer(self) -> Callable[[Any, list[Example]], dict[str, float]] | None:
        """Validation figures beyond the loss, from logits rows and their examples (``None``: the
        loss only, and evaluation keeps no logits)."""

    def greater_is_better(self, select_metric: str) -> bool:
        """Whether a higher value of the selection metric is better."""


# --------------------------------------------------------------------------------------------------
# The training function
# --------------------------------------------------------------------------------------------------


def train(context: CycleContext, splits: dict[str, list[Example]],
          regularizers: list[Regularizer], recipe: TaskRecipe) -> TrainResult:
    """Finetune ``context.start_model`` on the train split, selecting on the validation split.

    Saves the best model and its tokenizer to ``context.run_dir / "model"``. Checkpoints go to
    ``context.run_dir / "checkpoints"`` while training (a crashed run resumes from the latest one)
    and are deleted once the model is saved.
    """
    model_dir = context.run_dir / "model"
    checkpoint_dir = context.run_dir / "checkpoints"
    transformers.set_seed(context.seed)  # a fresh task head is initialised when the model loads

    # transformers' own tqdm bars (loading, writing checkpoints) stay hidden: context.progress shows
    # the one bar; the ExitStack closes that bar even when training raises.
    with quiet_transformers_progress(), contextlib.ExitStack() as progress_scope:
        # -- 1. model and tokenizer ------------------------------------------------------------
        model, tokenizer = recipe.load(context.start_model)

        # -- 2. data: examples to features (validation unweighted: it measures, training shapes)
        train_examples = splits.get("train") or []
        validation_examples = splits.get("validation") or []
        if not train_examples:
            raise TuneloopError("the train split is empty: nothing to train on "
                                "(check data.sources and data.split)")
        train_features = [dict(recipe.encode(example, tokenizer), weight=float(example.weight),
                               example_index=index)
                          for index, example in enumerate(train_examples)]
        validation_features = [dict(recipe.encode(example, tokenizer), weight=1.0,
                                    example_index=index)
                               for index, example in enumerate(validation_examples)]
        validates = bool(validation_features)
        score = recipe.validation_scorer() if validates else None

        # -- 3. training arguments: the config's hyperparameters, then each regularizer's edits
        args = training_arguments(context, checkpoint_dir, validates,
                                  greater_is_better=recipe.greater_is_better(context.select_metric),
                                  keeps_logits=score is not None)
        for regularizer in regularizers:
            regularizer.configure(args)
            check_argument_names(args, regularizer)

        # -- 4. the model, as the regularizers want it (dropout, frozen layers, adapters) -------
        for regularizer in regularizers:
            prepared = regularizer.prepare(model)
            if prepared is None:
                raise PluginError(regularizer.name,
                                  "prepare(model) returned None; it must return the model")
            model = prepared

        # -- 5. the trainer: shaped loss, figures to context.log, steps to context.progress -----
        callbacks = [ContextLogCallback(context),
                     ContextProgressCallback(context.progress, progress_scope)]
        for regularizer in regularizers:
            callbacks.extend(regularizer.callbacks())
        trainer = WeightedLossTrainer(
            model=model,
            args=transformers.TrainingArguments(**args),
            train_dataset=train_features,
            eval_dataset=validation_features if validates else None,
            data_collator=ExampleFieldsCollator(recipe.collator(tokenizer)),
            processing_class=tokenizer,
            compute_metrics=in_example_order(score, validation_examples) if score else None,
            callbacks=callbacks,
            position_losses=recipe.position_losses,
            regularizers=regularizers,
        )
        trainer.remove_callback(transformers.PrinterCallback)  # it would print every log line

        # -- 6. train, resuming from the latest checkpoint of a crashed run ---------------------
        resume_from = get_last_checkpoint(str(checkpoint_dir)) if checkpoint_dir.is_dir() else None
        output = trainer.train(resume_from_checkpoint=resume_from)

        # -- 7. save the best model (loaded back at the end), then drop the checkpoints ---------
        trainer.save_model(str(model_dir))
        shutil.rmtree(checkpoint_dir, ignore_errors=True)

    state = trainer.state
    return TrainResult(
        model_dir=str(model_dir),
        best_metric=float(state.best_metric) if state.best_metric is not None else None,
        best_step=state.best_global_step or None,
        global_step=state.global_step,
        history=list(state.log_history),
        extra={name: float(value) for name, value in output.metrics.items()},
    )


def training_arguments(context: CycleContext, checkpoint_dir: Path, validates: bool,
                       greater_is_better: bool, keeps_logits: bool) -> dict[str, Any]:
    """``TrainingArguments`` keywords from the config, before regularizers edit them.

    Checkpoints follow the validation schedule, so the best one is always on disk for
    ``load_best_model_at_end``; ``save_total_limit=1`` keeps just it and the latest (to resume).
    """
    training = context.config.training
    every_epoch = training.eval_every == "epoch"
    schedule = "epoch" if every_epoch else "steps"
    args: dict[str, Any] = {
        "output_dir": str(checkpoint_dir),
        "num_train_epochs": training.epochs,
        "learning_rate": training.learning_rate,
        "per_device_train_batch_size": training.batch_size,
        "per_device_eval_batch_size": training.eval_batch_size,
        "warmup_steps": training.warmup_ratio,  # a float below 1 is a fraction of all steps
        "seed": context.seed,
        "train_sampling_strategy": "group_by_length",  # less padding per batch
        "save_strategy": schedule,
        "save_total_limit": 1,
        "logging_strategy": "steps",
        "logging_steps": LOG_EVERY_STEPS,
        "logging_first_step": True,
        "disable_tqdm": True,
        "report_to": "none",
        "remove_unused_columns": False,  # the collator adds fields that forward() lacks
        "label_names": ["labels", "example_index"],  # see ExampleFieldsCollator
        "dataloader_pin_memory": torch.cuda.is_available(),
    }
    if not every_epoch:
        args["save_steps"] = training.eval_every
    if validates:
        args.update({
            "eval_strategy": schedule,
            "load_best_model_at_end": True,
            "metric_for_best_model": context.select_metric,
            "greater_is_better": greater_is_better,
            "prediction_loss_only": not keeps_logits,
        })
        if not every_epoch:
            args["eval_steps"] = training.eval_every
    return args


TRAINING_ARGUMENT_NAMES = frozenset(field.name for field in
                                    dataclasses.fields(transformers.TrainingArguments))


def check_argument_names(args: dict[str, Any], regularizer: Regularizer) -> None:
    """Name the regularizer that set an argument ``TrainingArguments`` does not have."""
    unknown = sorted(set(args) - TRAINING_ARGUMENT_NAMES)
    if unknown:
        raise PluginError(regularizer.name, f"configure() set unknown TrainingArguments "
                                            f"{', '.join(unknown)}")


@contextlib.contextmanager
def quiet_transformers_progress() -> Iterator[None]:
    """Hide transformers' own tqdm bars (loading and writing weights) for the block."""
    were_enabled = transformers_logging.is_progress_bar_enabled()
    transformers_logging.disable_progress_bar()
    try:
        yield
    finally:
        if were_enabled:
            transformers_logging.enable_progress_bar()


def device() -> torch.device:
    """Where prediction runs: the GPU when there is one (the Trainer decides the same way)."""
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


# --------------------------------------------------------------------------------------------------
# Loss: example weights and regularizer penalties
# --------------------------------------------------------------------------------------------------


def weighted_mean(losses: torch.Tensor, mask: torch.Tensor,
                  weights: torch.Tensor | None = None) -> torch.Tensor:
    """Mean loss over the positions that count, each scaled by its example's weight.

    Dividing by the number of positions (not the sum of weights) makes a weight of 2 count an
    example twice and a weight of 0 drop it, while all-ones weights give the usual mean.
    """
    counted = mask.to(losses.dtype)
    scale = counted
    if weights is not None:
        scale = counted * weights.to(losses.dtype).view((-1,) + (1,) * (losses.dim() - 1))
    return (losses * scale).sum() / counted.sum().clamp(min=1)


@contextlib.contextmanager
def quiet_loading() -> Iterator[None]:
    """Silence transformers' load report while a start model loads: a fresh classification head
    is expected when finetuning an encoder, and the cycle already says which model it starts from.
    Real loading errors still raise."""
    previous = transformers_logging.get_verbosity()
    transformers_logging.set_verbosity_error()
    try:
        yield
    finally:
        transformers_logging.set_verbosity(previous)


class WeightedLossTrainer(transformers.Trainer):
    """A ``transformers.Trainer`` whose training loss honours example weights and penalties.

    In training, the loss is the weighted mean of the recipe's per-position losses (with the
    arguments' label smoothing) plus every regularizer's ``penalty(model)``. In evaluation it is
    the plain mean, so the validation loss is comparable across configs and cycles.
    """

    loss_is_scaled_for_ga = False  # a per-batch mean: the Trainer divides by accumulation steps

    def __init__(self, *args: Any,
                 position_losses: Callable[[torch.Tensor, torch.Tensor, float],
                                           tuple[torch.Tensor, torch.Tensor]],
                 regularizers: Sequence[Regularizer] = (), **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.position_losses = position_losses
        self.regularizers = list(regularizers)

    def compute_loss(self, model: torch.nn.Module, inputs: dict[str, Any],
                     return_outputs: bool = False,
                     num_items_in_batch: Any = None) -> Any:
        inputs = dict(inputs)  # prediction_step reads the labels from the caller's dict
        labels = inputs.pop("labels")
        weights = inputs.pop("weight", None)
        inputs.pop("example_index", None)
        outputs = model(**inputs)
        if model.training:
            losses, mask = self.position_losses(outputs.logits, labels,
                                                self.args.label_smoothing_factor)
            loss = weighted_mean(losses, mask, weights)
            for regularizer in self.regularizers:
                penalty = regularizer.penalty(self.model)
                if penalty is not None:
                    loss = loss + penalty
        else:
            losses, mask = self.position_losses(outputs.logits, labels, 0.0)
            loss = weighted_mean(losses, mask)
        return (loss, outputs) if return_outputs else loss


class ExampleFieldsCollator:
    """Collates features with the task's collator, carrying two per-example fields alongside.

    ``weight`` feeds the training loss; ``example_index`` comes back with each evaluation batch
    (it is a label name), because length-grouped evaluation batches do not keep the split's order.
    """

    carried = ("weight", "example_index")

    def __init__(self, inner: Callable[[list[dict[str, Any]]], dict[str, torch.Tensor]]):
        self.inner = inner

    def __call__(self, features: list[dict[str, Any]]) -> dict[str, torch.Tensor]:
        batch = dict(self.inner([{key: value for key, value in feature.items()
                                  if key not in self.carried} for feature in features]))
        batch["weight"] = torch.tensor([float(f["weight"]) for f in features], dtype=torch.float32)
        batch["example_index"] = torch.tensor([int(f["example_index"]) for f in features],
                                              dtype=torch.long)
        return batch


def in_example_order(score: Callable[[Any, list[Example]], dict[str, float]],
                     examples: list[Example]) -> Callable[[Any], dict[str, float]]:
    """A ``compute_metrics`` for transformers that hands ``score`` each logits row with its example.

    ``transformers`` groups evaluation batches by length too, so the rows do not follow the split;
    the ``example_index`` label that came back with each row says which example it belongs to.
    """

    def compute_metrics(evaluation: Any) -> dict[str, float]:
        logits = evaluation.predictions
        logits = logits[0] if isinstance(logits, tuple) else logits
        _, indices = evaluation.label_ids
        return score(logits, [examples[int(index)] for index in indices])

    return compute_metrics


# --------------------------------------------------------------------------------------------------
# Callbacks: figures to context.log, steps to context.progress
# --------------------------------------------------------------------------------------------------


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


class ContextProgressCallback(transformers.TrainerCallback):
    """One progress bar over all optimizer steps, opened when training begins.

    The bar lives in ``scope`` (an ``ExitStack`` the training function owns), so it closes even
    when training raises. Validation gets no bar of its own: progress bars do not nest.
    """

    def __init__(self, progress: Progress, scope: contextlib.ExitStack):
        self.progress = progress
        self.scope = scope
        self.advance: Callable[[int], None] | None = None

    def on_train_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        self.advance = self.scope.enter_context(self.progress.task("training", state.max_steps))
        if state.global_step:  # resumed from a checkpoint
            self.advance(state.global_step)

    def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        if self.advance is not None:
            self.advance(1)


# --------------------------------------------------------------------------------------------------
# Prediction helpers
# --------------------------------------------------------------------------------------------------


def batches_by_length(texts: list[str], batch_size: int) -> list[list[int]]:
    """Indices of ``texts`` in batches of similar length (less padding); callers restore order."""
    order = sorted(range(len(texts)), key=lambda index: len(texts[index]))
    return [order[start:start + batch_size] for start in range(0, len(order), batch_size)]
