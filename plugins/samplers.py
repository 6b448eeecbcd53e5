"""Built-in review samplers: which of a cycle's outputs experts should see first.

Expert time is the scarcest resource in the loop, and each sampler spends it on a different bet:

- ``least_confident``, ``margin`` and ``entropy`` (uncertainty sampling) show the outputs the model
  is least sure of, where a rating most likely becomes a correction. Least confident looks at the
  top probability only, margin at the gap between the top two labels (the model hesitating
  between two intents), entropy at the whole distribution (the model lost among many). Their
  batch is spread over the most uncertain part of the pool (k-means on the model's embeddings, or
  predicted labels), and explores representative picks while the model is still weak
  (``UncertaintyOptions``, ``tuneloop.plugins.sampler_diversity``).
- ``disagreement`` shows inputs on which this cycle and the previous one answer differently: one
  of the two is wrong, and an expert's judgement says which training changed for the worse.
- ``stratified`` takes its picks evenly across predicted labels, so a rare intent is reviewed as
  often as a common one and no label's errors go unseen.
- ``random`` gives an unbiased sample: the only one that estimates human-judged quality honestly
  (a queue of hard cases makes the model look worse than it is).
- ``mix`` combines any of them in set shares, e.g. mostly uncertain items plus a random tenth to
  keep the quality estimate honest.

Every sampler is deterministic: ties break by output id, and randomness comes from the ``rng`` the
cycle seeds, so the same cycle always queues the same items in the same order.
"""

from __future__ import annotations

import difflib
import math
import random
from collections import defaultdict
from typing import Callable, Literal

from pydantic import Field, field_validator

from tuneloop import Options, ReviewCandidate, ReviewSampler, TuneloopError, hookimpl


def _number(value: float | None) -> float | None:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    return float(value)


def _ranked(candidates: list[ReviewCandidate], k: int,
            urgency: Callable[[ReviewCandidate], float | None]) -> list[ReviewCandidate]:
    """The ``k`` candidates with the highest urgency; those without one come last; ties by id."""
    if k <= 0:
        return []

    def order(candidate: ReviewCandidate) -> tuple[bool, float, int]:
        value = _number(urgency(candidate))
        return (value is None, -value if value is not None else 0.0, candidate.output_id)

    return sorted(candidates, key=order)[:k]


def _probabilities(candidate: ReviewCandidate) -> list[float] | None:
    if not candidate.scores:
        return None
    values = [_number(value) for value in candidate.scores.values()]
    if any(value is None for value in values):
        return None
    return sorted((value for value in values if value is not None), reverse=True)


class UncertaintyOptions(Options):
    """How an uncertainty sampler spends a batch (``tuneloop.plugins.sampler_diversity``).

    ``diversity``: ``auto`` spreads the batch with k-means on the outputs' embeddings (the
    classification trainer attaches the encoder's), or over predicted labels when there are none;
    ``labels`` always over predicted labels; ``none`` takes the ``k`` most uncertain as they come.
    ``pool``: the batch is spread over the ``k * pool`` most uncertain outputs. ``cold_start``:
    when the mean confidence over the candidates is below it, the model's doubts are not yet
    worth much, and ``explore`` of the batch is representative picks of the whole pool (0 turns
    the rule off). The probabilities are the trainer's, calibrated on validation (temperature
    scaling) by the classification trainer.
    """

    diversity: Literal["auto", "labels", "none"] = "auto"
    pool: float = Field(5.0, ge=1, description="spread the batch over the k * pool most uncertain")
    cold_start: float = Field(0.5, ge=0, le=1,
                              description="mean confidence below which part of the batch explores")
    explore: float = Field(0.5, ge=0, le=1,
                           description="share of a cold-start batch that is representative picks")


class UncertaintySampler(ReviewSampler):
    """Most uncertain first (``urgency``), spread over the pool, exploring at a cold start.

    The queue order is most uncertain first; what changes with the options is which outputs
    make the batch (see ``UncertaintyOptions``).
    """

    Options = UncertaintyOptions
    options: UncertaintyOptions

    def urgency(self, candidate: ReviewCandidate) -> float | None:
        raise NotImplementedError

    def select(self, candidates: list[ReviewCandidate], k: int,
               rng: random.Random) -> list[ReviewCandidate]:
        from tuneloop.plugins import sampler_diversity

        k = min(k, len(candidates))
        if k <= 0:
            return []
        ranked = _ranked(candidates, len(candidates), self.urgency)
        options = self.options
        if options.diversity == "none" and options.cold_start == 0:
            return ranked[:k]
        chosen: list[ReviewCandidate] = []
        confidences = [value for value in (_number(c.confidence) for c in candidates)
                       if value is not None]
        if confidences and sum(confidences) / len(confidences) < options.cold_start:
            chosen = sampler_diversity.representative(candidates, round(k * options.explore), rng)
        taken = {candidate.output_id for candidate in chosen}
        left = k - len(chosen)
        rest = [candidate for candidate in ranked if candidate.output_id not in taken]
        pool = rest[:max(left, math.ceil(left * options.pool))]
        if options.diversity == "none":
            chosen += pool[:left]
        else:
            chosen += sampler_diversity.spread(pool, left, rng,
                                               use_embeddings=options.diversity == "auto")
        position = {candidate.output_id: index for index, candidate in enumerate(ranked)}
        return sorted(chosen, key=lambda candidate: position[candidate.output_id])


