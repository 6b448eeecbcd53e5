"""Generation for the causal-LM trainers: decoding options, batched left-padded generation, and
generation metrics on a fixed validation sample while training.

Why a module of its own: two callers generate the same way, with the same options:

- ``predict`` (validation, test, the review split, ``tuneloop predict``) answers every example;
  for the review split it can give ``num_return_sequences`` answers per prompt, which the cycle
  stores as candidates for the experts to rank side by side (pairwise preferences become DPO pairs
  in the next cycle, without a second model).
- the shared training loop asks the recipe for figures at each evaluation
  (``GenerationEvaluator``): the configured generation metrics (exact_match, rouge, chrf...) on
  ``generation_eval_samples`` validation examples, chosen once by the cycle's seed, so a checkpoint
  can be selected (and training stopped early) on what the model writes, not only on its loss.

Prompts are left-padded into batches (the tokens a model continues from sit at the right end of
every row), batched by token length so little padding is generated over. Stop strings are checked
on the decoded text (``stop_on_strings``) and cut off the answer afterwards.

torch and transformers are imported inside functions: the trainers' registration stays cheap.
"""

from __future__ import annotations

import hashlib
from typing import TYPE_CHECKING, Any, Callable, Sequence

from pydantic import Field, ValidationInfo, field_validator

from tuneloop.components import Example, Metric, Options, Prediction
from tuneloop.errors import ConfigError

if TYPE_CHECKING:  # pragma: no cover
    import torch

    from tuneloop.context import CycleContext

DEFAULT_EVAL_SAMPLES = 32  # the number the docs suggest for generation_eval_samples


class GenerationOptions(Options):
    """How the causal-LM trainers generate: the decoding options of ``transformers``' ``generate``
    (same names), and how many validation examples are generated for during training."""

    max_new_tokens: int | None = Field(
        None, ge=1, description="tokens generated at most per answer; default: "
                                "training.max_new_tokens (deprecated there), else 32")
    do_sample: bool = Field(False, description="sample (temperature, top_p, top_k) instead of "
                                               "greedy decoding")
    temperature: float = Field(1.0, gt=0, description="sampling temperature (do_sample)")
    top_p: float = Field(1.0, gt=0, le=1, description="nucleus sampling: the smallest set of "
                                                      "tokens with this much probability")
    top_k: int = Field(50, ge=0, description="sample among the k likeliest tokens; 0: all")
    num_return_sequences: int = Field(
        1, ge=1, le=16, description="answers per review prompt; 2 or more are stored as "
                                    "candidates and queued in pairs for experts to rank "
                                    "(needs do_sample)")
    stop: list[str] = Field([], description="stop strings: the answer ends before the first one")
    generation_batch_size: int | None = Field(
        None, ge=1, description="prompts generated for at once; default: "
                                "training.eval_batch_size")
    generation_eval_samples: int = Field(
        0, ge=0, description="at each evaluation during training, generate for this many "
                             "validation examples (a fixed sample) and log the configured "
                             "generation metrics, selectable as training.select_metric")

    @field_validator("num_return_sequences")
    @classmethod
    def _candidates_need_sampling(cls, value: int, info: ValidationInfo) -> int:
        if value > 1 and not info.data.get("do_sample"):
            raise ValueError("above 1 needs do_sample: true (greedy decoding gives the same "
                             "answer every time)")
        return value

    @field_validator("stop")
    @classmethod
    def _no_empty_stop(cls, value: list[str]) -> list[str]:
        if any(stop == "" for stop in value):
            raise ValueError("stop strings must not be empty")
        return value


def max_new_tokens(options: GenerationOptions, context: "CycleContext") -> int:
    """The option, else the deprecated ``training.max_new_tokens`` (default 32)."""
    if options.max_new_tokens is not None:
        return options.max_new_tokens
    return context.config.training.max_new_tokens


def batch_size(options: GenerationOptions, context: "CycleContext") -> int:
    return options.generation_batch_size or context.config.training.eval_batch_size


# --------------------------------------------------------------------------------------------------
# Generating
# --------------------------------------------------------------------------------------------------


