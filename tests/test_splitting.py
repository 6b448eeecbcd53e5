"""assign_splits: stratified, deterministic, keyed, frozen across cycles; split_summary."""

from __future__ import annotations

import random
from collections import Counter, defaultdict

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tuneloop import DataError, Example
from tuneloop.splitting import SPLITS, assign_splits, key_hash, split_summary

FRACTIONS = {"train": 0.8, "validation": 0.1, "test": 0.1, "review": 0.0}


def labelled(counts: dict[str, int], prefix: str = "") -> list[Example]:
    return [Example(f"{prefix}{label} utterance number {n}", label)
            for label, count in counts.items() for n in range(count)]


def per_label(splits) -> dict[str, Counter]:
    table: dict[str, Counter] = defaultdict(Counter)
    for split, examples in splits.items():
        for example in examples:
            table[example.target][split] += 1
    return table


def where(splits) -> dict[str, set[str]]:
    """split key -> the splits its examples landed in."""
    found: dict[str, set[str]] = defaultdict(set)
    for split, examples in splits.items():
        for example in examples:
            found[example.split_key].add(split)
    return found


def ids(splits) -> dict[str, list[str]]:
    return {split: [e.id for e in examples] for split, examples in splits.items()}


# ------------------------------------------------------------------------------------------------
# Stratification
# ------------------------------------------------------------------------------------------------


def test_first_cycle_is_exactly_stratified():
    counts = {"balance": 10, "card": 20, "transfer": 30, "rare": 5}
    splits, new = assign_splits(labelled(counts), FRACTIONS, seed=1, known={})
    table = per_label(splits)
    assert table["balance"] == Counter(train=8, validation=1, test=1)
    assert table["card"] == Counter(train=16, validation=2, test=2)
    assert table["transfer"] == Counter(train=24, validation=3, test=3)
    # 5 * (0.8, 0.1, 0.1) = (4, 0.5, 0.5): within one key of every share
    assert table["rare"]["train"] == 4 and table["rare"]["validation"] + table["rare"]["test"] == 1
    assert splits["review"] == []
    assert len(new) == sum(counts.values())
    assert set(splits) == set(SPLITS)


@settings(max_examples=40, deadline=None)
@given(counts=st.lists(st.integers(1, 40), min_size=1, max_size=4),
       weights=st.lists(st.integers(0, 10), min_size=4, max_size=4).filter(lambda w: w[0] > 0),
       seed=st.integers(0, 10**6))
def test_every_label_is_within_one_key_of_its_share(counts, weights, seed):
    fractions = {split: weight / sum(weights) for split, weight in zip(SPLITS, weights)}
    data = labelled({f"label{n}": count for n, count in enumerate(counts)})
    data += [Example(f"unlabeled {n}") for n in range(counts[0])]  # their own stratum
    splits, _ = assign_splits(data, fractions, seed, {})
    table = per_label(splits)
    for label, count in [(f"label{n}", c) for n, c in enumerate(counts)] + [(None, counts[0])]:
        for split in SPLITS:
            assert abs(table[label][split] - fractions[split] * count) < 1


def test_ties_follow_train_validation_test_review_order():
    one = assign_splits([Example("only", "x")], {"train": 0.25, "validation": 0.25,
                                                 "test": 0.25, "review": 0.25}, 0, {})[0]
    assert [len(one[split]) for split in SPLITS] == [1, 0, 0, 0]
    four = assign_splits(labelled({"x": 4}), {"train": 0.25, "validation": 0.25, "test": 0.25,
                                              "review": 0.25}, 0, {})[0]
    assert [len(four[split]) for split in SPLITS] == [1, 1, 1, 1]
    # 0.1 * 10 is exactly 1 here: the comparison is exact, not floating point
    ten = per_label(assign_splits(labelled({"x": 10}), FRACTIONS, 3, {})[0])["x"]
    assert ten == Counter(train=8, validation=1, test=1)


