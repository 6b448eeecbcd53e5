"""Built-in regularizers: what keeps a finetuned model from overfitting or forgetting.

Configured under ``training.regularizers``; several work together in one cycle, for example::

    regularizers:
      - {name: weight_decay, value: 0.01}
      - {name: dropout, p: 0.1}
      - {name: label_smoothing, value: 0.1}
      - {name: gradient_clipping, max_norm: 1.0}
      - {name: early_stopping, metric: f1, patience: 3}
      - {name: l2_sp, strength: 0.01}
      - {name: ewc, strength: 100, samples: 200}
      - {name: replay, share: 0.2}

Each changes what its kind of regularization needs, through the ``Regularizer`` methods:
trainer arguments (``configure``: weight decay, label smoothing, clipping), the model (``prepare``:
dropout; L2-SP and EWC take their anchors there), the loss (``penalty``: L2-SP, EWC), callbacks
(early stopping). Three also use ``setup(session)``, which the shared training loop calls first
with a ``TrainingSession`` (the context, the training examples, a loss function, a report):
replay adds earlier examples to the training set, EWC reads the previous cycle's data and early
stopping learns the direction of its metric. What each did goes into ``session.report`` and from
there into the cycle's record, next to its options.

torch is imported inside the methods: registering these stays cheap.
"""

from __future__ import annotations

import random
from typing import TYPE_CHECKING, Any

from pydantic import Field, field_validator

from tuneloop import Example, Options, Regularizer, TuneloopError, hookimpl

if TYPE_CHECKING:  # pragma: no cover
    import torch

    from tuneloop.context import CycleContext


# --------------------------------------------------------------------------------------------------
# Trainer arguments
# --------------------------------------------------------------------------------------------------


class WeightDecay(Regularizer):
    """Decoupled weight decay (AdamW) on every weight except biases and layer norms (L2)."""

    name = "weight_decay"

    class Options(Options):
        value: float = Field(0.01, ge=0, description="decay per step, as a fraction of the weight")

    def configure(self, args: dict[str, Any]) -> None:
        args["weight_decay"] = self.options.value


class LabelSmoothing(Regularizer):
    """Train towards ``1 - value`` on the right label and ``value`` spread over all labels, so the
    model stops short of certainty (for DPO: conservative DPO, trusting each pair at ``1 - value``).
    """

    name = "label_smoothing"

    class Options(Options):
        value: float = Field(0.1, ge=0, lt=1)

    def configure(self, args: dict[str, Any]) -> None:
        args["label_smoothing_factor"] = self.options.value


class GradientClipping(Regularizer):
    """Scale each step's gradients down to at most ``max_norm`` (their global L2 norm)."""

    name = "gradient_clipping"

    class Options(Options):
        max_norm: float = Field(1.0, gt=0)

    def configure(self, args: dict[str, Any]) -> None:
        args["max_grad_norm"] = self.options.max_norm


# --------------------------------------------------------------------------------------------------
# The model
# --------------------------------------------------------------------------------------------------


class Dropout(Regularizer):
    """One dropout probability for the whole model, overriding what the checkpoint was built with.

    ``prepare`` sets every ``torch.nn.Dropout`` layer's ``p`` (what takes effect in training) and
    every dropout probability in the model's config (``hidden_dropout_prob``, ``attn_pdrop``...),
    so the saved model's config says what it was trained with.
    """

    name = "dropout"

    class Options(Options):
        p: float = Field(0.1, ge=0, lt=1, description="probability of zeroing an activation")

    def prepare(self, model: Any) -> Any:
        from torch import nn

        dropout_layers = (nn.Dropout, nn.Dropout1d, nn.Dropout2d, nn.Dropout3d, nn.AlphaDropout,
                          nn.FeatureAlphaDropout)
        for module in model.modules():
            if isinstance(module, dropout_layers):
                module.p = self.options.p
        config = getattr(model, "config", None)
        if config is not None:
            for key, value in config.to_dict().items():
                if is_dropout_probability(key, value):
                    setattr(config, key, self.options.p)
        return model


def is_dropout_probability(key: str, value: Any) -> bool:
    """Config keys that hold a dropout probability: ``*dropout*`` or ``*pdrop`` with a number.

    ``None`` (``classifier_dropout`` in BERT: "use the hidden dropout") is left as it is.
    """
    named_dropout = "dropout" in key or key.endswith("pdrop")
    is_number = isinstance(value, (int, float)) and not isinstance(value, bool)
    return named_dropout and is_number


# --------------------------------------------------------------------------------------------------
# The loss: penalties pulling the weights towards an anchor
# --------------------------------------------------------------------------------------------------


