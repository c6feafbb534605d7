"""Greedy k-center: known first pick and agreement with a brute-force reference."""

from __future__ import annotations

import numpy as np

from models_zoo.selection import select
from models_zoo.selection.coreset import k_center_greedy


def _brute_k_center(x, labelled, k):
    d = np.linalg.norm(x[:, None] - x[None], axis=-1)  # (N, N): fine for a test
    mind = d[:, labelled].min(axis=1)
    mind[labelled] = -1
    out = []
    for _ in range(k):
        j = int(np.argmax(mind))
        out.append(j)
        mind = np.minimum(mind, d[:, j])
        mind[out] = -1
        mind[labelled] = -1
    return out


def test_first_pick_is_the_farthest_point():
    x = np.array([[0, 0], [1, 0], [0, 1], [5, 5], [-2, 0], [2, 2]], np.float32)
    labelled = np.array([True, False, False, False, False, False])
    sel = select("coreset", embeddings=x, labelled_mask=labelled, batch_size=2, seed=0)
    assert sel.indices[0] == 3
    np.testing.assert_allclose(sel.scores[0], np.sqrt(50), rtol=1e-5)
    assert sel.reasons[0].startswith("farthest point: distance 7.07")
    assert sel.indices[1] == 5  # (2, 2): 2.83 from (0, 0), 4.24 from (5, 5); (-2, 0) is only 2 away


def test_matches_brute_force_greedy_and_gaps_shrink():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((400, 5)).astype(np.float32)
    labelled = np.zeros(400, bool)
    labelled[rng.choice(400, 10, replace=False)] = True
    sel = select("coreset", embeddings=x, labelled_mask=labelled, batch_size=25, seed=0)
    assert sel.indices.tolist() == _brute_k_center(x, np.flatnonzero(labelled), 25)
    assert np.all(np.diff(sel.scores) <= 1e-5)


def test_lazy_evaluation_is_exact_with_tiny_chunks():
    rng = np.random.default_rng(1)
    x = (rng.standard_normal((600, 3)) * rng.uniform(0.1, 3, (600, 1))).astype(np.float32)
    labelled = rng.choice(600, 4, replace=False)
    cand = np.setdiff1d(np.arange(600), labelled)
    for chunk in (1, 8, 10_000):
        idx, gaps = k_center_greedy(x, labelled, cand, 40, seed=0, chunk=chunk)
        assert idx.tolist() == _brute_k_center(x, labelled, 40)


def test_no_labels_starts_from_a_seeded_random_point():
    rng = np.random.default_rng(2)
    x = rng.standard_normal((300, 4)).astype(np.float32)
    idx, gaps = k_center_greedy(x, np.zeros(0, np.int64), np.arange(300), 10, seed=7, chunk=8)
    assert np.isinf(gaps[0]) and np.all(np.isfinite(gaps[1:]))
    ref = _brute_k_center(x, np.array([idx[0]]), 9)
    assert idx[1:].tolist() == ref
