"""Uncertainty sampling: least confidence, margin, entropy and BALD.

Each scores every unlabelled item from the model's probabilities and takes the B most
uncertain ones: O(N C) work, O(N) extra memory (BALD: O(chunk T C)).

- Least confidence, margin, entropy: Settles, "Active Learning Literature Survey" (2009),
  sec. 3.1; margin after Scheffer et al. (2001).
- BALD: Houlsby et al., "Bayesian Active Learning for Classification and Preference
  Learning" (2011), with MC dropout samples as in Gal et al., "Deep Bayesian Active
  Learning with Image Data" (ICML 2017).
"""

from __future__ import annotations

import numpy as np

from models_zoo.selection.base import Selection, SelectionInput, register, take_top

_EPS = 1e-12
_CHUNK = 65_536


def _top_two(p: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    # (U, C) -> largest (U,) and second largest (U,)
    if p.shape[1] == 1:
        return p[:, 0], np.zeros(p.shape[0], p.dtype)
    part = np.partition(p, p.shape[1] - 2, axis=1)  # (U, C), top two at the end
    return part[:, -1], part[:, -2]


def _entropy(p: np.ndarray) -> np.ndarray:
    # (..., C) -> (...,) in nats
    return -np.sum(p * np.log(p + _EPS), axis=-1)


def margins(probs: np.ndarray) -> np.ndarray:
    """p(top class) - p(second class) per row: (N, C) -> (N,); small = uncertain."""
    first, second = _top_two(probs)
    return first - second


def _pick(inp: SelectionInput, uncertainty: np.ndarray, pool: np.ndarray, fmt: str) -> Selection:
    # uncertainty (U,) over pool (U,): higher = more wanted
    top = take_top(uncertainty, pool, inp.batch_size)  # (B,)
    scores = uncertainty[top].astype(np.float32)
    return Selection(pool[top], scores, [fmt.format(s) for s in scores])


@register("least_confidence")
def least_confidence(inp: SelectionInput) -> Selection:
    """Score 1 - max_c p_c (higher = less confident)."""
    probs = inp.require_probs("least_confidence")
    pool = inp.pool()
    conf = probs[pool].max(axis=1)  # (U,)
    return _pick(inp, 1.0 - conf, pool, "least confidence: top class p {:.3f} below 1")


@register("margin")
def margin(inp: SelectionInput) -> Selection:
    """Score = margin p_1 - p_2 between the two most likely classes; the smallest win."""
    probs = inp.require_probs("margin")
    pool = inp.pool()
    m = margins(probs[pool])  # (U,)
    top = take_top(-m, pool, inp.batch_size)
    scores = m[top].astype(np.float32)
    return Selection(pool[top], scores, [f"margin {s:.3f}" for s in scores])


@register("entropy")
def entropy(inp: SelectionInput) -> Selection:
    """Score = predictive entropy in nats; the largest win."""
    probs = inp.require_probs("entropy")
    pool = inp.pool()
    h = _entropy(probs[pool].astype(np.float32, copy=False))  # (U,)
    return _pick(inp, h, pool, "entropy {:.3f} nats")


@register("bald")
def bald(inp: SelectionInput) -> Selection:
    """Score = mutual information between the label and the model parameters:
    H[mean_t p_t] - mean_t H[p_t], from T stochastic passes (T, N, C); the largest win."""
    mc = inp.require_mc_probs("bald")
    pool = inp.pool()
    mi = np.empty(pool.size, np.float32)
    for s in range(0, pool.size, _CHUNK):
        p = mc[:, pool[s : s + _CHUNK]].astype(np.float32, copy=False)  # (T, chunk, C)
        mi[s : s + _CHUNK] = _entropy(p.mean(axis=0)) - _entropy(p).mean(axis=0)
    return _pick(inp, mi, pool, "BALD mutual information {:.3f} nats")
