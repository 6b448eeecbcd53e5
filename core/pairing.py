"""Two answers to the same input, side by side: for samplers (disagreement) and pairwise review.

A model that changed its answer between two cycles is telling you where it is unsure, and an
expert asked "which of these two answers is better?" answers faster and more consistently than
one asked to score an answer alone. Both need the previous cycle's output for each input the
current cycle answered; this module finds them and queues the pairs.

Outputs are matched on their input text (not the example id, which also hashes the target and
changes when a label is corrected). Pairs whose two outputs are identical are never queued: there
is nothing to choose between them.

The two answers can also come from one model: a causal-LM trainer with ``num_return_sequences``
of 2 or more gives several candidates per review prompt (``outputs.candidate``), and
``queue_candidate_pairs`` queues pairs of them, so the experts' preferences become DPO pairs for
the next cycle without waiting for a second model. Only candidate 0 (the output) is matched
across cycles.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from tuneloop.components import ReviewCandidate

if TYPE_CHECKING:  # pragma: no cover
    from tuneloop.config import ReviewConfig
    from tuneloop.store import Store

PAIR_SAMPLER = "pairwise"
CANDIDATE_SAMPLER = "candidates"


def previous_outputs(store: "Store", cycle_id: int, previous_cycle_id: int
                     ) -> dict[int, dict[str, Any]]:
    """For each output of ``cycle_id``, the output of ``previous_cycle_id`` for the same input
    (the latest one if the input was answered twice), keyed by the current output's id."""
    return store.previous_outputs(cycle_id, previous_cycle_id)


def attach_previous(store: "Store", candidates: list[ReviewCandidate], cycle_id: int,
                    previous_cycle_id: int | None) -> None:
    """Fill each candidate's ``previous_*`` fields from the previous cycle (in place)."""
    if previous_cycle_id is None or not candidates:
        return
    found = previous_outputs(store, cycle_id, previous_cycle_id)
    for candidate in candidates:
        row = found.get(candidate.output_id)
        if row is not None:
            candidate.previous_output = row["output"]
            candidate.previous_confidence = row["confidence"]
            candidate.previous_scores = json.loads(row["scores"]) if row["scores"] else None


def queue_pairs(store: "Store", cycle_id: int, previous_cycle_id: int | None,
                review: "ReviewConfig", singles_queued: int) -> int:
    """Queue up to ``review.pair_size`` pairs (this cycle's output against the previous cycle's
    for the same input, where they differ), least confident current output first.

    The pairs are spread among the cycle's single items rather than appended after them, so an
    expert who rates only the top of the queue still sees some. Returns how many were queued.
    """
    if previous_cycle_id is None or review.pair_size <= 0:
        return 0
    found = previous_outputs(store, cycle_id, previous_cycle_id)
    current = {row["id"]: row for row in store.outputs(cycle_id)}
    pairs = [(output_id, row["id"]) for output_id, row in found.items()
             if output_id in current and row["output"] != current[output_id]["output"]]

    def least_confident_first(pair: tuple[int, int]) -> tuple[bool, float, int]:
        confidence = current[pair[0]]["confidence"]
        return (confidence is None, confidence if confidence is not None else 0.0, pair[0])

    pairs = sorted(pairs, key=least_confident_first)[:review.pair_size]
    if not pairs:
        return 0
    # Same priority as a single item puts the pair right after it (rowid breaks the tie).
    step = singles_queued / (len(pairs) + 1)
    store.enqueue(cycle_id, [pair[0] for pair in pairs], PAIR_SAMPLER, review.ratings_per_item,
                  pair_output_ids=[pair[1] for pair in pairs],
                  priorities=[round((number + 1) * step) for number in range(len(pairs))])
    return len(pairs)


def queue_candidate_pairs(store: "Store", cycle_id: int, output_ids: list[int],
                          review: "ReviewConfig", singles_queued: int) -> int:
    """Queue pairs of one model's candidate answers to the same prompt, for the prompts of
    ``output_ids`` (the sampler's choice, in its order): every two candidates whose texts differ
    (each two texts once), up to ``review.pair_size`` pairs, taken a pair per prompt in turn so
    that as many prompts as possible get one; spread among the single items like
    ``queue_pairs``'. Returns how many were queued."""
    if review.pair_size <= 0 or not output_ids:
        return 0
    per_prompt: list[list[tuple[int, int]]] = []
    for answers in store.candidate_outputs(output_ids).values():
        seen: set[frozenset[str]] = set()
        prompt_pairs = []
        for first, answer in enumerate(answers):
            for other in answers[first + 1:]:
                texts = frozenset((answer["output"], other["output"]))
                if len(texts) == 2 and texts not in seen:
                    seen.add(texts)
                    prompt_pairs.append((answer["id"], other["id"]))
        per_prompt.append(prompt_pairs)
    pairs = [prompt_pairs[turn] for turn in range(max(map(len, per_prompt), default=0))
             for prompt_pairs in per_prompt if turn < len(prompt_pairs)][:review.pair_size]
    if not pairs:
        return 0
    step = singles_queued / (len(pairs) + 1)
    store.enqueue(cycle_id, [pair[0] for pair in pairs], CANDIDATE_SAMPLER,
                  review.ratings_per_item, pair_output_ids=[pair[1] for pair in pairs],
                  priorities=[round((number + 1) * step) for number in range(len(pairs))])
    return len(pairs)
