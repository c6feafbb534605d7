"""Distances, nearest neighbours and k-means shared by the diversity strategies.

Small pools (N <= ``EXACT_MAX``) use exact numpy / scikit-learn; large pools use faiss.
Nothing here ever builds an N x N matrix: point-to-set distances are computed in row and
column blocks, and the all-points kNN graph of a large pool is computed cell by cell
(k-means cells, each searched exactly against its few nearest cells, an inverted-file
search done with dense GEMMs). Every function takes an explicit seed; same inputs and
seed, same output.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from functools import cache

import faiss
import numpy as np
from sklearn.cluster import KMeans
from threadpoolctl import ThreadpoolController

EXACT_MAX = 20_000  # pools up to this size use exact numpy / scikit-learn
SMALL_SET = 2_048  # exact kNN of a set up to this size in numpy, above with faiss brute force
BLOCK_FLOATS = 1 << 23  # ~32 MB float32 per distance block

__all__ = [
    "EXACT_MAX",
    "kmeans",
    "knn_graph",
    "knn_within",
    "nearest_sq_dist",
    "one_blas_thread",
    "one_faiss_thread",
    "sq_norms",
]


@cache
def _controller() -> ThreadpoolController:
    return ThreadpoolController()


def one_blas_thread() -> AbstractContextManager:
    """Run small matrix products on one BLAS thread. Multi-threaded BLAS on a tiny (say
    8 x 128 x 32) product costs its thread hand-off, which on a loaded machine (the
    2 cores shared with a training job) was measured at ~20 ms instead of ~0.05 ms."""
    return _controller().limit(limits=1, user_api="blas")


@contextmanager
def threads_for_load() -> Iterator[None]:
    """One BLAS / faiss thread while the machine is already busy, else no change.

    On the 2-core machine shared with a training job (1-minute load average >= cores),
    two threads were slower than one for every kernel measured (a 200k x 2000 faiss
    search: 2.6-3.3 s on two threads, 1.9 s on one). Results do not depend on the thread
    count (BLAS and faiss split work by output blocks), so the selection is the same.
    """
    busy = os.getloadavg()[0] >= (os.cpu_count() or 1)
    if not busy:
        yield
        return
    before = faiss.omp_get_max_threads()
    faiss.omp_set_num_threads(1)
    try:
        with one_blas_thread():
            yield
    finally:
        faiss.omp_set_num_threads(before)


@contextmanager
def one_faiss_thread() -> Iterator[None]:
    """The same for faiss's OpenMP on many small searches (one cell's kNN: 34 ms on one
    thread, 116 ms on two, measured on the loaded machine)."""
    before = faiss.omp_get_max_threads()
    faiss.omp_set_num_threads(1)
    try:
        yield
    finally:
        faiss.omp_set_num_threads(before)


def sq_norms(x: np.ndarray) -> np.ndarray:
    """Squared L2 norm of each row: (N, d) -> (N,) float32."""
    return np.einsum("nd,nd->n", x, x, dtype=np.float32)


def _sq_dist_block(xa: np.ndarray, na: np.ndarray, xb: np.ndarray, nb: np.ndarray) -> np.ndarray:
    # ||a - b||^2 = ||a||^2 + ||b||^2 - 2 a.b ; (A, B)
    d = xa @ xb.T
    d *= -2.0
    d += na[:, None]
    d += nb[None, :]
    np.maximum(d, 0.0, out=d)
    return d


def nearest_sq_dist(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Squared distance from each row of ``x`` (N, d) to its nearest row of ``y`` (M, d).

    Returns (N,) float32, ``inf`` everywhere when ``y`` is empty. Work O(N*M*d), memory
    O(block) thanks to row and column blocks.
    """
    n = x.shape[0]
    out = np.full(n, np.inf, np.float32)
    if y.shape[0] == 0 or n == 0:
        return out
    nx, ny = sq_norms(x), sq_norms(y)
    cols = max(1, min(y.shape[0], BLOCK_FLOATS // 1024))
    rows = max(1, BLOCK_FLOATS // cols)
    for j0 in range(0, y.shape[0], cols):
        yb, nyb = y[j0 : j0 + cols], ny[j0 : j0 + cols]
        for i0 in range(0, n, rows):
            d = _sq_dist_block(x[i0 : i0 + rows], nx[i0 : i0 + rows], yb, nyb)  # (rows, cols)
            np.minimum(out[i0 : i0 + rows], d.min(axis=1), out=out[i0 : i0 + rows])
    return out


def kmeans(
    x: np.ndarray, k: int, *, seed: int, niter: int = 20, points_per_centroid: int = 64
) -> tuple[np.ndarray, np.ndarray]:
    """Lloyd's k-means: returns centroids (k, d) float32 and the assignment (N,) int64.

    Small pools: scikit-learn (k-means++ init, one run). Large pools: faiss, trained on a
    seeded sample of at most ``points_per_centroid`` points per centroid (faiss's default
    is 256; 64 is plenty for the uses here and 4x cheaper), then every point is assigned
    exactly to its nearest centroid: O(N k d) for the assignment.
    """
    x = np.ascontiguousarray(x, dtype=np.float32)
    n = x.shape[0]
    k = int(max(1, min(k, n)))
    if n <= EXACT_MAX:
        km = KMeans(n_clusters=k, n_init=1, max_iter=max(niter, 10), random_state=seed).fit(x)
        return km.cluster_centers_.astype(np.float32), km.labels_.astype(np.int64)
    km = faiss.Kmeans(
        x.shape[1],
        k,
        niter=niter,
        seed=int(seed) % (2**31),
        max_points_per_centroid=points_per_centroid,
        verbose=False,
    )
    km.train(x)
    _, assign = km.index.search(x, 1)  # (N, 1)
    return km.centroids.astype(np.float32), assign[:, 0].astype(np.int64)


def knn_within(x: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Exact k nearest neighbours of each row of ``x`` among the other rows.

    Returns indices (n, k) int64 and squared distances (n, k) float32, nearest first; k is
    clipped to n - 1. O(n^2 d) work in blocks: use on small sets (a cluster, a small pool).
    """
    n = x.shape[0]
    k = int(min(k, n - 1))
    if k <= 0:
        return np.zeros((n, 0), np.int64), np.zeros((n, 0), np.float32)
    if n > SMALL_SET:  # faiss's blocked brute force: exact, faster than argpartition
        x = np.ascontiguousarray(x, dtype=np.float32)
        d, i = faiss.knn(x, x, k + 1)  # (n, k+1), self included
        return _drop_self(d, i, np.arange(n))
    nx = sq_norms(x)
    rows = max(1, BLOCK_FLOATS // n)
    idx = np.empty((n, k), np.int64)
    dist = np.empty((n, k), np.float32)
    for i0 in range(0, n, rows):
        i1 = min(n, i0 + rows)
        d = _sq_dist_block(x[i0:i1], nx[i0:i1], x, nx)  # (rows, n)
        d[np.arange(i1 - i0), np.arange(i0, i1)] = np.inf  # not its own neighbour
        part = np.argpartition(d, k - 1, axis=1)[:, :k]  # (rows, k) unordered
        pd = np.take_along_axis(d, part, axis=1)
        order = np.argsort(pd, axis=1, kind="stable")
        idx[i0:i1] = np.take_along_axis(part, order, axis=1)
        dist[i0:i1] = np.take_along_axis(pd, order, axis=1)
    return idx, dist


def knn_graph(
    x: np.ndarray, k: int, *, seed: int, cell_size: int = 1024, probe: int = 3
) -> tuple[np.ndarray, np.ndarray]:
    """k nearest neighbours (self excluded) of every row of ``x`` (N, d).

    Returns indices (N, k) int64 and squared distances (N, k) float32, nearest first.
    N <= ``EXACT_MAX``: exact. Larger: approximate, inverted-file style: k-means into
    ~N/``cell_size`` cells, then each cell's points are searched exactly (faiss blocked
    GEMM) among the points of the ``probe`` cells with the nearest centroids (its own
    included). Work O(N * probe * cell_size * d), memory O(N k).
    """
    x = np.ascontiguousarray(x, dtype=np.float32)
    n = x.shape[0]
    if n <= EXACT_MAX:
        return knn_within(x, k)
    k = int(min(k, n - 1))
    n_cells = max(2, n // cell_size)
    centroids, assign = kmeans(x, n_cells, seed=seed, niter=8, points_per_centroid=32)
    order = np.argsort(assign, kind="stable")  # (N,) points grouped by cell
    counts = np.bincount(assign, minlength=n_cells)
    starts = np.concatenate([[0], np.cumsum(counts)])
    # Cells by centroid distance from each cell, itself first: (n_cells, n_cells) is small.
    cell_order = np.argsort(
        _sq_dist_block(centroids, sq_norms(centroids), centroids, sq_norms(centroids)), axis=1
    )
    idx = np.empty((n, k), np.int64)
    dist = np.empty((n, k), np.float32)
    with one_faiss_thread():
        _cell_searches(x, k, probe, order, starts, counts, cell_order, idx, dist)
    return idx, dist


def _cell_searches(x, k, probe, order, starts, counts, cell_order, idx, dist) -> None:
    # Fill idx, dist (N, k) cell by cell: each cell's points against its nearest cells' points.
    for c in range(counts.size):
        members = order[starts[c] : starts[c + 1]]
        if members.size == 0:
            continue
        cand_cells, total = [], 0
        for c2 in cell_order[c]:
            if counts[c2] == 0:
                continue
            cand_cells.append(c2)
            total += counts[c2]
            if len(cand_cells) >= probe and total > k:
                break
        cand = np.concatenate([order[starts[c2] : starts[c2 + 1]] for c2 in cand_cells])
        d, i = faiss.knn(x[members], x[cand], k + 1)  # (m, k+1), self is among the candidates
        idx[members], dist[members] = _drop_self(d, cand[i], members)


def _drop_self(d: np.ndarray, i: np.ndarray, query: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    # (m, k+1) neighbours of rows ``query`` (m,) -> (m, k): drop self where found, else the
    # farthest (duplicates of the query may push self out of the first k+1).
    m, k1 = i.shape
    is_self = i == query[:, None]
    drop = np.where(is_self.any(axis=1), is_self.argmax(axis=1), k1 - 1)
    keep = np.ones_like(is_self)
    keep[np.arange(m), drop] = False
    return i[keep].reshape(m, k1 - 1).astype(np.int64), np.maximum(d[keep].reshape(m, k1 - 1), 0.0)
