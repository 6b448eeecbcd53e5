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

import dataclasses
import math
from collections import Counter
from typing import TYPE_CHECKING, Any, Callable, Literal, Sequence

from pydantic import Field

from tuneloop.components import Example, Options, Prediction, Regularizer, Trainer, TrainResult
from tuneloop.errors import DataError, TuneloopError
from tuneloop.plugins.trainers.recipe import TaskRecipe

if TYPE_CHECKING:  # pragma: no cover
    import numpy
    import torch

    from tuneloop.context import CycleContext


class ClassificationOptions(Options):
    multi_label: bool = False
    label_separator: str = Field(",", min_length=1, description="between labels of one target")
    threshold: float = Field(0.5, gt=0, lt=1, description="multi-label: probability to predict")
    class_weights: Literal["balanced"] | dict[str, float] | None = None


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
        return common.train(context, labelled, regularizers, recipe)

    def predict(self, model_dir: str, examples: list[Example],
                context: "CycleContext") -> list[Prediction]:
        """Each example's label(s), every label's probability, the loss on its target."""
        import numpy as np
        import torch
        from transformers import AutoModelForSequenceClassification, AutoTokenizer

        from tuneloop.plugins.trainers import adjustments, common

        with common.quiet_transformers_progress(), common.quiet_loading():
            tokenizer = AutoTokenizer.from_pretrained(model_dir)
            model = adjustments.load_pretrained(AutoModelForSequenceClassification, model_dir)
        device = common.device()
        model.to(device).eval()
        label_names = [model.config.id2label[index] for index in range(model.config.num_labels)]
        multi_label = model.config.problem_type == "multi_label_classification"

        texts = [example.input for example in examples]
        batches = common.batches_by_length(texts, context.config.training.eval_batch_size)
        probabilities = np.zeros((len(examples), len(label_names)), dtype=np.float64)
        with context.progress.task("predicting", len(batches)) as advance, torch.inference_mode():
            for batch in batches:
                encoded = tokenizer([texts[index] for index in batch], truncation=True,
                                    max_length=context.config.model.max_length, padding=True,
                                    return_tensors="pt").to(device)
                logits = model(**encoded).logits.float()
                scores = torch.sigmoid(logits) if multi_label else torch.softmax(logits, dim=-1)
                probabilities[batch] = scores.cpu().numpy()
                advance(1)
        if multi_label:
            return multi_label_predictions(probabilities, examples, label_names, self.options)
        return predictions_from_probabilities(probabilities, examples, label_names)


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

        from tuneloop.plugins.trainers import adjustments
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
        return model, AutoTokenizer.from_pretrained(model_dir)

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
        figures: dict[str, float] = {}
        for metric in self.context.metrics:
            figures.update({name: float(value) for name, value
                            in metric.compute(predictions, examples).items()})
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
                                   label_names: list[str]) -> list[Prediction]:
    """Turn one row of label probabilities per example into predictions.

    ``extra["loss"]`` is the cross-entropy against the example's target when the model knows the
    target label: per-example losses let a review sampler or a report find the worst mistakes.
    """
    predictions = []
    for example, row in zip(examples, probabilities):
        best = int(row.argmax())
        scores = {label: float(probability) for label, probability in zip(label_names, row)}
        extra = {}
        if example.target in scores:
            extra["loss"] = -math.log(max(scores[example.target], 1e-12))
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
