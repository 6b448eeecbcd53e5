"""Packing (``causal_lm_sft`` option ``packing: true``): several short examples per sequence.

Instruction data is mostly short examples with a few long ones; padded batches spend much of
their compute on padding. Packing puts several encoded examples end to end into one sequence of
at most ``model.max_length`` tokens, chosen by best-fit decreasing (as TRL's ``pack_dataset``
with ``packing_strategy="bfd"``): the examples, longest first, each go into the open sequence
whose free space fits them most tightly, or start a new one. No example is ever cut.

Attention stays inside each example: a packed row carries ``position_ids`` that restart at 0 at
every example and no ``attention_mask``. transformers then builds a block-diagonal causal mask
from the position ids (``masking_utils.find_packed_sequence_indices``; eager and sdpa attention,
so CPUs too) or runs flash-attention's variable-length kernel; positional embeddings (GPT-2's
learned ones, RoPE) restart with the position ids. So every example's logits, and the loss, are
what they are unpacked. The first token of each example is never a target (the last token of the
example before it must not predict it), exactly as unpacked.

The bins are computed once, before training, from the features alone (no randomness), so the
shared loop's seeded samplers shuffle packed rows and a resumed run sees the same batches. Each
example's weight travels with its tokens (``token_weight``), so weighted examples count as they
do unpacked.

The bin search is written here rather than taken from TRL: TRL's works on pyarrow tables of a
``datasets.Dataset`` and is not part of tuneloop's dependencies; this one is a few lines over the
feature dicts the loop already has.
"""

from __future__ import annotations

import bisect
from typing import Any, Sequence

import torch

IGNORED = -100
# What the collator hands the loss besides the model's inputs: which tokens are real (padding
# counts, through ``batching.PaddingCount``) and each token's example weight.
REAL_TOKENS = "packed_attention_mask"
TOKEN_WEIGHT = "token_weight"


def best_fit_decreasing(lengths: Sequence[int], capacity: int) -> list[list[int]]:
    """Indices of ``lengths`` grouped into bins of at most ``capacity`` tokens.

    Items go in longest first (ties: lower index first); each goes into the bin whose free space
    fits it most tightly, else into a new bin. Within a bin the items keep the order they went in.
    Deterministic: the same lengths give the same bins.
    """
    if any(length > capacity for length in lengths):
        raise ValueError(f"an item of {max(lengths)} tokens does not fit in bins of {capacity}")
    order = sorted(range(len(lengths)), key=lambda index: (-lengths[index], index))
    bins: list[list[int]] = []
    free: list[tuple[int, int]] = []  # (free space, bin number), sorted: a best fit is a bisect
    for index in order:
        length = lengths[index]
        position = bisect.bisect_left(free, (length, -1))
        if position < len(free):
            space, number = free.pop(position)
        else:
            number, space = len(bins), capacity
            bins.append([])
        bins[number].append(index)
        if space - length > 0:
            bisect.insort(free, (space - length, number))
    return bins


def pack_features(features: list[dict[str, Any]], capacity: int) -> list[dict[str, Any]]:
    """Encoded examples (``input_ids``, ``labels``, ``weight``, ``example_index``) packed into
    rows of at most ``capacity`` tokens, in bin order.

    A row holds the concatenated ``input_ids`` and ``labels``, ``seq_lengths`` (its examples'
    lengths), ``token_weight`` (each token's example weight), and for the loop's collator a
    ``weight`` of 1 (the weights are per token now) and the first example's ``example_index``.
    """
    bins = best_fit_decreasing([len(feature["input_ids"]) for feature in features], capacity)
    rows = []
    for members in bins:
        row: dict[str, Any] = {"input_ids": [], "labels": [], "seq_lengths": [],
                               "token_weight": []}
        for index in members:
            feature = features[index]
            length = len(feature["input_ids"])
            row["input_ids"].extend(feature["input_ids"])
            row["labels"].extend(feature["labels"])
            row["seq_lengths"].append(length)
            row["token_weight"].extend([float(feature.get("weight", 1.0))] * length)
        row["weight"] = 1.0
        row["example_index"] = features[members[0]].get("example_index", members[0])
        rows.append(row)
    return rows


def position_ids(seq_lengths: Sequence[int]) -> list[int]:
    """0, 1, ... restarting at every example of a packed row."""
    return [position for length in seq_lengths for position in range(length)]


class PackedCollator:
    """Pads packed rows (or plain encoded examples: a row of one) into a batch without an
    attention mask.

    Each row gets ``position_ids`` restarting per example; the first label of every example is
    -100. Padding at a row's end gets position ids of its own (0, 1, ...): transformers reads it
    as one more sequence, which no real token attends to, and its labels are -100. Beside the
    model's inputs the batch has ``packed_attention_mask`` (1 on real tokens) and
    ``token_weight``; ``CausalLMRecipe.losses`` takes both out before the forward pass.
    """

    def __init__(self, pad_token_id: int):
        self.pad_token_id = pad_token_id

    def __call__(self, features: list[dict[str, Any]]) -> dict[str, torch.Tensor]:
        rows = [self.row(feature) for feature in features]
        longest = max(len(row["input_ids"]) for row in rows)
        batch: dict[str, list[list[Any]]] = {"input_ids": [], "labels": [], "position_ids": [],
                                             REAL_TOKENS: [], TOKEN_WEIGHT: []}
        for row in rows:
            filler = longest - len(row["input_ids"])
            batch["input_ids"].append(row["input_ids"] + [self.pad_token_id] * filler)
            batch["labels"].append(row["labels"] + [IGNORED] * filler)
            batch["position_ids"].append(row["position_ids"] + list(range(filler)))
            batch[REAL_TOKENS].append([1] * len(row["input_ids"]) + [0] * filler)
            batch[TOKEN_WEIGHT].append(row["token_weight"] + [0.0] * filler)
        tensors = {name: torch.tensor(values, dtype=torch.long)
                   for name, values in batch.items() if name != TOKEN_WEIGHT}
        tensors[TOKEN_WEIGHT] = torch.tensor(batch[TOKEN_WEIGHT], dtype=torch.float32)
        return tensors

    @staticmethod
    def row(feature: dict[str, Any]) -> dict[str, list[Any]]:
        seq_lengths = feature.get("seq_lengths") or [len(feature["input_ids"])]
        labels = list(feature["labels"])
        start = 0
        for length in seq_lengths:
            labels[start] = IGNORED  # predicted by the example before: never a target
            start += length
        return {"input_ids": list(feature["input_ids"]), "labels": labels,
                "position_ids": position_ids(seq_lengths),
                "token_weight": list(feature.get("token_weight") or
                                     [1.0] * len(feature["input_ids"]))}

