"""BADGE: k-means++ seeding on gradient embeddings, in factorised form.

Ash et al., "Deep Batch Active Learning by Diverse, Uncertain Gradient Lower Bounds"
(ICLR 2020). The gradient of the cross-entropy loss with respect to the last linear
layer, at the model's own hard label y^ = argmax p, is the outer product

    g_i = (p_i - e_{y^_i}) (x) h_i                       # (C * d,) per item

of a class residual a_i = p_i - e_{y^_i} (C,) and the embedding h_i (d,). Its length
encodes uncertainty and its direction diversity; BADGE seeds k-means++ on the g_i.

We never materialise the (N, C * d) matrix: for outer products
    <g_i, g_j> = <a_i, a_j> <h_i, h_j>,   ||g_i||^2 = ||a_i||^2 ||h_i||^2,
so each k-means++ step costs one (N, d) and one (N, C) matrix-vector product:
O(N B (d + C)) work and O(N) extra memory. As in the authors' code the first centre is
the item with the largest gradient norm, later ones are drawn with probability
proportional to D^2 (seeded).
"""

from __future__ import annotations

import numpy as np

from models_zoo.selection.base import Selection, SelectionInput, register
from models_zoo.selection.geometry import sq_norms


def gradient_factors(probs: np.ndarray) -> np.ndarray:
    """Class residuals a = p - onehot(argmax p): (N, C) -> (N, C) float32."""
    a = probs.astype(np.float32, copy=True)
    a[np.arange(a.shape[0]), a.argmax(axis=1)] -= 1.0
    return a


@register("badge")
def badge(inp: SelectionInput) -> Selection:
    """Score = squared gradient-embedding distance to the nearest earlier centre when drawn
    (the first: the gradient norm squared)."""
    probs = inp.require_probs("badge")
    pool = inp.pool()
    h = np.ascontiguousarray(inp.embeddings[pool], dtype=np.float32)  # (U, d)
    a = gradient_factors(probs[pool])  # (U, C)
    sq = sq_norms(a) * sq_norms(h)  # (U,) ||g||^2
    rng = np.random.default_rng(inp.seed)
    k = min(inp.batch_size, pool.size)
    chosen = np.empty(k, np.int64)
    d2_at_pick = np.empty(k, np.float32)
    d2 = np.empty(pool.size, np.float64)  # (U,) squared distance to the nearest centre
    buf = np.empty(pool.size, np.float32)
    for t in range(k):
        if t == 0:
            j = int(np.argmax(sq))
            d2_at_pick[t] = sq[j]
        else:
            cum = np.cumsum(d2)  # (U,)
            if cum[-1] <= 0.0:  # every remaining item coincides with a centre
                j = int(rng.choice(np.setdiff1d(np.arange(pool.size), chosen[:t])))
            else:
                j = int(np.searchsorted(cum, rng.random() * cum[-1], side="right"))
                j = min(j, pool.size - 1)
            d2_at_pick[t] = d2[j]
        chosen[t] = j
        # ||g_i - g_j||^2 = sq_i + sq_j - 2 <a_i, a_j> <h_i, h_j>: (U,)
        np.matmul(h, h[j], out=buf)
        buf *= a @ a[j]
        buf *= -2.0
        buf += sq
        buf += sq[j]
        np.maximum(buf, 0.0, out=buf)
        if t == 0:
            d2[:] = buf
        else:
            np.minimum(d2, buf, out=d2)
        d2[chosen[: t + 1]] = 0.0
    reasons = [
        f"largest gradient norm {np.sqrt(d2_at_pick[0]):.3f}" if t == 0 else f"k-means++ draw, D^2 {d:.3f}"
        for t, d in enumerate(d2_at_pick)
    ]
    return Selection(pool[chosen], d2_at_pick, reasons)
