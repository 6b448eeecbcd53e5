"""least_confident and random review samplers."""

from __future__ import annotations

import random
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tuneloop import ReviewCandidate, registries
from tuneloop import cycle as cycle_module
from tuneloop.plugins.samplers import LeastConfident, RandomSample, plain_least_confident


def candidate(output_id: int, confidence: float | None) -> ReviewCandidate:
    return ReviewCandidate(output_id=output_id, example_id=f"e{output_id}", input=f"in {output_id}",
                           output="x", confidence=confidence)


CANDIDATES = [candidate(5, 0.9), candidate(3, None), candidate(8, 0.2), candidate(1, 0.2),
              candidate(2, 0.55), candidate(7, float("nan")), candidate(4, 0.0)]


def test_samplers_are_registered_through_the_registry():
    found = registries.build()
    assert found.review_samplers.get("least_confident") is LeastConfident
    assert found.review_samplers.get("random") is RandomSample
    assert found.review_samplers.entry("random").plugin == "tuneloop.plugins.samplers"


def test_least_confident_first_ties_by_output_id_unknown_last():
    chosen = LeastConfident().select(CANDIDATES, 10, random.Random(0))
    assert [c.output_id for c in chosen] == [4, 1, 8, 2, 5, 3, 7]
    assert [c.output_id for c in plain_least_confident().select(CANDIDATES, 3,
                                                                random.Random(0))] == [4, 1, 8]


@pytest.mark.parametrize("sampler", [LeastConfident(), RandomSample()])
def test_at_most_k(sampler):
    assert sampler.select(CANDIDATES, 0, random.Random(0)) == []
    assert sampler.select(CANDIDATES, -1, random.Random(0)) == []
    assert sampler.select([], 5, random.Random(0)) == []
    assert len(sampler.select(CANDIDATES, 3, random.Random(0))) == 3
    assert sorted(c.output_id for c in sampler.select(CANDIDATES, 100, random.Random(0))) == [
        1, 2, 3, 4, 5, 7, 8]


def test_random_is_seeded_and_independent_of_input_order():
    first = [c.output_id for c in RandomSample().select(CANDIDATES, 4, random.Random(42))]
    again = [c.output_id for c in RandomSample().select(list(reversed(CANDIDATES)), 4,
                                                        random.Random(42))]
    assert first == again and len(set(first)) == 4
    many = {tuple(c.output_id for c in RandomSample().select(CANDIDATES, 4, random.Random(seed)))
            for seed in range(20)}
    assert len(many) > 10  # different seeds give different samples


@settings(max_examples=50, deadline=None)
@given(confidences=st.lists(st.none() | st.floats(0, 1), max_size=20), k=st.integers(0, 25))
def test_least_confident_property(confidences, k):
    candidates = [candidate(n, c) for n, c in enumerate(confidences)]
    chosen = plain_least_confident().select(candidates, k, random.Random(0))
    assert len(chosen) == min(k, len(candidates))
    known = [c.confidence for c in chosen if c.confidence is not None]
    assert known == sorted(known)
    rest = [c.confidence for c in candidates if c not in chosen and c.confidence is not None]
    assert all(value <= other for value in known for other in rest)


# ---- margin, entropy, disagreement, stratified, mix ------------------------------------------


def scored(output_id: int, scores: dict[str, float] | None, output: str | None = None,
           previous: str | None = None,
           previous_scores: dict[str, float] | None = None) -> ReviewCandidate:
    top = max(scores, key=scores.get) if scores else "x"
    return ReviewCandidate(output_id=output_id, example_id=f"e{output_id}",
                           input=f"in {output_id}", output=output or top,
                           confidence=scores[top] if scores else None, scores=scores,
                           previous_output=previous, previous_scores=previous_scores)


def sampler(name: str, **options):
    component = registries.build().review_samplers.get(name)
    return component(component.Options.model_validate(options))


@pytest.mark.parametrize("name", ["least_confident", "margin", "entropy", "disagreement",
                                  "stratified", "random", "mix"])
def test_every_sampler_is_registered_with_options_and_a_docstring(name):
    found = registries.build().review_samplers
    entry = found.entry(name)
    assert entry.plugin == "tuneloop.plugins.samplers"
    assert entry.component.__doc__ and entry.component.Options is not None
    chosen = sampler(name).select(CANDIDATES, 3, random.Random(0))
    assert len(chosen) == 3 and len({c.output_id for c in chosen}) == 3


