"""char_noise: label-preserving keyboard typos, deterministic, never an exact copy."""

from __future__ import annotations

import json
import random
from collections import Counter

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


# ------------------------------------------------------------------------------------------------
# The other augmenters, each looked up through the registry
# ------------------------------------------------------------------------------------------------

SENTENCES = [Example("please help me fix my broken card", "card", weight=2.0, group="g",
                     source="s.jsonl"),
             Example("i need to check the price of my bill quickly", "billing"),
             Example("hello", "greeting"), Example("an unlabeled sentence here")]


def build(name: str, **options):
    component = registries.build().augmenters.get(name)
    return component(component.Options(**options))


def run(augmenter, examples=SENTENCES, seed=0):
    return list(augmenter.augment(list(examples), random.Random(seed)))


def check_variants(variants, originals, name):
    by_id = {original.id: original for original in originals}
    for variant in variants:
        original = by_id[variant.provenance["from"]]
        assert variant.provenance["kind"] == "augmented"
        assert variant.provenance["augmenter"] == name
        assert (variant.target, variant.weight, variant.group, variant.source, variant.split) == (
            original.target, original.weight, original.group, original.source, "train")
        assert " ".join(variant.input.lower().split()) != " ".join(original.input.lower().split())
        assert original.target is not None


def test_every_builtin_augmenter_is_registered_with_options_and_a_docstring():
    from tuneloop.plugins.augmenters import AUGMENTERS

    found = registries.build()
    for augmenter in AUGMENTERS:
        assert found.augmenters.get(augmenter.name) is augmenter
        assert found.augmenters.entry(augmenter.name).plugin == "tuneloop.plugins.augmenters"
        assert augmenter.__doc__ and augmenter.__doc__.strip()
    assert found.augmenters.get("paraphrase").tasks == ("classification", "causal-lm")
    assert found.augmenters.get("word_dropout").tasks == ("classification",)


@pytest.mark.parametrize("operation", ["swap", "delete", "double"])
def test_char_noise_other_typos(operation):
    variants = run(build("char_noise", operations=[operation], probability=0.2, copies=2))
    check_variants(variants, SENTENCES, "char_noise")
    assert variants
    for variant in variants:
        original = next(o for o in SENTENCES if o.id == variant.provenance["from"])
        if operation == "swap":
            assert sorted(variant.input) == sorted(original.input)
        elif operation == "delete":
            assert len(variant.input) < len(original.input)
        else:
            assert len(variant.input) > len(original.input)


def test_word_dropout_keeps_order_and_drops_at_least_one_word():
    variants = run(build("word_dropout", probability=0.3, copies=3))
    check_variants(variants, SENTENCES, "word_dropout")
    assert {v.provenance["from"] for v in variants} == {SENTENCES[0].id, SENTENCES[1].id}  # "hello" is one word
    for variant in variants:
        original = next(o for o in SENTENCES if o.id == variant.provenance["from"]).input.split()
        words = variant.input.split()
        assert 1 <= len(words) < len(original)
        iterator = iter(original)
        assert all(word in iterator for word in words)  # a subsequence: order kept


def test_word_swap_keeps_the_words():
    variants = run(build("word_swap", copies=2))
    check_variants(variants, SENTENCES, "word_swap")
    assert len(variants) == 4
    for variant in variants:
        original = next(o for o in SENTENCES if o.id == variant.provenance["from"])
        assert sorted(variant.input.split()) == sorted(original.input.split())


def test_synonym_replace_uses_the_builtin_thesaurus_offline():
    from tuneloop.plugins.synonyms_en import thesaurus

    table = thesaurus()
    variants = run(build("synonym_replace", probability=1.0, copies=2))
    check_variants(variants, SENTENCES, "synonym_replace")
    first = [v.input.split() for v in variants if v.provenance["from"] == SENTENCES[0].id]
    assert first
    for words in first:
        for before, after in zip("please help me fix my broken card".split(), words):
            assert after == before or after in table[before] or \
                any(after in synonym.split() for synonym in table[before])
    case = build("synonym_replace", probability=1.0)
    assert run(case, [Example("Help", "x")])[0].input in {"Assist", "Aid"}


def test_synonym_replace_from_a_file_of_your_own(tmp_path):
    groups = tmp_path / "synonyms.txt"
    groups.write_text("invoice, bill, statement\n", encoding="utf-8")
    variants = run(build("synonym_replace", source="file", path=str(groups), copies=5),
                   [Example("send my invoice", "billing")])
    assert sorted(v.input for v in variants) == ["send my bill", "send my statement"]
    table = tmp_path / "synonyms.json"
    table.write_text(json.dumps({"card": ["plastic"]}), encoding="utf-8")
    [variant] = run(build("synonym_replace", source="file", path=str(table)),
                    [Example("lost card", "card")])
    assert variant.input == "lost plastic"


def test_thesaurus_problems_are_clean_errors(tmp_path):
    from tuneloop import DataError, TuneloopError

    bad = tmp_path / "bad.txt"
    bad.write_text("alone\n")
    with pytest.raises(DataError, match="two or more"):
        run(build("synonym_replace", source="file", path=str(bad)))
    with pytest.raises(DataError, match="not found"):
        run(build("synonym_replace", source="file", path=str(tmp_path / "none.txt")))
    with pytest.raises(ValidationError, match="path"):
        build("synonym_replace", source="file")
    try:  # WordNet works offline only where its corpus was installed
        import nltk

        nltk.data.find("corpora/wordnet")
    except LookupError:
        with pytest.raises(TuneloopError, match="needs the WordNet corpus"):
            run(build("synonym_replace", source="wordnet"))


