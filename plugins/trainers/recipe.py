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

    def validation_scorer(self) -> Callable[[Any, list["Example"]], dict[str, float]] | None:
        """Validation figures beyond the loss, from logits rows and their examples (``None``: the
        loss only, and evaluation keeps no logits)."""
        return None

    def pop_figures(self) -> dict[str, float]:
        """Figures the recipe gathered while training (preference rewards, say), logged with the
        training loss and then forgotten; default: none."""
        return {}

    def greater_is_better(self, select_metric: str) -> bool:
        """Whether a higher value of the selection metric is better."""
        return select_metric != "loss"

    def save(self, model: Any, tokenizer: Any, directory: Path, lora_save: str | None) -> None:
        """Save the trained model and its tokenizer (LoRA adapters merged or kept as configured)."""
        from tuneloop.plugins.trainers import adjustments

        adjustments.save_model(model, tokenizer, directory, lora_save)
