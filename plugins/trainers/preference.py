"""Preference training from expert feedback: ``dpo`` (pairs) and ``kto`` (thumbs up or down).

Both finetune a causal language model like ``causal_lm_sft`` and predict the same way; they differ
in what they learn from the examples the feedback policies made:

- An example with ``rejected`` set is a pair: ``target`` is the completion the expert chose,
  ``rejected`` the one they did not. DPO (Rafailov et al., 2023) raises the chosen completion's
  likelihood relative to the rejected one's, measured against the start model (the reference):
  ``-log sigmoid(beta * ((log pi(c) - log ref(c)) - (log pi(r) - log ref(r))))`` for chosen ``c``
  and rejected ``r``.
  ``training`` ``label_smoothing`` (the ``label_smoothing`` regularizer) makes it conservative DPO:
  the pair's label is trusted with probability ``1 - label_smoothing``.
- An example with ``desirable`` True or False is one completion an expert judged good or bad. KTO
  (Ethayarajh et al., 2024) pushes a desirable completion's reward ``log pi - log ref`` above a
  reference point, an undesirable one's below it; the reference point is the policy's KL
  divergence from the reference, estimated on mismatched prompt/completion pairs of the batch.
  KTO reads a pair as one desirable and one undesirable completion.
- Any other example (the project's own prompt/completion data, approvals) is trained with the
  supervised loss (mean token negative log-likelihood), times ``sft_weight``; DPO treats a
  desirable completion the same way, and leaves an undesirable one out (it has nothing to pair it
  with), saying how many in the cycle's record.

The reference model's log-probabilities are computed once, before training, with the untouched
start model, and carried with each example: no second model sits in memory while training.
Validation is the loss on the validation split (its examples are plain ones: feedback only ever
trains); DPO and KTO log their reward figures with the training loss.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Callable

from pydantic import Field, field_validator

from tuneloop.components import Example, Regularizer, TrainResult
from tuneloop.plugins.trainers.causal_lm import (IGNORED, CausalLMOptions, CausalLMRecipe,
                                                 CausalLMTrainer, next_token_losses, pad)

if TYPE_CHECKING:  # pragma: no cover
    import torch

    from tuneloop.context import CycleContext

SUPERVISED, PAIR, DESIRABLE, UNDESIRABLE = 0, 1, 2, 3
CHOSEN, REJECTED, MISMATCHED = "chosen", "rejected", "kl"
ROLES = (CHOSEN, REJECTED, MISMATCHED)


class DPOOptions(CausalLMOptions):
    beta: float = Field(0.1, gt=0, description="how far from the reference the policy may move")
    sft_weight: float = Field(1.0, ge=0, description="weight of the supervised loss on examples "
                                                     "without a preference")

    @field_validator("packing")
    @classmethod
    def _no_packing(cls, packing: bool) -> bool:
        if packing:
            raise ValueError("preference trainers compare whole sequences of one example (chosen, "
                             "rejected); packing is for causal_lm_sft")
        return packing


class KTOOptions(DPOOptions):
    desirable_weight: float = Field(1.0, gt=0)
    undesirable_weight: float = Field(1.0, gt=0)


class DPOTrainer(CausalLMTrainer):
    """Direct preference optimisation on (chosen, rejected) pairs; supervised on the rest."""

    name = "dpo"
    Options = DPOOptions
    options: DPOOptions

    def train(self, context: "CycleContext", splits: dict[str, list[Example]],
              regularizers: list[Regularizer]) -> TrainResult:
        train = splits.get("train") or []
        kept = [example for example in train if example.desirable is not False]
        result = super().train(context, {**splits, "train": kept}, regularizers)
        result.extra["left_out_undesirable"] = len(train) - len(kept)
        return result

    def recipe(self, context: "CycleContext") -> "PreferenceRecipe":
        return PreferenceRecipe(context, self.options, method="dpo")


class KTOTrainer(CausalLMTrainer):
    """Kahneman-Tversky optimisation on completions judged desirable or undesirable."""

    name = "kto"
    Options = KTOOptions
    options: KTOOptions

    def training_examples(self, examples: list[Example]) -> list[Example]:
        """Every judged completion: KTO learns from the bad ones as much as from the good."""
        return [example for example in examples if example.target is not None]

    def recipe(self, context: "CycleContext") -> "PreferenceRecipe":
        return PreferenceRecipe(context, self.options, method="kto")


class PreferenceRecipe(CausalLMRecipe):
    """Encodes each example as one to three sequences (chosen, rejected, mismatched) with their
    reference log-probabilities, and computes one loss per example from them."""

    def __init__(self, context: "CycleContext", options: DPOOptions, method: str):
        super().__init__(context, options)
        self.options = options
        self.method = method
        self.figures: dict[str, list[float]] = {}
        self.eval_batch_size = context.config.training.eval_batch_size

    # -- features ----------------------------------------------------------------------------------

    def kind(self, example: Example) -> int:
        if example.rejected is not None:
            return PAIR
        if self.method == "kto" and example.desirable is not None:
            return DESIRABLE if example.desirable else UNDESIRABLE
        return SUPERVISED

    def encode(self, example: Example, tokenizer: Any) -> dict[str, Any]:
        kind = self.kind(example)
        features: dict[str, Any] = {"kind": kind}
        chosen = self.encode_completion(example, example.target or "", tokenizer)
        features["chosen_input_ids"] = chosen["input_ids"]
        features["chosen_labels"] = chosen["labels"]
        if kind == PAIR:
            rejected = self.encode_completion(example, example.rejected or "", tokenizer)
            features["rejected_input_ids"] = rejected["input_ids"]
            features["rejected_labels"] = rejected["labels"]
        return features

    def add_reference(self, features: list[dict[str, Any]], model: Any, tokenizer: Any) -> None:
        """Mismatched sequences for KTO's reference point, then every sequence's reference
        log-probability under the start model."""
        if self.method == "kto":
            add_mismatched_sequences(features)
        log_probabilities = reference_log_probabilities(model, features, tokenizer.pad_token_id,
                                                        self.eval_batch_size)
        for feature, values in zip(features, log_probabilities):
            for role, value in values.items():
                feature[f"reference_{role}"] = value

    def collator(self, tokenizer: Any) -> Callable[[list[dict[str, Any]]], dict[str, Any]]:
        return PreferenceCollator(tokenizer.pad_token_id)

    # -- loss ------------------------------------------------------------------------------------

    def losses(self, model: Any, inputs: dict[str, Any],
               label_smoothing: float) -> tuple["torch.Tensor", "torch.Tensor", Any]:
        import torch
        import torch.nn.functional as F

        owner, role = inputs.pop("owner"), inputs.pop("role")
        reference, kind = inputs.pop("reference"), inputs.pop("kind")
        logits = model(input_ids=inputs["input_ids"],
                       attention_mask=inputs["attention_mask"]).logits
        token_losses, mask = next_token_losses(logits, inputs["labels"])
        log_probability = -(token_losses * mask).sum(dim=1)
        tokens = mask.sum(dim=1).clamp(min=1)
        reward = log_probability - reference

        def of(role_number: int) -> "torch.Tensor":
            """Per example, the value of its sequence with this role (0 where it has none)."""
            values = torch.zeros(len(kind), dtype=reward.dtype, device=reward.device)
            where = role == role_number
            return values.index_put((owner[where],), reward[where])

        supervised = -(log_probability / tokens)
        supervised_per_example = torch.zeros(len(kind), dtype=reward.dtype, device=reward.device)
        chosen = role == ROLES.index(CHOSEN)
        supervised_per_example = supervised_per_example.index_put((owner[chosen],),
                                                                  supervised[chosen])
        beta = self.options.beta
        chosen_reward, rejected_reward = of(ROLES.index(CHOSEN)), of(ROLES.index(REJECTED))
        losses = supervised_per_example * (self.options.sft_weight if model.training else 1.0)
        if self.method == "dpo":
            margin = beta * (chosen_reward - rejected_reward)
            dpo = (-(1 - label_smoothing) * F.logsigmoid(margin)
                   - label_smoothing * F.logsigmoid(-margin))
            pairs = kind == PAIR
            losses = torch.where(pairs, dpo, losses)
            if model.training and pairs.any():
                self.note("rewards/margin", (chosen_reward - rejected_reward)[pairs])
                self.note("rewards/accuracy", (chosen_reward > rejected_reward)[pairs].float())
        else:
            mismatched = role == ROLES.index(MISMATCHED)
            kl = reward[mismatched].mean().clamp(min=0).detach() if mismatched.any() \
                else reward.new_zeros(())
            good = self.options.desirable_weight * (1 - torch.sigmoid(beta * (chosen_reward - kl)))
            bad_chosen = self.options.undesirable_weight * (
                1 - torch.sigmoid(beta * (kl - chosen_reward)))
            bad_rejected = self.options.undesirable_weight * (
                1 - torch.sigmoid(beta * (kl - rejected_reward)))
            losses = torch.where(kind == DESIRABLE, good, losses)
            losses = torch.where(kind == UNDESIRABLE, bad_chosen, losses)
            losses = torch.where(kind == PAIR, (good + bad_rejected) / 2, losses)
            if model.training and mismatched.any():
                self.note("kl", kl.reshape(1))
                for name, number in (("rewards/desirable", DESIRABLE),
                                     ("rewards/undesirable", UNDESIRABLE)):
                    if (kind == number).any():
                        self.note(name, chosen_reward[kind == number])
        return losses, torch.ones_like(losses, dtype=torch.bool), {"rewards": chosen_reward}

    def note(self, name: str, values: "torch.Tensor") -> None:
        self.figures.setdefault(name, []).extend(values.detach().float().cpu().tolist())

    def pop_figures(self) -> dict[str, float]:
        """The mean of each reward figure since the last log line (logged with the loss)."""
        figures = {name: sum(values) / len(values) for name, values in self.figures.items()
                   if values}
        self.figures = {}
        return figures


def split_at_completion(input_ids: list[int], labels: list[int]) -> tuple[list[int], list[int],
                                                                          list[int]]:
    """A sequence's prompt tokens, and its completion's tokens with their labels."""
    start = next((number for number, label in enumerate(labels) if label != IGNORED),
                 len(labels))
    return input_ids[:start], input_ids[start:], labels[start:]


def add_mismatched_sequences(features: list[dict[str, Any]]) -> None:
    """Give each judged example a sequence of its prompt with the next judged example's
    completion (the last takes the first's): KTO's estimate of the KL divergence."""
    judged = [feature for feature in features if feature["kind"] != SUPERVISED]
    for number, feature in enumerate(judged):
        other = judged[(number + 1) % len(judged)]
        prompt, _, _ = split_at_completion(feature["chosen_input_ids"], feature["chosen_labels"])
        _, completion, labels = split_at_completion(other["chosen_input_ids"],
                                                    other["chosen_labels"])
        feature["kl_input_ids"] = prompt + completion
        feature["kl_labels"] = [IGNORED] * len(prompt) + labels


def sequences(feature: dict[str, Any]) -> list[tuple[str, list[int], list[int]]]:
    """A feature's sequences as ``(role, input ids, labels)``, in role order."""
    return [(role, feature[f"{role}_input_ids"], feature[f"{role}_labels"])
            for role in ROLES if f"{role}_input_ids" in feature]


def reference_log_probabilities(model: Any, features: list[dict[str, Any]], pad_token_id: int,
                                batch_size: int) -> list[dict[str, float]]:
    """Every sequence's summed completion log-probability under ``model`` (the start model)."""
    import torch

    from tuneloop.plugins.trainers.common import device

    was_training = model.training
    model.to(device()).eval()
    flat = [(number, role, ids, labels) for number, feature in enumerate(features)
            if feature["kind"] != SUPERVISED  # the supervised loss needs no reference
            for role, ids, labels in sequences(feature)]
    flat.sort(key=lambda item: len(item[2]))  # less padding
    results: list[dict[str, float]] = [{} for _ in features]
    with torch.inference_mode():
        for start in range(0, len(flat), batch_size):
            chunk = flat[start:start + batch_size]
            input_ids = pad([item[2] for item in chunk], pad_token_id).to(device())
            mask = pad([[1] * len(item[2]) for item in chunk], 0).to(device())
            labels = pad([item[3] for item in chunk], IGNORED).to(device())
            logits = model(input_ids=input_ids, attention_mask=mask).logits
            token_losses, counted = next_token_losses(logits, labels)
            values = (-(token_losses * counted).sum(dim=1)).tolist()
            for (number, role, _, _), value in zip(chunk, values):
                results[number][role] = float(value)
    model.train(was_training)
    return results


class PreferenceCollator:
    """Pads every sequence of the batch into one block (one forward pass per step), with each
    sequence's example (``owner``), ``role`` and reference log-probability alongside."""

    def __init__(self, pad_token_id: int):
        self.pad_token_id = pad_token_id

    def __call__(self, features: list[dict[str, Any]]) -> dict[str, "torch.Tensor"]:
        import torch

        rows = [(number, ROLES.index(role), ids, labels, feature.get(f"reference_{role}", 0.0))
                for number, feature in enumerate(features)
                for role, ids, labels in sequences(feature)]
        return {
            "input_ids": pad([row[2] for row in rows], self.pad_token_id),
            "attention_mask": pad([[1] * len(row[2]) for row in rows], 0),
            "labels": pad([row[3] for row in rows], IGNORED),
            "owner": torch.tensor([row[0] for row in rows], dtype=torch.long),
            "role": torch.tensor([row[1] for row in rows], dtype=torch.long),
            "reference": torch.tensor([row[4] for row in rows], dtype=torch.float32),
            "kind": torch.tensor([feature["kind"] for feature in features], dtype=torch.long),
        }