def generate_answers(model: Any, tokenizer: Any, prompt_ids: Sequence[Sequence[int]],
                     options: GenerationOptions, *, new_tokens: int, batch_size: int,
                     answers_per_prompt: int = 1, seed: int | None = None,
                     advance: Callable[[int], None] = lambda n: None
                     ) -> list[list[tuple[str, float]]]:
    """``answers_per_prompt`` answers for each prompt, each ``(text, mean token probability)``,
    in the prompts' order.

    Prompts go in batches of ``batch_size`` (similar token lengths together), left-padded.
    ``seed`` seeds sampling (the same seed, the same candidates); greedy decoding ignores it.
    """
    import torch

    order = sorted(range(len(prompt_ids)), key=lambda index: (len(prompt_ids[index]), index))
    answers: list[list[tuple[str, float]]] = [[] for _ in prompt_ids]
    device = next(model.parameters()).device
    with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
        if seed is not None:
            torch.manual_seed(seed)
        for start in range(0, len(order), batch_size):
            batch = order[start:start + batch_size]
            generated = generate_batch(model, tokenizer, [prompt_ids[index] for index in batch],
                                       options, new_tokens, answers_per_prompt)
            for number, index in enumerate(batch):
                answers[index] = generated[number * answers_per_prompt:
                                           (number + 1) * answers_per_prompt]
            advance(1)
    return answers


def generate_batch(model: Any, tokenizer: Any, prompt_ids: Sequence[Sequence[int]],
                   options: GenerationOptions, new_tokens: int,
                   answers_per_prompt: int = 1) -> list[tuple[str, float]]:
    """One left-padded batch through ``model.generate``; ``answers_per_prompt`` rows per prompt,
    prompt after prompt. The confidence is the mean probability the model (before temperature and
    truncation) gave each answer token, through the first eos."""
    import torch

    from tuneloop.plugins.trainers.causal_lm import pad

    device = next(model.parameters()).device
    input_ids = pad(prompt_ids, tokenizer.pad_token_id, side="left").to(device)
    attention_mask = pad([[1] * len(ids) for ids in prompt_ids], 0, side="left").to(device)
    prompt_length = input_ids.shape[1]
    sampling = {"do_sample": True, "temperature": options.temperature, "top_p": options.top_p,
                "top_k": options.top_k} if options.do_sample else {
        "do_sample": False, "temperature": None, "top_p": None, "top_k": None}
    stopping = ([stop_on_strings(tokenizer, options.stop, prompt_length)] if options.stop
                else None)
    output = model.generate(input_ids=input_ids, attention_mask=attention_mask,
                            max_new_tokens=new_tokens, num_return_sequences=answers_per_prompt,
                            pad_token_id=tokenizer.pad_token_id,
                            eos_token_id=tokenizer.eos_token_id, stopping_criteria=stopping,
                            return_dict_in_generate=True, output_logits=True, **sampling)
    log_probabilities = model.compute_transition_scores(output.sequences, output.logits,
                                                        normalize_logits=True)
    results = []
    for tokens, token_log_probabilities in zip(output.sequences[:, prompt_length:].tolist(),
                                               log_probabilities):
        length = answer_length(tokens, tokenizer)
        text = truncate_at_stop(tokenizer.decode(tokens[:length], skip_special_tokens=True),
                                options.stop).strip()
        probabilities = torch.exp(token_log_probabilities[:length].float())
        confidence = float(probabilities.mean()) if length else 0.0
        results.append((text, confidence))
    return results


def answer_length(tokens: list[int], tokenizer: Any) -> int:
    """How many generated tokens belong to the answer: through the first eos, else up to the
    padding a finished row (a stop string) was filled with."""
    if tokenizer.eos_token_id in tokens:
        return tokens.index(tokenizer.eos_token_id) + 1
    length = len(tokens)
    while length and tokens[length - 1] == tokenizer.pad_token_id:
        length -= 1
    return length


def truncate_at_stop(text: str, stops: Sequence[str]) -> str:
    """``text`` up to (not including) the earliest stop string in it."""
    cut = min((text.find(stop) for stop in stops if stop in text), default=-1)
    return text if cut < 0 else text[:cut]


def stop_on_strings(tokenizer: Any, stops: Sequence[str], prompt_length: int) -> Any:
    """A ``transformers`` stopping criterion: a row is done once its decoded answer contains one
    of ``stops``.

    Written here rather than using ``transformers``' ``StopStringCriteria`` because that one
    matches stop strings against the vocabulary's token strings, which concatenate to the text
    only for byte-level BPE and SentencePiece vocabularies (with a word-level tokenizer, as the
    test models have, it misses stops or stops early); decoding the answer is exact for any
    tokenizer, and costs one ``batch_decode`` of at most ``max_new_tokens`` tokens per row a step.
    """
    import torch
    from transformers import StoppingCriteria

    class StopOnStrings(StoppingCriteria):
        def __call__(self, input_ids: "torch.Tensor", scores: Any,
                     **kwargs: Any) -> "torch.Tensor":
            texts = tokenizer.batch_decode(input_ids[:, prompt_length:], skip_special_tokens=True)
            return torch.tensor([any(stop in text for stop in stops) for text in texts],
                                dtype=torch.bool, device=input_ids.device)

    return StopOnStrings()


