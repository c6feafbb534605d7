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


def _pick(inp: SelectionInput, uncertainty: np.ndarray, fmt: str) -> Selection:
    # uncertainty (N,) over the whole pool, higher = more wanted; labelled items never win.
    # Scoring all N rows and masking is cheaper than gathering the unlabelled rows first.
    uncertainty = uncertainty.astype(np.float32, copy=False)  # a temporary of the caller
    uncertainty[inp.labelled_mask] = -np.inf
    k = min(inp.batch_size, int((~inp.labelled_mask).sum()))
    top = take_top(uncertainty, np.arange(uncertainty.size), k)  # (B,)
    scores = uncertainty[top].astype(np.float32)
    return Selection(top, scores, [fmt.format(s) for s in scores])


@register("least_confidence")
def least_confidence(inp: SelectionInput) -> Selection:
    """Score 1 - max_c p_c (higher = less confident)."""
    probs = inp.require_probs("least_confidence")
    return _pick(inp, 1.0 - probs.max(axis=1), "least confidence: top class p {:.3f} below 1")


@register("margin")
def margin(inp: SelectionInput) -> Selection:
    """Score = margin p_1 - p_2 between the two most likely classes; the smallest win."""
    probs = inp.require_probs("margin")
    sel = _pick(inp, -margins(probs), "margin {:.3f}")  # (N,): the smallest margin wins
    return Selection(sel.indices, -sel.scores, [f"margin {-s:.3f}" for s in sel.scores])


@register("entropy")
def entropy(inp: SelectionInput) -> Selection:
    """Score = predictive entropy in nats; the largest win."""
    probs = inp.require_probs("entropy")
    return _pick(inp, _entropy(probs.astype(np.float32, copy=False)), "entropy {:.3f} nats")


@register("bald")
def bald(inp: SelectionInput) -> Selection:
    """Score = mutual information between the label and the model parameters:
    H[mean_t p_t] - mean_t H[p_t], from T stochastic passes (T, N, C); the largest win."""
    mc = inp.require_mc_probs("bald")
    n = mc.shape[1]
    mi = np.empty(n, np.float32)
    for s in range(0, n, _CHUNK):
        p = mc[:, s : s + _CHUNK].astype(np.float32, copy=False)  # (T, chunk, C)
        mi[s : s + _CHUNK] = _entropy(p.mean(axis=0)) - _entropy(p).mean(axis=0)
    return _pick(inp, mi, "BALD mutual information {:.3f} nats")