class AnchoredPenalty:
    """``strength / 2 * sum(importance * (w - anchor) ** 2)`` over anchored weights.

    The anchors are copies of the weights when training starts; they follow each weight to its
    device the first time the penalty is computed (the Trainer moves the model after ``prepare``).
    Weights that no longer train (frozen, or under LoRA) are skipped.
    """

    def __init__(self, strength: float):
        self.strength = strength
        self.anchors: list[tuple["torch.nn.Parameter", "torch.Tensor", "torch.Tensor | None"]] = []

    def anchor(self, parameters: list["torch.nn.Parameter"],
               importance: list["torch.Tensor"] | None = None) -> None:
        self.anchors = [(parameter, parameter.detach().clone(),
                         importance[number] if importance is not None else None)
                        for number, parameter in enumerate(parameters)]

    def __call__(self) -> "torch.Tensor | None":
        total = None
        for number, (parameter, anchor, importance) in enumerate(self.anchors):
            if not parameter.requires_grad:
                continue
            if anchor.device != parameter.device:
                anchor = anchor.to(parameter.device)
                importance = importance.to(parameter.device) if importance is not None else None
                self.anchors[number] = (parameter, anchor, importance)
            squared = (parameter - anchor).pow(2)
            term = (squared * importance).sum() if importance is not None else squared.sum()
            total = term if total is None else total + term
        return None if total is None else self.strength / 2 * total


def pretrained_parameters(model: Any) -> list["torch.nn.Parameter"]:
    """The trainable weights that came from the pretrained checkpoint: the model's body
    (``base_model``), not a task head that was initialised for this task."""
    return [parameter for parameter in model.base_model.parameters() if parameter.requires_grad]


class L2SP(Regularizer):
    """L2-SP (Li et al., 2018): pull the weights towards the pretrained ones, not towards zero.

    Adds ``strength / 2 * ||w - w_pretrained||^2`` over the pretrained body of the model (the task
    head, new for the task, is left to weight decay): the model keeps what it knew while it adapts.
    """

    name = "l2_sp"

    class Options(Options):
        strength: float = Field(0.01, gt=0, description="alpha: weight of the squared distance")

    def __init__(self, options: Any = None):
        super().__init__(options)
        self.penalty_term = AnchoredPenalty(self.options.strength)

    def prepare(self, model: Any) -> Any:
        self.penalty_term.anchor(pretrained_parameters(model))
        return model

    def penalty(self, model: Any) -> Any:
        return self.penalty_term()


class EWC(Regularizer):
    """Elastic weight consolidation (Kirkpatrick et al., 2017): protect what the previous cycle
    learnt, weight by weight, in proportion to how much the previous cycle's data depends on it.

    When training starts from a model an earlier cycle trained (``model.start_from: promoted``),
    ``prepare`` computes the diagonal (empirical) Fisher information of that model on up to
    ``samples`` of that cycle's training examples (one gradient per example) and adds
    ``strength / 2 * sum(F * (w - w_previous) ** 2)`` to the loss. From the base model there is no
    previous cycle: EWC stays off and the cycle's record says so.
    """

    name = "ewc"

    class Options(Options):
        strength: float = Field(100.0, gt=0, description="lambda: weight of the Fisher penalty")
        samples: int = Field(200, ge=1, description="previous-cycle examples for the Fisher")

    def __init__(self, options: Any = None):
        super().__init__(options)
        self.penalty_term = AnchoredPenalty(self.options.strength)
        self.session: Any = None
        self.previous: list[Example] = []

    def setup(self, session: Any) -> None:
        self.session = session
        cycle_id = previous_cycle_id(session.context)
        if cycle_id is None:
            session.report[self.name] = {"active": False,
                                         "reason": "no previous cycle: training starts from the "
                                                   "base model"}
            return
        examples = [example for example in earlier_training_examples(session.context, [cycle_id])
                    if trainable(example, session.context)]
        rng = random.Random(session.context.seed)
        self.previous = rng.sample(examples, min(self.options.samples, len(examples)))
        session.report[self.name] = {"active": bool(self.previous), "previous_cycle": cycle_id,
                                     "fisher_examples": len(self.previous)}

    def prepare(self, model: Any) -> Any:
        if not self.previous:
            return model
        parameters = pretrained_parameters(model)
        fisher = fisher_information(model, parameters, self.previous, self.session.loss)
        self.penalty_term.anchor(parameters, fisher)
        return model

    def penalty(self, model: Any) -> Any:
        return self.penalty_term()


