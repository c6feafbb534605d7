"""ProbCover on planted balls: every ball gets covered; the purity rule picks a sensible delta."""

from __future__ import annotations

import numpy as np

from models_zoo.selection import select
from models_zoo.selection.probcover import choose_delta

from .conftest import planted_mixture


def test_covers_every_planted_ball():
    x, y, _ = planted_mixture(7, 30, spread=0.2, seed=4)
    sel = select(
        "probcover", embeddings=x, labelled_mask=np.zeros(len(x), bool), batch_size=7, seed=0, n_classes=7
    )
    assert sorted(y[sel.indices].tolist()) == list(range(7))
    assert all(r.startswith("covers") for r in sel.reasons)


def test_labelled_balls_count_as_covered():
    x, y, _ = planted_mixture(5, 30, spread=0.2, seed=5)
    labelled = np.isin(np.arange(len(x)), [np.flatnonzero(y == k)[0] for k in (0, 1)])
    sel = select("probcover", embeddings=x, labelled_mask=labelled, batch_size=3, seed=0, n_classes=5)
    assert sorted(y[sel.indices].tolist()) == [2, 3, 4]


def test_falls_back_to_random_once_covered():
    x, _, _ = planted_mixture(2, 10, spread=0.01, seed=6)
    sel = select(
        "probcover", embeddings=x, labelled_mask=np.zeros(20, bool), batch_size=6, seed=0, n_classes=2
    )
    assert sel.reasons[-1].startswith("random: the pool is fully covered")
    assert len(set(sel.indices.tolist())) == 6


def test_delta_is_the_purity_quantile():
    # 1-d line: points 0..9 cluster 0, 10..19 cluster 1, spacing 1; neighbours by distance
    x = np.arange(20, dtype=np.float32)[:, None]
    cluster = (np.arange(20) >= 10).astype(int)
    d = np.abs(x - x.T)
    np.fill_diagonal(d, np.inf)
    idx = np.argsort(d, axis=1)[:, :4]
    sqd = np.take_along_axis(d, idx, axis=1) ** 2
    # r_i = distance to the nearest other-cluster point: 1 for 9 and 10, 2 for 8 and 11, ...
    delta = choose_delta(idx, sqd, cluster, purity=0.9)
    assert delta == 1.0  # 10 % of points (9 and 10) have r = 1 < any larger delta