def test_margin_puts_the_model_torn_between_two_labels_first():
    torn = scored(1, {"a": 0.45, "b": 0.44, "c": 0.11})        # margin 0.01
    spread = scored(2, {"a": 0.40, "b": 0.30, "c": 0.30})      # margin 0.10
    sure = scored(3, {"a": 0.90, "b": 0.05, "c": 0.05})        # margin 0.85
    unknown = scored(4, None)
    chosen = sampler("margin").select([sure, unknown, spread, torn], 4, random.Random(0))
    assert [c.output_id for c in chosen] == [1, 2, 3, 4]


def test_entropy_puts_the_model_lost_among_many_labels_first():
    torn = scored(1, {"a": 0.45, "b": 0.44, "c": 0.11})
    spread = scored(2, {"a": 0.34, "b": 0.33, "c": 0.33})
    sure = scored(3, {"a": 0.90, "b": 0.05, "c": 0.05})
    chosen = sampler("entropy").select([sure, torn, spread], 3, random.Random(0))
    assert [c.output_id for c in chosen] == [2, 1, 3]
    # margin and entropy disagree on exactly these two: the samplers measure different things
    assert [c.output_id for c in sampler("margin").select([sure, torn, spread], 3,
                                                          random.Random(0))] == [1, 2, 3]


def test_disagreement_puts_changed_answers_first_then_the_unpaired_least_confident():
    flipped = scored(1, {"a": 0.6, "b": 0.4}, previous="b",
                     previous_scores={"a": 0.4, "b": 0.6})
    flipped_far = scored(2, {"a": 0.9, "b": 0.1}, previous="b",
                         previous_scores={"a": 0.1, "b": 0.9})
    same = scored(3, {"a": 0.8, "b": 0.2}, previous="a", previous_scores={"a": 0.5, "b": 0.5})
    new_unsure = scored(4, {"a": 0.55, "b": 0.45})
    new_sure = scored(5, {"a": 0.95, "b": 0.05})
    chosen = sampler("disagreement").select([new_sure, same, new_unsure, flipped, flipped_far],
                                            5, random.Random(0))
    assert [c.output_id for c in chosen] == [2, 1, 3, 4, 5]
    texts = [ReviewCandidate(10, "e", "i", "the parcel is lost", previous_output="the parcel "
                             "is lost"),
             ReviewCandidate(11, "e", "i", "it ships today", previous_output="it shipped "
                             "yesterday"),
             ReviewCandidate(12, "e", "i", "refund issued", previous_output="no idea")]
    assert [c.output_id for c in sampler("disagreement").select(texts, 3, random.Random(0))] \
        == [12, 11, 10]


def test_stratified_takes_labels_in_turns_so_rare_labels_are_reviewed():
    common = [scored(n, {"a": 0.5 + n / 100, "b": 0.5 - n / 100}) for n in range(1, 9)]
    rare = [scored(20, {"b": 0.7, "a": 0.3}), scored(21, {"b": 0.9, "a": 0.1})]
    chosen = sampler("stratified").select(common + rare, 4, random.Random(0))
    assert [(c.output, c.output_id) for c in chosen] == [("a", 1), ("b", 20), ("a", 2),
                                                         ("b", 21)]
    # least confident first alone never gets to the rare label in the first four
    assert {c.output for c in plain_least_confident().select(common + rare, 4,
                                                             random.Random(0))} == {"a"}
    # the default least_confident spreads its batch over the predicted labels
    assert {c.output for c in LeastConfident().select(common + rare, 4, random.Random(0))} \
        == {"a", "b"}
    proportional = sampler("stratified", allocation="proportional").select(
        common + rare, 5, random.Random(0))
    assert [c.output for c in proportional].count("b") == 1


def test_mix_fills_its_shares_interleaved_and_without_duplicates():
    candidates = [scored(n, {"a": 0.3 + n / 100, "b": 0.7 - n / 100}) for n in range(40)]
    chosen = sampler("mix", samplers={"least_confident": 3, "random": 1}).select(
        candidates, 8, random.Random(7))
    ids = [c.output_id for c in chosen]
    assert len(ids) == 8 and len(set(ids)) == 8
    least = [c.output_id for c in LeastConfident().select(candidates, 6, random.Random(0))]
    assert sum(output_id in least for output_id in ids) >= 6  # its 6 share
    assert ids[0] in least and ids[-1] in least
    assert any(output_id not in least for output_id in ids[:5])  # random ones are spread in
    # a sampler that cannot fill its share (no previous cycle) leaves it to the others
    fallback = sampler("mix", samplers={"disagreement": 1, "least_confident": 1}).select(
        candidates, 6, random.Random(0))
    assert len({c.output_id for c in fallback}) == 6