def fisher_information(model: Any, parameters: list["torch.nn.Parameter"],
                       examples: list[Example], loss: Any) -> list["torch.Tensor"]:
    """The diagonal empirical Fisher: the mean squared gradient of each example's loss."""
    import torch

    was_training = model.training
    model.eval()  # no dropout: the Fisher of the model as it predicts
    if torch.cuda.is_available():
        from tuneloop.plugins.trainers.common import device

        model.to(device())
    squares = [torch.zeros_like(parameter) for parameter in parameters]
    for example in examples:
        model.zero_grad(set_to_none=True)
        loss(model, [example]).backward()
        for square, parameter in zip(squares, parameters):
            if parameter.grad is not None:
                square += parameter.grad.detach().pow(2)
    model.zero_grad(set_to_none=True)
    model.train(was_training)
    return [square / len(examples) for square in squares]


# --------------------------------------------------------------------------------------------------
# The data: replay
# --------------------------------------------------------------------------------------------------


class Replay(Regularizer):
    """Mix earlier data into training so the model keeps doing what it did before.

    ``share`` is the fraction of the training set that replayed examples make up after mixing.
    They come from the training splits of earlier finished cycles of the project (the default) or
    from a data source (``source: {type: jsonl, path: general.jsonl, fields: {...}}``, general data
    of the kind the model was pretrained on). Examples already in this cycle's training set are not
    drawn twice, and an example whose input sits in validation or test is refused, so replay never
    leaks held-out data into training.
    """

    name = "replay"

    class Options(Options):
        share: float = Field(0.2, gt=0, lt=1, description="fraction of the mixed training set")
        source: dict[str, Any] | None = Field(
            None, description="a data source (type, path, fields); default: earlier cycles")
        weight: float = Field(1.0, gt=0, description="training weight of a replayed example")

        @field_validator("source")
        @classmethod
        def _has_type(cls, source: dict[str, Any] | None) -> dict[str, Any] | None:
            if source is not None and "type" not in source:
                raise ValueError("needs a type (the format, e.g. jsonl or csv) and a path")
            return source

    def setup(self, session: Any) -> None:
        context = session.context
        if self.options.source is not None:
            pool, origin = source_examples(self.options.source, context), "source"
        else:
            pool, origin = earlier_training_examples(context), "earlier cycles"
        present = {example.id for example in session.train}
        held_out = held_out_keys(context)
        candidates = [example for example in pool if example.id not in present
                      and example.target is not None and trainable(example, context)]
        allowed = [example for example in candidates if example.split_key not in held_out]
        wanted = round(self.options.share / (1 - self.options.share) * len(session.train))
        chosen = random.Random(context.seed).sample(allowed, min(wanted, len(allowed)))
        for example in chosen:
            example.split = "train"
            example.weight = self.options.weight
            example.provenance = {"kind": "replay", "from": origin,
                                  "original": example.provenance}
        session.train.extend(chosen)
        session.report[self.name] = {"added": len(chosen), "wanted": wanted, "pool": len(allowed),
                                     "refused_held_out": len(candidates) - len(allowed),
                                     "from": origin}


def previous_cycle_id(context: "CycleContext") -> int | None:
    """The cycle that trained the start model, when training continues from one."""
    if context.store is None:
        return None
    row = context.store.one("SELECT cycle_id FROM models WHERE path = ? ORDER BY id DESC LIMIT 1",
                            [context.start_model])
    return int(row["cycle_id"]) if row else None


def earlier_training_examples(context: "CycleContext",
                              cycle_ids: list[int] | None = None) -> list[Example]:
    """Training examples of earlier finished cycles of the project (or of ``cycle_ids``), once
    each."""
    import json

    if context.store is None:
        return []
    if cycle_ids is None:
        rows = context.store.query(
            "SELECT e.* FROM examples e JOIN cycles c ON c.id = e.cycle_id WHERE e.split = 'train' "
            "AND c.status = 'done' AND c.project = ? AND c.id != ? ORDER BY e.cycle_id, e.id",
            [context.config.project, context.cycle_id])
    else:
        marks = ",".join("?" * len(cycle_ids))
        rows = context.store.query(f"SELECT * FROM examples WHERE split = 'train' AND cycle_id IN "
                                   f"({marks}) ORDER BY cycle_id, id", cycle_ids)
    examples: dict[str, Example] = {}
    for row in rows:
        examples.setdefault(row["id"], Example(
            input=row["input"], target=row["target"], weight=row["weight"],
            source=row["source"] or "", split="train", id=row["id"],
            provenance=json.loads(row["provenance"]) if row["provenance"] else {}))
    return list(examples.values())


