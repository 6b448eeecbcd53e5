"""Near-duplicate text detection: normalised keys, character shingles, MinHash with LSH banding.

Two uses share it: the ``drop_near_duplicates`` cleaner (within the data) and the leakage check
(across splits). Both ask one question: which earlier or indexed text is at least ``threshold``
similar to this one, by the Jaccard similarity of their sets of character 5-grams (shingles) after
normalisation? Character shingles, not words, because intent-style inputs are short and a typo or an
inflection changes a whole word but only a few character shingles.

Comparing every pair is quadratic, so candidates come from MinHash locality-sensitive hashing: each
text gets ``num_perm`` minimum hash values, cut into bands; texts sharing a whole band are
candidates, and every candidate is then checked with the exact Jaccard similarity, so a reported
pair is never a hashing artefact. The band width is chosen so that a pair at the threshold becomes a
candidate with probability above 99.5%; below the threshold candidates thin out quickly.

What one input contributes is capped: the check reads the first ``MAX_CHARS`` (10,000)
characters of each normalised input (normalising at most ``4 * MAX_CHARS`` characters of the raw
text), so two long texts that differ only after that are near duplicates here. Without the cap, a
50 MB single-line input would need ``len × num_perm`` hash values at once (47.7 GiB); with it,
memory and time grow with the number and size of inputs up to the cap, never with the length of
one line times the number of hash functions. Hash values are also computed in slices of
``SLICE`` shingles, so a chunk of long inputs costs at most ``num_perm × SLICE`` values at a
time. The leakage check counts the inputs cut (``inputs_cut`` in the data report).

Hashes are a polynomial rolling hash (CRC-32 for the exact check) and seeded multiply-shift
permutations, never Python's salted ``hash()``: the same data gives the same answer in every
process.

numpy is imported when an index is built (this module is imported by the cycle, not by the CLI's
start-up).
"""

from __future__ import annotations

import re
import unicodedata
import zlib
from typing import Any, Callable, Iterable, Iterator, Sequence

SHINGLE_SIZE = 5
NUM_PERM = 128
MAX_CHARS = 10_000  # normalised characters of one input that the check reads (see above)
RAW_CHARS = 4 * MAX_CHARS  # raw characters normalised to get them
_APOSTROPHES = re.compile(r"['\u2019\u02bc`]")
_PUNCTUATION = re.compile(r"[^\w\s]+")
_SPACES = re.compile(r"\s+")


def chat_text(text: str) -> str:
    """A chat input (the JSON list of ``{"role", "content"}`` turns that instruction and chat
    sources make) as its turns' contents, one per line, without system turns; any other text as
    it is. Compared as JSON, two short chats share so much markup that they look alike whatever
    their words; a system prompt is usually the same in every record of a dataset, and would
    make every pair of short questions near copies."""
    if not text.startswith("[{"):
        return text
    import json

    try:
        turns = json.loads(text)
    except ValueError:
        return text
    if not isinstance(turns, list) or not all(
            isinstance(turn, dict) and isinstance(turn.get("content"), str) for turn in turns):
        return text
    spoken = [turn["content"] for turn in turns if turn.get("role") != "system"]
    return "\n".join(spoken or [turn["content"] for turn in turns])


def normalise(text: str) -> str:
    """Text reduced to what a reader would call "the same words": a chat's contents
    (:func:`chat_text`), Unicode-compatible forms (NFKC), case-folded, apostrophes dropped
    ("what's" is "whats"), other punctuation a space, whitespace collapsed."""
    text = unicodedata.normalize("NFKC", chat_text(text)).casefold()
    text = _PUNCTUATION.sub(" ", _APOSTROPHES.sub("", text))
    return _SPACES.sub(" ", text).strip()


def near_text(text: str) -> str:
    """What the near-duplicate check compares of ``text``: its normalised form, cut to the first
    ``MAX_CHARS`` characters (normalising at most ``RAW_CHARS`` characters of the raw text)."""
    return normalise(chat_text(text)[:RAW_CHARS])[:MAX_CHARS]


