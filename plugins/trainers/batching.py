"""Training batches: length-grouped (less padding) or uniformly random, the same after a resume.

A batch is padded to its longest example (dynamic padding, in the collators), so the padding a
step computes on depends on how different the lengths in a batch are. ``LengthGroupedSampler``
shuffles the examples, sorts them by length within large "megabatches", cuts those into batches
and shuffles the batches: each batch holds examples of nearly one length, while the order of
batches and the company an example keeps still change every epoch.

Both samplers draw from a generator seeded with ``seed + epoch`` (the loop calls ``set_epoch``), not
from the global random state, so a run resumed from a checkpoint sees exactly the batches the
interrupted run would have seen.
"""

from __future__ import annotations

import random
from typing import Any, Iterator, Sequence

import torch

MEGABATCH_BATCHES = 50  # batches sorted together: larger means less padding, less randomness


def feature_length(feature: dict[str, Any]) -> int:
    """An encoded example's length: its longest token sequence (a preference pair has two)."""
    return max(len(value) for key, value in feature.items() if key.endswith("input_ids"))


class LengthGroupedSampler(torch.utils.data.Sampler[int]):
    """Indices in batches of ``batch_size`` with similar lengths, reshuffled every epoch."""

    def __init__(self, lengths: Sequence[int], batch_size: int, seed: int):
        self.lengths = list(lengths)
        self.batch_size = batch_size
        self.seed = seed
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.lengths)

    def __iter__(self) -> Iterator[int]:
        return iter(length_grouped_indices(self.lengths, self.batch_size,
                                           random.Random(self.seed + self.epoch)))


def length_grouped_indices(lengths: Sequence[int], batch_size: int,
                           rng: random.Random) -> list[int]:
    """Shuffle, sort within megabatches (longest first), cut into batches, shuffle the batches.

    Every batch but the last is full, so the loader's batches are exactly these: a megabatch's
    remainder joins the other remainders (sorted and cut like a megabatch of their own), and the
    one partial batch left goes last. The batch with the longest example goes first, so a batch
    size that does not fit in memory fails at the first step rather than hours in.
    """
    order = list(range(len(lengths)))
    rng.shuffle(order)

    def by_length(indices: list[int]) -> list[int]:
        return sorted(indices, key=lambda index: -lengths[index])

    size = batch_size * MEGABATCH_BATCHES
    batches: list[list[int]] = []
    remainders: list[int] = []
    for start in range(0, len(order), size):
        megabatch = by_length(order[start:start + size])
        whole = len(megabatch) - len(megabatch) % batch_size
        batches.extend(megabatch[cut:cut + batch_size] for cut in range(0, whole, batch_size))
        remainders.extend(megabatch[whole:])
    remainders = by_length(remainders)
    whole = len(remainders) - len(remainders) % batch_size
    batches.extend(remainders[cut:cut + batch_size] for cut in range(0, whole, batch_size))
    rng.shuffle(batches)
    if batches:
        longest = max(range(len(batches)), key=lambda number: lengths[batches[number][0]])
        batches[0], batches[longest] = batches[longest], batches[0]
    batches.append(remainders[whole:])  # the partial batch, if any, last
    return [index for batch in batches for index in batch]


class ShuffledSampler(torch.utils.data.Sampler[int]):
    """A uniformly random order every epoch (``training.group_by_length: false``)."""

    def __init__(self, count: int, seed: int):
        self.count = count
        self.seed = seed
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return self.count

    def __iter__(self) -> Iterator[int]:
        order = list(range(self.count))
        random.Random(self.seed + self.epoch).shuffle(order)
        return iter(order)


class PaddingCount:
    """Counts the tokens training processed and how many of them were padding.

    Every ``*attention_mask`` tensor of a training batch counts: its zeros are padding.
    """

    def __init__(self) -> None:
        self.tokens = 0
        self.padding = 0

    def add(self, inputs: dict[str, Any]) -> None:
        for key, value in inputs.items():
            if key.endswith("attention_mask") and isinstance(value, torch.Tensor):
                self.tokens += value.numel()
                self.padding += value.numel() - int(value.sum())

    def fraction(self) -> float | None:
        """Padding tokens over all tokens processed; ``None`` before any batch."""
        return self.padding / self.tokens if self.tokens else None
