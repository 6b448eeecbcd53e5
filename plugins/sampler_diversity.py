"""Spreading a review batch over the pool: k-means on the model's embeddings, or predicted labels.

Uncertainty sampling alone fills a batch with near-identical inputs (200 picks from the same few
confusable intents): each rating after the first few teaches little. The uncertainty samplers
(``least_confident``, ``margin``, ``entropy``) therefore take the batch from a larger pool of the
most uncertain outputs and spread it: k-means (scikit-learn) on the embeddings the trainer
attached to each output, one pick per cluster, the most uncertain member; without embeddings,
round-robin over the predicted labels. When the model is still weak (cold start), part of the
batch is representative picks of the whole pool (the member nearest each k-means centre), which
covers the label space better than the model's unreliable doubts.
"""

from __future__ import annotations

import random
from typing import Sequence

from tuneloop.components import ReviewCandidate

# k-means on more points than this runs on a seeded sample of them (the centres barely move, and
# the cost stays flat for a 100k-item pool); the picks still come from every point.
KMEANS_FIT_LIMIT = 5000


def embeddings_of(candidates: Sequence[ReviewCandidate]):  # -> numpy.ndarray | None
    """The candidates' embeddings as one L2-normalised matrix, or None unless every one has one
    of the same size."""
    import numpy as np

    if not candidates or any(c.embedding is None for c in candidates):
        return None
    try:
        matrix = np.asarray([np.asarray(c.embedding, dtype=np.float32).ravel()
                             for c in candidates], dtype=np.float32)
    except ValueError:  # ragged: embeddings of different sizes
        return None
    if matrix.ndim != 2 or matrix.shape[1] == 0 or not np.isfinite(matrix).all():
        return None
    norms = np.linalg.norm(matrix, axis=1, keepdims=True)
    return matrix / np.maximum(norms, 1e-12)


def cluster_labels(matrix, clusters: int, rng: random.Random):  # -> numpy.ndarray
    """Each row's k-means cluster (``clusters`` of them), fitted on at most KMEANS_FIT_LIMIT rows."""
    import numpy as np
    from sklearn.cluster import KMeans

    seed = rng.randrange(2**31)
    fit_rows = matrix
    if len(matrix) > KMEANS_FIT_LIMIT:
        chosen = np.random.default_rng(seed).choice(len(matrix), KMEANS_FIT_LIMIT, replace=False)
        fit_rows = matrix[np.sort(chosen)]
    clusters = max(1, min(clusters, len(fit_rows)))
    model = KMeans(n_clusters=clusters, n_init=1, max_iter=25, random_state=seed)
    model.fit(fit_rows)
    return model.predict(matrix), model.cluster_centers_


def spread(pool: Sequence[ReviewCandidate], k: int, rng: random.Random,
           use_embeddings: bool = True) -> list[ReviewCandidate]:
    """``k`` of ``pool`` (given most urgent first), one per group, most urgent member of each.

    Groups are k-means clusters of the embeddings when every candidate has one (and
    ``use_embeddings``), else the predicted labels taken in turns (the most urgent of each label,
    then the second of each...). Returned in pool order.
    """
    if k >= len(pool):
        return list(pool)
    if k <= 0:
        return []
    matrix = embeddings_of(pool) if use_embeddings else None
    if matrix is not None:
        labels, _ = cluster_labels(matrix, k, rng)
        seen: set[int] = set()
        chosen_at: list[int] = []
        for position, label in enumerate(labels):  # pool order: the most urgent member first
            if int(label) not in seen:
                seen.add(int(label))
                chosen_at.append(position)
        if len(chosen_at) < k:  # empty clusters: fill with the most urgent left
            taken = set(chosen_at)
            chosen_at += [p for p in range(len(pool)) if p not in taken][:k - len(chosen_at)]
        return [pool[p] for p in sorted(chosen_at[:k])]
    turn_of: dict[str, int] = {}
    keyed = []
    for position, candidate in enumerate(pool):
        turn = turn_of.get(candidate.output, 0)
        turn_of[candidate.output] = turn + 1
        keyed.append((turn, position))
    return [pool[position] for _, position in sorted(sorted(keyed)[:k], key=lambda t: t[1])]


def representative(candidates: Sequence[ReviewCandidate], k: int,
                   rng: random.Random) -> list[ReviewCandidate]:
    """``k`` candidates that stand for the whole pool: the member nearest each k-means centre of
    the embeddings, or (without embeddings) a uniform random sample; whatever order the
    candidates arrive in (they are taken in output-id order)."""
    if k <= 0:
        return []
    if k >= len(candidates):
        return list(candidates)
    candidates = sorted(candidates, key=lambda candidate: candidate.output_id)  # order-free
    matrix = embeddings_of(candidates)
    if matrix is None:
        return rng.sample(candidates, k)
    import numpy as np

    labels, centres = cluster_labels(matrix, k, rng)
    chosen: list[int] = []
    for cluster in range(len(centres)):
        members = np.flatnonzero(labels == cluster)
        if len(members):
            distances = ((matrix[members] - centres[cluster]) ** 2).sum(axis=1)
            chosen.append(int(members[int(distances.argmin())]))
    if len(chosen) < k:
        taken = set(chosen)
        rest = [p for p in range(len(candidates)) if p not in taken]
        chosen += rng.sample(rest, k - len(chosen))
    return [candidates[p] for p in chosen[:k]]
