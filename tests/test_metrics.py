"""The built-in metrics, checked against scikit-learn and hand-computed values.

The first compute imports ``evaluate`` (seconds) and loads the local modules offline.
"""

from __future__ import annotations

import math
import os
import random

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from sklearn import metrics as sk  # noqa: E402

from tuneloop import Example, Metric, Prediction  # noqa: E402
from tuneloop.plugins import metrics  # noqa: E402
from tuneloop.registries import Registry  # noqa: E402


def answered(pairs: list[tuple[str, str | None]], inputs: list[str] | None = None):
    """References and aligned predictions from ``(output, target)`` pairs."""
    references = [Example(inputs[n] if inputs else f"example {n}", target)
                  for n, (_, target) in enumerate(pairs)]
    predictions = [Prediction(example_id=reference.id, output=output)
                   for reference, (output, _) in zip(references, pairs)]
    return predictions, references


@pytest.fixture(scope="module")
def three_label_run():
    """60 noisy predictions over three labels, one of them never predicted."""
    rng = random.Random(7)
    targets = [rng.choice(["billing", "refund", "login"]) for _ in range(60)]
    outputs = [target if rng.random() < 0.6 else rng.choice(["billing", "refund"])
               for target in targets]
    return targets, outputs


@pytest.mark.parametrize("metric, reference", [
    (metrics.Accuracy(), lambda y, p: sk.accuracy_score(y, p)),
    (metrics.Precision(), lambda y, p: sk.precision_score(y, p, average="macro", zero_division=0)),
    (metrics.Recall(), lambda y, p: sk.recall_score(y, p, average="macro", zero_division=0)),
    (metrics.F1(), lambda y, p: sk.f1_score(y, p, average="macro", zero_division=0)),
])
def test_label_metrics_match_scikit_learn(metric, reference, three_label_run):
    targets, outputs = three_label_run
    predictions, references = answered(list(zip(outputs, targets)))
    value = metric.compute(predictions, references)
    assert list(value) == [metric.name]
    assert isinstance(value[metric.name], float)
    assert value[metric.name] == pytest.approx(reference(targets, outputs))
    assert 0 < value[metric.name] < 1


def test_macro_f1_counts_every_label_equally():
    # 9 of 10 right on "a", the one "b" missed: accuracy 0.9, but "b" has F1 0, so macro F1 ~ 0.47
    pairs = [("a", "a")] * 9 + [("a", "b")]
    predictions, references = answered(pairs)
    assert metrics.Accuracy().compute(predictions, references) == {"accuracy": pytest.approx(0.9)}
    assert metrics.F1().compute(predictions, references) == {"f1": pytest.approx((18 / 19) / 2)}


def test_exact_match_ignores_case_and_whitespace_only():
    pairs = [("Paris", "paris"), ("  new   york ", "New York"), ("Paris.", "Paris"), ("", "Rome")]
    predictions, references = answered(pairs)
    assert metrics.ExactMatch().compute(predictions, references) == {"exact_match": 0.5}


def test_perplexity_is_exp_of_the_token_weighted_mean_nll():
    references = [Example("q1", "a"), Example("q2", "b c d"), Example("q3", None)]
    predictions = [Prediction(references[0].id, "a", extra={"nll": 2.0, "tokens": 1}),
                   Prediction(references[1].id, "b", extra={"nll": 4.0, "tokens": 3}),
                   Prediction(references[2].id, "x")]
    value = metrics.Perplexity().compute(predictions, references)
    assert value == {"perplexity": pytest.approx(math.exp(6.0 / 4))}  # not the mean of e^2, e^(4/3)


def test_examples_without_a_target_are_not_scored():
    pairs = [("pos", "pos"), ("neg", None), ("neg", "pos")]
    predictions, references = answered(pairs)
    assert metrics.Accuracy().compute(predictions, references) == {"accuracy": 0.5}
    unlabelled = answered([("pos", None)])
    for metric in (metrics.Accuracy(), metrics.ExactMatch(), metrics.Perplexity()):
        assert metric.compute(*unlabelled) == {}


def test_misaligned_predictions_are_an_error():
    predictions, references = answered([("a", "a"), ("b", "b")])
    with pytest.raises(ValueError, match="order"):
        metrics.Accuracy().compute(list(reversed(predictions)), references)
    with pytest.raises(ValueError, match="1 predictions for 2 references"):
        metrics.Accuracy().compute(predictions[:1], references)


def test_each_module_is_loaded_once_per_process():
    assert metrics.load_module("accuracy") is metrics.load_module("accuracy")
    assert metrics.load_module("accuracy") is not metrics.load_module("f1")


def test_register_metrics_gives_valid_metrics_for_their_tasks():
    registry = Registry("metrics", Metric)
    metrics.register_metrics(register=lambda component: registry.add(component, "builtin"))
    assert registry.names() == ["accuracy", "exact_match", "f1", "perplexity", "precision",
                                "recall"]
    for name in ("accuracy", "precision", "recall", "f1"):
        assert registry.get(name).tasks == ("classification",)
    assert registry.get("exact_match").tasks == ("classification", "causal-lm")
    assert registry.get("perplexity").tasks == ("causal-lm",)
    assert registry.get("perplexity").higher_is_better is False
    for name in registry.names():
        if name != "perplexity":
            assert (metrics.MODULES_DIR / name / f"{name}.py").is_file()
