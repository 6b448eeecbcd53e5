"""Near-duplicate detection (tuneloop.near_duplicates): normalisation, shingles, and a MinHash index
whose answers agree with brute-force Jaccard similarity."""

from __future__ import annotations

import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tuneloop.near_duplicates import (NUM_PERM, NearDuplicateIndex, band_rows, jaccard, normalise,
                                      shingle_hashes, shingles)


def test_normalise_forgets_case_punctuation_forms_and_spacing():
    assert normalise("  What's   my\tBALANCE?! ") == "whats my balance"
    assert normalise("ｆｕｌｌ width") == "full width"
    assert normalise("café") == normalise("cafe\u0301")


def test_shingles_and_jaccard():
    assert shingles("Hello!") == shingles("hello")
    assert len(shingles("abcdefg")) == 3  # abcde, bcdef, cdefg
    assert len(shingles("ab")) == 1 and len(shingles("")) == 1
    assert jaccard(shingles("the same text"), shingles("The same text.")) == 1.0
    assert jaccard(frozenset({1, 2}), frozenset({2, 3})) == pytest.approx(1 / 3)


def test_band_rows_keep_pairs_at_the_threshold_as_candidates():
    for threshold in (0.5, 0.7, 0.8, 0.9, 0.95):
        rows = band_rows(threshold)
        bands = NUM_PERM // rows
        assert 1 - (1 - threshold ** rows) ** bands >= 0.995
        if NUM_PERM % (rows * 2) == 0:  # the next wider band would miss too many
            wider = rows * 2
            assert 1 - (1 - threshold ** wider) ** (NUM_PERM // wider) < 0.995


def test_match_and_add_compares_each_text_with_the_earlier_ones():
    index = NearDuplicateIndex(0.8)
    found = index.match_and_add(["check my balance please", "Check my balance, please!",
                                 "something else entirely", "check my balance pleas"])
    assert found[0] is None and found[1] == (0, 1.0) and found[2] is None
    assert found[3][0] == 0 and found[3][1] == pytest.approx(
        jaccard(shingles("check my balance please"), shingles("check my balance pleas")))
    assert len(index) == 2  # matched texts are not indexed
    index = NearDuplicateIndex(0.8)
    vetoed = index.match_and_add(["same text here", "same text here"], accept=lambda i: False)
    assert vetoed == [None, None] and len(index) == 2


def corpus(seed: int, size: int) -> list[str]:
    rng = random.Random(seed)
    words = ["balance", "card", "freeze", "my", "please", "check", "account", "the", "transfer",
             "money", "to", "savings", "now", "help", "lost"]
    texts = [" ".join(rng.choice(words) for _ in range(rng.randint(3, 8))) for _ in range(size)]
    # plant near copies: one character changed
    for number in range(size // 4):
        text = rng.choice(texts)
        position = rng.randrange(len(text))
        texts.append(text[:position] + "x" + text[position + 1:])
    return texts


@settings(max_examples=15, deadline=None)
@given(seed=st.integers(0, 10_000), threshold=st.sampled_from([0.6, 0.75, 0.9]))
def test_index_agrees_with_brute_force(seed, threshold):
    texts = corpus(seed, 40)
    indexed, queries = texts[:30], texts[30:]
    index = NearDuplicateIndex(threshold)
    index.add(indexed)
    sets = [shingles(text) for text in indexed]
    for query, answer in zip(queries, index.match(queries)):
        similarities = [jaccard(shingles(query), other) for other in sets]
        best = max(similarities)
        if answer is None:
            # LSH may miss a pair right at the threshold (under 0.5% of them), never a clear one
            assert best < threshold + 0.05
        else:
            position, similarity = answer
            assert similarity == pytest.approx(similarities[position]) and similarity >= threshold
            assert similarity == pytest.approx(best)


def test_results_do_not_depend_on_the_process(tmp_path):
    import subprocess
    import sys

    code = ("from tuneloop.near_duplicates import NearDuplicateIndex as I; i = I(0.7); "
            "print(i.match_and_add(['abc def ghi', 'abc def ghx', 'zzz yyy', 'abc dex ghi']))")
    outputs = {subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                              env={"PYTHONHASHSEED": seed, "PATH": ""}, check=True).stdout
               for seed in ("1", "2")}
    assert len(outputs) == 1


def test_shingle_hashes_agree_with_shingles_on_what_is_shared():
    """The vectorised hashes (MinHash) and the CRC-32 sets (exact check) count the same
    shingles: equal windows hash equal, different ones differ."""
    texts = ["abcdefg", "xbcdefg", "abcde", "ab", ""]
    flat, counts = shingle_hashes([normalise(text) for text in texts])
    assert counts.tolist() == [3, 3, 1, 1, 1]
    first, second, short = set(flat[0:3].tolist()), set(flat[3:6].tolist()), flat[6]
    assert len(first & second) == 2 == len(shingles("abcdefg") & shingles("xbcdefg"))
    assert short in first and shingles("abcde") <= shingles("abcdefg")