class LeastConfident(UncertaintySampler):
    """The outputs with the lowest confidence first; outputs without a confidence come last
    (nothing says they are hard); ties by output id, so the order is stable. The batch is spread
    over the pool and explores at a cold start (``UncertaintyOptions``)."""

    name = "least_confident"

    def urgency(self, candidate: ReviewCandidate) -> float | None:
        return None if _number(candidate.confidence) is None else -float(candidate.confidence)


def plain_least_confident() -> LeastConfident:
    """Least confident first and nothing else (no spreading, no exploring): the order other
    samplers use within their own groups."""
    return LeastConfident(UncertaintyOptions(diversity="none", cold_start=0))


class Margin(UncertaintySampler):
    """Smallest gap between the two most likely labels first (the model torn between two).

    Outputs without label probabilities come last. The batch is spread over the pool and
    explores at a cold start (``UncertaintyOptions``).
    """

    name = "margin"
    tasks = ("classification",)

    def urgency(self, candidate: ReviewCandidate) -> float | None:
        top = _probabilities(candidate)
        if top is None:
            return None
        return -(top[0] - (top[1] if len(top) > 1 else 0.0))


class Entropy(UncertaintySampler):
    """Highest entropy of the label distribution first (the model unsure across many labels).

    Outputs without label probabilities come last. The batch is spread over the pool and
    explores at a cold start (``UncertaintyOptions``).
    """

    name = "entropy"
    tasks = ("classification",)

    def urgency(self, candidate: ReviewCandidate) -> float | None:
        probabilities = _probabilities(candidate)
        if probabilities is None:
            return None
        total = sum(probabilities) or 1.0
        return -sum(p / total * math.log(p / total) for p in probabilities if p > 0)


class Disagreement(ReviewSampler):
    """Inputs where this cycle's answer differs from the previous cycle's first.

    The difference is 1 when the answers differ (a different label, or a different text), plus, to
    order the rest, how far apart the two label distributions are (total variation distance) or
    how different the two texts are (1 - difflib similarity), halved. Inputs the previous cycle
    did not answer come last, least confident first.
    """

    name = "disagreement"

    def select(self, candidates: list[ReviewCandidate], k: int,
               rng: random.Random) -> list[ReviewCandidate]:
        with_previous = [c for c in candidates if c.previous_output is not None]
        chosen = _ranked(with_previous, k, self.difference)
        if len(chosen) < k:
            rest = [c for c in candidates if c.previous_output is None]
            chosen += plain_least_confident().select(rest, k - len(chosen), rng)
        return chosen

    @staticmethod
    def difference(candidate: ReviewCandidate) -> float:
        changed = 1.0 if candidate.output != candidate.previous_output else 0.0
        if candidate.scores and candidate.previous_scores:
            labels = set(candidate.scores) | set(candidate.previous_scores)
            spread = 0.5 * sum(abs((candidate.scores.get(label) or 0.0)
                                   - (candidate.previous_scores.get(label) or 0.0))
                               for label in labels)
        else:
            spread = 1.0 - difflib.SequenceMatcher(
                None, candidate.output, candidate.previous_output or "").ratio()
        return changed + 0.5 * min(max(spread, 0.0), 1.0)


class StratifiedOptions(Options):
    """``within``: how each label's outputs are ordered; ``allocation``: ``equal`` takes the same
    number from every predicted label (rare labels get as much attention as common ones),
    ``proportional`` takes from each label in proportion to how often it is predicted."""

    within: Literal["least_confident", "random"] = "least_confident"
    allocation: Literal["equal", "proportional"] = "equal"


class Stratified(ReviewSampler):
    """Picks spread across predicted labels, taken in turns (one label after another), so the
    queue mixes labels from its first item on."""

    name = "stratified"
    tasks = ("classification",)
    Options = StratifiedOptions
    options: StratifiedOptions

    def select(self, candidates: list[ReviewCandidate], k: int,
               rng: random.Random) -> list[ReviewCandidate]:
        if k <= 0 or not candidates:
            return []
        by_label: dict[str, list[ReviewCandidate]] = defaultdict(list)
        for candidate in sorted(candidates, key=lambda c: c.output_id):
            by_label[candidate.output].append(candidate)
        inner: ReviewSampler = (plain_least_confident()
                                if self.options.within == "least_confident" else RandomSample())
        ordered = {label: inner.select(members, len(members), rng)
                   for label, members in sorted(by_label.items())}
        if self.options.allocation == "equal":
            quota = {label: len(members) for label, members in ordered.items()}
        else:
            quota = _shares({label: len(members) for label, members in ordered.items()},
                            min(k, len(candidates)))
        chosen: list[ReviewCandidate] = []
        turn = 0
        while len(chosen) < k and any(turn < quota[label] and turn < len(members)
                                      for label, members in ordered.items()):
            for label, members in ordered.items():
                if turn < quota[label] and turn < len(members) and len(chosen) < k:
                    chosen.append(members[turn])
            turn += 1
        return chosen


