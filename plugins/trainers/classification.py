"""``sequence_classification``: finetune an encoder (BERT, MiniLM...) to give each input one label.

The label set comes from ``context.labels``. A start model trained on the same label set keeps its
classification head (in its own label order); any other start model, a plain encoder or a model
trained on other labels, gets a fresh head. Validation runs the configured metrics on the
validation split each ``training.eval_every`` and keeps the best checkpoint by
``training.select_metric``.

torch and transformers are imported inside the methods: registering this trainer stays cheap.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any, Callable, Sequence

from tuneloop.components import Example, Prediction, Regularizer, Trainer, TrainResult
from tuneloop.errors import DataError, TuneloopError

if TYPE_CHECKING:  # pragma: no cover
    import numpy
    import torch

    from tuneloop.context import CycleContext


class SequenceClassificationTrainer(Trainer):
    """Finetunes ``AutoModelForSequenceClassification`` with the shared training loop."""

    name = "sequence_classification"
    tasks = ("classification",)

    def train(self, context: "CycleContext", splits: dict[str, list[Example]],
              regularizers: list[Regularizer]) -> TrainResult:
        from tuneloop.plugins.trainers import common

        recipe = ClassificationRecipe(context)
        labelled = {name: recipe.labelled(splits.get(name) or [], name)
                    for name in ("train", "validation")}
        return common.train(context, labelled, regularizers, recipe)

    def predict(self, model_dir: str, examples: list[Example],
                context: "CycleContext") -> list[Prediction]:
        """Each example's most likely label, every label's probability, the loss on its target."""
        import numpy as np
        import torch
        from transformers import AutoModelForSequenceClassification, AutoTokenizer

        from tuneloop.plugins.trainers import common

        with common.quiet_transformers_progress():
            tokenizer = AutoTokenizer.from_pretrained(model_dir)
            model = AutoModelForSequenceClassification.from_pretrained(model_dir)
        device = common.device()
        model.to(device).eval()
        label_names = [model.config.id2label[index] for index in range(model.config.num_labels)]

        texts = [example.input for example in examples]
        batches = common.batches_by_length(texts, context.config.training.eval_batch_size)
        probabilities = np.zeros((len(examples), len(label_names)), dtype=np.float64)
        with context.progress.task("predicting", len(batches)) as advance, torch.inference_mode():
            for batch in batches:
                encoded = tokenizer([texts[index] for index in batch], truncation=True,
                                    max_length=context.config.model.max_length, padding=True,
                                    return_tensors="pt").to(device)
                logits = model(**encoded).logits.float()
                probabilities[batch] = torch.softmax(logits, dim=-1).cpu().numpy()
                advance(1)
        return predictions_from_probabilities(probabilities, examples, label_names)


class ClassificationRecipe:
    """The classification parts of the shared training loop (see ``common.TaskRecipe``).

    ``load`` fixes the label order (``label_names``): the start model's own order when it was
    trained on the same labels, else ``context.labels``. ``encode`` and validation use that order.
    """

    def __init__(self, context: "CycleContext"):
        if not context.labels:
            raise TuneloopError("classification needs a label set: set data.labels, or give the "
                                "examples targets")
        self.context = context
        self.label_names: list[str] = list(context.labels)

    def labelled(self, examples: Sequence[Example], split: str) -> list[Example]:
        """The examples with a target (unlabelled ones cannot be trained or scored); a target
        outside the label set is a data error naming the example."""
        known = set(self.label_names)
        for example in examples:
            if example.target is not None and example.target not in known:
                raise DataError(example.source or split, f'example {example.id} in the {split} '
                                f'split has label "{example.target}", which is not in the label '
                                f"set ({', '.join(self.label_names)})")
        return [example for example in examples if example.target is not None]

    def load(self, model_dir: str) -> tuple[Any, Any]:
        from transformers import AutoConfig, AutoModelForSequenceClassification, AutoTokenizer

        previous = trained_label_names(AutoConfig.from_pretrained(model_dir))
        if previous is not None and sorted(previous) == sorted(self.label_names):
            self.label_names = previous  # keep the trained head: its rows are these labels
        from tuneloop.plugins.trainers.common import quiet_loading

        with quiet_loading():
            model = AutoModelForSequenceClassification.from_pretrained(
                model_dir, num_labels=len(self.label_names),
                id2label=dict(enumerate(self.label_names)),
                label2id={label: index for index, label in enumerate(self.label_names)},
                ignore_mismatched_sizes=True)  # another label count: a fresh head
        if previous is not None and previous != self.label_names:
            reset_classification_head(model)  # same count, other labels: the old rows mean nothing
        return model, AutoTokenizer.from_pretrained(model_dir)

    def encode(self, example: Example, tokenizer: Any) -> dict[str, Any]:
        features = dict(tokenizer(example.input, truncation=True,
                                  max_length=self.context.config.model.max_length))
        features["labels"] = self.label_names.index(example.target)
        return features

    def collator(self, tokenizer: Any) -> Callable[[list[dict[str, Any]]], dict[str, Any]]:
        from transformers import DataCollatorWithPadding

        return DataCollatorWithPadding(tokenizer)

    def position_losses(self, logits: "torch.Tensor", labels: "torch.Tensor",
                        label_smoothing: float) -> tuple["torch.Tensor", "torch.Tensor"]:
        return cross_entropy_per_example(logits, labels, label_smoothing)

    def validation_scorer(self) -> Callable[[Any, list[Example]], dict[str, float]]:
        """Validation figures: every configured metric on the labels the logits predict."""
        return self.score_validation

    def score_validation(self, logits: "numpy.ndarray",
                         examples: list[Example]) -> dict[str, float]:
        predictions = predictions_from_probabilities(softmax(logits), examples, self.label_names)
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


def cross_entropy_per_example(
        logits: "torch.Tensor", labels: "torch.Tensor",
        label_smoothing: float = 0.0) -> tuple["torch.Tensor", "torch.Tensor"]:
    """One cross-entropy per example, and a mask in which every example counts."""
    import torch.nn.functional as F

    losses = F.cross_entropy(logits.float(), labels, reduction="none",
                             label_smoothing=label_smoothing)
    return losses, labels >= 0


def trained_label_names(config: Any) -> list[str] | None:
    """The labels a sequence-classification checkpoint was trained on, in head order; else None."""
    architectures = getattr(config, "architectures", None) or []
    if not any(name.endswith("ForSequenceClassification") for name in architectures):
        return None
    return [str(config.id2label[index]) for index in range(config.num_labels)]


def reset_classification_head(model: Any) -> None:
    """Re-initialise every layer outside the encoder (the head), whatever the model calls it."""
    encoder = model.base_model
    for child in model.children():
        if child is encoder:
            continue
        for module in child.modules():
            if hasattr(module, "reset_parameters"):
                module.reset_parameters()


def softmax(logits: "numpy.ndarray") -> "numpy.ndarray":
    import numpy as np

    shifted = np.asarray(logits, dtype=np.float64)
    shifted = shifted - shifted.max(axis=-1, keepdims=True)
    exponentials = np.exp(shifted)
    return exponentials / exponentials.sum(axis=-1, keepdims=True)


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