def is_cut(text: str) -> bool:
    """Whether :func:`near_text` leaves part of ``text`` out."""
    text = chat_text(text)
    return len(text) > RAW_CHARS or len(normalise(text)) > MAX_CHARS


def shingles(text: str, size: int = SHINGLE_SIZE) -> frozenset[int]:
    """CRC-32 hashes of the character ``size``-grams of the text's :func:`near_text` (the whole
    of it if shorter): the sets whose exact Jaccard similarity confirms a candidate."""
    normal = near_text(text)
    if len(normal) < size:
        return frozenset((zlib.crc32(normal.encode("utf-8", "surrogatepass")),))
    data = normal.encode("utf-32-le", "surrogatepass")
    width = 4 * size
    return frozenset(zlib.crc32(data[start:start + width])
                     for start in range(0, len(data) - width + 4, 4))


def shingle_hashes(normals: Sequence[str], size: int = SHINGLE_SIZE) -> tuple[Any, Any]:
    """The character ``size``-gram hashes of many normalised texts at once, for MinHash: a
    polynomial rolling hash over their code points (numpy, no Python loop per shingle), folded to
    32 bits. Returns the flat hashes (uint64) and how many belong to each text, in order (a text
    shorter than ``size`` is one shingle). Hashes differ from :func:`shingles`'s CRC-32,
    which is fine: MinHash estimates the Jaccard similarity of the sets, whatever the hash."""
    import numpy as np

    codes = np.frombuffer("".join(normals).encode("utf-32-le", "surrogatepass"),
                          dtype=np.uint32).astype(np.uint64)
    sizes = np.fromiter((len(text) for text in normals), dtype=np.int64, count=len(normals))
    ends = np.cumsum(sizes)
    starts = ends - sizes
    powers = np.uint64(1_000_003) ** np.arange(size - 1, -1, -1, dtype=np.uint64)
    if len(codes) >= size:
        windows = np.lib.stride_tricks.sliding_window_view(codes, size)
        rolled = (windows * powers).sum(axis=1, dtype=np.uint64)
    else:
        rolled = np.zeros(0, dtype=np.uint64)
    counts = np.maximum(sizes - size + 1, 1)
    offsets = np.concatenate(([0], np.cumsum(counts)[:-1])).astype(np.int64)
    flat = np.empty(int(counts.sum()), dtype=np.uint64)
    # a text's windows start at starts[j] .. starts[j] + counts[j] - 1 and go to
    # offsets[j] .. offsets[j] + counts[j] - 1: gathered for all texts at once
    windowed = sizes >= size
    runs = counts[windowed]
    if runs.size:
        step = np.arange(int(runs.sum()), dtype=np.int64) - np.repeat(
            np.concatenate(([0], np.cumsum(runs)[:-1])), runs)
        flat[np.repeat(offsets[windowed], runs) + step] = \
            rolled[np.repeat(starts[windowed], runs) + step]
    for j in np.flatnonzero(~windowed):  # shorter than a shingle: the whole text is one
        whole = normals[j].encode("utf-8", "surrogatepass")
        flat[offsets[j]] = zlib.crc32(whole) * 1_000_003 + len(whole)
    flat = (flat ^ (flat >> np.uint64(32))) & np.uint64(0xFFFFFFFF)
    return flat, counts


def jaccard(first: frozenset[int], second: frozenset[int]) -> float:
    if not first and not second:
        return 1.0
    return len(first & second) / len(first | second)


def band_rows(threshold: float, num_perm: int = NUM_PERM) -> int:
    """The widest band (rows per band, a divisor of ``num_perm``) that still makes a pair at the
    threshold a candidate with probability >= 99.5%: wider bands mean fewer false candidates."""
    best = 1
    for rows in range(1, num_perm + 1):
        if num_perm % rows:
            continue
        bands = num_perm // rows
        if 1 - (1 - threshold ** rows) ** bands >= 0.995:
            best = rows
    return best


