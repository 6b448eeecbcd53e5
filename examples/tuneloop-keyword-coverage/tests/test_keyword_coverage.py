"""Tests for keyword_coverage: used directly, found through the registry, used by a real cycle."""

from __future__ import annotations

import pytest

from tuneloop import Example, Prediction, registries
from tuneloop.testing import register_plugin, run_tiny_cycle

import tuneloop_keyword_coverage as plugin
from tuneloop_keyword_coverage import KeywordCoverage


def pairs(*items: tuple[str, str | None]) -> tuple[list[Prediction], list[Example]]:
    references = [Example(input=f"prompt {n}", target=target)
                  for n, (_, target) in enumerate(items)]
    predictions = [Prediction(example_id=ref.id, output=output)
                   for ref, (output, _) in zip(references, items)]
    return predictions, references


def test_keyword_coverage_is_the_mean_fraction_of_reference_words():
    predictions, references = pairs(
        ("Your refund is on its way", "refund on the way"),  # refund, on, way: 3 of 4
        ("PLEASE RESET your password.", "reset password"),   # case and punctuation ignored: 1.0
        ("no idea", "opening hours"),                        # 0.0
    )
    result = KeywordCoverage().compute(predictions, references)
    assert result == {"keyword_coverage": pytest.approx((0.75 + 1.0 + 0.0) / 3)}


def test_keyword_coverage_counts_each_reference_word_once():
    predictions, references = pairs(("card card", "card card blocked"))
    assert KeywordCoverage().compute(predictions, references) == {"keyword_coverage": 0.5}


def test_keyword_coverage_works_on_labels():
    predictions, references = pairs(("order_status", "order_status"), ("cancel_order", "refund"))
    assert KeywordCoverage().compute(predictions, references) == {"keyword_coverage": 0.5}


def test_keyword_coverage_skips_examples_without_reference_words():
    predictions, references = pairs(("anything", None), ("anything", "?!"), ("late", "late"))
    assert KeywordCoverage().compute(predictions, references) == {"keyword_coverage": 1.0}
    predictions, references = pairs(("anything", None))
    assert KeywordCoverage().compute(predictions, references) == {}
    assert KeywordCoverage().compute([], []) == {}


def test_keyword_coverage_refuses_mismatched_inputs():
    predictions, references = pairs(("a", "a"), ("b", "b"))
    with pytest.raises(ValueError, match="1 predictions for 2 references"):
        KeywordCoverage().compute(predictions[:1], references)
    with pytest.raises(ValueError, match="same order"):
        KeywordCoverage().compute(predictions[::-1], references)


# --------------------------------------------------------------------------------------------------
# Inside tuneloop: the registry, a real causal-LM cycle
# --------------------------------------------------------------------------------------------------


def test_registers_through_its_hook():
    with register_plugin(plugin, name="keyword-coverage") as name:
        entry = registries.build().metrics.entry("keyword_coverage")
    assert entry.component is KeywordCoverage and entry.plugin == name


def test_a_tiny_causal_lm_cycle_scores_generations_with_it(tmp_path):
    cycle = run_tiny_cycle(tmp_path, task="causal-lm", plugins=[plugin], config={
        "evaluation": {"metrics": ["keyword_coverage"]}})
    assert cycle.result.status == "done"
    for split in ("validation", "test"):
        assert 0.0 <= cycle.metrics[split]["keyword_coverage"] <= 1.0
    [used] = cycle.record()["components"]["metrics"]
    assert used["name"] == "keyword_coverage"
