"""``causal_lm_sft``: supervised finetuning of a causal language model on completions.

Two shapes of example, told apart per example (``format: auto``) or fixed by the option:

- prompt/completion: ``input`` is the prompt and ``target`` the completion. The model sees
  ``prompt + completion + eos`` and is trained on the completion tokens only (the prompt and the
  padding are labelled -100), so it learns to answer, not to echo prompts.
- chat: ``input`` is a JSON list of messages (``[{"role": "user", "content": "..."}, ...]``),
  rendered with the tokenizer's chat template; ``target``, when set, is appended as the final
  assistant message. The loss covers the assistant turns only (their content and the template's
  end-of-turn marker), found by rendering the conversation a turn at a time.

Validation is the loss on the validation completions and, with ``generation_eval_samples``, the
configured generation metrics on a fixed sample of them (``generation.GenerationEvaluator``); the
best checkpoint is the one with the lowest loss, or the best ``select_metric``. ``predict``
generates in left-padded batches with the trainer's decoding options (``generation``) and, for
examples with a reference completion, scores the reference too (summed negative log-likelihood
and token count in ``Prediction.extra``), so perplexity needs no second pass over the model. For
the review split, ``num_return_sequences`` answers per prompt come back: the first as the output,
the others as ``Prediction.candidates``.

torch and transformers are imported inside functions: registering this trainer stays cheap.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any, Callable, Literal, Sequence

from pydantic import Field

from tuneloop.components import Example, Prediction, Regularizer, Trainer, TrainResult
from tuneloop.errors import TuneloopError
from tuneloop.plugins.trainers.generation import GenerationEvaluator, GenerationOptions
from tuneloop.plugins.trainers.recipe import TaskRecipe
from tuneloop.plugins.trainers.sharding import FSDPOptions

if TYPE_CHECKING:  # pragma: no cover
    from pathlib import Path

    import torch

    from tuneloop.context import CycleContext

IGNORED = -100  # the label cross-entropy skips: prompt and padding positions


class CausalLMOptions(GenerationOptions):
    """``format``: how an example's input is read (``auto``: a chat when it parses as one); the
    decoding and generation-metric options come from ``GenerationOptions``."""

    format: Literal["auto", "text", "messages"] = "auto"
    # -- memory and scale (the training side; see docs/plugins/trainers.md) ----------------------
    gradient_checkpointing: bool = Field(
        False, description="recompute each layer's activations in the backward pass (non-reentrant "
                           "torch checkpointing): much less memory, about a third more compute")
    packing: bool = Field(
        False, description="several short examples per sequence of model.max_length tokens "
                           "(best-fit decreasing), attention kept inside each example; batch_size "
                           "then counts packed sequences")
    fsdp: FSDPOptions | None = Field(
        None, description="shard the model across the torchrun processes with FSDP "
                          "(fsdp: {} for the defaults)")


class CausalLMTrainer(Trainer):
    """Finetunes ``AutoModelForCausalLM`` on completions with the shared training loop."""

    name = "causal_lm_sft"
    tasks = ("causal-lm",)
    Options = CausalLMOptions
    options: CausalLMOptions

    def train(self, context: "CycleContext", splits: dict[str, list[Example]],
              regularizers: list[Regularizer]) -> TrainResult:
        from tuneloop.plugins.trainers import common

        with_targets = {name: self.training_examples(splits.get(name) or [])
                        for name in ("train", "validation")}
        recipe = self.recipe(context)
        recipe.evaluator = GenerationEvaluator(context, self.options,
                                               splits.get("validation") or [])
        recipe.evaluator.check_select_metric(self.name)
        return common.train(context, with_targets, regularizers, recipe)

    def training_examples(self, examples: list[Example]) -> list[Example]:
        """What this trainer learns from: supervised finetuning leaves out answers an expert
        marked bad (``desirable=False``); a preference trainer keeps them."""
        from tuneloop.plugins.trainers import common

        return common.supervised_examples(examples)

    def recipe(self, context: "CycleContext") -> "CausalLMRecipe":
        return CausalLMRecipe(context, self.options)

    def predict(self, model_dir: str, examples: list[Example],
                context: "CycleContext") -> list[Prediction]:
        """Completions (decoded as the options say) with their mean token probability, and the
        reference's likelihood; for the review split (``context.predicting``),
        ``num_return_sequences`` answers per prompt, the others in ``Prediction.candidates``."""
        import torch

        from tuneloop.plugins.trainers import common, generation

        recipe = CausalLMRecipe(context, self.options)
        with common.quiet_transformers_progress():
            model, tokenizer = recipe.load(model_dir)
        device = common.device()
        model.to(device).eval()

        size = generation.batch_size(self.options, context)
        answers_per_prompt = (self.options.num_return_sequences
                              if context.predicting == "review" else 1)
        prompt_ids = [recipe.prompt_ids(example, tokenizer) for example in examples]
        batches = (len(examples) + size - 1) // size
        with context.progress.task("generating", 2 * batches) as advance, torch.inference_mode():
            answers = generation.generate_answers(
                model, tokenizer, prompt_ids, self.options,
                new_tokens=generation.max_new_tokens(self.options, context), batch_size=size,
                answers_per_prompt=answers_per_prompt, seed=context.seed, advance=advance)
            extras: list[dict[str, float]] = [{} for _ in examples]
            for batch in common.batches_by_length([example.input for example in examples], size):
                scored = reference_likelihoods(model, tokenizer,
                                               [examples[index] for index in batch], recipe, device)
                for index, extra in zip(batch, scored):
                    extras[index] = extra
                advance(1)
        predictions = []
        for example, found, extra in zip(examples, answers, extras):
            (text, confidence), others = found[0], found[1:]
            predictions.append(Prediction(
                example_id=example.id, output=text, confidence=confidence, extra=extra,
                candidates=[Prediction(example_id=example.id, output=other_text,
                                       confidence=other_confidence)
                            for other_text, other_confidence in others]))
        return predictions


class CausalLMRecipe(TaskRecipe):
    """The causal-LM parts of the shared training loop (see ``recipe.TaskRecipe``)."""

    def __init__(self, context: "CycleContext", options: CausalLMOptions | None = None):
        self.max_length = context.config.model.max_length
        self.format = (options or CausalLMOptions()).format
        self.scale = options or CausalLMOptions()  # gradient_checkpointing, packing, fsdp
        self.quantization = context.config.model.quantization
        if self.scale.fsdp is not None and (context.config.training.lora is not None
                                            or self.quantization is not None):
            where = str(context.config.config_path or "config")
            raise ConfigError(where, ["training.trainer.fsdp: sharding trains the full model; "
                                      "it does not combine with training.lora or "
                                      "model.quantization here (use one or the other)"])
        self.evaluator: GenerationEvaluator | None = None  # set by the trainer before training

    def load(self, model_dir: str) -> tuple[Any, Any]:
        return load_causal_lm(model_dir, self.quantization)

    def is_chat(self, example: Example) -> bool:
        if self.format == "auto":
            return parse_messages(example.input) is not None
        return self.format == "messages"

    def encode(self, example: Example, tokenizer: Any) -> dict[str, Any]:
        return self.encode_completion(example, example.target or "", tokenizer)

    def encode_completion(self, example: Example, completion: str,
                          tokenizer: Any) -> dict[str, list[int]]:
        """``example``'s prompt (or conversation) followed by ``completion``, labelled on the
        completion only."""
        if self.is_chat(example):
            messages = messages_of(example)
            return encode_chat(tokenizer, messages + [{"role": "assistant", "content": completion}],
                               self.max_length)
        return encode_prompt_completion(tokenizer, example.input, completion, self.max_length)

    def prompt_ids(self, example: Example, tokenizer: Any) -> list[int]:
        """The tokens a completion of ``example`` is generated after (at most ``max_length - 1``,
        the last ones)."""
        if self.is_chat(example):
            text = render_chat(tokenizer, messages_of(example), add_generation_prompt=True)
            ids = list(tokenizer(text, add_special_tokens=False)["input_ids"])
        else:
            ids = prompt_token_ids(tokenizer, example.input)
        return ids[-(self.max_length - 1):]

    def collator(self, tokenizer: Any) -> Callable[[list[dict[str, Any]]], dict[str, Any]]:
        if self.scale.packing:
            from tuneloop.plugins.trainers.packing import PackedCollator

            return PackedCollator(tokenizer.pad_token_id)
        return CompletionCollator(tokenizer.pad_token_id)

    def position_losses(self, logits: "torch.Tensor", labels: "torch.Tensor",
                        label_smoothing: float) -> tuple["torch.Tensor", "torch.Tensor"]:
        return next_token_losses(logits, labels, label_smoothing)

    # -- memory and scale: packing, activation checkpointing, k-bit loading, FSDP ----------------

    def pack(self, features: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """With ``packing``, the training features packed into rows of ``max_length`` tokens."""
        if not self.scale.packing:
            return features
        from tuneloop.plugins.trainers.packing import pack_features

        return pack_features(features, self.max_length)

    def losses(self, model: Any, inputs: dict[str, "torch.Tensor"],
               label_smoothing: float) -> tuple["torch.Tensor", "torch.Tensor", Any]:
        """As ``TaskRecipe.losses``; a packed batch (``packing``) also carries which tokens are
        real (counted by the loop as padding, not given to the model) and each token's example
        weight, which scales that token's loss. No cache: transformers keeps packed examples
        apart only in a forward pass without one."""
        from tuneloop.plugins.trainers import packing

        inputs.pop(packing.REAL_TOKENS, None)
        token_weight = inputs.pop(packing.TOKEN_WEIGHT, None)
        if token_weight is None:
            return super().losses(model, inputs, label_smoothing)
        labels = inputs.pop("labels")
        outputs = model(**inputs, use_cache=False)
        losses, mask = self.position_losses(outputs.logits, labels, label_smoothing)
        return losses * token_weight[:, 1:].to(losses.dtype), mask, outputs

    def adjust_model(self, model: Any) -> Any:
        """Before LoRA: peft's k-bit preparation for a quantized model (``model.quantization``),
        and activation checkpointing (``gradient_checkpointing``; non-reentrant, so frozen
        layers under LoRA still pass gradients back, transformers makes the inputs require
        gradients for that)."""
        from tuneloop.plugins.trainers import quantization

        checkpointing = self.scale.gradient_checkpointing
        if self.quantization is not None:
            model = quantization.prepare_for_training(model, checkpointing)
        elif checkpointing:
            model.activation_checkpointing_enable(
                activation_checkpointing_kwargs={"use_reentrant": False})
        if checkpointing:
            model.config.use_cache = False  # a cache is useless in training and warns
        return model

    def save(self, model: Any, tokenizer: Any, directory: "Path", lora_save: str | None) -> None:
        """As ``TaskRecipe.save``; a quantized model's adapters merge into its base reloaded
        unquantized (``quantization.save_merged``)."""
        if self.quantization is not None and lora_save != "adapter":
            from tuneloop.plugins.trainers import quantization

            quantization.save_merged(model, tokenizer, directory, self.quantization)
            return
        super().save(model, tokenizer, directory, lora_save)

    def configure_arguments(self, args: dict[str, Any], train_examples: int) -> None:
        """The ``TrainingArguments`` of the trainer's options: FSDP (``fsdp``)."""
        if self.scale.fsdp is not None:
            from tuneloop.plugins.trainers import sharding

            args.update(sharding.training_arguments(self.scale.fsdp))

    def greater_is_better(self, select_metric: str) -> bool:
        if self.evaluator is None:
            return select_metric != "loss"
        return self.evaluator.greater_is_better(select_metric)

    def evaluation_figures(self, model: Any, tokenizer: Any) -> dict[str, float]:
        """The generation metrics on the fixed validation sample (none without
        ``generation_eval_samples``)."""
        if self.evaluator is None:
            return {}
        return self.evaluator.figures(model, tokenizer,
                                      lambda example: self.prompt_ids(example, tokenizer))