class NearDuplicateIndex:
    """An index of texts, queried for the most similar indexed text at or above ``threshold``.

    ``add(texts)`` indexes texts and returns their ids (0, 1, ... in the order added);
    ``match(texts)`` returns, for each text, ``(id, similarity)`` of its best indexed match or
    ``None``. ``match_and_add`` does both in order, each text compared with those before it: the
    dedup case.

    Texts are sketched in chunks (the shingles of a chunk, never of all texts, are in memory). Each
    indexed text keeps its signature (``num_perm`` 32-bit values) and one bucket entry per band,
    about 1 KB; its text is referenced, not copied. A candidate is first screened by its
    signature (the share of equal minimum hashes estimates the similarity; candidates estimated
    more than 0.2 below the threshold, over seven standard deviations at 128 hashes, are
    dropped), then confirmed with the exact Jaccard similarity of its shingles.
    """

    CHUNK = 256  # texts sketched at once: small enough that the hash arrays stay in cache
    CHUNK_CHARS = 1_000_000  # ... or fewer, when they are long: their characters at once
    SLICE = 1 << 14  # shingles hashed at once by every permutation (num_perm x SLICE values)
    SCREEN_MARGIN = 0.2

    def __init__(self, threshold: float, *, num_perm: int = NUM_PERM, seed: int = 0,
                 shingle_size: int = SHINGLE_SIZE):
        import numpy as np

        if not 0 < threshold <= 1:
            raise ValueError(f"threshold must be in (0, 1], got {threshold}")
        self.threshold = threshold
        self.shingle_size = shingle_size
        self.rows = band_rows(threshold, num_perm)
        self.bands = num_perm // self.rows
        generator = np.random.default_rng(seed)
        self._a = generator.integers(1, 2 ** 63, size=(num_perm, 1), dtype=np.uint64) * \
            np.uint64(2) + np.uint64(1)
        self._b = generator.integers(0, 2 ** 63, size=(num_perm, 1), dtype=np.uint64)
        # odd 64-bit multipliers fold a band's hashes into one integer key (wrapping arithmetic)
        self._fold = generator.integers(1, 2 ** 63, size=self.rows, dtype=np.uint64) | np.uint64(1)
        self._buckets: list[dict[int, Any]] = [{} for _ in range(self.bands)]
        self._signatures: list[Any] = []
        self._texts: list[str] = []
        self.cut = 0  # texts sketched (added or matched) longer than near_text() reads

    def __len__(self) -> int:
        return len(self._texts)

    # ---- sketches --------------------------------------------------------------------------

    def _sketch(self, texts: Sequence[str]) -> tuple[Any, list[list[int]]]:
        """MinHash signatures ``[n, num_perm]`` (uint32) and band keys (``n`` lists of ints)."""
        import numpy as np

        texts = [chat_text(text) for text in texts]
        normals = [normalise(text[:RAW_CHARS]) for text in texts]
        self.cut += sum(len(text) > RAW_CHARS or len(normal) > MAX_CHARS
                        for text, normal in zip(texts, normals))
        normals = [normal[:MAX_CHARS] for normal in normals]  # near_text() of each
        flat, lengths = shingle_hashes(normals, self.shingle_size)
        # each text's minimum over its shingles, of every permutation; SLICE shingles at a time
        # (a slice may hold the end of one text and the start of the next: owners say whose)
        owners = np.repeat(np.arange(len(texts)), lengths)
        minima = np.full((len(self._a), len(texts)), np.iinfo(np.uint64).max, dtype=np.uint64)
        for low in range(0, len(flat), self.SLICE):
            part, owner = flat[low:low + self.SLICE], owners[low:low + self.SLICE]
            # multiply-shift hashing (a odd): the high 32 bits of a*x + b, wrapping in 64
            # bits, are a universal family and cost no division
            hashed = (self._a * part[None, :] + self._b) >> np.uint64(32)
            starts = np.concatenate(([0], np.flatnonzero(np.diff(owner)) + 1))
            texts_here = owner[starts]  # distinct: owners ascend
            minima[:, texts_here] = np.minimum(minima[:, texts_here],
                                               np.minimum.reduceat(hashed, starts, axis=1))
        signatures = minima.T.astype(np.uint32)
        bands = signatures.reshape(len(texts), self.bands, self.rows).astype(np.uint64)
        keys = (bands * self._fold).sum(axis=2, dtype=np.uint64)
        return signatures, keys.tolist()

    def _chunks(self, texts: Iterable[str]) -> Iterator[tuple[list[str], Any, list[list[int]]]]:
        batch: list[str] = []
        characters = 0
        for text in texts:
            batch.append(text)
            characters += min(len(text), RAW_CHARS)
            if len(batch) >= self.CHUNK or characters >= self.CHUNK_CHARS:
                yield (batch, *self._sketch(batch))
                batch, characters = [], 0
        if batch:
            yield (batch, *self._sketch(batch))

    # ---- queries ---------------------------------------------------------------------------

    def add(self, texts: Iterable[str]) -> list[int]:
        ids: list[int] = []
        for batch, signatures, keys in self._chunks(texts):
            for text, signature, band_keys in zip(batch, signatures, keys):
                ids.append(self._insert(text, signature, band_keys))
        return ids

    def match(self, texts: Iterable[str]) -> list[tuple[int, float] | None]:
        found: list[tuple[int, float] | None] = []
        for batch, signatures, keys in self._chunks(texts):
            found.extend(self._best(text, signature, band_keys)
                         for text, signature, band_keys in zip(batch, signatures, keys))
        return found

    def match_and_add(self, texts: Iterable[str],
                      accept: Callable[[int], bool] | None = None) -> list[tuple[int, float] | None]:
        """For each text in order: its best match among the indexed texts (including earlier
        ones of this call); a text without a match is indexed. ``accept(id)`` may veto a
        candidate (e.g. one with another label)."""
        found: list[tuple[int, float] | None] = []
        for batch, signatures, keys in self._chunks(texts):
            for text, signature, band_keys in zip(batch, signatures, keys):
                best = self._best(text, signature, band_keys, accept)
                if best is None:
                    self._insert(text, signature, band_keys)
                found.append(best)
        return found

    def _insert(self, text: str, signature: Any, band_keys: list[int]) -> int:
        index = len(self._texts)
        self._texts.append(text)
        self._signatures.append(signature)
        for bucket, key in zip(self._buckets, band_keys):
            held = bucket.get(key)
            if held is None:
                bucket[key] = index  # most buckets hold one text: no list for it
            elif isinstance(held, list):
                held.append(index)
            else:
                bucket[key] = [held, index]
        return index

    def _best(self, text: str, signature: Any, band_keys: list[int],
              accept: Callable[[int], bool] | None = None) -> tuple[int, float] | None:
        import numpy as np

        candidates: set[int] = set()
        for bucket, key in zip(self._buckets, band_keys):
            held = bucket.get(key)
            if held is None:
                continue
            if isinstance(held, list):
                candidates.update(held)
            else:
                candidates.add(held)
        if accept is not None:
            candidates = {candidate for candidate in candidates if accept(candidate)}
        if not candidates:
            return None
        ordered = sorted(candidates)
        estimates = (np.stack([self._signatures[c] for c in ordered]) == signature).mean(axis=1)
        screened = [c for c, estimate in zip(ordered, estimates)
                    if estimate >= self.threshold - self.SCREEN_MARGIN]
        if not screened:
            return None
        mine = shingles(text, self.shingle_size)
        best: tuple[int, float] | None = None
        for candidate in screened:
            similarity = jaccard(mine, shingles(self._texts[candidate], self.shingle_size))
            if similarity >= self.threshold - 1e-12 and (best is None or similarity > best[1]):
                best = (candidate, similarity)
        return best