def test_keys_are_taken_in_seeded_hash_order():
    data = labelled({"x": 10})
    splits, _ = assign_splits(data, FRACTIONS, seed=5, known={})
    ranked = [e.id for e in sorted(data, key=lambda e: key_hash(5, e.split_key))]
    # by hand: shares (8, 1, 1); train is furthest below until (1, 1, 1), where the tie goes to
    # train; then validation, then test
    assert [e.id for e in splits["train"]] == ranked[:8]
    assert [e.id for e in splits["validation"]] == [ranked[8]]
    assert [e.id for e in splits["test"]] == [ranked[9]]
    assert key_hash(5, "input:a") != key_hash(6, "input:a")


# ------------------------------------------------------------------------------------------------
# Determinism
# ------------------------------------------------------------------------------------------------


def test_same_data_seed_and_known_give_the_same_result_in_any_order():
    data = labelled({"a": 30, "b": 17}) + [Example("g chunk", "a", group="doc")] * 3
    known = {data[0].split_key: "test"}
    first = assign_splits(data, FRACTIONS, 11, known)
    for shuffle_seed in range(3):
        shuffled = list(data)
        random.Random(shuffle_seed).shuffle(shuffled)
        again = assign_splits(shuffled, FRACTIONS, 11, known)
        assert ids(again[0]) == ids(first[0])
        assert again[1] == first[1]
    other_seed = assign_splits(data, FRACTIONS, 12, known)
    assert ids(other_seed[0]) != ids(first[0])


def test_inputs_are_not_changed_and_outputs_carry_their_split():
    data = labelled({"a": 10})
    splits, _ = assign_splits(data, FRACTIONS, 0, {})
    assert all(example.split is None for example in data)
    for split, examples in splits.items():
        assert all(example.split == split for example in examples)
    assert sorted(e.id for s in splits.values() for e in s) == sorted(e.id for e in data)


# ------------------------------------------------------------------------------------------------
# Frozen across cycles
# ------------------------------------------------------------------------------------------------


