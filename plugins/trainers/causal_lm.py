"""``causal_lm_sft``: supervised finetuning of a causal language model on completions.

Two shapes of example, told apart per example (``format: auto``) or fixed by the option:

- prompt/completion: ``input`` is the prompt and ``target`` the completion. The model sees
  ``prompt + completion + eos`` and is trained on the completion tokens only (the prompt and the
  padding are labelled -100), so it learns to answer, not to echo prompts.
- chat: ``input`` is a JSON list of messages (``[{"role": "user", "content": "..."}, ...]``),
  rendered with the tokenizer's chat template; ``target``, when set, is appended as the final
  assistant message. The loss covers the assistant turns only (their content and the template's
  end-of-turn marker), found by rendering the conversation a turn at a time.

Validation is the loss on the validation completions; the best checkpoint is the one with the
lowest. ``predict`` generates greedily and, for examples with a reference completion, scores the
reference too (summed negative log-likelihood and token count in ``Prediction.extra``), so
perplexity needs no second pass over the model.

torch and transformers are imported inside functions: registering this trainer stays cheap.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any, Callable, Literal, Sequence

from tuneloop.components import Example, Options, Prediction, Regularizer, Trainer, TrainResult
from tuneloop.errors import ConfigError, TuneloopError
from tuneloop.plugins.trainers.recipe import TaskRecipe

if TYPE_CHECKING:  # pragma: no cover
    import torch

    from tuneloop.context import CycleContext

IGNORED = -100  # the label cross-entropy skips: prompt and padding positions


class CausalLMOptions(Options):
    format: Literal["auto", "text", "messages"] = "auto"


class CausalLMTrainer(Trainer):
    """Finetunes ``AutoModelForCausalLM`` on completions with the shared training loop."""

    name = "causal_lm_sft"
    tasks = ("causal-lm",)
    Options = CausalLMOptions
    options: CausalLMOptions

    def train(self, context: "CycleContext", splits: dict[str, list[Example]],
              regularizers: list[Regularizer]) -> TrainResult:
        from tuneloop.plugins.trainers import common

        self.check_select_metric(context)
        with_targets = {name: self.training_examples(splits.get(name) or [])
                        for name in ("train", "validation")}
        return common.train(context, with_targets, regularizers, self.recipe(context))

    def training_examples(self, examples: list[Example]) -> list[Example]:
        """What this trainer learns from: supervised finetuning leaves out answers an expert
        marked bad (``desirable=False``); a preference trainer keeps them."""
        from tuneloop.plugins.trainers import common

        return common.supervised_examples(examples)

    def recipe(self, context: "CycleContext") -> "CausalLMRecipe":
        return CausalLMRecipe(context, self.options)

    def check_select_metric(self, context: "CycleContext") -> None:
        if context.select_metric != "loss":
            where = str(context.config.config_path or "config")
            raise ConfigError(where, [f'training.select_metric: {self.name} selects checkpoints by '
                                      f'validation loss, not "{context.select_metric}"; set it to '
                                      f"loss or leave it out"])

    def predict(self, model_dir: str, examples: list[Example],
                context: "CycleContext") -> list[Prediction]:
        """Greedy completions with their mean token probability, and the reference's likelihood."""
        import torch

        from tuneloop.plugins.trainers import common

        recipe = CausalLMRecipe(context, self.options)
        with common.quiet_transformers_progress():
            model, tokenizer = recipe.load(model_dir)
        device = common.device()
        model.to(device).eval()

        prompts = [example.input for example in examples]
        batches = common.batches_by_length(prompts, context.config.training.eval_batch_size)
        predictions: dict[int, Prediction] = {}
        with context.progress.task("generating", len(batches)) as advance, torch.inference_mode():
            for batch in batches:
                batch_examples = [examples[index] for index in batch]
                completions = generate(model, tokenizer,
                                       [recipe.prompt_ids(example, tokenizer)
                                        for example in batch_examples],
                                       context.config.training.max_new_tokens, device)
                references = reference_likelihoods(model, tokenizer, batch_examples, recipe, device)
                for index, example, (text, confidence), extra in zip(
                        batch, batch_examples, completions, references):
                    predictions[index] = Prediction(example_id=example.id, output=text,
                                                    confidence=confidence, extra=extra)
                advance(1)
        return [predictions[index] for index in range(len(examples))]


class CausalLMRecipe(TaskRecipe):
    """The causal-LM parts of the shared training loop (see ``recipe.TaskRecipe``)."""

    def __init__(self, context: "CycleContext", options: CausalLMOptions | None = None):
        self.max_length = context.config.model.max_length
        self.format = (options or CausalLMOptions()).format

    def load(self, model_dir: str) -> tuple[Any, Any]:
        return load_causal_lm(model_dir)

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
        return CompletionCollator(tokenizer.pad_token_id)

    def position_losses(self, logits: "torch.Tensor", labels: "torch.Tensor",
                        label_smoothing: float) -> tuple["torch.Tensor", "torch.Tensor"]:
        return next_token_losses(logits, labels, label_smoothing)

    def greater_is_better(self, select_metric: str) -> bool:
        return False  # the loss


def load_causal_lm(model_dir: str) -> tuple[Any, Any]:
    """The model and its tokenizer, with a pad token (eos when the tokenizer has none, as GPT-2)."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from tuneloop.plugins.trainers.adjustments import load_pretrained
    from tuneloop.plugins.trainers.common import quiet_loading

    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    if tokenizer.eos_token_id is None:
        raise TuneloopError(f"{model_dir}: the tokenizer has no eos token; causal_lm_sft ends "
                            f"every completion with one so the model learns to stop")
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    with quiet_loading():
        model = load_pretrained(AutoModelForCausalLM, model_dir)
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


def generate(model: Any, tokenizer: Any, prompt_ids: list[list[int]], max_new_tokens: int,
             device: Any) -> list[tuple[str, float]]:
    """Greedy completions of the prompts (left-padded into one batch) and their mean token
    probability, counting the tokens up to and including the first eos."""
    import torch

    input_ids = pad(prompt_ids, tokenizer.pad_token_id, side="left").to(device)
    attention_mask = pad([[1] * len(ids) for ids in prompt_ids], 0, side="left").to(device)
    output = model.generate(input_ids=input_ids, attention_mask=attention_mask,
                            max_new_tokens=max_new_tokens, do_sample=False,
                            pad_token_id=tokenizer.pad_token_id,
                            eos_token_id=tokenizer.eos_token_id,
                            return_dict_in_generate=True, output_scores=True)
    generated = output.sequences[:, input_ids.shape[1]:]
    log_probabilities = model.compute_transition_scores(output.sequences, output.scores,
                                                        normalize_logits=True)
    results = []
    for tokens, token_log_probabilities in zip(generated.tolist(), log_probabilities):
        length = len(tokens)
        if tokenizer.eos_token_id in tokens:
            length = tokens.index(tokenizer.eos_token_id) + 1
        text = tokenizer.decode(tokens[:length], skip_special_tokens=True).strip()
        confidence = float(torch.exp(token_log_probabilities[:length].float()).mean())
        results.append((text, confidence))
    return results


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