class RandomSample(ReviewSampler):
    """``k`` outputs drawn uniformly at random with the given rng (seeded by the cycle), from
    the candidates in output-id order, so the same seed and candidates give the same sample
    whatever order they arrive in."""

    name = "random"

    def select(self, candidates: list[ReviewCandidate], k: int,
               rng: random.Random) -> list[ReviewCandidate]:
        if k <= 0:
            return []
        ordered = sorted(candidates, key=lambda candidate: candidate.output_id)
        return rng.sample(ordered, min(k, len(ordered)))


class MixOptions(Options):
    """``samplers``: sampler name → share of the queue, e.g. ``{least_confident: 0.8, random:
    0.2}`` (shares are normalised; each sampler runs with its default options)."""

    samplers: dict[str, float] = Field(default_factory=lambda: {"least_confident": 0.8,
                                                                "random": 0.2})

    @field_validator("samplers")
    @classmethod
    def _known_positive_shares(cls, samplers: dict[str, float]) -> dict[str, float]:
        from tuneloop import registries

        if not samplers:
            raise ValueError("name at least one sampler")
        known = registries.build().review_samplers
        for name, share in samplers.items():
            if name == "mix":
                raise ValueError("a mix cannot contain another mix")
            if name not in known:
                try:
                    known.get(name)  # raises, naming the closest and the known ones
                except TuneloopError as error:
                    raise ValueError(str(error)) from None
            if not share > 0 or math.isinf(share):
                raise ValueError(f'the share of "{name}" must be a number above 0')
        return samplers


class Mix(ReviewSampler):
    """Several samplers in set shares of the queue, interleaved in proportion.

    Each sampler picks its share from the outputs the samplers before it left; a sampler that
    cannot fill its share (``disagreement`` in a first cycle) leaves the rest to the others.
    """

    name = "mix"
    Options = MixOptions
    options: MixOptions

    def select(self, candidates: list[ReviewCandidate], k: int,
               rng: random.Random) -> list[ReviewCandidate]:
        from tuneloop import registries

        k = min(k, len(candidates))
        if k <= 0:
            return []
        found = registries.build().review_samplers
        samplers = {name: found.get(name)() for name in self.options.samplers}
        quotas = _shares(self.options.samplers, k)
        picks: dict[str, list[ReviewCandidate]] = {name: [] for name in samplers}
        taken: set[int] = set()
        shortfall = 0
        for name, sampler in samplers.items():
            remaining = [c for c in candidates if c.output_id not in taken]
            picked = sampler.select(remaining, quotas[name], rng)[:quotas[name]]
            picks[name] = [c for c in picked if c.output_id not in taken]
            taken.update(c.output_id for c in picks[name])
            shortfall += quotas[name] - len(picks[name])
        for name, sampler in samplers.items():  # fill what a sampler could not
            if shortfall <= 0:
                break
            remaining = [c for c in candidates if c.output_id not in taken]
            extra = [c for c in sampler.select(remaining, shortfall, rng)[:shortfall]
                     if c.output_id not in taken]
            picks[name] += extra
            taken.update(c.output_id for c in extra)
            shortfall -= len(extra)
        # Interleave: the j-th pick of a sampler with n picks sits at (j + 0.5) / n of the queue.
        order = sorted(((number + 0.5) / len(chosen), rank, number, candidate)
                       for rank, chosen in enumerate(picks.values())
                       for number, candidate in enumerate(chosen))
        return [candidate for *_, candidate in order]


def _shares(weights: dict[str, float], total: int) -> dict[str, int]:
    """Split ``total`` in proportion to ``weights`` (largest remainder; ties in given order)."""
    whole = sum(weights.values())
    exact = {name: total * weight / whole for name, weight in weights.items()}
    result = {name: int(value) for name, value in exact.items()}
    left = total - sum(result.values())
    for name in sorted(exact, key=lambda n: -(exact[n] - result[n]))[:left]:
        result[name] += 1
    return result


@hookimpl
def register_review_samplers(register):
    """The built-in review samplers."""
    for sampler in (LeastConfident, Margin, Entropy, Disagreement, Stratified, RandomSample, Mix):
        register(sampler)
