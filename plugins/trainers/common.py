"""The training loop every built-in trainer shares, on top of ``transformers.Trainer``.

``train`` reads top to bottom: load, set up the regularizers, encode, arguments, adjust the model,
build the trainer, train (resuming from the last complete checkpoint), save. What differs between
tasks (how a model is loaded, how an example becomes tensors, the loss of a batch, what validation
computes) comes from a ``TaskRecipe``; the helpers the loop needs live in small modules beside this
one (``adjustments``: freezing, head, LoRA; ``checkpoints``: atomic checkpoints and resume;
``batching``: length-grouped batches and the padding count; ``callbacks``: figures, progress,
TensorBoard).

This module imports torch and transformers at its top, so it is imported only from inside trainer
methods: registering the trainers must stay cheap.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence

import torch
import transformers
from transformers.utils import logging as transformers_logging

from tuneloop import distributed
from tuneloop.components import Example, Regularizer, TrainResult
from tuneloop.context import CycleContext
from tuneloop.errors import ConfigError, PluginError, TuneloopError
from tuneloop.interface_checks import regularizer_penalty
from tuneloop.plugins.trainers import adjustments, batching, callbacks, checkpoints, sharding
from tuneloop.plugins.trainers.recipe import TaskRecipe

LOG_EVERY_STEPS = 10

# transformers' names; AdamW runs fused (one kernel for all weights: on a CPU, MiniLM's update
# takes 10 ms instead of 67 ms a step)
OPTIMIZERS = {"adamw": "adamw_torch_fused", "sgd": "sgd", "adafactor": "adafactor",
              "adagrad": "adagrad", "rmsprop": "rmsprop"}


@dataclass
class TrainingSession:
    """What a regularizer's optional ``setup(session)`` sees before training starts.

    ``train`` can be extended (replay adds earlier data here); ``report`` collects what each
    regularizer did, by name, and ends up in the cycle's record. ``loss`` computes the mean training
    loss of some examples under a model, with gradients (EWC uses it for the Fisher information).
    """

    context: CycleContext
    recipe: TaskRecipe
    tokenizer: Any
    train: list[Example]
    validation: list[Example]
    report: dict[str, dict[str, Any]] = field(default_factory=dict)

    def loss(self, model: Any, examples: Sequence[Example]) -> torch.Tensor:
        features = [self.recipe.encode(example, self.tokenizer) for example in examples]
        device = next(model.parameters()).device
        batch = {name: value.to(device) for name, value
                 in self.recipe.collator(self.tokenizer)(features).items()}
        losses, mask, _ = self.recipe.losses(model, batch, 0.0)
        return weighted_mean(losses, mask)


# --------------------------------------------------------------------------------------------------
# The training function
# --------------------------------------------------------------------------------------------------


def train(context: CycleContext, splits: dict[str, list[Example]],
          regularizers: list[Regularizer], recipe: TaskRecipe) -> TrainResult:
    """Finetune ``context.start_model`` on the train split, selecting on the validation split.

    Saves the best model and its tokenizer to ``context.run_dir / "model"``. Checkpoints go to
    ``context.run_dir / "checkpoints"`` while training, each written whole before it appears (a
    run killed at any point resumes from the last complete one), and are deleted once the model is
    saved.
    """
    training = context.config.training
    model_dir = context.run_dir / "model"
    checkpoint_dir = context.run_dir / "checkpoints"
    transformers.set_seed(context.seed)  # a fresh task head is initialised when the model loads

    # transformers' own tqdm bars (loading, writing checkpoints) stay hidden: context.progress shows
    # the one bar; the ExitStack closes that bar even when training raises.
    with quiet_transformers_progress(), contextlib.ExitStack() as progress_scope:
        # -- 1. model and tokenizer ------------------------------------------------------------
        model, tokenizer = recipe.load(context.start_model)

        # -- 2. regularizers see the session first (replay adds training examples here) --------
        session = TrainingSession(context, recipe, tokenizer, list(splits.get("train") or []),
                                  list(splits.get("validation") or []))
        for regularizer in regularizers:
            setup = getattr(regularizer, "setup", None)
            if setup is not None:
                setup(session)
        if not session.train:
            raise TuneloopError("the train split is empty: nothing to train on "
                                "(check data.sources and data.split)")

        # -- 3. data: examples to features (validation unweighted: it measures, training shapes)
        train_features = [dict(recipe.encode(example, tokenizer), weight=float(example.weight),
                               example_index=index)
                          for index, example in enumerate(session.train)]
        validation_features = [dict(recipe.encode(example, tokenizer), weight=1.0,
                                    example_index=index)
                               for index, example in enumerate(session.validation)]
        recipe.add_reference(train_features, model, tokenizer)
        recipe.add_reference(validation_features, model, tokenizer)
        train_features = recipe.pack(train_features)  # packing: several examples per row
        validates = bool(validation_features)
        score = recipe.validation_scorer() if validates else None

        # -- 4. training arguments: the config's hyperparameters, then each regularizer's edits
        args = training_arguments(context, checkpoint_dir, validates,
                                  greater_is_better=recipe.greater_is_better(context.select_metric),
                                  keeps_logits=score is not None)
        recipe.configure_arguments(args, len(session.train))  # a step budget sized to the data
        for regularizer in regularizers:
            regularizer.configure(args)
            check_argument_names(args, regularizer)

        # -- 5. the model: the config's adjustments, the regularizers' edits, then LoRA ----------
        model = adjustments.apply_config(model, training, context.task)
        for regularizer in regularizers:
            prepared = regularizer.prepare(model)
            if prepared is None:
                raise PluginError(regularizer.name,
                                  "prepare(model) returned None; it must return the model")
            model = prepared
        model = recipe.adjust_model(model)  # k-bit preparation, activation checkpointing
        if training.lora is not None:
            model = adjustments.add_lora(model, training.lora, context.task)

        # -- 6. the trainer: shaped loss, figures to the cycle, TensorBoard, one progress bar ----
        trainer_callbacks = [callbacks.ContextLogCallback(context),
                             callbacks.ProgressCallback(context.progress, progress_scope)]
        if distributed.is_main_process():  # training.report_to (or tensorboard)
            trainer_callbacks.extend(callbacks.trackers(training.trackers, context))
        trainer_callbacks.extend(recipe.callbacks())
        for regularizer in regularizers:
            trainer_callbacks.extend(regularizer.callbacks())
        trainer = WeightedLossTrainer(
            model=model,
            args=transformers.TrainingArguments(**args),
            train_dataset=train_features,
            eval_dataset=validation_features if validates else None,
            data_collator=ExampleFieldsCollator(recipe.collator(tokenizer)),
            processing_class=tokenizer,
            compute_metrics=in_example_order(score, session.validation) if score else None,
            callbacks=trainer_callbacks,
            recipe=recipe,
            regularizers=regularizers,
            step_decay=training.step_decay if training.schedule == "step" else None,
            group_by_length=training.group_by_length,
        )
        trainer.remove_callback(transformers.PrinterCallback)  # it would print every log line

        # -- 7. train, resuming from the last complete checkpoint of an interrupted run ---------
        resume_from = checkpoints.last_complete(checkpoint_dir)
        # figures an interrupted run stored after that checkpoint (or before any) are logged again
        callbacks.forget_logs_after(context, checkpoints.step_of(resume_from) if resume_from else 0)
        output = trainer.train(resume_from_checkpoint=str(resume_from) if resume_from else None)

        # -- 8. save the best model (loaded back at the end), then drop the checkpoints ---------
        if trainer.is_fsdp_enabled:  # every process joins in gathering the sharded weights
            sharding.save_full_model(trainer, model_dir)
        if distributed.is_main_process():
            lora_save = training.lora.save if training.lora is not None else None
            if not trainer.is_fsdp_enabled:
                checkpoints.write_atomically(
                    model_dir, lambda folder: recipe.save(trainer.model, tokenizer, folder,
                                                          lora_save))
            checkpoints.remove(checkpoint_dir)
        distributed.barrier()

    state = trainer.state
    extra: dict[str, Any] = {name: float(value) for name, value in output.metrics.items()}
    extra["padding_fraction"] = trainer.padding.fraction()
    extra["regularizers"] = session.report
    extra["train_examples"] = len(session.train)
    if recipe.report():
        extra["recipe"] = recipe.report()
    extra["train_rows"] = len(train_features)  # fewer than the examples when packed
    extra["fsdp"] = trainer.is_fsdp_enabled  # sharded, not DDP (trainer option fsdp)
    extra["arguments"] = {name: args[name] for name in RECORDED_ARGUMENTS if name in args}
    if resume_from is not None:
        extra["resumed_from_step"] = checkpoints.step_of(resume_from)
    return TrainResult(
        model_dir=str(model_dir),
        best_metric=float(state.best_metric) if state.best_metric is not None else None,
        best_step=state.best_global_step or None,
        global_step=state.global_step,
        history=list(state.log_history),
        extra=extra,
    )


def training_arguments(context: CycleContext, checkpoint_dir: Path, validates: bool,
                       greater_is_better: bool, keeps_logits: bool) -> dict[str, Any]:
    """``TrainingArguments`` keywords from the config, before regularizers edit them.

    Checkpoints follow the validation schedule, so the best one is always on disk for
    ``load_best_model_at_end``; ``save_total_limit=1`` keeps just it and the latest (to resume).
    Gradients are clipped to norm 1.0 (transformers' default) unless ``gradient_clipping`` says
    otherwise; the cycle records the arguments that shape training (``RECORDED_ARGUMENTS``).
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
        "gradient_accumulation_steps": training.gradient_accumulation,
        "warmup_steps": training.warmup_ratio,  # a float below 1 is a fraction of all steps
        "lr_scheduler_type": scheduler_name(training.schedule, training.warmup_ratio),
        "optim": OPTIMIZERS[training.optimizer],
        "max_grad_norm": 1.0,  # transformers' (and TRL's) default; gradient_clipping sets another
        "seed": context.seed,
        "save_strategy": schedule,
        "save_total_limit": 1,
        "logging_strategy": "steps",
        "logging_steps": LOG_EVERY_STEPS,
        "logging_first_step": True,
        "disable_tqdm": True,
        "report_to": "none",  # the trackers get their own callbacks (callbacks.trackers)
        "run_name": f"cycle-{context.cycle_id}",  # the trackers' name for the run
        "remove_unused_columns": False,  # the collator adds fields that forward() lacks
        "label_names": ["labels", "example_index"],  # see ExampleFieldsCollator
        "dataloader_pin_memory": torch.cuda.is_available(),
        # on CPUs, say so: accelerate runs several CPU processes as DDP (gloo) only then
        "use_cpu": not torch.cuda.is_available(),
        "ddp_find_unused_parameters": False,  # every trainable weight is used: skip the search
        **precision_arguments(training.precision, context),
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


def scheduler_name(schedule: str, warmup_ratio: float) -> str:
    """transformers' name for a schedule; ``step`` runs as constant and is replaced by
    ``WeightedLossTrainer.create_scheduler``."""
    if schedule in ("constant", "step"):
        return "constant_with_warmup" if warmup_ratio > 0 else "constant"
    return schedule


def precision_arguments(precision: str, context: CycleContext) -> dict[str, bool]:
    """Mixed precision where the hardware has it: bf16 on GPUs that support it, else fp16."""
    cuda = torch.cuda.is_available()
    if precision == "auto":
        if not cuda:
            return {}
        return {"bf16": True} if torch.cuda.is_bf16_supported() else {"fp16": True}
    if precision == "fp16" and not cuda:
        where = str(context.config.config_path or "config")
        raise ConfigError(where, ["training.precision: fp16 needs a CUDA GPU; use auto, fp32 or "
                                  "bf16 on this machine"])
    return {"bf16": precision == "bf16", "fp16": precision == "fp16"}


# The arguments that shape training, recorded with the cycle (the regularizers may have set them).
RECORDED_ARGUMENTS = ("learning_rate", "num_train_epochs", "max_steps", "eval_steps",
                      "per_device_train_batch_size",
                      "gradient_accumulation_steps", "lr_scheduler_type", "warmup_steps", "optim",
                      "weight_decay", "max_grad_norm", "label_smoothing_factor", "bf16", "fp16")

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


def supervised_examples(examples: Sequence[Example]) -> list[Example]:
    """What a supervised trainer learns to reproduce: examples with a target that no expert
    marked bad. A thumbs-down (``desirable=False``, from the ``thumbs`` policy) only means
    something to a preference trainer; trained on here it would teach the rejected answer."""
    return [example for example in examples
            if example.target is not None and example.desirable is not False]


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


def device() -> torch.device:
    """Where this process computes: its GPU when there is one (the Trainer decides the same way;
    under torchrun, ``LOCAL_RANK`` says which GPU is this process's)."""
    if not torch.cuda.is_available():
        return torch.device("cpu")
    return torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))


