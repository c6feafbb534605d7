"""TypiClust: the most typical point of each large uncovered cluster.

Hacohen, Dekel & Weinshall, "Active Learning on a Budget: Opposite Strategies Suit High
and Low Budgets" (ICML 2022). Cluster the pool into L + B clusters (k-means); order the
clusters by how many labelled points they hold (fewest first), then by size (largest
first), dropping clusters of 5 points or fewer; walk that order and take from each the
unlabelled, unchosen point of highest typicality

    typicality(x) = 1 / (mean distance from x to its 20 nearest neighbours in the cluster)

As in the authors' code, k = min(20, cluster size // 2), and the walk wraps around when
B exceeds the number of clusters. Two guards keep a million-image pool inside a minute:
the number of clusters is capped (``MAX_CLUSTERS``), and typicality in a cluster larger
than ``MAX_TYPICALITY_POINTS`` is computed on a seeded random subset of that size.
"""

from __future__ import annotations

import numpy as np

from models_zoo.selection.base import Selection, SelectionInput, register
from models_zoo.selection.geometry import (
    SMALL_SET,
    kmeans,
    knn_within,
    one_blas_thread,
    one_faiss_thread,
    sq_norms,
    threads_for_load,
)

K_NN = 20
MIN_CLUSTER_SIZE = 5
MAX_CLUSTERS = 5_000
MAX_TYPICALITY_POINTS = 3_000


def typicality(x: np.ndarray, k: int = K_NN) -> np.ndarray:
    """Inverse mean Euclidean distance to the k nearest neighbours: (n, d) -> (n,)."""
    n = x.shape[0]
    k = min(k, n - 1)
    if k <= 0:
        return np.ones(n, np.float32)
    if n <= SMALL_SET:  # distances only: a partition, no indices
        nx = sq_norms(x)
        d = x @ x.T  # (n, n)
        d *= -2.0
        d += nx[:, None]
        d += nx[None, :]
        np.fill_diagonal(d, np.inf)
        sqd = np.maximum(np.partition(d, k - 1, axis=1)[:, :k], 0.0)  # (n, k)
    else:
        _, sqd = knn_within(x, k)  # (n, k)
    return (1.0 / (np.sqrt(sqd).mean(axis=1) + 1e-5)).astype(np.float32)


@register("typiclust", samples_pool=True)
def typiclust(inp: SelectionInput) -> Selection:
    """Score = typicality of the chosen point within its cluster."""
    with threads_for_load():  # one thread when the machine is busy
        return _typiclust(inp)


def _typiclust(inp: SelectionInput) -> Selection:
    x = inp.embeddings
    n = x.shape[0]
    n_labelled = int(inp.labelled_mask.sum())
    b = min(inp.batch_size, n - n_labelled)
    n_clusters = min(n_labelled + b, MAX_CLUSTERS, n)
    _, assign = kmeans(x, n_clusters, seed=inp.seed, niter=10)  # (N,)
    size = np.bincount(assign, minlength=n_clusters)  # (K,)
    covered = np.bincount(assign[inp.labelled_mask], minlength=n_clusters)  # (K,)
    big = np.flatnonzero(size > MIN_CLUSTER_SIZE)
    if big.size == 0:  # a tiny pool: every cluster is "small"
        big = np.flatnonzero(size > 0)
    walk = big[np.lexsort((big, -size[big], covered[big]))]  # fewest labelled, then largest
    available = ~inp.labelled_mask.copy()  # (N,)
    members_of = np.split(np.argsort(assign, kind="stable"), np.cumsum(size)[:-1])
    rng = np.random.default_rng(inp.seed)
    chosen, scores, reasons = [], [], []
    typ_cache: dict[int, tuple[np.ndarray, np.ndarray]] = {}
    step = 0
    while len(chosen) < b:
        c = int(walk[step % walk.size])
        step += 1
        if c not in typ_cache:
            members = members_of[c][available[members_of[c]]]
            if members.size > MAX_TYPICALITY_POINTS:
                members = np.sort(rng.choice(members, MAX_TYPICALITY_POINTS, replace=False))
            if members.size == 0:
                typ_cache[c] = (members, np.zeros(0, np.float32))
            else:
                k = min(K_NN, max(1, members.size // 2))
                with one_blas_thread(), one_faiss_thread():  # small products: threads only cost
                    typ_cache[c] = (members, typicality(np.asarray(x[members], np.float32), k))
        members, typ = typ_cache[c]
        free = available[members]
        if not free.any():
            if step > walk.size and not any(available[m].any() for m, _ in typ_cache.values()):
                break  # every sampled member of every cluster is taken
            continue
        best = int(np.flatnonzero(free)[np.argmax(typ[free])])
        i = int(members[best])
        available[i] = False
        chosen.append(i)
        scores.append(typ[best])
        reasons.append(
            f"densest point of cluster {c} ({size[c]} items, {covered[c]} labelled), typicality {typ[best]:.3f}"
        )
    if len(chosen) < b:  # only points of tiny or subsampled-away clusters are left
        rest = rng.choice(np.flatnonzero(available), b - len(chosen), replace=False)
        chosen += [int(i) for i in rest]
        scores += [0.0] * rest.size
        reasons += ["random: every cluster's typical points are taken"] * rest.size
    return Selection(np.asarray(chosen, np.int64), np.asarray(scores, np.float32), reasons)
