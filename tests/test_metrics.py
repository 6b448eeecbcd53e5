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
    assert registry.names() == ["accuracy", "bleu", "chrf", "confusion_matrix", "ece", "evaluate",
                                "exact_match", "f1", "length", "per_class", "perplexity",
                                "precision", "recall", "rouge", "top_k_accuracy"]
    for name in ("accuracy", "precision", "recall", "f1", "per_class", "confusion_matrix",
                 "top_k_accuracy"):
        assert registry.get(name).tasks == ("classification",)
    for name in ("bleu", "chrf", "rouge", "length", "perplexity"):
        assert registry.get(name).tasks == ("causal-lm",)
    assert registry.get("exact_match").tasks == ("classification", "causal-lm")
    assert registry.get("ece").tasks == ("classification", "causal-lm")
    assert registry.get("perplexity").higher_is_better is False
    assert registry.get("ece").higher_is_better is False
    for entry in registry:
        metric = entry.component
        assert metric.__doc__ and not metric.measures_model
        if isinstance(metric, type) and issubclass(metric, metrics.EvaluateModuleMetric):
            module = metric.module or metric.name
            assert (metrics.MODULES_DIR / module / f"{module}.py").is_file()


# --------------------------------------------------------------------------------------------------
# Looked up through the registries, as a cycle does
# --------------------------------------------------------------------------------------------------


def built(name: str, **options):
    """The metric ``name`` from the registries, with validated options."""
    from tuneloop import registries

    component = registries.build()["metrics"].get(name)
    return component(component.Options.model_validate(options))


@pytest.mark.parametrize("average", ["macro", "micro", "weighted"])
@pytest.mark.parametrize("name, reference", [
    ("precision", sk.precision_score), ("recall", sk.recall_score), ("f1", sk.f1_score)])
def test_averages_match_scikit_learn(name, reference, average, three_label_run):
    targets, outputs = three_label_run
    predictions, references = answered(list(zip(outputs, targets)))
    figure = name if average == "macro" else f"{name}_{average}"
    value = built(name, average=average).compute(predictions, references)
    assert value == {figure: pytest.approx(reference(targets, outputs, average=average,
                                                     zero_division=0))}


def test_an_unknown_average_is_an_option_error():
    from pydantic import ValidationError

    with pytest.raises(ValidationError, match="average"):
        built("f1", average="samples")


def test_per_class_report_matches_scikit_learn(three_label_run):
    targets, outputs = three_label_run
    predictions, references = answered(list(zip(outputs, targets)))
    value = built("per_class").compute(predictions, references)
    labels = ["billing", "login", "refund"]
    precision, recall, f1, support = sk.precision_recall_fscore_support(
        targets, outputs, labels=labels, zero_division=0)
    for index, label in enumerate(labels):
        assert value[f"precision[{label}]"] == pytest.approx(precision[index])
        assert value[f"recall[{label}]"] == pytest.approx(recall[index])
        assert value[f"f1[{label}]"] == pytest.approx(f1[index])
        assert value[f"support[{label}]"] == support[index]
    assert value["precision[login]"] == 1.0  # noise never says "login": every "login" is right
    assert len(value) == 12


def test_confusion_matrix_counts_by_hand():
    pairs = [("a", "a"), ("a", "a"), ("b", "a"), ("b", "b"), ("a", "c")]  # (output, target)
    predictions, references = answered(pairs)
    value = built("confusion_matrix").compute(predictions, references)
    assert value == {"confusion[a][a]": 2.0, "confusion[a][b]": 1.0, "confusion[b][b]": 1.0,
                     "confusion[c][a]": 1.0}  # [reference][predicted], zero cells left out
    cells = sk.confusion_matrix([t for _, t in pairs], [o for o, _ in pairs],
                                labels=["a", "b", "c"])
    assert cells.sum() == sum(value.values())


def test_expected_calibration_error_by_hand():
    # two bins: [0, 0.5) holds 0.2 (right) and 0.4 (wrong): accuracy 0.5, confidence 0.3;
    # [0.5, 1] holds 0.9 (right), 1.0 (right), 0.6 (wrong): accuracy 2/3, confidence 2.5/3
    rows = [(0.2, True), (0.4, False), (0.9, True), (1.0, True), (0.6, False)]
    references = [Example(f"q{n}", "yes") for n in range(len(rows))]
    predictions = [Prediction(reference.id, "yes" if right else "no", confidence=confidence)
                   for reference, (confidence, right) in zip(references, rows)]
    expected = 2 / 5 * abs(0.5 - 0.3) + 3 / 5 * abs(2 / 3 - 2.5 / 3)
    assert built("ece", bins=2).compute(predictions, references) == {"ece": pytest.approx(expected)}
    # perfectly calibrated: 80% confident, right 4 times out of 5
    sure = [Prediction(reference.id, "yes" if n < 4 else "no", confidence=0.8)
            for n, reference in enumerate(references)]
    assert built("ece").compute(sure, references) == {"ece": pytest.approx(0.0)}
    unsure = [Prediction(reference.id, "yes") for reference in references]
    assert built("ece").compute(unsure, references) == {}


