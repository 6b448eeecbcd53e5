"""Generation metrics: exact match, BLEU and chrF (sacrebleu, 0-100), ROUGE (rouge-score, 0-1),
perplexity, and length statistics. They suit causal-LM completions; exact match suits labels too.
"""

from __future__ import annotations

import math
from typing import Any, Literal

from pydantic import Field

from tuneloop import Example, Metric, Options, Prediction
from tuneloop.plugins.metrics.base import EvaluateModuleMetric, scored


class ExactMatch(EvaluateModuleMetric):
    """The fraction of outputs equal to the reference, ignoring case and whitespace."""

    name = "exact_match"
    tasks = ("classification", "causal-lm")


class BleuOptions(Options):
    tokenize: Literal["13a", "none", "intl", "char", "zh", "ja-mecab", "ko-mecab", "flores101",
                      "flores200"] = "13a"
    lowercase: bool = False


class Bleu(EvaluateModuleMetric):
    """Corpus BLEU (sacrebleu) of the outputs against the reference completions, 0-100."""

    name = "bleu"
    tasks = ("causal-lm",)
    Options = BleuOptions

    def module_options(self) -> dict[str, Any]:
        return {"tokenize": self.options.tokenize, "lowercase": self.options.lowercase}


class ChrfOptions(Options):
    word_order: int = Field(0, ge=0, le=2, description="2 gives chrF++ (adds word bigrams)")


class Chrf(EvaluateModuleMetric):
    """Corpus chrF (sacrebleu): character n-gram F-score, 0-100; robust for short answers and
    morphologically rich languages where BLEU is all zeros."""

    name = "chrf"
    tasks = ("causal-lm",)
    Options = ChrfOptions

    def module_options(self) -> dict[str, Any]:
        return {"word_order": self.options.word_order}


class RougeOptions(Options):
    rouge_types: list[Literal["rouge1", "rouge2", "rougeL"]] = Field(
        default_factory=lambda: ["rouge1", "rouge2", "rougeL"], min_length=1)
    use_stemmer: bool = False


class Rouge(EvaluateModuleMetric):
    """ROUGE F-measures (``rouge1``, ``rouge2``, ``rougeL``) averaged over examples, 0-1."""

    name = "rouge"
    tasks = ("causal-lm",)
    Options = RougeOptions

    def module_options(self) -> dict[str, Any]:
        return {"rouge_types": list(self.options.rouge_types),
                "use_stemmer": self.options.use_stemmer}

    def figures(self, result: dict[str, Any]) -> dict[str, float]:
        return {name: float(result[name]) for name in self.options.rouge_types}

    def figure_names(self) -> list[str] | None:
        return list(self.options.rouge_types)


class Length(EvaluateModuleMetric):
    """Output and reference lengths in words: ``output_words_mean``, ``output_words_max``,
    ``reference_words_mean``, ``length_ratio`` and ``empty_rate``."""

    name = "length"
    tasks = ("causal-lm",)

    def figures(self, result: dict[str, Any]) -> dict[str, float]:
        return {name: float(value) for name, value in result.items()}

    def figure_names(self) -> list[str] | None:
        return ["output_words_mean", "output_words_max", "reference_words_mean", "length_ratio",
                "empty_rate"]


class Perplexity(Metric):
    """``exp(total nll / total tokens)`` of the reference completions, from ``Prediction.extra``.

    Token-weighted over the whole split (not a mean of per-example perplexities), so it equals
    ``exp`` of the validation loss the trainer reports on the same examples.
    """

    name = "perplexity"
    tasks = ("causal-lm",)
    higher_is_better = False

    def compute(self, predictions: list[Prediction], references: list[Example]) -> dict[str, float]:
        scored(predictions, references)  # alignment check
        measured = [prediction.extra for prediction in predictions
                    if "nll" in prediction.extra and "tokens" in prediction.extra]
        tokens = sum(extra["tokens"] for extra in measured)
        if not tokens:
            return {}
        mean_nll = sum(extra["nll"] for extra in measured) / tokens
        try:
            return {"perplexity": math.exp(mean_nll)}
        except OverflowError:
            return {"perplexity": math.inf}

    def figure_names(self) -> list[str] | None:
        return ["perplexity"]