@pytest.mark.parametrize("options, message", [
    ({"samplers": {"nosuch": 1}}, 'unknown review sampler "nosuch"'),
    ({"samplers": {"random": 0}}, "must be a number above 0"),
    ({"samplers": {"mix": 1}}, "cannot contain another mix"),
    ({"samplers": {}}, "at least one"),
    ({"within": "entropy"}, None),
])
def test_sampler_options_are_checked(options, message):
    from pydantic import ValidationError

    component = "stratified" if "within" in options else "mix"
    with pytest.raises(ValidationError) as caught:
        registries.build().review_samplers.get(component).Options.model_validate(options)
    if message:
        assert message in str(caught.value)


def test_margin_and_stratified_are_refused_for_causal_lm_configs(tmp_path):
    from tuneloop.config import load_config
    from tuneloop.errors import ConfigError

    (tmp_path / "config.yaml").write_text(
        "project: p\ntask: causal-lm\nmodel: {name: m}\n"
        "data: {sources: [{type: jsonl, path: d.jsonl}]}\nreview: {sampler: margin}\n")
    with pytest.raises(ConfigError, match='review sampler "margin" does not support task'):
        load_config(tmp_path / "config.yaml")


# ---- spreading the batch, cold start --------------------------------------------------------


def embedded(output_id: int, confidence: float, cluster: int, output: str = "a") -> ReviewCandidate:
    """A candidate whose embedding sits near one of four orthogonal directions."""
    import numpy as np

    vector = np.zeros(8, dtype=np.float32)
    vector[cluster] = 1.0
    vector[4 + output_id % 4] = 0.05  # a little spread within the cluster
    return ReviewCandidate(output_id=output_id, example_id=f"e{output_id}", input=f"in {output_id}",
                           output=output, confidence=confidence, embedding=vector)


def test_least_confident_spreads_its_batch_over_embedding_clusters():
    # the 12 least confident are all in cluster 0; one somewhat uncertain output in each other
    near_identical = [embedded(n, 0.60 + n / 1000, 0) for n in range(12)]
    others = [embedded(100 + c, 0.70 + c / 100, c) for c in (1, 2, 3)]
    sure = [embedded(200 + n, 0.99, n % 4) for n in range(20)]
    candidates = near_identical + others + sure
    chosen = LeastConfident().select(candidates, 4, random.Random(0))
    clusters = {int(c.embedding[:4].argmax()) for c in chosen}
    assert clusters == {0, 1, 2, 3}  # one from each cluster...
    assert chosen[0].output_id == 0  # ...the most uncertain first, queue order by confidence
    assert all(c.confidence < 0.9 for c in chosen)  # from the uncertain pool, not the sure ones
    plain = plain_least_confident().select(candidates, 4, random.Random(0))
    assert {int(c.embedding[:4].argmax()) for c in plain} == {0}  # what spreading avoids


def test_cold_start_mixes_representative_picks_in_and_is_seeded():
    weak = [embedded(n, 0.05 + (n % 7) / 100, n % 4) for n in range(40)]
    chosen = LeastConfident().select(weak, 8, random.Random(3))
    again = LeastConfident().select(list(reversed(weak)), 8, random.Random(3))
    assert len({c.output_id for c in chosen}) == 8
    assert [c.output_id for c in chosen] == [c.output_id for c in again]
    assert {int(c.embedding[:4].argmax()) for c in chosen} == {0, 1, 2, 3}
    # without the rule (and without spreading) the 8 least confident are taken as they come
    plain = plain_least_confident().select(weak, 8, random.Random(3))
    assert max(c.confidence for c in plain) <= min(c.confidence for c in weak
                                                   if c not in plain)


def test_spreading_without_embeddings_takes_predicted_labels_in_turns():
    pool = [scored(n, {"a": 0.40 + n / 100, "b": 0.60 - n / 100}, output="a") for n in range(6)]
    pool += [scored(10, {"b": 0.5, "a": 0.5}, output="b"), scored(11, {"c": 0.52, "a": 0.48},
                                                                  output="c")]
    chosen = sampler("margin", diversity="labels").select(pool, 3, random.Random(0))
    assert {c.output for c in chosen} == {"a", "b", "c"}


def test_each_cycle_draws_its_own_random_sample():
    """The cycle seeds the sampler's rng with the training seed and the cycle id."""
    candidates = [candidate(n, 0.5) for n in range(50)]
    draws = {tuple(c.output_id for c in RandomSample().select(candidates, 5,
                                                              random.Random(f"13:{cycle}")))
             for cycle in range(1, 6)}
    assert len(draws) == 5
    source = Path(cycle_module.__file__).read_text()
    assert 'random.Random(f"{context.seed}:{cycle_id}")' in source
