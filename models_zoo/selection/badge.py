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
proportional to D^2 (seeded). Large pools use ``kmeanspp_lazy``: the same distribution,
drawn by rejection from stale bounds, with the bounds refreshed by a GEMM every 256 picks.
"""

from __future__ import annotations

import numpy as np

from models_zoo.selection.base import Selection, SelectionInput, register
from models_zoo.selection.geometry import one_blas_thread, sq_norms, threads_for_load

_BLOCK = 1024  # two-level sampling: block sums, then one block
_SYNC_ROWS = 32_768  # rows per block when the bounds are made exact


def gradient_factors(probs: np.ndarray) -> np.ndarray:
    """Class residuals a = p - onehot(argmax p): (N, C) -> (N, C) float32."""
    a = probs.astype(np.float32, copy=True)
    a[np.arange(a.shape[0]), a.argmax(axis=1)] -= 1.0
    return a


def _sq_dist_to(h, a, sq, hc, ac, sqc):
    # ||g_i - g_c||^2 for rows i of (h (M, d), a (M, C), sq (M,)) and centres (P,): (M, P)
    d = (h @ hc.T) * (a @ ac.T)
    d *= -2.0
    d += sq[:, None]
    d += sqc[None, :]
    return np.maximum(d, 0.0)


def kmeanspp_plain(
    h: np.ndarray, a: np.ndarray, k: int, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """k-means++ seeding on g = a (x) h, exact D^2 vector updated once per pick.

    h (U, d), a (U, C). Returns chosen rows (k,) and D^2 at the time of each pick (k,).
    O(U k (d + C)) work.
    """
    u = h.shape[0]
    sq = sq_norms(a) * sq_norms(h)  # (U,) ||g||^2
    chosen = np.empty(k, np.int64)
    d2_at_pick = np.empty(k, np.float32)
    d2 = np.empty(u, np.float64)  # (U,) squared distance to the nearest centre
    buf = np.empty(u, np.float32)
    for t in range(k):
        if t == 0:
            j = int(np.argmax(sq))
            d2_at_pick[t] = sq[j]
        else:
            cum = np.cumsum(d2)  # (U,)
            if cum[-1] <= 0.0:  # every remaining item coincides with a centre
                j = int(rng.choice(np.setdiff1d(np.arange(u), chosen[:t])))
            else:
                j = min(int(np.searchsorted(cum, rng.random() * cum[-1], side="right")), u - 1)
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
    return chosen, d2_at_pick


class _Sampler:
    """Draw i with probability w_i / sum(w) in O(U / block + block) after O(1)-entry
    updates: block sums, then a cumulative sum inside one block. w (U,) float64, owned."""

    def __init__(self, w: np.ndarray):
        self.u = w.size
        nb = -(-w.size // _BLOCK)
        self.w = np.zeros(nb * _BLOCK)
        self.w[: w.size] = w
        self.blocks = self.w.reshape(nb, _BLOCK).sum(axis=1)  # (nb,)

    def set(self, idx: np.ndarray, values: np.ndarray) -> None:
        self.w[idx] = values
        for b in np.unique(idx // _BLOCK):
            self.blocks[b] = self.w[b * _BLOCK : (b + 1) * _BLOCK].sum()

    def reset(self, w: np.ndarray) -> None:
        self.w[: w.size] = w
        self.blocks = self.w.reshape(-1, _BLOCK).sum(axis=1)

    def total(self) -> float:
        return float(self.blocks.sum())

    def draw(self, r: float) -> int:
        cb = np.cumsum(self.blocks)
        b = min(int(np.searchsorted(cb, r, side="right")), cb.size - 1)
        within = r - (cb[b - 1] if b else 0.0)
        cw = np.cumsum(self.w[b * _BLOCK : (b + 1) * _BLOCK])
        return min(b * _BLOCK + int(np.searchsorted(cw, within, side="right")), self.u - 1)


def kmeanspp_lazy(
    h: np.ndarray,
    a: np.ndarray,
    k: int,
    rng: np.random.Generator,
    *,
    sync_every: int = 256,
    proposals: int = 8,
) -> tuple[np.ndarray, np.ndarray]:
    """k-means++ seeding on g = a (x) h by rejection sampling from stale upper bounds.

    D^2 only shrinks as centres are added, so the D^2 vector of an earlier moment is an
    envelope: propose i with probability bound_i / sum(bound), accept with probability
    D^2_i / bound_i (D^2_i computed exactly against the centres added since). An accepted
    draw has probability exactly D^2_i / sum(D^2): the same distribution as plain
    k-means++, though not the same random stream. Every ``sync_every`` picks the bounds
    are made exact again with one GEMM, (U, d) x (d, sync_every), instead of
    ``sync_every`` memory-bound matrix-vector passes; between syncs a draw costs
    O(U / 1024 + 1024) (block sums). Same shapes and return values as ``kmeanspp_plain``.
    """
    u = h.shape[0]
    sq = sq_norms(a) * sq_norms(h)  # (U,)
    chosen = np.empty(k, np.int64)
    d2_at_pick = np.empty(k, np.float32)
    j = int(np.argmax(sq))
    chosen[0], d2_at_pick[0] = j, sq[j]
    bound = _sq_dist_to(h, a, sq, h[j : j + 1], a[j : j + 1], sq[j : j + 1])[:, 0].astype(np.float64)  # (U,)
    bound[j] = 0.0
    sampler = _Sampler(bound)
    synced = 1  # bound is exact w.r.t. chosen[:synced]
    for t in range(1, k):
        if t - synced >= sync_every:  # exact again, one GEMM for the last picks
            new = chosen[synced:t]
            for r0 in range(0, u, _SYNC_ROWS):  # row blocks keep the (rows, P) temporaries small
                r1 = min(u, r0 + _SYNC_ROWS)
                d = _sq_dist_to(h[r0:r1], a[r0:r1], sq[r0:r1], h[new], a[new], sq[new]).min(axis=1)
                np.minimum(bound[r0:r1], d, out=bound[r0:r1])
            bound[chosen[:t]] = 0.0
            sampler.reset(bound)
            synced = t
        new = chosen[synced:t]
        j = -1
        with one_blas_thread():
            while j < 0:
                total = sampler.total()
                if total <= 0.0:  # every remaining item coincides with a centre
                    j = int(rng.choice(np.setdiff1d(np.arange(u), chosen[:t])))
                    d2_at_pick[t] = 0.0
                    break
                draws = np.array([sampler.draw(r) for r in rng.random(proposals) * total])  # (P,)
                accept_u = rng.random(proposals)
                true = bound[draws]
                if new.size:
                    d = _sq_dist_to(h[draws], a[draws], sq[draws], h[new], a[new], sq[new]).min(axis=1)
                    true = np.minimum(true, d)
                for p in range(proposals):
                    if bound[draws[p]] > 0 and accept_u[p] * bound[draws[p]] < true[p]:
                        j = int(draws[p])
                        d2_at_pick[t] = true[p]
                        break
                bound[draws] = true  # a tighter envelope either way
                if j >= 0:
                    bound[j] = 0.0
                sampler.set(np.append(draws, max(j, 0)), bound[np.append(draws, max(j, 0))])
        chosen[t] = j
    return chosen, d2_at_pick


LAZY_MIN = 20_000  # pools above this size use the rejection-sampling seeding


@register("badge")
def badge(inp: SelectionInput) -> Selection:
    """Score = squared gradient-embedding distance to the nearest earlier centre when drawn
    (the first: the gradient norm squared)."""
    with threads_for_load():  # one thread when the machine is busy
        return _badge(inp)


def _badge(inp: SelectionInput) -> Selection:
    probs = inp.require_probs("badge")
    pool = inp.pool()
    h = np.ascontiguousarray(inp.embeddings[pool], dtype=np.float32)  # (U, d)
    a = gradient_factors(probs[pool])  # (U, C)
    rng = np.random.default_rng(inp.seed)
    k = min(inp.batch_size, pool.size)
    seeding = kmeanspp_lazy if pool.size > LAZY_MIN else kmeanspp_plain
    chosen, d2_at_pick = seeding(h, a, k, rng)
    reasons = [
        f"largest gradient norm {np.sqrt(d2_at_pick[0]):.3f}" if t == 0 else f"k-means++ draw, D^2 {d:.3f}"
        for t, d in enumerate(d2_at_pick)
    ]
    return Selection(pool[chosen], d2_at_pick, reasons)
