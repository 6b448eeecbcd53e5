"""char_noise: label-preserving keyboard typos, deterministic, never an exact copy."""

from __future__ import annotations

import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from tuneloop import Example, registries
from tuneloop.plugins.augmenters import NEIGHBOURS, CharNoise


def augment(examples, seed=0, **options):
    return list(CharNoise(CharNoise.Options(**options)).augment(examples, random.Random(seed)))


def test_char_noise_is_registered_for_classification_only():
    found = registries.build()
    component = found.augmenters.get("char_noise")
    assert component is CharNoise
    assert component.tasks == ("classification",)


def test_neighbours_are_adjacent_keys():
    assert set(NEIGHBOURS["a"]) == set("qwsz")
    assert set(NEIGHBOURS["g"]) == set("fhtyvb")
    assert set(NEIGHBOURS["p"]) == set("ol")
    assert set(NEIGHBOURS) == set("abcdefghijklmnopqrstuvwxyz")
    assert all(key not in near for key, near in NEIGHBOURS.items())


def test_variants_keep_label_weight_group_source_and_record_provenance():
    original = Example("please check my account balance", "balance", weight=2.0, group="g1",
                       source="intents.jsonl", split="train")
    variants = augment([original], copies=3, probability=0.1)
    assert len(variants) == 3
    assert len({v.input for v in variants}) == 3
    for variant in variants:
        assert variant.input != original.input
        assert len(variant.input) == len(original.input)
        assert (variant.target, variant.weight, variant.group, variant.source, variant.split) == (
            "balance", 2.0, "g1", "intents.jsonl", "train")
        assert variant.provenance == {"kind": "augmented", "from": original.id,
                                      "augmenter": "char_noise"}
        assert variant.id != original.id
        for before, after in zip(original.input, variant.input):
            assert after == before or after in NEIGHBOURS[before]  # only neighbouring keys


def test_deterministic_given_the_rng():
    examples = [Example(f"sentence number {n} about money", "x") for n in range(20)]
    first = [e.input for e in augment(examples, seed=7, copies=2)]
    assert first == [e.input for e in augment(examples, seed=7, copies=2)]
    assert first != [e.input for e in augment(examples, seed=8, copies=2)]


def test_case_digits_and_punctuation_are_kept():
    [variant] = augment([Example("ABC 123 !?", "x")], probability=1.0)
    assert variant.input[3:] == " 123 !?"
    assert variant.input[:3].isupper() and variant.input[:3] != "ABC"


def test_nothing_to_change_means_no_variant():
    examples = [Example("123 !!!", "x"), Example("", "y"), Example("éèß ΩЖ", "z"),
                Example("unlabeled text")]
    assert augment(examples, copies=5) == []


def test_copies_are_distinct_and_bounded_by_what_the_text_allows():
    # "p" has two neighbours: at most two distinct variants, never a repeat or the original
    variants = augment([Example("p", "x")], copies=10)
    assert sorted(v.input for v in variants) == ["l", "o"]


def test_options_are_checked():
    with pytest.raises(ValidationError):
        CharNoise.Options(probability=0)
    with pytest.raises(ValidationError):
        CharNoise.Options(copies=0)
    with pytest.raises(ValidationError):
        CharNoise.Options(probabilty=0.1)


@settings(max_examples=60, deadline=None)
@given(text=st.text(max_size=30), probability=st.floats(0.001, 1.0), seed=st.integers(0, 99))
def test_never_an_exact_copy(text, probability, seed):
    original = Example(text, "label")
    for variant in augment([original], seed=seed, probability=probability, copies=2):
        assert variant.input != text
        assert " ".join(variant.input.lower().split()) != " ".join(text.lower().split())
        assert variant.target == "label"
