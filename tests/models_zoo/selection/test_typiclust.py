"""TypiClust on a planted mixture: one pick per cluster, near its centre."""

from __future__ import annotations

import numpy as np

from models_zoo.selection import select
from models_zoo.selection.typiclust import typicality

from .conftest import planted_mixture


def test_picks_the_densest_point_of_each_planted_cluster():
    x, y, centres = planted_mixture(8, 80, seed=1)
    sel = select("typiclust", embeddings=x, labelled_mask=np.zeros(len(x), bool), batch_size=8, seed=0)
    assert sorted(y[sel.indices].tolist()) == list(range(8))
    # the chosen point is among the 10 % of its cluster closest to the centre
    for i in sel.indices:
        members = np.flatnonzero(y == y[i])
        dist = np.linalg.norm(x[members] - centres[y[i]], axis=1)
        assert np.linalg.norm(x[i] - centres[y[i]]) <= np.quantile(dist, 0.1)
    assert "densest point of cluster" in sel.reasons[0]


def test_uncovered_clusters_come_first():
    x, y, _ = planted_mixture(6, 50, seed=2)
    labelled = np.isin(
        np.arange(len(x)), [np.flatnonzero(y == k)[0] for k in range(3)]
    )  # clusters 0-2 labelled
    sel = select("typiclust", embeddings=x, labelled_mask=labelled, batch_size=3, seed=0)
    assert sorted(y[sel.indices].tolist()) == [3, 4, 5]


def test_typicality_is_highest_in_the_dense_blob():
    rng = np.random.default_rng(0)
    background = rng.uniform(-5, 5, (2000, 2))
    blob = 3.0 + 0.05 * rng.standard_normal((100, 2))
    x = np.concatenate([background, blob]).astype(np.float32)
    t = typicality(x)
    assert np.argmax(t) >= 2000
    assert t[2000:].min() > np.quantile(t[:2000], 0.99)