# --------------------------------------------------------------------------------------------------
# Generation metrics while training
# --------------------------------------------------------------------------------------------------


def fixed_sample(examples: Sequence[Example], count: int, seed: int) -> list[Example]:
    """``count`` examples with a target, the same ones in every evaluation and every resumed run:
    those with the lowest seeded hash of their id (independent of the split's order)."""
    labelled = [example for example in examples if example.target is not None]

    def rank(example: Example) -> str:
        return hashlib.sha256(f"{seed}:{example.id}".encode()).hexdigest()

    return sorted(labelled, key=rank)[:count]


def text_metrics(metrics: Sequence[Metric]) -> list[Metric]:
    """The metrics that score generated text (not benchmarks that measure the model itself)."""
    return [metric for metric in metrics if not metric.measures_model]


def score(metrics: Sequence[Metric], predictions: list[Prediction],
          examples: list[Example]) -> dict[str, float]:
    from tuneloop.interface_checks import metric_figures

    figures: dict[str, float] = {}
    for metric in metrics:  # a broken metric is blamed on its own plugin
        figures.update(metric_figures(metric, predictions, examples))
    return figures


def figure_owners(metrics: Sequence[Metric], examples: list[Example]) -> dict[str, Metric]:
    """Which metric gives each figure name, found by scoring the references against themselves
    (no model needed): ``rouge`` gives ``rouge1``, ``rouge2``, ``rougeL``."""
    perfect = [Prediction(example_id=example.id, output=str(example.target))
               for example in examples]
    from tuneloop.interface_checks import metric_figures

    owners: dict[str, Metric] = {}
    for metric in metrics:
        for name in metric_figures(metric, perfect, examples):
            owners[name] = metric
    return owners


class GenerationEvaluator:
    """Generates for a fixed validation sample and scores it with the cycle's text metrics.

    Built before training (it checks ``training.select_metric`` against the figures it will give),
    then called by the training loop at each evaluation with the model as it is.
    """

    def __init__(self, context: "CycleContext", options: GenerationOptions,
                 validation: Sequence[Example]):
        self.context = context
        self.options = options
        self.metrics = text_metrics(context.metrics)
        self.sample = fixed_sample(validation, options.generation_eval_samples, context.seed)
        self.owners = figure_owners(self.metrics, self.sample) if self.sample else {}

    def check_select_metric(self, trainer_name: str) -> None:
        """``select_metric`` must be ``loss`` or a figure this evaluator gives; else a config
        error that says how to get it."""
        wanted = self.context.select_metric
        if wanted == "loss" or wanted in self.owners:
            return
        where = str(self.context.config.config_path or "config")
        if self.options.generation_eval_samples == 0:
            problem = (f'training.select_metric: "{wanted}" is measured on generated answers: '
                       f"set training.trainer.generation_eval_samples (e.g. "
                       f"{DEFAULT_EVAL_SAMPLES}) so {trainer_name} generates while training, "
                       f"or select on loss")
        elif not self.sample:
            problem = (f'training.select_metric: "{wanted}" needs validation examples with a '
                       f"completion to generate for; the validation split has none")
        else:
            given = {owner.name: [name for name, o in self.owners.items() if o is owner]
                     for owner in self.owners.values()}
            if wanted in given and given[wanted] != [wanted]:
                problem = (f'training.select_metric: "{wanted}" gives '
                           f"{', '.join(given[wanted])}: select one of them")
            else:
                figures = ", ".join(["loss", *self.owners])
                problem = (f'training.select_metric: "{wanted}" is not a validation figure of '
                           f"evaluation.metrics (there are: {figures})")
        raise ConfigError(where, [problem])

    def greater_is_better(self, figure: str) -> bool:
        if figure == "loss":
            return False
        owner = self.owners.get(figure)
        return owner.higher_is_better if owner is not None else True

    def figures(self, model: Any, tokenizer: Any, prompt_ids: Callable[[Example], list[int]]
                ) -> dict[str, float]:
        """The metrics' figures on the sample's greedy (or configured) answers, with the model
        in eval mode; the model's mode is restored afterwards."""
        if not self.sample or not self.metrics:
            return {}
        import torch

        was_training = model.training
        model.eval()
        try:
            with torch.inference_mode():
                answers = generate_answers(
                    model, tokenizer, [prompt_ids(example) for example in self.sample],
                    self.options, new_tokens=max_new_tokens(self.options, self.context),
                    batch_size=batch_size(self.options, self.context), seed=self.context.seed)
        finally:
            model.train(was_training)
        predictions = [Prediction(example_id=example.id, output=found[0][0],
                                  confidence=found[0][1])
                       for example, found in zip(self.sample, answers)]
        return score(self.metrics, predictions, self.sample)