# --------------------------------------------------------------------------------------------------
# The trainer: weighted loss with penalties, step decay, length-grouped batches, atomic checkpoints
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


class WeightedLossTrainer(transformers.Trainer):
    """A ``transformers.Trainer`` with tuneloop's loss, schedule, batches and checkpoints.

    - Loss: in training, the weighted mean of the recipe's losses (with the arguments' label
      smoothing) plus every regularizer's ``penalty(model)``; in evaluation the plain mean, so the
      validation loss is comparable across configs and cycles.
    - ``schedule: step``: PyTorch's ``StepLR`` after the warmup.
    - Batches: length-grouped with a seed per epoch (a resumed run sees the same batches), or
      uniformly random; the share of padding among the tokens processed is counted.
    - Checkpoints: written to a staging folder and renamed when whole.
    """

    loss_is_scaled_for_ga = False  # a per-batch mean: the Trainer divides by accumulation steps

    def __init__(self, *args: Any, recipe: TaskRecipe, regularizers: Sequence[Regularizer] = (),
                 step_decay: Any = None, group_by_length: bool = True, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.recipe = recipe
        self.regularizers = list(regularizers)
        self.step_decay = step_decay
        self.group_by_length = group_by_length
        self.padding = batching.PaddingCount()

    def create_accelerator_and_postprocess(self) -> None:
        super().create_accelerator_and_postprocess()
        sharding.fsdp_on_cpu(self)  # FSDP over gloo too (accelerate would run DDP)

    def compute_loss(self, model: torch.nn.Module, inputs: dict[str, Any],
                     return_outputs: bool = False,
                     num_items_in_batch: Any = None) -> Any:
        inputs = dict(inputs)  # prediction_step reads the labels from the caller's dict
        weights = inputs.pop("weight", None)
        inputs.pop("example_index", None)
        if model.training:
            self.padding.add(inputs)
            losses, mask, outputs = self.recipe.losses(model, inputs,
                                                       self.args.label_smoothing_factor)
            loss = weighted_mean(losses, mask, weights)
            for regularizer in self.regularizers:
                penalty = regularizer_penalty(regularizer, self.model)  # checked, blamed
                if penalty is not None:
                    loss = loss + penalty
        else:
            losses, mask, outputs = self.recipe.losses(model, inputs, 0.0)
            loss = weighted_mean(losses, mask)
        return (loss, outputs) if return_outputs else loss

    def create_optimizer(self, model: Any = None) -> torch.optim.Optimizer:
        """transformers' optimizer, with the recipe's own learning rates for some parameters
        (a newly initialised head learns faster than the pretrained body)."""
        from tuneloop.plugins.trainers.recipe import with_learning_rates

        fresh = self.optimizer is None
        optimizer = super().create_optimizer(model)
        if fresh:
            target = self.model if model is None else model
            self.optimizer = with_learning_rates(optimizer, target,
                                                 self.recipe.learning_rates(target))
        return self.optimizer

    def log(self, logs: dict[str, float], *args: Any, **kwargs: Any) -> None:
        if "loss" in logs:  # a training log line: add what the recipe gathered since the last one
            logs = {**logs, **self.recipe.pop_figures()}
        super().log(logs, *args, **kwargs)

    def evaluation_loop(self, *args: Any, metric_key_prefix: str = "eval", **kwargs: Any) -> Any:
        """transformers' evaluation, plus the recipe's figures on the model as it is (generation
        metrics), before they are logged and the best checkpoint is chosen on them."""
        output = super().evaluation_loop(*args, metric_key_prefix=metric_key_prefix, **kwargs)
        figures = self.recipe.evaluation_figures(self.model, self.processing_class)
        output.metrics.update({f"{metric_key_prefix}_{name}": value
                               for name, value in figures.items()})
        return output

    def create_scheduler(self, num_training_steps: int,
                         optimizer: torch.optim.Optimizer | None = None) -> Any:
        if self.step_decay is None or self.lr_scheduler is not None:
            return super().create_scheduler(num_training_steps, optimizer)
        self.lr_scheduler = step_decay_schedule(
            optimizer or self.optimizer, self.args.get_warmup_steps(num_training_steps),
            self.step_decay.step_size, self.step_decay.gamma)
        self._created_lr_scheduler = True
        return self.lr_scheduler

    def _get_train_sampler(self, train_dataset: Any = None) -> Any:
        dataset = train_dataset if train_dataset is not None else self.train_dataset
        group_size = self.args.train_batch_size * self.args.gradient_accumulation_steps
        lengths = [batching.feature_length(feature) for feature in dataset]
        if self.group_by_length:
            return batching.LengthGroupedSampler(lengths, group_size, seed=self.args.seed)
        return batching.ShuffledSampler(len(lengths), seed=self.args.seed)

    def _get_eval_sampler(self, eval_dataset: Any) -> Any:
        if self.args.world_size > 1:  # transformers shards evaluation across the processes
            return super()._get_eval_sampler(eval_dataset)
        lengths = [batching.feature_length(feature) for feature in eval_dataset]
        return sorted(range(len(lengths)), key=lengths.__getitem__)  # by length: less padding

    def _save_checkpoint(self, model: Any, trial: Any) -> None:
        checkpoints.save_atomically(self, lambda: super(WeightedLossTrainer, self)
                                    ._save_checkpoint(model, trial))


def step_decay_schedule(optimizer: torch.optim.Optimizer, warmup_steps: int, step_size: int,
                        gamma: float) -> torch.optim.lr_scheduler.LambdaLR:
    """Linear warmup, then the rate times ``gamma`` every ``step_size`` steps (``StepLR``)."""
    import functools

    return torch.optim.lr_scheduler.LambdaLR(
        optimizer, functools.partial(_step_decay_factor, warmup_steps=warmup_steps,
                                     step_size=step_size, gamma=gamma))


def _step_decay_factor(step: int, *, warmup_steps: int, step_size: int, gamma: float) -> float:
    if step < warmup_steps:
        return (step + 1) / (warmup_steps + 1)
    return gamma ** ((step - warmup_steps) // step_size)


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
# Prediction helpers
# --------------------------------------------------------------------------------------------------


def batches_by_length(texts: list[str], batch_size: int) -> list[list[int]]:
    """Indices of ``texts`` in batches of similar length (less padding); callers restore order."""
    order = sorted(range(len(texts)), key=lambda index: len(texts[index]))
    return [order[start:start + batch_size] for start in range(0, len(order), batch_size)]