def test_top_k_accuracy_matches_scikit_learn():
    rng = random.Random(3)
    labels = ["a", "b", "c", "d", "e"]
    references = [Example(f"q{n}", rng.choice(labels)) for n in range(40)]
    rows = [[rng.random() for _ in labels] for _ in references]
    predictions = [Prediction(reference.id, labels[max(range(5), key=row.__getitem__)],
                              scores=dict(zip(labels, row)))
                   for reference, row in zip(references, rows)]
    targets = [reference.target for reference in references]
    for k in (1, 2, 3):
        value = built("top_k_accuracy", k=k).compute(predictions, references)
        assert value == {f"top_{k}_accuracy": pytest.approx(
            sk.top_k_accuracy_score(targets, rows, k=k, labels=labels))}
    assert built("top_k_accuracy", k=1).compute(predictions, references)["top_1_accuracy"] == \
        pytest.approx(sk.accuracy_score(targets, [p.output for p in predictions]))


def test_bleu_and_chrf_match_sacrebleu_and_hand_values():
    import sacrebleu

    pairs = [("the cat sat on the mat", "the cat sat on the mat"),
             ("a dog ran in the park today", "the dog ran in the park"),
             ("hello world", "goodbye world")]
    predictions, references = answered(pairs)
    outputs, targets = [o for o, _ in pairs], [t for _, t in pairs]
    assert built("bleu").compute(predictions, references) == {
        "bleu": pytest.approx(sacrebleu.corpus_bleu(outputs, [targets]).score)}
    assert built("chrf").compute(predictions, references) == {
        "chrf": pytest.approx(sacrebleu.corpus_chrf(outputs, [targets]).score)}
    assert built("chrf", word_order=2).compute(predictions, references)["chrf"] == pytest.approx(
        sacrebleu.corpus_chrf(outputs, [targets], word_order=2).score)
    identical = answered([("the cat sat on the mat", "the cat sat on the mat")])
    assert built("bleu").compute(*identical) == {"bleu": pytest.approx(100.0)}
    assert built("chrf").compute(*identical) == {"chrf": pytest.approx(100.0)}
    # hand-computed BLEU: 4 tokens, 3 of 4 unigrams, 2 of 3 bigrams, 1 of 2 trigrams, 0 of 1
    # 4-gram match; sacrebleu smooths the zero count ("exp": 1 / 2) → geometric mean x 100
    partial = answered([("a b c x", "a b c d")])
    expected = 100 * math.exp((math.log(3 / 4) + math.log(2 / 3) + math.log(1 / 2)
                               + math.log(0.5 / 1)) / 4)
    assert built("bleu").compute(*partial) == {"bleu": pytest.approx(expected)}


def test_rouge_by_hand():
    # rouge1: 3 of 4 output words match 3 of 5 reference words: P 3/4, R 3/5, F = 2PR/(P+R)
    # rouge2: bigrams "the cat", "cat sat" match of 3 output and 4 reference bigrams
    # rougeL: longest common subsequence "the cat sat" (3 words)
    predictions, references = answered([("the cat sat down", "the cat sat on mats")])
    value = built("rouge").compute(predictions, references)

    def f(p, r):
        return 2 * p * r / (p + r)

    assert value == {"rouge1": pytest.approx(f(3 / 4, 3 / 5)),
                     "rouge2": pytest.approx(f(2 / 3, 2 / 4)),
                     "rougeL": pytest.approx(f(3 / 4, 3 / 5))}
    assert set(built("rouge", rouge_types=["rouge2"]).compute(predictions, references)) == \
        {"rouge2"}


def test_length_statistics_by_hand():
    predictions, references = answered([("one two three", "one two"), ("", "a b c d"),
                                        ("x y", "x y")])
    assert built("length").compute(predictions, references) == {
        "output_words_mean": pytest.approx(5 / 3), "output_words_max": 3.0,
        "reference_words_mean": pytest.approx(8 / 3), "length_ratio": pytest.approx(5 / 8),
        "empty_rate": pytest.approx(1 / 3)}


def test_evaluate_metric_loads_a_local_module_by_path(three_label_run):
    targets, outputs = three_label_run
    predictions, references = answered(list(zip(outputs, targets)))
    path = str(metrics.MODULES_DIR / "accuracy")
    value = built("evaluate", module=path, labels_as_ids=True).compute(predictions, references)
    assert value == {"accuracy.accuracy": pytest.approx(sk.accuracy_score(targets, outputs))}
    rouge = built("evaluate", module=str(metrics.MODULES_DIR / "rouge" / "rouge.py"),
                  keys=["rouge1"], options={"rouge_types": ["rouge1", "rouge2"]})
    assert set(rouge.compute(*answered([("a b", "a c")]))) == {"rouge.rouge1"}


def test_evaluate_metric_says_when_the_hub_is_out_of_reach(monkeypatch):
    from tuneloop import TuneloopError

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    metric = built("evaluate", module="bertscore")
    with pytest.raises(TuneloopError, match='"bertscore" is on the Hugging Face hub and this '
                                            "machine is offline"):
        metric.compute(*answered([("a", "a")]))
    # online but unreachable (or no such module): evaluate's own error, named as such
    import evaluate

    def unreachable(*args, **kwargs):
        raise ConnectionError("Couldn't reach huggingface.co")

    for variable in ("HF_HUB_OFFLINE", "HF_EVALUATE_OFFLINE", "TRANSFORMERS_OFFLINE"):
        monkeypatch.delenv(variable, raising=False)
    monkeypatch.setattr(evaluate, "load", unreachable)
    with pytest.raises(TuneloopError, match="cannot load \"bertscore\" from the Hugging Face hub"):
        built("evaluate", module="bertscore").compute(*answered([("a", "a")]))