def test_word_insert_adds_a_related_word():
    variants = run(build("word_insert", copies=2))
    check_variants(variants, SENTENCES, "word_insert")
    for variant in variants:
        original = next(o for o in SENTENCES if o.id == variant.provenance["from"])
        assert len(variant.input.split()) > len(original.input.split())
    [repeat] = run(build("word_insert"), [Example("zzz qqq", "x")])  # no synonyms: repeats a word
    assert sorted(repeat.input.split()) in (["qqq", "qqq", "zzz"], ["qqq", "zzz", "zzz"])


def test_noise_augmenters_are_deterministic_given_the_rng():
    for name in ("char_noise", "word_dropout", "word_swap", "word_insert", "synonym_replace"):
        first = [v.input for v in run(build(name, copies=2), seed=5)]
        assert first == [v.input for v in run(build(name, copies=2), seed=5)], name


def test_balance_classes_oversamples_rarer_labels_with_distinct_ids():
    examples = [Example(f"a {n}", "a") for n in range(6)] + [Example(f"b {n}", "b")
                                                             for n in range(2)]
    copies = run(build("balance_classes"), examples)
    assert Counter(e.target for e in copies) == {"b": 4}
    assert Counter(e.input for e in copies) == {"b 0": 2, "b 1": 2}  # cycled evenly
    assert len({e.id for e in examples + copies}) == len(examples) + len(copies)
    assert {e.provenance["from"] for e in copies} == {examples[6].id, examples[7].id}
    assert sorted(e.provenance["copy"] for e in copies) == [1, 1, 2, 2]
    capped = run(build("balance_classes", max_factor=2), examples)
    assert len(capped) == 2
    mean = run(build("balance_classes", target="mean"), examples)
    assert len(mean) == 2  # mean is 4: b gets 2 more
    weighted = run(build("balance_classes", method="weight"), examples)
    assert [(e.input, e.weight) for e in weighted] == [("b 0", 2.0), ("b 1", 2.0)]
    assert run(build("balance_classes"), examples[:6]) == []  # one label: nothing to balance


# ------------------------------------------------------------------------------------------------
# Model-based rewrites, with tiny random models made here
# ------------------------------------------------------------------------------------------------

WORDS = ["please help me fix my broken card", "i need to check the price of my bill quickly",
         "paraphrase : hello", "translate : card bill price"]


@pytest.fixture(scope="module")
def tiny_seq2seq(tmp_path_factory):
    """A random tiny T5 (encoder-decoder) with a word-level tokenizer."""
    import torch
    from transformers import T5Config, T5ForConditionalGeneration

    from tuneloop.testing import tiny_tokenizer

    tokenizer = tiny_tokenizer(WORDS, style="gpt2")
    config = T5Config(vocab_size=len(tokenizer), d_model=16, d_kv=8, d_ff=32, num_layers=1,
                      num_decoder_layers=1, num_heads=2, pad_token_id=tokenizer.pad_token_id,
                      eos_token_id=tokenizer.eos_token_id,
                      decoder_start_token_id=tokenizer.pad_token_id)
    torch.manual_seed(0)
    model = T5ForConditionalGeneration(config)
    path = tmp_path_factory.mktemp("t5")
    model.save_pretrained(path)
    tokenizer.save_pretrained(path)
    return str(path)


@pytest.fixture(scope="module")
def tiny_causal(tmp_path_factory):
    from tuneloop.testing import tiny_gpt2

    return tiny_gpt2(tmp_path_factory.mktemp("gpt2"), WORDS)


@pytest.mark.parametrize("model", ["tiny_seq2seq", "tiny_causal"])
def test_paraphrase_with_any_seq2seq_or_causal_model(model, request):
    location = request.getfixturevalue(model)
    augmenter = build("paraphrase", model=location, copies=2, max_new_tokens=6, batch_size=2,
                      device="cpu", temperature=1.5)
    variants = run(augmenter, SENTENCES[:3], seed=1)
    assert variants, "a random model still writes some words"
    check_variants(variants, SENTENCES, "paraphrase")
    assert all(v.input and v.provenance["model"] == location for v in variants)
    assert len(variants) <= 2 * 3
    for original in SENTENCES[:3]:
        mine = [v.input for v in variants if v.provenance["from"] == original.id]
        assert len(mine) == len(set(mine))
    assert [v.input for v in variants] == [v.input for v in run(augmenter, SENTENCES[:3], seed=1)]


def test_paraphrase_resolves_paths_against_the_config_folder(tiny_seq2seq):
    from pathlib import Path

    augmenter = build("paraphrase", model=Path(tiny_seq2seq).name, max_new_tokens=4)
    augmenter.base_dir = Path(tiny_seq2seq).parent
    assert run(augmenter, SENTENCES[:1])


def test_back_translation_round_trip(tiny_seq2seq):
    augmenter = build("back_translation", forward_model=tiny_seq2seq, backward_model=tiny_seq2seq,
                      forward_prompt="translate : {text}", copies=2, max_new_tokens=6,
                      device="cpu", temperature=1.5,
                      backward_do_sample=True)  # a random model's greedy output is empty
    variants = run(augmenter, SENTENCES[:2], seed=3)
    assert variants
    check_variants(variants, SENTENCES, "back_translation")
    assert all(v.provenance["pivot_model"] == tiny_seq2seq for v in variants)


def test_model_augmenters_name_a_model_that_cannot_load(tmp_path):
    from tuneloop import TuneloopError

    with pytest.raises(TuneloopError, match='augmenter "paraphrase": cannot load the model'):
        run(build("paraphrase", model=str(tmp_path / "nothing-here")), SENTENCES[:1])
    with pytest.raises(ValidationError, match="{text}"):
        build("paraphrase", model="x", prompt="no placeholder")
    assert run(build("paraphrase", model="never-loaded"), [Example("unlabeled")]) == []
