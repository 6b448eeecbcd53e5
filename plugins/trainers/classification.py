"""``sequence_classification``: finetune an encoder (BERT, MiniLM...) to label each input.

Single-label (the default): each input gets one label, trained with cross-entropy.
Multi-label (``multi_label: true``): a target lists any number of labels joined by
``label_separator`` (``"billing,refund"``); each label is a yes/no decision (binary cross-entropy),
and the prediction lists the labels whose probability reaches ``threshold`` (at least the most
likely one), in label-set order.

``class_weights`` weigh the training loss for imbalanced labels: ``balanced`` gives each label
``n_examples / (n_labels * n_with_label)`` (so every label counts as much in total), or a mapping
gives each label's weight; for multi-label, ``balanced`` weighs each label's positives by its
negatives over its positives. Validation and test losses stay unweighted.

The label set comes from ``context.labels`` (for multi-label, every label named in any target).
A start model trained on the same label set keeps its classification head (in its own label
order); any other start model, a plain encoder or a model trained on other labels, gets a fresh
head. Validation runs the configured metrics on the validation split each ``training.eval_every``
and keeps the best checkpoint by ``training.select_metric``.

torch and transformers are imported inside the methods: registering this trainer stays cheap.
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
from collections import Counter
from typing import TYPE_CHECKING, Any, Callable, Literal, Sequence

from pydantic import Field, field_validator

from tuneloop.components import Example, Options, Prediction, Regularizer, Trainer, TrainResult
from tuneloop.errors import DataError, TuneloopError
from tuneloop.plugins.trainers.recipe import TaskRecipe

if TYPE_CHECKING:  # pragma: no cover
    import numpy
    import torch

    from tuneloop.context import CycleContext


class ClassificationOptions(Options):
    """The trainer's options; the recipe ones (``steps``, ``head_learning_rate``, ``patience``,
    ``evaluations``) are explained in ``tuneloop.plugins.trainers.budget``."""

    multi_label: bool = False
    label_separator: str = Field(",", min_length=1, description="between labels of one target")
    threshold: float = Field(0.5, gt=0, lt=1, description="multi-label: probability to predict")
    class_weights: Literal["balanced"] | dict[str, float] | None = None
    steps: Literal["auto", "epochs"] | int = Field(
        "auto", description="optimizer steps: auto sizes a budget to the data (training.epochs, "
        "when the config sets it, wins); epochs: training.epochs; or a number")
    head_learning_rate: float | Literal["auto"] | None = Field(
        "auto", description="learning rate of a newly initialised head (auto: 30 x "
        "training.learning_rate, at most 3e-3 but never below it; null: training.learning_rate)")
    patience: int | None = Field(
        4, ge=1, description="step budget: stop after this many validations without improvement "
        "(null: train the whole budget)")
    evaluations: int = Field(16, ge=1, description="step budget: validations over the budget")
    calibrate: bool = Field(True, description="fit a temperature on validation so confidences "
                            "(review order, ece) match accuracy")
    pooling: Literal["auto", "mean", "cls"] = Field(
        "auto", description="what the head reads: mean of the token states, or the first "
        "token's pooler; auto: mean for a sentence-transformers encoder (see trainers.pooling)")
    threads: int | None = Field(None, ge=1, description="torch CPU threads (default: the free "
                                "usable cores; TUNELOOP_THREADS wins)")

    @field_validator("steps")
    @classmethod
    def _positive_steps(cls, value: Any) -> Any:
        if isinstance(value, int) and value < 1:
            raise ValueError("steps is auto, epochs or a number of steps (1 or more)")
        return value

    @field_validator("head_learning_rate")
    @classmethod
    def _positive_rate(cls, value: Any) -> Any:
        if isinstance(value, float) and not value > 0:
            raise ValueError("head_learning_rate must be above 0 (or auto, or null)")
        return value


@dataclasses.dataclass
class EarlyStopSettings:
    """What ``early_stopping_callback`` reads (the ``early_stopping`` regularizer's options):
    the recipe stops on ``training.select_metric``."""

    patience: int
    metric: str | None = None
    min_delta: float = 0.0


class SequenceClassificationTrainer(Trainer):
    """Finetunes ``AutoModelForSequenceClassification`` with the shared training loop."""

    name = "sequence_classification"
    tasks = ("classification",)
    Options = ClassificationOptions
    options: ClassificationOptions

    def train(self, context: "CycleContext", splits: dict[str, list[Example]],
              regularizers: list[Regularizer]) -> TrainResult:
        from tuneloop.plugins.trainers import common

        recipe = ClassificationRecipe(context, self.options)
        labelled = {name: recipe.labelled(common.supervised_examples(splits.get(name) or []),
                                          name)
                    for name in ("train", "validation")}
        recipe.fit_class_weights(labelled["train"])
        result = common.train(context, labelled, regularizers, recipe)
        if not self.options.multi_label:
            figures = calibrate(result.model_dir, labelled["validation"], context,
                                self.options.calibrate)
            if isinstance(result.extra.get("recipe"), dict):
                result.extra["recipe"].update(figures)
        return result

    def predict(self, model_dir: str, examples: list[Example],
                context: "CycleContext") -> list[Prediction]:
        """Each example's label(s), every label's probability (single-label: softmax of the
        logits over the temperature fitted on validation), the loss on its target, and the
        input's embedding (mean of the last hidden states) for the review samplers."""
        import numpy as np

        model, tokenizer = load_for_prediction(model_dir)
        label_names = [model.config.id2label[index] for index in range(model.config.num_labels)]
        multi_label = model.config.problem_type == "multi_label_classification"
        logits, embeddings = forward_batches(model, tokenizer, [e.input for e in examples],
                                             context, progress=True)
        if multi_label:
            probabilities = sigmoid(logits)
            predictions = multi_label_predictions(probabilities, examples, label_names,
                                                  self.options)
        else:
            temperature = float(getattr(model.config, TEMPERATURE_KEY, None) or 1.0)
            predictions = predictions_from_probabilities(softmax(logits / temperature), examples,
                                                         label_names, softmax(logits))
        for prediction, row in zip(predictions, embeddings):
            prediction.embedding = np.asarray(row, dtype=np.float32)
        return predictions


# --------------------------------------------------------------------------------------------------
# Prediction and calibration
# --------------------------------------------------------------------------------------------------

TEMPERATURE_KEY = "tuneloop_temperature"


def load_for_prediction(model_dir: str) -> tuple[Any, Any]:
    """The saved classifier (pooled as it was trained) and its tokenizer, in eval mode on this
    process's device."""
    from transformers import AutoTokenizer

    from tuneloop.plugins.trainers import common, pooling

    with common.quiet_transformers_progress(), common.quiet_loading():
        tokenizer = AutoTokenizer.from_pretrained(model_dir)
        model = pooling.load_classifier(model_dir)
    model.to(common.device()).eval()
    return model, tokenizer


def forward_batches(model: Any, tokenizer: Any, texts: list[str], context: "CycleContext",
                    progress: bool = False) -> tuple["numpy.ndarray", "numpy.ndarray"]:
    """Logits and embeddings (masked mean of the last hidden states) of ``texts``, in their
    order, computed in batches of similar length (``training.eval_batch_size``)."""
    import numpy as np
    import torch

    from tuneloop.plugins.trainers import common

    device = next(model.parameters()).device
    batches = common.batches_by_length(texts, context.config.training.eval_batch_size)
    logits = np.zeros((len(texts), model.config.num_labels), dtype=np.float64)
    embeddings = np.zeros((len(texts), model.config.hidden_size), dtype=np.float32)
    task = (context.progress.task("predicting", len(batches)) if progress
            else contextlib.nullcontext(lambda steps: None))
    with task as advance, torch.inference_mode():
        for batch in batches:
            encoded = tokenizer([texts[index] for index in batch], truncation=True,
                                max_length=context.config.model.max_length, padding=True,
                                return_tensors="pt").to(device)
            outputs = model(**encoded, output_hidden_states=True)
            logits[batch] = outputs.logits.float().cpu().numpy()
            mask = encoded["attention_mask"].unsqueeze(-1).float()
            last = outputs.hidden_states[-1].float()
            embeddings[batch] = ((last * mask).sum(dim=1) / mask.sum(dim=1).clamp(min=1)
                                 ).cpu().numpy()
            advance(1)
    return logits, embeddings


def fit_temperature(logits: "numpy.ndarray", targets: "numpy.ndarray") -> float:
    """The temperature that minimises the negative log-likelihood of ``targets`` under
    ``softmax(logits / T)`` (Guo et al. 2017, "On Calibration of Modern Neural Networks"), searched
    on log T in [1/4, 20] with scipy's bounded scalar minimiser (a validation split the model
    gets entirely right would otherwise sharpen every probability towards 1)."""
    import numpy as np
    from scipy.optimize import minimize_scalar

    rows = np.arange(len(targets))

    def nll(log_temperature: float) -> float:
        scaled = logits / math.exp(log_temperature)
        scaled = scaled - scaled.max(axis=1, keepdims=True)
        log_sum = np.log(np.exp(scaled).sum(axis=1))
        return float((log_sum - scaled[rows, targets]).mean())

    found = minimize_scalar(nll, bounds=(-math.log(4), math.log(20)), method="bounded")
    return float(math.exp(found.x))


def calibrate(model_dir: str, validation: list[Example], context: "CycleContext",
              enabled: bool) -> dict[str, float]:
    """Fit the temperature on the validation split and record it in the saved model's config
    (``tuneloop_temperature``; 1.0 without validation or when ``calibrate`` is off), so every
    later prediction's probabilities are calibrated. Returns the figures for the cycle record."""
    import numpy as np

    from tuneloop import distributed

    if not distributed.is_main_process():
        return {}
    model, tokenizer = load_for_prediction(model_dir)
    temperature = 1.0
    label_index = {model.config.id2label[index]: index for index in range(model.config.num_labels)}
    known = [example for example in validation if example.target in label_index]
    if enabled and known:
        logits, _ = forward_batches(model, tokenizer, [example.input for example in known],
                                    context)
        targets = np.asarray([label_index[example.target] for example in known])
        temperature = fit_temperature(logits, targets)
    setattr(model.config, TEMPERATURE_KEY, temperature)
    model.config.save_pretrained(model_dir)
    return {"temperature": round(temperature, 4)}


class ClassificationRecipe(TaskRecipe):
    """The classification parts of the shared training loop (see ``common.TaskRecipe``).

    ``load`` fixes the label order (``label_names``): the start model's own order when it was
    trained on the same labels, else the label set. ``encode`` and validation use that order.
    """

    def __init__(self, context: "CycleContext", options: ClassificationOptions | None = None):
        if not context.labels:
            raise TuneloopError("classification needs a label set: set data.labels, or give the "
                                "examples targets")
        self.context = context
        self.options = options or ClassificationOptions()
        self.multi_label = self.options.multi_label
        if self.multi_label:
            self.label_names = sorted({label for target in context.labels
                                       for label in self.split_target(target)})
        else:
            self.label_names = list(context.labels)
        self.class_weights: dict[str, float] | None = None
        self._weight_tensor: "torch.Tensor | None" = None
        self.fresh_head = True  # load() says whether the start model's head is kept
        self._head_parameters: set[int] = set()
        self._callbacks: list[Any] = []
        self._report: dict[str, Any] = {}

    # -- labels --------------------------------------------------------------------------------

    def split_target(self, target: str) -> list[str]:
        return [part.strip() for part in target.split(self.options.label_separator) if part.strip()]

    def canonical(self, target: str) -> str:
        """A multi-label target with its labels in label-set order (what ``predict`` writes)."""
        present = set(self.split_target(target))
        return self.options.label_separator.join(label for label in self.label_names
                                                 if label in present)

    def labelled(self, examples: Sequence[Example], split: str) -> list[Example]:
        """The examples with a target (unlabelled ones cannot be trained or scored); a target
        outside the label set is a data error naming the example."""
        known = set(self.label_names)
        for example in examples:
            if example.target is None:
                continue
            labels = self.split_target(example.target) if self.multi_label else [example.target]
            unknown = [label for label in labels if label not in known]
            if unknown or not labels:
                raise DataError(example.source or split, f'example {example.id} in the {split} '
                                f'split has label "{example.target}", which is not in the label '
                                f"set ({', '.join(self.label_names)})")
        return [example for example in examples if example.target is not None]

    def fit_class_weights(self, train: Sequence[Example]) -> None:
        """Work out ``class_weights`` from the training labels (``balanced``) or the options."""
        setting = self.options.class_weights
        if setting is None:
            return
        if isinstance(setting, dict):
            unknown = sorted(set(setting) - set(self.label_names))
            if unknown:
                raise TuneloopError(f"training.trainer.class_weights: {', '.join(unknown)} not in "
                                    f"the label set ({', '.join(self.label_names)})")
            self.class_weights = {label: float(setting.get(label, 1.0))
                                  for label in self.label_names}
            return
        counts: Counter[str] = Counter()
        for example in train:
            counts.update(self.split_target(example.target or "") if self.multi_label
                          else [example.target])
        total = len(train)
        if self.multi_label:  # positives weighed by negatives / positives, per label
            self.class_weights = {label: (total - counts[label]) / counts[label]
                                  if counts[label] else 1.0 for label in self.label_names}
        else:
            present = [label for label in self.label_names if counts[label]]
            self.class_weights = {label: total / (len(present) * counts[label])
                                  if counts[label] else 1.0 for label in self.label_names}

    # -- the recipe ------------------------------------------------------------------------------

    def load(self, model_dir: str) -> tuple[Any, Any]:
        from transformers import AutoConfig, AutoModelForSequenceClassification, AutoTokenizer

        from tuneloop.plugins.trainers import adjustments, pooling
        from tuneloop.plugins.trainers.common import quiet_loading

        previous = trained_label_names(AutoConfig.from_pretrained(model_dir))
        if previous is not None and sorted(previous) == sorted(self.label_names):
            self.label_names = previous  # keep the trained head: its rows are these labels
        problem_type = ("multi_label_classification" if self.multi_label
                        else "single_label_classification")
        with quiet_loading():
            model = adjustments.load_pretrained(
                AutoModelForSequenceClassification, model_dir,
                num_labels=len(self.label_names), problem_type=problem_type,
                id2label=dict(enumerate(self.label_names)),
                label2id={label: index for index, label in enumerate(self.label_names)},
                ignore_mismatched_sizes=True)  # another label count: a fresh head
        if previous is not None and previous != self.label_names:
            reset_classification_head(model)  # same count, other labels: the old rows mean nothing
        self._report["pooling"] = pooling.apply(
            model, pooling.wanted(self.options.pooling, model_dir, model.config))
        self.fresh_head = (previous is None or previous != self.label_names
                           or self.context.config.training.reinit_head)
        prefix = f"{model.base_model_prefix}."
        self._head_parameters = {id(parameter) for name, parameter in model.named_parameters()
                                 if not name.startswith(prefix)}
        return model, AutoTokenizer.from_pretrained(model_dir)

    # -- the step budget, the head's learning rate, early stopping ------------------------------

    def configure_arguments(self, args: dict[str, Any], train_examples: int) -> None:
        """A step budget sized to the data, validated over the budget, stopped early when
        validation stops improving (``tuneloop.plugins.trainers.budget``)."""
        from tuneloop.plugins.trainers import budget
        from tuneloop.plugins.regularizers import early_stopping_callback

        training = self.context.config.training
        self._report.update(budget.configure(args, self.options.steps, self.options.evaluations,
                                             training, train_examples))
        self._callbacks = []
        configured = {ref.name for ref in training.regularizers}
        if (self._report["budget"] == "steps" and self.options.patience is not None
                and "eval_strategy" in args and "early_stopping" not in configured):
            stop = EarlyStopSettings(patience=self.options.patience)
            stopped: dict[str, Any] = {}
            self._callbacks.append(early_stopping_callback(
                stop, self.greater_is_better(self.context.select_metric), stopped))
            self._report["early_stopping"] = stopped
            self._report["patience"] = self.options.patience

    def callbacks(self) -> list[Any]:
        return list(self._callbacks)

    def head_rate(self) -> float | None:
        """The learning rate of a newly initialised head, or None (the configured rate)."""
        setting = self.options.head_learning_rate
        if setting is None or not self.fresh_head:
            return None
        if setting == "auto":  # 30 times the body's, up to 3e-3 (never below the body's)
            rate = self.context.config.training.learning_rate
            return max(rate, min(30 * rate, 3e-3))
        return float(setting)

    def learning_rates(self, model: Any) -> dict[str, float]:
        rate = self.head_rate()
        if rate is None:
            return {}
        self._report["head_learning_rate"] = rate
        return {name: rate for name, parameter in model.named_parameters()
                if id(parameter) in self._head_parameters and parameter.requires_grad}

    def report(self) -> dict[str, Any]:
        return dict(self._report)

    def encode(self, example: Example, tokenizer: Any) -> dict[str, Any]:
        features = dict(tokenizer(example.input, truncation=True,
                                  max_length=self.context.config.model.max_length))
        if self.multi_label:
            present = set(self.split_target(example.target or ""))
            features["labels"] = [1.0 if label in present else 0.0 for label in self.label_names]
        else:
            features["labels"] = self.label_names.index(example.target)
        return features

    def collator(self, tokenizer: Any) -> Callable[[list[dict[str, Any]]], dict[str, Any]]:
        from transformers import DataCollatorWithPadding

        return DataCollatorWithPadding(tokenizer)

    def losses(self, model: Any, inputs: dict[str, Any],
               label_smoothing: float) -> tuple["torch.Tensor", "torch.Tensor", Any]:
        labels = inputs.pop("labels")
        outputs = model(**inputs)
        weights = self.weight_tensor(outputs.logits.device) if model.training else None
        if self.multi_label:
            losses, mask = binary_cross_entropy_per_label(outputs.logits, labels, label_smoothing,
                                                          weights)
        else:
            losses, mask = cross_entropy_per_example(outputs.logits, labels, label_smoothing,
                                                     weights)
        return losses, mask, outputs

    def position_losses(self, logits: "torch.Tensor", labels: "torch.Tensor",
                        label_smoothing: float) -> tuple["torch.Tensor", "torch.Tensor"]:
        if self.multi_label:
            return binary_cross_entropy_per_label(logits, labels, label_smoothing)
        return cross_entropy_per_example(logits, labels, label_smoothing)

    def weight_tensor(self, device: Any) -> "torch.Tensor | None":
        if self.class_weights is None:
            return None
        import torch

        if self._weight_tensor is None or self._weight_tensor.device != device:
            self._weight_tensor = torch.tensor([self.class_weights[label]
                                                for label in self.label_names],
                                               dtype=torch.float32, device=device)
        return self._weight_tensor

    def validation_scorer(self) -> Callable[[Any, list[Example]], dict[str, float]]:
        """Validation figures: every configured metric on the labels the logits predict."""
        return self.score_validation

    def score_validation(self, logits: "numpy.ndarray",
                         examples: list[Example]) -> dict[str, float]:
        if self.multi_label:
            examples = [dataclasses.replace(example, target=self.canonical(example.target or ""))
                        for example in examples]
            predictions = multi_label_predictions(sigmoid(logits), examples, self.label_names,
                                                  self.options)
        else:
            predictions = predictions_from_probabilities(softmax(logits), examples,
                                                         self.label_names)
        from tuneloop.interface_checks import metric_figures

        figures: dict[str, float] = {}
        for metric in self.context.metrics:  # a broken metric is blamed on its own plugin
            figures.update(metric_figures(metric, predictions, examples))
        select = self.context.select_metric
        if select != "loss" and select not in figures:
            raise TuneloopError(f'training.select_metric: "{select}" is not a validation figure; '
                                f"the metrics give {', '.join(figures) or 'none'} (or use loss)")
        return figures

    def greater_is_better(self, select_metric: str) -> bool:
        if select_metric == "loss":
            return False
        return next((metric.higher_is_better for metric in self.context.metrics
                     if metric.name == select_metric), True)


# --------------------------------------------------------------------------------------------------
# Losses
# --------------------------------------------------------------------------------------------------


def cross_entropy_per_example(
        logits: "torch.Tensor", labels: "torch.Tensor", label_smoothing: float = 0.0,
        class_weights: "torch.Tensor | None" = None) -> tuple["torch.Tensor", "torch.Tensor"]:
    """One cross-entropy per example (times its label's weight), and a mask in which every
    example counts."""
    import torch.nn.functional as F

    losses = F.cross_entropy(logits.float(), labels, weight=class_weights, reduction="none",
                             label_smoothing=label_smoothing)
    return losses, labels >= 0


def binary_cross_entropy_per_label(
        logits: "torch.Tensor", labels: "torch.Tensor", label_smoothing: float = 0.0,
        positive_weights: "torch.Tensor | None" = None) -> tuple["torch.Tensor", "torch.Tensor"]:
    """One binary cross-entropy per example and label (``[batch, labels]``), every one counting.

    Label smoothing pulls each 0/1 target ``label_smoothing / 2`` towards the middle.
    """
    import torch
    import torch.nn.functional as F

    targets = labels.float() * (1 - label_smoothing) + label_smoothing / 2
    losses = F.binary_cross_entropy_with_logits(logits.float(), targets, reduction="none",
                                                pos_weight=positive_weights)
    return losses, torch.ones_like(losses, dtype=torch.bool)


# --------------------------------------------------------------------------------------------------
# From probabilities to predictions
# --------------------------------------------------------------------------------------------------


def trained_label_names(config: Any) -> list[str] | None:
    """The labels a sequence-classification checkpoint was trained on, in head order; else None."""
    architectures = getattr(config, "architectures", None) or []
    if not any(name.endswith("ForSequenceClassification") for name in architectures):
        return None
    return [str(config.id2label[index]) for index in range(config.num_labels)]


def reset_classification_head(model: Any) -> None:
    """Re-initialise every layer outside the encoder (the head), whatever the model calls it."""
    from tuneloop.plugins.trainers.adjustments import reinit_head

    reinit_head(model)


def softmax(logits: "numpy.ndarray") -> "numpy.ndarray":
    import numpy as np

    shifted = np.asarray(logits, dtype=np.float64)
    shifted = shifted - shifted.max(axis=-1, keepdims=True)
    exponentials = np.exp(shifted)
    return exponentials / exponentials.sum(axis=-1, keepdims=True)


def sigmoid(logits: "numpy.ndarray") -> "numpy.ndarray":
    import numpy as np

    return 1.0 / (1.0 + np.exp(-np.asarray(logits, dtype=np.float64)))


def predictions_from_probabilities(probabilities: "numpy.ndarray", examples: Sequence[Example],
                                   label_names: list[str],
                                   trained: "numpy.ndarray | None" = None) -> list[Prediction]:
    """Turn one row of label probabilities per example into predictions.

    ``extra["loss"]`` is the cross-entropy against the example's target when the model knows the
    target label: per-example losses let a review sampler or a report find the worst mistakes.
    It comes from ``trained`` when given (the uncalibrated probabilities: the loss training
    measured), else from ``probabilities``.
    """
    predictions = []
    for index, (example, row) in enumerate(zip(examples, probabilities)):
        best = int(row.argmax())
        scores = {label: float(probability) for label, probability in zip(label_names, row)}
        extra = {}
        if example.target in scores:
            source = row if trained is None else trained[index]
            extra["loss"] = -math.log(max(float(source[label_names.index(example.target)]),
                                          1e-12))
        predictions.append(Prediction(example_id=example.id, output=label_names[best],
                                      confidence=float(row[best]), scores=scores, extra=extra))
    return predictions


def multi_label_predictions(probabilities: "numpy.ndarray", examples: Sequence[Example],
                            label_names: list[str],
                            options: ClassificationOptions) -> list[Prediction]:
    """One row of per-label probabilities per example into predictions.

    The output lists the labels at or above ``threshold`` in label-set order (the most likely one
    when none is); ``confidence`` is the least sure of the label decisions, ``max(p, 1 - p)``, so a
    review sampler finds inputs where any one label is in doubt. ``extra["loss"]`` is the mean
    binary cross-entropy against the target's labels.
    """
    separator = options.label_separator
    predictions = []
    for example, row in zip(examples, probabilities):
        chosen = [label for label, probability in zip(label_names, row)
                  if probability >= options.threshold] or [label_names[int(row.argmax())]]
        scores = {label: float(probability) for label, probability in zip(label_names, row)}
        confidence = min(max(p, 1.0 - p) for p in scores.values())
        extra = {}
        if example.target is not None:
            present = {part.strip() for part in example.target.split(separator)}
            if present <= set(label_names):
                extra["loss"] = -sum(math.log(max(p if label in present else 1.0 - p, 1e-12))
                                     for label, p in scores.items()) / len(scores)
        predictions.append(Prediction(example_id=example.id, output=separator.join(chosen),
                                      confidence=float(confidence), scores=scores, extra=extra))
    return predictions
