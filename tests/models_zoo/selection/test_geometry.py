"""Distance helpers: exact answers on small sets, good recall of the cell kNN on large ones."""

from __future__ import annotations

import numpy as np

from models_zoo.selection.geometry import EXACT_MAX, kmeans, knn_graph, knn_within, nearest_sq_dist

from .conftest import planted_mixture


def test_nearest_sq_dist_matches_brute_force():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((300, 7)).astype(np.float32)
    y = rng.standard_normal((40, 7)).astype(np.float32)
    expect = ((x[:, None] - y[None]) ** 2).sum(-1).min(1)
    np.testing.assert_allclose(nearest_sq_dist(x, y), expect, rtol=1e-4, atol=1e-4)
    assert np.isinf(nearest_sq_dist(x, y[:0])).all()


def test_knn_within_is_exact_and_excludes_self():
    rng = np.random.default_rng(1)
    for n in (200, 2500):  # numpy path and faiss brute-force path
        x = rng.standard_normal((n, 4)).astype(np.float32)
        idx, sqd = knn_within(x, 5)
        d = ((x[:, None] - x[None]) ** 2).sum(-1) if n <= 500 else None
        assert not (idx == np.arange(n)[:, None]).any()
        assert np.all(np.diff(sqd, axis=1) >= -1e-5)
        if d is not None:
            np.fill_diagonal(d, np.inf)
            np.testing.assert_allclose(sqd, np.sort(d, axis=1)[:, :5], rtol=1e-4, atol=1e-4)


def test_cell_knn_graph_recall_on_a_large_pool():
    n = EXACT_MAX + 10_000
    x, _, _ = planted_mixture(30, n // 30, d=16, spread=1.0, seed=2)
    idx, sqd = knn_graph(x, 10, seed=0)
    assert idx.shape == (len(x), 10) and not (idx == np.arange(len(x))[:, None]).any()
    rng = np.random.default_rng(0)
    probe = rng.choice(len(x), 200, replace=False)
    d = ((x[probe][:, None] - x[None]) ** 2).sum(-1)  # (200, N)
    d[np.arange(200), probe] = np.inf
    exact = np.argsort(d, axis=1)[:, :10]
    recall = np.mean([len(set(a) & set(b)) / 10 for a, b in zip(idx[probe], exact, strict=True)])
    assert recall > 0.9


def test_kmeans_is_seeded():
    x, _, _ = planted_mixture(4, 50, seed=3)
    a = kmeans(x, 4, seed=1)[1]
    b = kmeans(x, 4, seed=1)[1]
    np.testing.assert_array_equal(a, b)