def test_known_keys_never_move_when_data_grows_by_half():
    counts = {"a": 40, "b": 20, "c": 10}
    first, known = assign_splits(labelled(counts), FRACTIONS, seed=3, known={})
    before = {example.split_key: split for split, examples in first.items()
              for example in examples}

    grown = labelled(counts) + labelled({label: n // 2 for label, n in counts.items()},
                                        prefix="new ")
    random.Random(0).shuffle(grown)
    second, new = assign_splits(grown, FRACTIONS, seed=3, known=known)
    after = {example.split_key: split for split, examples in second.items()
             for example in examples}
    assert all(after[key] == split for key, split in before.items())
    assert set(new).isdisjoint(known)
    assert len(new) == 35  # only the new keys are persisted
    # and the proportions hold over the grown data
    for label, table in per_label(second).items():
        total = counts[label] * 3 // 2
        for split in ("train", "validation", "test"):
            assert abs(table[split] - FRACTIONS[split] * total) < 1


def test_known_keys_win_over_seed_and_fraction_changes():
    data = labelled({"a": 20})
    _, known = assign_splits(data, FRACTIONS, seed=1, known={})
    splits, new = assign_splits(data, {"train": 0.2, "validation": 0.3, "test": 0.5}, seed=99,
                                known=known)
    assert new == {}
    assert {e.split_key: split for split, examples in splits.items() for e in examples} == known
    # a known key stays even where its split now has fraction 0
    review_key = {data[0].split_key: "review"}
    splits, _ = assign_splits(data[:1], FRACTIONS, 1, review_key)
    assert [e.id for e in splits["review"]] == [data[0].id]


def test_test_set_stays_frozen_as_feedback_relabels_its_inputs():
    data = labelled({"a": 20, "b": 20})
    first, known = assign_splits(data, FRACTIONS, 8, {})
    test_inputs = [e.input for e in first["test"]]
    relabelled = [Example(text.upper() + "  ", "b") for text in test_inputs]  # corrected copies
    second, new = assign_splits(data + relabelled, FRACTIONS, 8, known)
    assert new == {}
    assert sorted(e.input.strip().lower() for e in second["test"]) == sorted(
        [t.lower() for t in test_inputs] * 2)


# ------------------------------------------------------------------------------------------------
# Keys: groups, duplicates
# ------------------------------------------------------------------------------------------------


def test_groups_never_straddle_splits():
    data = [Example(f"doc {d} chunk {c}", "xyz"[c % 3], group=f"doc{d}")
            for d in range(30) for c in range(7)]
    splits, new = assign_splits(data, FRACTIONS, 4, {})
    placement = where(splits)
    assert len(placement) == 30 and all(len(found) == 1 for found in placement.values())
    assert set(new) == {f"group:doc{d}" for d in range(30)}
    assert Counter(new.values()) == Counter(train=24, validation=3, test=3)


def test_relabelled_duplicates_stay_together():
    data = []
    for n in range(40):
        data += [Example(f"Text {n}", "a"), Example(f"  text {n} ", "b"), Example(f"TEXT {n}")]
    splits, new = assign_splits(data, FRACTIONS, 2, {})
    placement = where(splits)
    assert len(new) == len(placement) == 40
    assert all(len(found) == 1 for found in placement.values())


def test_a_keys_label_is_its_most_common_target():
    # "same" has targets b, a, a: it is one of ten "a" keys, split 5/5. (Were it a "b" key, the
    # b stratum would put it in train and the nine "a" keys would split 5/4: 6/4 overall.)
    data = [Example("same", "b"), Example("same", "a"), Example("same", "a")]
    data += labelled({"a": 9})
    splits, _ = assign_splits(data, {"train": 0.5, "validation": 0.5}, 0, {})
    keys = Counter({split: len({e.split_key for e in examples})
                    for split, examples in splits.items()})
    assert +keys == Counter(train=5, validation=5)


# ------------------------------------------------------------------------------------------------
# Pinned sources
# ------------------------------------------------------------------------------------------------


def test_pinned_examples_keep_their_split_and_are_recorded():
    curated = [Example(f"curated {n}", "a", split="test") for n in range(5)]
    pool = [Example(f"pool {n}", split="review") for n in range(5)]
    free = labelled({"a": 45})
    splits, new = assign_splits(free + curated + pool, FRACTIONS, 0, {})
    assert {e.id for e in curated} <= {e.id for e in splits["test"]}
    assert {e.id for e in pool} == {e.id for e in splits["review"]}
    assert all(new[e.split_key] == "test" for e in curated)
    assert all(new[e.split_key] == "review" for e in pool)
    # the fractions share out the 45 unpinned "a" keys (36 / 4.5 / 4.5); the 5 pinned keys come
    # on top and use up no share
    assert per_label(splits)["a"] == Counter(train=36, validation=5, test=4 + 5)


def test_unpinned_copies_follow_their_pinned_key():
    data = [Example("shared input", "a", split="test"), Example("Shared  input", "b")]
    splits, new = assign_splits(data, FRACTIONS, 0, {})
    assert len(splits["test"]) == 2 and new == {"input:shared input": "test"}


def test_a_pin_never_puts_a_key_on_both_sides_of_an_evaluation_split():
    conflicts = []
    record = lambda example, pinned, assigned: conflicts.append(  # noqa: E731
        (example.input, pinned, assigned))
    known = {"input:held out": "test", "input:trained": "train"}
    data = [Example("held out", "a"), Example("held out", "b", split="train"),  # feedback-like
            Example("trained", "a"), Example("trained", "a", split="validation")]
    splits, new = assign_splits(data, FRACTIONS, 0, known, on_conflict=record)
    assert where(splits) == {"input:held out": {"test"}, "input:trained": {"train"}}
    assert sorted(conflicts) == [("held out", "train", "test"), ("trained", "validation", "train")]
    assert new == {}


def test_train_and_review_may_share_a_key():
    # an expert-labelled review item becomes training data: the feedback loop, not a leak
    known = {"input:pool item": "review"}
    data = [Example("pool item", split="review"), Example("pool item", "a", split="train")]
    splits, _ = assign_splits(data, FRACTIONS, 0, known, on_conflict=pytest.fail)
    assert [e.target for e in splits["review"]] == [None]
    assert [e.target for e in splits["train"]] == ["a"]


def test_review_pins_are_kept_but_a_review_key_never_enters_evaluation():
    conflicts = []
    record = lambda example, pinned, assigned: conflicts.append((pinned, assigned))  # noqa: E731
    # a pool item whose input is a test input: reviewed, and the cycle refuses its feedback
    known = {"input:test input": "test", "input:pool input": "review"}
    data = [Example("test input", "a"), Example("test input", split="review"),
            # a curated test example whose input is a review key: its feedback would train
            Example("pool input", split="review"), Example("pool input", "a", split="test")]
    splits, _ = assign_splits(data, FRACTIONS, 0, known, on_conflict=record)
    assert [(e.input, e.target) for e in splits["test"]] == [("test input", "a")]
    assert sorted((e.input, e.target or "") for e in splits["review"]) == [
        ("pool input", ""), ("pool input", "a"), ("test input", "")]
    assert conflicts == [("test", "review")]


def test_a_new_key_pinned_to_several_splits_takes_the_most_protective():
    data = [Example("x", "a", split="train"), Example("x", "a", split="test"),
            Example("x", None, split="review")]
    conflicts = []
    splits, new = assign_splits(data, FRACTIONS, 0, {},
                                on_conflict=lambda *args: conflicts.append(args[1:]))
    assert new == {"input:x": "test"}
    assert [len(splits[s]) for s in SPLITS] == [0, 0, 2, 1]
    assert conflicts == [("train", "test")]


def test_conflicts_are_logged_by_default(caplog):
    data = [Example("held out", "b", split="train")]
    with caplog.at_level("WARNING", logger="tuneloop.splitting"):
        assign_splits(data, FRACTIONS, 0, {"input:held out": "test"})
    assert "pinned to train was put in test" in caplog.text


def test_bad_arguments():
    with pytest.raises(DataError, match='split "holdout"'):
        assign_splits([Example("a", split="holdout")], FRACTIONS, 0, {})
    with pytest.raises(ValueError, match="unknown split"):
        assign_splits([], {"train": 0.9, "dev": 0.1}, 0, {})
    with pytest.raises(ValueError, match="above 0"):
        assign_splits([], {"train": 0.0}, 0, {})
    with pytest.raises(ValueError, match=">= 0"):
        assign_splits([], {"train": 1.1, "test": -0.1}, 0, {})
    with pytest.raises(ValueError, match="known assignment"):
        assign_splits([], FRACTIONS, 0, {"input:a": "dev"})


# ------------------------------------------------------------------------------------------------
# Property: across two cycles, nothing known moves and nothing straddles
# ------------------------------------------------------------------------------------------------

texts = st.sampled_from([f"text {n}" for n in range(30)] + ["Text 1", "TEXT  2"])
examples = st.builds(Example, input=texts, target=st.sampled_from([None, "a", "b", "c"]),
                     group=st.sampled_from([None, None, None, "g1", "g2"]))


@settings(max_examples=60, deadline=None)
@given(first=st.lists(examples, max_size=30), later=st.lists(examples, max_size=30),
       seed=st.integers(0, 1000))
def test_two_cycles_property(first, later, seed):
    splits1, known = assign_splits(first, FRACTIONS, seed, {})
    splits2, new = assign_splits(first + later, FRACTIONS, seed, known)
    placement = where(splits2)
    assert all(len(found) == 1 for found in placement.values())  # no key straddles
    assert all(placement[key] == {split} for key, split in known.items())
    assert set(new) == set(placement) - set(known)
    assert sorted(e.id for s in splits2.values() for e in s) == sorted(
        e.id for e in first + later)


# ------------------------------------------------------------------------------------------------
# Summary
# ------------------------------------------------------------------------------------------------


def test_split_summary_counts_per_split_and_label():
    splits = {"train": [Example("a", "x"), Example("b", "x"), Example("c", "y"), Example("d")],
              "validation": [], "test": [Example("e", "y")], "review": [Example("f")]}
    assert split_summary(splits) == {
        "train": {"examples": 4, "labeled": 3, "unlabeled": 1, "distinct_labels": 2,
                  "labels": {"x": 2, "y": 1}},
        "validation": {"examples": 0, "labeled": 0, "unlabeled": 0, "distinct_labels": 0,
                       "labels": {}},
        "test": {"examples": 1, "labeled": 1, "unlabeled": 0, "distinct_labels": 1,
                 "labels": {"y": 1}},
        "review": {"examples": 1, "labeled": 0, "unlabeled": 1, "distinct_labels": 0,
                   "labels": {}},
    }
    completions = {"train": [Example(f"p{n}", f" completion {n}") for n in range(60)]}
    summary = split_summary(completions)["train"]
    assert "labels" not in summary and summary["distinct_labels"] == 60


# ------------------------------------------------------------------------------------------------
# Splits named by the data (data.split.by: column) and groups
# ------------------------------------------------------------------------------------------------


def test_by_column_keeps_every_pinned_split_and_refuses_unpinned_examples():
    data = [Example(f"train {n}", "a", split="train") for n in range(5)]
    data += [Example("val 0", "a", split="validation"), Example("test 0", "b", split="test")]
    splits, new = assign_splits(data, FRACTIONS, 0, {}, by_column=True)
    assert [len(splits[s]) for s in SPLITS] == [5, 1, 1, 0]
    assert new == {example.split_key: example.split for example in data}
    unpinned = Example("no split", "a", source="d.csv", provenance={"kind": "original", "line": 9})
    with pytest.raises(DataError, match=r"^d.csv:9: no split: data.split.by is column"):
        assign_splits(data + [unpinned], FRACTIONS, 0, {}, by_column=True)


def test_by_column_never_lets_one_input_straddle_train_and_test():
    conflicts = []
    data = [Example("same input", "a", split="train"), Example("Same  input", "a", split="test")]
    splits, _ = assign_splits(data, FRACTIONS, 0, {}, by_column=True,
                              on_conflict=lambda e, pinned, placed: conflicts.append((pinned, placed)))
    assert len(splits["test"]) == 2 and splits["train"] == []
    assert conflicts == [("train", "test")]


def test_groups_stay_on_one_side_and_are_stratified_by_their_label():
    data = [Example(f"chunk {n} of doc {d}", "x" if d % 2 else "y", group=f"doc{d}")
            for d in range(20) for n in range(4)]
    splits, new = assign_splits(data, {"train": 0.5, "validation": 0.5}, 7, {})
    sides = defaultdict(set)
    for split, examples in splits.items():
        for example in examples:
            sides[example.group].add(split)
    assert all(len(found) == 1 for found in sides.values())
    assert set(new) == {f"group:doc{d}" for d in range(20)}
    for label in ("x", "y"):
        docs = Counter(split for split, examples in splits.items()
                       for example in examples if example.target == label)
        assert docs["train"] == docs["validation"] == 20  # 5 documents of 4 chunks each side


# ------------------------------------------------------------------------------------------------
# Pinned keys use up no share; generative data; small strata
# ------------------------------------------------------------------------------------------------


def test_a_pinned_test_source_leaves_validation_its_share_of_the_rest():
    # 10 labelled examples per label to split, and an official test set of 30 per label pinned
    # to test: counted towards each label's total, the pins pushed every key into train
    free = [Example(f"train {label} {n}", label) for label in "abc" for n in range(10)]
    official = [Example(f"test {label} {n}", label, split="test")
                for label in "abc" for n in range(30)]
    stats: dict = {}
    splits, _ = assign_splits(free + official, FRACTIONS, 0, {}, stats=stats)
    for label in "abc":
        assert per_label(splits)[label] == Counter(train=8, validation=1, test=1 + 30)
    assert stats == {"stratified": True, "keys": 120, "pinned_keys": 90, "known_keys": 0,
                     "new_keys": 30}


def test_known_keys_that_are_pinned_use_up_no_share_in_later_cycles_either():
    free = [Example(f"train {n}", "a") for n in range(10)]
    official = [Example(f"test {n}", "a", split="test") for n in range(30)]
    _, known = assign_splits(free + official, FRACTIONS, 0, {})
    grown = free + official + [Example(f"new {n}", "a") for n in range(10)]
    splits, new = assign_splits(grown, FRACTIONS, 0, known)
    added = Counter(split for split, examples in splits.items() for e in examples
                    if e.input.startswith("new"))
    # 20 unpinned keys, 10 already placed 8/1/1: the new ten go 8/1/1 too
    assert added == Counter(train=8, validation=1, test=1) and len(new) == 10


def alpaca_like(count: int = 230) -> list[Example]:
    """Instruction/answer pairs whose answers are all different, as in Alpaca."""
    return [Example(f"Instruction {n}: explain topic {n * 7 % 101} briefly.",
                    f" Answer {n}: topic {n * 7 % 101} is explained here in a sentence.")
            for n in range(count)]


@pytest.mark.parametrize("stratify", [False, None])
def test_all_unique_completions_split_by_the_prompt_hash_near_the_fractions(stratify):
    data = alpaca_like()
    fractions = {"train": 0.7, "validation": 0.1, "test": 0.1, "review": 0.1}
    stats: dict = {}
    splits, new = assign_splits(data, fractions, 13, {}, stratify=stratify, stats=stats)
    assert [len(splits[s]) for s in SPLITS] == [161, 23, 23, 23]
    assert stats["stratified"] is False and len(new) == 230
    # by label (one key per completion), each stratum of one key goes to train
    stratified, _ = assign_splits(data, fractions, 13, {}, stratify=True)
    assert [len(stratified[s]) for s in SPLITS] == [230, 0, 0, 0]


def test_near_identical_prompts_stay_together_without_stratification():
    data = [Example(f"Prompt {n}", f"answer {n}") for n in range(50)]
    data += [Example(f"  PROMPT {n} ", f"another answer {n}") for n in range(50)]
    splits, _ = assign_splits(data, FRACTIONS, 2, {}, stratify=False)
    assert all(len(found) == 1 for found in where(splits).values())
    assert [len({e.split_key for e in splits[s]}) for s in SPLITS] == [40, 5, 5, 0]


def test_auto_stratifies_where_labels_repeat_enough():
    # 48 keys, 4 labels: 12 keys per label, enough for a 0.1 share of each
    repeating = [Example(f"item {n}", f" {'rgbk'[n % 4]}") for n in range(48)]
    stats: dict = {}
    by_label, _ = assign_splits(repeating, FRACTIONS, 1, {}, stratify=None, stats=stats)
    assert stats["stratified"] is True
    assert ids(by_label) == ids(assign_splits(repeating, FRACTIONS, 1, {}, stratify=True)[0])
    # 20 keys, 4 labels: 5 per label is less than 1 / 0.1
    few = repeating[:20]
    assign_splits(few, FRACTIONS, 1, {}, stratify=None, stats=stats)
    assert stats["stratified"] is False


def test_small_strata_spread_their_odd_keys_over_validation_and_test():
    # 30 labels of 5 keys at 0.8 / 0.1 / 0.1: each label's fifth key ties between validation and
    # test; always breaking the tie towards validation left test empty
    data = [Example(f"label {label} example {n}", f"l{label}")
            for label in range(30) for n in range(5)]
    splits, _ = assign_splits(data, FRACTIONS, 1, {})
    assert [len(splits[s]) for s in SPLITS] == [120, 15, 15, 0]
    for counts in per_label(splits).values():
        assert counts["train"] == 4 and counts["validation"] + counts["test"] == 1