def load_causal_lm(model_dir: str, quantization: Any = None) -> tuple[Any, Any]:
    """The model and its tokenizer, with a pad token (eos when the tokenizer has none, as GPT-2);
    loaded in 4 or 8 bits (bitsandbytes) when ``quantization`` (``model.quantization``) says so."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from tuneloop.plugins.trainers.adjustments import load_pretrained
    from tuneloop.plugins.trainers.common import quiet_loading

    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    if tokenizer.eos_token_id is None:
        raise TuneloopError(f"{model_dir}: the tokenizer has no eos token; causal_lm_sft ends "
                            f"every completion with one so the model learns to stop")
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    kwargs: dict[str, Any] = {}
    if quantization is not None:
        from tuneloop.plugins.trainers import quantization as kbit

        kwargs = kbit.loading_arguments(quantization)
    with quiet_loading():
        model = load_pretrained(AutoModelForCausalLM, model_dir, **kwargs)
    return model, tokenizer


# --------------------------------------------------------------------------------------------------
# Encoding: prompt/completion and chat
# --------------------------------------------------------------------------------------------------


def prompt_token_ids(tokenizer: Any, prompt: str) -> list[int]:
    """The prompt's tokens, with the tokenizer's own special tokens (a bos, for models that use
    one); an empty prompt becomes bos (or eos), so the first completion token has a context."""
    ids = list(tokenizer(prompt)["input_ids"])
    if not ids:
        ids = [tokenizer.bos_token_id if tokenizer.bos_token_id is not None
               else tokenizer.eos_token_id]
    return ids


def encode_prompt_completion(tokenizer: Any, prompt: str, completion: str,
                             max_length: int) -> dict[str, list[int]]:
    """``prompt + completion + eos`` as token ids, labelled on the completion and eos only.

    Over ``max_length`` tokens, the prompt gives way first: it loses tokens from its start (the end
    of a prompt, next to the answer, matters most) down to one token; only then is the completion
    cut (from its end, eos first).
    """
    prompt_ids = prompt_token_ids(tokenizer, prompt)
    completion_ids = list(tokenizer(completion, add_special_tokens=False)["input_ids"])
    completion_ids = (completion_ids + [tokenizer.eos_token_id])[:max_length - 1]
    prompt_ids = prompt_ids[-(max_length - len(completion_ids)):]
    input_ids = prompt_ids + completion_ids
    return {"input_ids": input_ids, "attention_mask": [1] * len(input_ids),
            "labels": [IGNORED] * len(prompt_ids) + completion_ids}


def parse_messages(text: str) -> list[dict[str, str]] | None:
    """``text`` as a chat conversation (a JSON list of ``{"role", "content"}`` objects), or
    ``None`` when it is not one."""
    if not text.lstrip().startswith("["):
        return None
    try:
        value = json.loads(text)
    except ValueError:
        return None
    if not isinstance(value, list) or not value:
        return None
    if not all(isinstance(message, dict) and isinstance(message.get("role"), str)
               and isinstance(message.get("content"), str) for message in value):
        return None
    return value


def messages_of(example: Example) -> list[dict[str, str]]:
    messages = parse_messages(example.input)
    if messages is None:
        raise TuneloopError(f"example {example.id}: the input is not a chat conversation (a JSON "
                            f'list of {{"role", "content"}} messages)')
    return messages


def render_chat(tokenizer: Any, messages: list[dict[str, str]],
                add_generation_prompt: bool = False) -> str:
    if not getattr(tokenizer, "chat_template", None):
        raise TuneloopError(f"{tokenizer.name_or_path or 'the tokenizer'}: no chat template; chat "
                            f"examples need a tokenizer with one (tokenizer_config.json)")
    if not messages:
        return ""
    return tokenizer.apply_chat_template(messages, tokenize=False,
                                         add_generation_prompt=add_generation_prompt)


def assistant_spans(tokenizer: Any,
                    messages: list[dict[str, str]]) -> tuple[str, list[tuple[int, int]]]:
    """The rendered conversation and the character spans of its assistant turns.

    A turn's span runs from the end of the conversation before it (with the generation prompt, so
    ``<|assistant|>``-style headers are not trained on) to the end of the conversation through it
    (its content and end-of-turn marker). Templates that do not render a conversation as the
    concatenation of its turns cannot be split this way, and are refused.
    """
    full = render_chat(tokenizer, messages)
    spans = []
    for number, message in enumerate(messages):
        if message["role"] != "assistant":
            continue
        before = render_chat(tokenizer, messages[:number], add_generation_prompt=True)
        through = render_chat(tokenizer, messages[:number + 1])
        if not (through.startswith(before) and full.startswith(through)):
            raise TuneloopError(f"{tokenizer.name_or_path or 'the tokenizer'}: its chat template "
                                f"does not render a conversation turn by turn, so the assistant "
                                f"turns cannot be found")
        spans.append((len(before), len(through)))
    return full, spans


def encode_chat(tokenizer: Any, messages: list[dict[str, str]],
                max_length: int) -> dict[str, list[int]]:
    """A conversation as token ids, labelled on the assistant turns only; over ``max_length``
    tokens the conversation loses its earliest tokens (the last answer matters most)."""
    text, spans = assistant_spans(tokenizer, messages)
    encoded = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
    input_ids = list(encoded["input_ids"])
    labels = [token if any(start <= offset[0] < end for start, end in spans)
              and offset[1] > offset[0] else IGNORED
              for token, offset in zip(input_ids, encoded["offset_mapping"])]
    input_ids, labels = input_ids[-max_length:], labels[-max_length:]
    return {"input_ids": input_ids, "attention_mask": [1] * len(input_ids), "labels": labels}


def pad(sequences: Sequence[Sequence[int]], value: int, side: str = "right") -> "torch.Tensor":
    """A ``[batch, longest]`` tensor of ``sequences`` padded with ``value`` on ``side``."""
    import torch

    longest = max(len(sequence) for sequence in sequences)
    rows = []
    for sequence in sequences:
        filler = [value] * (longest - len(sequence))
        rows.append(list(sequence) + filler if side == "right" else filler + list(sequence))
    return torch.tensor(rows, dtype=torch.long)


class CompletionCollator:
    """Right-pads encoded examples: pad token ids, attention 0, and label -100 on the padding."""

    def __init__(self, pad_token_id: int):
        self.pad_token_id = pad_token_id

    def __call__(self, features: list[dict[str, Any]]) -> dict[str, "torch.Tensor"]:
        return {
            "input_ids": pad([f["input_ids"] for f in features], self.pad_token_id),
            "attention_mask": pad([f["attention_mask"] for f in features], 0),
            "labels": pad([f["labels"] for f in features], IGNORED),
        }


def next_token_losses(logits: "torch.Tensor", labels: "torch.Tensor",
                      label_smoothing: float = 0.0) -> tuple["torch.Tensor", "torch.Tensor"]:
    """The loss of predicting each labelled token from the ones before it, and where labels are.

    Position ``t`` of the logits predicts token ``t + 1``; both returned tensors are
    ``[batch, length - 1]``.
    """
    import torch.nn.functional as F

    targets = labels[:, 1:]
    losses = F.cross_entropy(logits[:, :-1, :].float().transpose(1, 2), targets,
                             ignore_index=IGNORED, reduction="none",
                             label_smoothing=label_smoothing)
    return losses, targets != IGNORED


# --------------------------------------------------------------------------------------------------
# Prediction
# --------------------------------------------------------------------------------------------------


def reference_likelihoods(model: Any, tokenizer: Any, examples: list[Example],
                          recipe: CausalLMRecipe, device: Any) -> list[dict[str, float]]:
    """For each example with a target: ``{"nll": summed negative log-likelihood of the completion
    and eos, "tokens": their count}``, encoded exactly as in training; ``{}`` for the others."""
    scored = [index for index, example in enumerate(examples) if example.target is not None]
    extras: list[dict[str, float]] = [{} for _ in examples]
    if not scored:
        return extras
    features = [recipe.encode(examples[index], tokenizer) for index in scored]
    batch = {name: tensor.to(device)
             for name, tensor in CompletionCollator(tokenizer.pad_token_id)(features).items()}
    logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
    losses, mask = next_token_losses(logits, batch["labels"])
    nll = (losses * mask).sum(dim=1).tolist()
    tokens = mask.sum(dim=1).tolist()
    for index, example_nll, count in zip(scored, nll, tokens):
        extras[index] = {"nll": float(example_nll), "tokens": float(count)}
    return extras
