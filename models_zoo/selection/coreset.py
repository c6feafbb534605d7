"""Core-set selection by greedy k-center.

Sener & Savarese, "Active Learning for Convolutional Neural Networks: A Core-Set
Approach" (ICLR 2018), the greedy 2-approximation of k-center (Gonzalez 1985): repeatedly
take the unlabelled point farthest from everything labelled or already chosen.

The distance to the nearest centre is kept as one (N,) vector: it is initialised from
the labelled set in blocks and then updated with one (N, d) x (d,) product per pick, so the
work is O(N (L + B) d) and the extra memory O(N), never an N x N matrix.
"""

from __future__ import annotations

import numpy as np

from models_zoo.selection.base import Selection, SelectionInput, register
from models_zoo.selection.geometry import nearest_sq_dist, sq_norms


def k_center_greedy(
    x: np.ndarray, centres: np.ndarray, candidates: np.ndarray, k: int, *, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """Greedy k-center on rows ``candidates`` of ``x`` (N, d), starting from rows ``centres``.

    Returns the chosen rows (k,) int64 and, for each, its distance (k,) float32 to the
    nearest earlier centre at the time it was chosen (``inf`` for a first pick made at
    random when there are no centres).
    """
    x = np.ascontiguousarray(x, dtype=np.float32)  # (N, d), no copy for float32 input
    norms = sq_norms(x)  # (N,)
    mind = np.full(x.shape[0], -1.0, np.float32)  # (N,), -1 = not a candidate
    mind[candidates] = nearest_sq_dist(x[candidates], x[centres])
    k = min(k, candidates.size)
    chosen = np.empty(k, np.int64)
    gaps = np.empty(k, np.float32)
    buf = np.empty_like(mind)
    for t in range(k):
        if t == 0 and centres.size == 0:
            j = int(candidates[np.random.default_rng(seed).integers(candidates.size)])
        else:
            j = int(np.argmax(mind))
        chosen[t], gaps[t] = j, np.sqrt(max(float(mind[j]), 0.0))
        # Squared distance from every point to the new centre, in place: (N,)
        np.matmul(x, x[j], out=buf)
        buf *= -2.0
        buf += norms
        buf += norms[j]
        np.minimum(mind, buf, out=mind)  # non-candidates stay at -1
        mind[j] = -1.0  # chosen: never again
    return chosen, gaps


@register("coreset")
def coreset(inp: SelectionInput) -> Selection:
    """Score = distance to the nearest labelled-or-chosen point when picked."""
    pool = inp.pool()
    labelled = np.flatnonzero(inp.labelled_mask)
    idx, gaps = k_center_greedy(inp.embeddings, labelled, pool, inp.batch_size, seed=inp.seed)
    reasons = [
        "random first centre (nothing labelled)"
        if not np.isfinite(g)
        else f"farthest point: distance {g:.3f}"
        for g in gaps
    ]
    return Selection(idx, gaps, reasons)
