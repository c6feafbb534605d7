"""BADGE in factorised form equals k-means++ on the materialised gradient embeddings."""

from __future__ import annotations

import numpy as np

from models_zoo.selection import select
from models_zoo.selection.badge import gradient_factors, kmeanspp_lazy

from .conftest import softmax


def _reference(h, probs, k, seed):
    a = gradient_factors(probs)
    g = (a[:, :, None] * h[:, None, :]).reshape(len(h), -1).astype(np.float64)  # (N, C*d)
    rng = np.random.default_rng(seed)
    chosen = [int(np.argmax((g**2).sum(1)))]
    d2 = ((g - g[chosen[0]]) ** 2).sum(1)
    for _ in range(k - 1):
        d2[chosen] = 0
        cum = np.cumsum(d2)
        j = int(np.searchsorted(cum, rng.random() * cum[-1], side="right"))
        chosen.append(j)
        d2 = np.minimum(d2, ((g - g[j]) ** 2).sum(1))
    return chosen


def test_factorised_equals_materialised():
    rng = np.random.default_rng(0)
    n, d, c = 200, 6, 4
    h = rng.standard_normal((n, d)).astype(np.float32)
    probs = softmax(rng.standard_normal((n, c)) * 3)
    sel = select("badge", embeddings=h, labelled_mask=np.zeros(n, bool), probs=probs, batch_size=15, seed=3)
    assert sel.indices.tolist() == _reference(h, probs, 15, 3)


def test_first_pick_has_the_largest_gradient_norm():
    rng = np.random.default_rng(1)
    h = rng.standard_normal((50, 4)).astype(np.float32)
    probs = softmax(rng.standard_normal((50, 3)))
    h[17] *= 20  # big embedding, same residual: largest ||g||
    labelled = np.zeros(50, bool)
    labelled[:5] = True
    sel = select("badge", embeddings=h, labelled_mask=labelled, probs=probs, batch_size=3, seed=0)
    assert sel.indices[0] == 17
    assert sel.reasons[0].startswith("largest gradient norm")


def test_lazy_seeding_draws_from_the_d2_distribution():
    # The second centre must be drawn with probability D^2 / sum(D^2), as plain k-means++.
    rng = np.random.default_rng(2)
    n = 12
    h = rng.standard_normal((n, 3)).astype(np.float32)
    a = gradient_factors(softmax(rng.standard_normal((n, 3)) * 2))
    g = (a[:, :, None] * h[:, None, :]).reshape(n, -1).astype(np.float64)
    first = int(np.argmax((g**2).sum(1)))
    d2 = ((g - g[first]) ** 2).sum(1)
    expect = d2 / d2.sum()
    draws = [kmeanspp_lazy(h, a, 2, np.random.default_rng(s))[0][1] for s in range(3000)]
    freq = np.bincount(draws, minlength=n) / 3000
    assert np.abs(freq - expect).max() < 0.03


def test_lazy_seeding_with_syncs_is_seeded_and_distinct():
    rng = np.random.default_rng(3)
    h = rng.standard_normal((500, 4)).astype(np.float32)
    a = gradient_factors(softmax(rng.standard_normal((500, 3))))
    one, d2 = kmeanspp_lazy(h, a, 60, np.random.default_rng(0), sync_every=7)
    two, _ = kmeanspp_lazy(h, a, 60, np.random.default_rng(0), sync_every=7)
    assert one.tolist() == two.tolist() and len(set(one.tolist())) == 60
    assert (d2[1:] > 0).all()
