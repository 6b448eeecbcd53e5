"""What one task contributes to the shared training loop (``common.train``): a ``TaskRecipe``.

The loop is the same for every task: load, encode, batch, compute a loss, validate, save. A recipe
says how each of those is done for its task; subclasses override what differs. This module imports
nothing heavy, so a trainer module can subclass it and still register cheaply.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

if TYPE_CHECKING:  # pragma: no cover
    import torch

    from tuneloop.components import Example


class TaskRecipe:
    """What one task contributes to the shared training loop. Subclasses override what differs.

    A recipe's ``losses`` returns one loss per scored position (``[batch]`` for classification,
    ``[batch, length]`` for language models), a mask of the positions that count, and the model's
    outputs; the loop turns them into the weighted mean that is trained on.
    """

    def load(self, model_dir: str) -> tuple[Any, Any]:
        """The model and tokenizer to start from."""
        raise NotImplementedError

    def encode(self, example: "Example", tokenizer: Any) -> dict[str, Any]:
        """One example's features (``input_ids``, ``attention_mask``, ``labels``...)."""
        raise NotImplementedError

    def collator(self,
                 tokenizer: Any) -> Callable[[list[dict[str, Any]]], dict[str, "torch.Tensor"]]:
        """Pads a batch of encoded examples into tensors (dynamic padding: to the batch's
        longest)."""
        raise NotImplementedError

    def position_losses(self, logits: "torch.Tensor", labels: "torch.Tensor",
                        label_smoothing: float) -> tuple["torch.Tensor", "torch.Tensor"]:
        """Each scored position's loss and a mask of the positions that count, ``[batch, ...]``."""
        raise NotImplementedError

    def losses(self, model: Any, inputs: dict[str, "torch.Tensor"],
               label_smoothing: float) -> tuple["torch.Tensor", "torch.Tensor", Any]:
        """The losses of one batch: run the model, score its logits against the labels."""
        labels = inputs.pop("labels")
        outputs = model(**inputs)
        losses, mask = self.position_losses(outputs.logits, labels, label_smoothing)
        return losses, mask, outputs

    def add_reference(self, features: list[dict[str, Any]], model: Any, tokenizer: Any) -> None:
        """Add what needs the untouched start model to the features (preference trainers store
        the reference model's log-probabilities here). Called before any adjustment; default:
        nothing."""

    def pack(self, features: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """The training features as the loader should see them (a causal LM may pack several
        into one row); default: unchanged. Must not depend on randomness: resuming re-packs."""
        return features

    def adjust_model(self, model: Any) -> Any:
        """Memory settings of the trainer's options (k-bit preparation, activation
        checkpointing), applied after the regularizers' ``prepare`` and before LoRA; return the
        model. Default: unchanged."""
        return model

    def validation_scorer(self) -> Callable[[Any, list["Example"]], dict[str, float]] | None:
        """Validation figures beyond the loss, from logits rows and their examples (``None``: the
        loss only, and evaluation keeps no logits)."""
        return None

    def evaluation_figures(self, model: Any, tokenizer: Any) -> dict[str, float]:
        """Validation figures computed with the model itself at each evaluation, beside the loss
        and the scorer's (the causal-LM recipe generates for a validation sample and scores it
        with the generation metrics); default: none."""
        return {}

    def pop_figures(self) -> dict[str, float]:
        """Figures the recipe gathered while training (preference rewards, say), logged with the
        training loss and then forgotten; default: none."""
        return {}

    def greater_is_better(self, select_metric: str) -> bool:
        """Whether a higher value of the selection metric is better."""
        return select_metric != "loss"

    def configure_arguments(self, args: dict[str, Any], train_examples: int) -> None:
        """Edit the ``TrainingArguments`` keywords the config gave (before the regularizers do),
        knowing how many examples train: a recipe that sizes its step budget to the data sets
        ``max_steps`` and the validation schedule here. Default: nothing."""

    def callbacks(self) -> list[Any]:
        """``transformers.TrainerCallback`` objects the recipe needs (early stopping, say)."""
        return []

    def learning_rates(self, model: Any) -> dict[str, float]:
        """Parameter name -> learning rate, for the parameters that train at a rate other than
        the configured one (a newly initialised head, say); default: none."""
        return {}

    def report(self) -> dict[str, Any]:
        """What the recipe decided (step budget, learning rates...), recorded with the cycle."""
        return {}

    def save(self, model: Any, tokenizer: Any, directory: Path, lora_save: str | None) -> None:
        """Save the trained model and its tokenizer (LoRA adapters merged or kept as configured)."""
        from tuneloop.plugins.trainers import adjustments

        adjustments.save_model(model, tokenizer, directory, lora_save)


def with_learning_rates(optimizer: "torch.optim.Optimizer", model: Any,
                        rates: dict[str, float]) -> "torch.optim.Optimizer":
    """The same optimizer with each parameter group split so the parameters named in ``rates``
    get their own learning rate (and keep their group's other settings, weight decay included).

    A learning-rate schedule built afterwards scales every group from its own rate."""
    if not rates:
        return optimizer
    rate_of = {id(parameter): rates[name] for name, parameter in model.named_parameters()
               if name in rates}
    groups: list[dict[str, Any]] = []
    for group in optimizer.param_groups:
        settings = {key: value for key, value in group.items() if key != "params"}
        by_rate: dict[float, list[Any]] = {}
        for parameter in group["params"]:
            by_rate.setdefault(rate_of.get(id(parameter), group["lr"]), []).append(parameter)
        groups += [{**settings, "params": params, "lr": rate} for rate, params in by_rate.items()]
    optimizer.param_groups.clear()  # before the first step: no optimizer state to carry over
    for group in groups:
        optimizer.add_param_group(group)
    return optimizer
