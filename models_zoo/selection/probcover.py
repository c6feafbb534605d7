"""ProbCover: greedy maximum coverage of delta-balls on a sparse kNN graph.

Yehuda, Dekel, Hacohen & Weinshall, "Active Learning Through a Covering Lens" (NeurIPS
2022). Every point x covers the ball B(x, delta); labelled points cover theirs already.
Greedily pick the unlabelled point whose ball holds the most still-uncovered points, mark
them covered, repeat; once everything is covered, pick at random.

delta is chosen as in the paper from cluster purity: k-means the pool into C clusters;
a ball is pure if every point in it has its centre's cluster; take the largest delta whose
pure-ball fraction is >= ``PURITY`` (0.95). With r_i the distance from i to its nearest
neighbour of another cluster, purity(delta) = P(r_i >= delta), so delta is the
(1 - PURITY) quantile of r.

Scale: the paper builds all pairs within delta. We build one sparse kNN graph (``K_GRAPH``
neighbours per point, exact for small pools, inverted-file cells for large ones, see
``geometry.knn_graph``) and use it twice: r_i is read off it (inf if no other cluster in
its k neighbours) and the ball B(x, delta) is x plus its graph neighbours within delta,
i.e. balls hold at most K_GRAPH + 1 points. Work O(N k d) for the graph, O(N k) for the
greedy updates, memory O(N k).
"""

from __future__ import annotations

import numpy as np

from models_zoo.selection.base import Selection, SelectionInput, register
from models_zoo.selection.geometry import kmeans, knn_graph, threads_for_load

PURITY = 0.95
K_GRAPH = 32
DEFAULT_CLASSES = 10  # clusters for the purity rule when C is unknown at cold start


def choose_delta(
    nbr_idx: np.ndarray, nbr_sqd: np.ndarray, cluster: np.ndarray, purity: float = PURITY
) -> float:
    """Largest delta with a pure-ball fraction >= ``purity``, from the kNN graph.

    nbr_idx, nbr_sqd (N, k): neighbours nearest first; cluster (N,) int labels.
    """
    foreign = cluster[nbr_idx] != cluster[:, None]  # (N, k)
    has = foreign.any(axis=1)  # (N,)
    r = np.full(cluster.size, np.inf)
    first = foreign.argmax(axis=1)  # (N,) first foreign neighbour
    r[has] = np.sqrt(nbr_sqd[has, first[has]])
    finite = r[np.isfinite(r)]
    if finite.size == 0:  # no two clusters touch within k neighbours: any ball is pure
        return float(np.sqrt(nbr_sqd[:, -1].max())) + 1e-6
    # P(r >= delta) >= purity  <=>  delta <= the (1 - purity) quantile of r (inf included)
    return float(np.quantile(r, 1.0 - purity, method="lower"))


def greedy_cover(
    balls_ptr: np.ndarray,
    balls_idx: np.ndarray,
    covered: np.ndarray,
    candidates: np.ndarray,
    k: int,
    tie_break: np.ndarray | None = None,
) -> tuple[list[int], list[int]]:
    """Greedy max coverage on a CSR graph of balls (ball i = balls_idx[ptr[i]:ptr[i+1]]).

    covered (N,) bool, updated in place; tie_break (N,) in [0, 1), higher wins among equal
    gains. Returns the picks (at most k; stops early when nothing uncovered is left) and
    how many new points each covered.
    """
    n = covered.size
    src = np.repeat(np.arange(n), np.diff(balls_ptr))  # (E,) ball centre of each edge
    # Reverse CSR: for each point j, the centres whose ball holds j.
    rev = np.argsort(balls_idx, kind="stable")  # (E,)
    rev_src = src[rev]
    rev_ptr = np.concatenate([[0], np.cumsum(np.bincount(balls_idx, minlength=n))])
    degree = np.bincount(src[~covered[balls_idx]], minlength=n).astype(np.float64)  # (N,)
    if tie_break is not None:
        degree += tie_break  # integer part: gain; fraction: tie-break
    allowed = np.zeros(n, bool)
    allowed[candidates] = True
    degree[~allowed] = -1
    picks, gains = [], []
    for _ in range(k):
        i = int(np.argmax(degree))
        if degree[i] < 1.0:
            break
        ball = balls_idx[balls_ptr[i] : balls_ptr[i + 1]]
        new = ball[~covered[ball]]
        covered[new] = True
        picks.append(i)
        gains.append(int(new.size))
        # Each newly covered point leaves the degree of every ball that holds it.
        hit = np.concatenate([rev_src[rev_ptr[j] : rev_ptr[j + 1]] for j in new])
        np.subtract.at(degree, hit, 1)
        degree[i] = -1
    return picks, gains


@register("probcover", samples_pool=True)
def probcover(inp: SelectionInput) -> Selection:
    """Score = number of newly covered points (0 for random picks after full coverage)."""
    with threads_for_load():  # one thread when the machine is busy
        return _probcover(inp)


def _probcover(inp: SelectionInput) -> Selection:
    x = np.ascontiguousarray(inp.embeddings, dtype=np.float32)
    n = x.shape[0]
    pool = inp.pool()
    b = min(inp.batch_size, pool.size)
    nbr_idx, nbr_sqd = knn_graph(x, K_GRAPH, seed=inp.seed)  # (N, k) each
    n_clusters = inp.class_count() or DEFAULT_CLASSES
    _, cluster = kmeans(x, n_clusters, seed=inp.seed)
    delta = choose_delta(nbr_idx, nbr_sqd, cluster)
    within = nbr_sqd < delta * delta  # (N, k)
    # CSR balls: each point, then its graph neighbours within delta.
    counts = within.sum(axis=1) + 1
    ptr = np.concatenate([[0], np.cumsum(counts)])
    idx = np.empty(ptr[-1], np.int64)
    idx[ptr[:-1]] = np.arange(n)
    rest = np.ones(ptr[-1], bool)
    rest[ptr[:-1]] = False
    idx[rest] = nbr_idx[within]
    covered = np.zeros(n, bool)
    covered[idx[np.repeat(inp.labelled_mask, counts)]] = True  # balls of labelled points
    # Among balls of equal gain prefer the denser point (smaller mean neighbour distance):
    # with capped balls many dense points tie at K_GRAPH + 1.
    spread = np.sqrt(nbr_sqd).mean(axis=1)  # (N,)
    tie = 1.0 - (np.argsort(np.argsort(spread, kind="stable"), kind="stable") + 1.0) / (n + 1.0)
    picks, gains = greedy_cover(ptr, idx, covered, pool, b, tie_break=tie)
    reasons = [f"covers {g} new points within delta {delta:.3f}" for g in gains]
    if len(picks) < b:
        left = np.setdiff1d(pool, np.asarray(picks, np.int64))
        rng = np.random.default_rng(inp.seed)
        extra = rng.choice(left, b - len(picks), replace=False)
        picks += [int(i) for i in extra]
        gains += [0] * extra.size
        reasons += [f"random: the pool is fully covered at delta {delta:.3f}"] * extra.size
    return Selection(np.asarray(picks, np.int64), np.asarray(gains, np.float32), reasons)