def source_examples(source: dict[str, Any], context: "CycleContext") -> list[Example]:
    """Every example of a data source configured like the ones under ``data.sources``."""
    from tuneloop import registries
    from tuneloop.config import SourceRef, instantiate

    reference = SourceRef.model_validate(source)
    return list(instantiate(registries.build(), "data_sources", reference, context.config).load())


def held_out_keys(context: "CycleContext") -> set[str]:
    """Split keys (inputs or groups) assigned to validation or test in this project."""
    if context.store is None:
        return set()
    return {key for key, split in context.store.split_assignments().items()
            if split in ("validation", "test")}


def trainable(example: Example, context: "CycleContext") -> bool:
    """Whether this cycle's trainer can train on ``example``: a target, and for single-label
    classification a label in the label set."""
    if example.target is None:
        return False
    if context.labels is None:
        return True
    return example.target in set(context.labels) or _multi_label_known(example.target, context)


def _multi_label_known(target: str, context: "CycleContext") -> bool:
    options = (context.config.trainer_ref.options or {})
    if not options.get("multi_label"):
        return False
    separator = options.get("label_separator", ",")
    known = {part.strip() for label in context.labels or [] for part in label.split(separator)}
    return all(part.strip() in known for part in target.split(separator) if part.strip())


# --------------------------------------------------------------------------------------------------
# Callbacks: early stopping
# --------------------------------------------------------------------------------------------------


class EarlyStopping(Regularizer):
    """Stop training when a validation metric has not improved for ``patience`` evaluations.

    ``metric`` defaults to ``training.select_metric``; an improvement must exceed ``min_delta``.
    The best checkpoint is still the one ``select_metric`` chose. A resumed run counts the
    evaluations the interrupted run made, so stopping does not depend on an interruption.
    """

    name = "early_stopping"

    class Options(Options):
        metric: str | None = Field(None, description="validation figure; default: select_metric")
        patience: int = Field(3, ge=1, description="evaluations without improvement")
        min_delta: float = Field(0.0, ge=0)

    def __init__(self, options: Any = None):
        super().__init__(options)
        self.report: dict[str, Any] = {}
        self.greater_is_better: bool | None = None

    def setup(self, session: Any) -> None:
        context = session.context
        metric = self.options.metric or context.select_metric
        self.greater_is_better = metric != "loss" and next(
            (component.higher_is_better for component in context.metrics
             if component.name == metric), True)
        session.report[self.name] = self.report

    def callbacks(self) -> list[Any]:
        return [early_stopping_callback(self.options, self.greater_is_better, self.report)]


def early_stopping_callback(options: Any, greater_is_better: bool | None,
                            report: dict[str, Any]) -> Any:
    from transformers import TrainerCallback

    class EarlyStoppingCallback(TrainerCallback):
        def __init__(self) -> None:
            self.best: float | None = None
            self.waited = 0

        def name(self, args: Any) -> str:
            return f"eval_{options.metric or args.metric_for_best_model or 'loss'}"

        def greater(self, args: Any) -> bool:
            if greater_is_better is not None:
                return greater_is_better
            return (options.metric or args.metric_for_best_model or "loss") != "loss"

        def on_train_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
            if not args.eval_strategy or str(args.eval_strategy) in ("no", "IntervalStrategy.NO"):
                raise TuneloopError("early_stopping needs validation during training: a "
                                    "validation split and training.eval_every")
            for entry in state.log_history:  # a resumed run: count what it already saw
                if self.name(args) in entry:
                    self.observe(float(entry[self.name(args)]), args)

        def observe(self, value: float, args: Any) -> bool:
            """Record one evaluation; whether patience has run out."""
            better = self.best is None or (
                value > self.best + options.min_delta if self.greater(args)
                else value < self.best - options.min_delta)
            if better:
                self.best, self.waited = value, 0
            else:
                self.waited += 1
            return self.waited >= options.patience

        def on_evaluate(self, args: Any, state: Any, control: Any,
                        metrics: dict[str, float] | None = None, **kwargs: Any) -> None:
            name = self.name(args)
            if not metrics or name not in metrics:
                there = ", ".join(key.removeprefix("eval_") for key in metrics or {})
                raise TuneloopError(f'early_stopping: "{name.removeprefix("eval_")}" is not a '
                                    f"validation figure (there are: {there})")
            report.update({"metric": name.removeprefix("eval_"), "patience": options.patience})
            if self.observe(float(metrics[name]), args):
                control.should_training_stop = True
                report.update({"stopped_at_step": state.global_step, "best": self.best})

    return EarlyStoppingCallback()


@hookimpl
def register_regularizers(register):
    for regularizer in (WeightDecay, LabelSmoothing, GradientClipping, Dropout, L2SP, EWC, Replay,
                        EarlyStopping):
        register(regularizer)
