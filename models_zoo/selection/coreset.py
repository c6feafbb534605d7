"""Core-set selection by greedy k-center.

Sener & Savarese, "Active Learning for Convolutional Neural Networks: A Core-Set
Approach" (ICLR 2018), the greedy 2-approximation of k-center (Gonzalez 1985): repeatedly
take the unlabelled point farthest from everything labelled or already chosen.

The distance to the nearest centre is initialised from the labelled set in blocks (O(N L d)
work, O(block) memory) and then updated lazily (see ``k_center_greedy``): at most
O(N B d) work, usually far less, and O(N) extra memory; never an N x N matrix.
"""

from __future__ import annotations

import numpy as np

from models_zoo.selection.base import Selection, SelectionInput, register
from models_zoo.selection.geometry import nearest_sq_dist, sq_norms, threads_for_load


def k_center_greedy(
    x: np.ndarray, centres: np.ndarray, candidates: np.ndarray, k: int, *, seed: int, chunk: int = 4096
) -> tuple[np.ndarray, np.ndarray]:
    """Greedy k-center on rows ``candidates`` of ``x`` (N, d), starting from rows ``centres``.

    Returns the chosen rows (k,) int64 and, for each, its distance (k,) float32 to the
    nearest earlier centre at the time it was chosen (``inf`` for a first pick made at
    random when there are no centres).

    Lazy evaluation, exact: a point's distance to its nearest centre only shrinks, so its
    value from the labelled set alone is an upper bound. Candidates are sorted by that
    bound; an "active" set holds the top of the list with exact values, kept exact with
    one (active, d) x (d,) product per pick; chunks of the list join the active set (their
    exact values computed with one GEMM against the picks so far) until the best exact
    value beats the bound of everything outside it. The result equals the plain greedy's
    (up to ties), but the per-pick work is O(active * d) instead of O(N * d).
    """
    x = np.ascontiguousarray(x, dtype=np.float32)  # (N, d), no copy for float32 input
    k = min(k, candidates.size)
    chosen = np.empty(k, np.int64)
    gaps = np.empty(k, np.float32)
    if k == 0:
        return chosen, gaps
    t0 = 0
    if centres.size == 0:  # nothing labelled: a seeded random first centre
        chosen[0] = candidates[np.random.default_rng(seed).integers(candidates.size)]
        gaps[0] = np.inf
        centres, t0 = chosen[:1], 1
    bound = nearest_sq_dist(x[candidates], x[centres])  # (U,) exact now, an upper bound later
    order = np.argsort(-bound, kind="stable")  # (U,) largest bound first
    if t0:
        order = order[candidates[order] != chosen[0]]
    act_rows = np.empty(0, np.int64)  # (A,) pool rows in the active set
    act_x = np.empty((0, x.shape[1]), np.float32)  # (A, d)
    act_n = np.empty(0, np.float32)  # (A,) squared norms
    act_v = np.empty(0, np.float32)  # (A,) exact squared distance to the nearest centre
    ptr = 0
    for t in range(t0, k):
        # Grow the active set until its best exact value beats every bound outside it.
        while ptr < order.size and (act_v.size == 0 or act_v.max() < bound[order[ptr]]):
            grow = max(chunk, act_v.size // 4)  # geometric growth: few concatenations
            rows = candidates[order[ptr : ptr + grow]]  # (m,)
            ptr += rows.size
            xr = x[rows]  # (m, d)
            v = bound[order[ptr - rows.size : ptr]].copy()
            if t > 0:
                np.minimum(v, nearest_sq_dist(xr, x[chosen[:t]]), out=v)
            act_rows = np.concatenate([act_rows, rows])
            act_x = np.concatenate([act_x, xr])
            act_n = np.concatenate([act_n, sq_norms(xr)])
            act_v = np.concatenate([act_v, v])
        a = int(np.argmax(act_v))
        j = int(act_rows[a])
        chosen[t], gaps[t] = j, np.sqrt(max(float(act_v[a]), 0.0))
        # Exact update of the active set with the new centre: (A,)
        d = act_x @ act_x[a]
        d *= -2.0
        d += act_n
        d += act_n[a]
        np.minimum(act_v, d, out=act_v)
        act_v[a] = -1.0  # chosen: never again
    return chosen, gaps


@register("coreset")
def coreset(inp: SelectionInput) -> Selection:
    """Score = distance to the nearest labelled-or-chosen point when picked."""
    with threads_for_load():  # one thread when the machine is busy
        return _coreset(inp)


def _coreset(inp: SelectionInput) -> Selection:
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
