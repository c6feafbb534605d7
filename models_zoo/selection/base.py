"""The strategy contract and registry.

A strategy is a pure function ``fn(inp: SelectionInput) -> Selection``. It never sees a
model, a database or a file: only arrays. Adding a strategy is adding one file that
decorates its function with ``@register("name")`` and importing it in ``__init__``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np


@dataclass
class SelectionInput:
    """Everything a strategy may look at.

    embeddings:    (N, d) float32, one row per pool image.
    labelled_mask: (N,) bool, True where the image already has a (training) label.
    batch_size:    how many new images to pick, B >= 1.
    seed:          the only source of randomness; same seed, same selection.
    probs:         optional (N, C) float32 class probabilities of the current model.
    mc_probs:      optional (T, N, C) float32 stochastic forward passes (MC dropout / ensemble).
    labels:        optional (N,) int64 known labels, -1 where unlabelled (used e.g. by ``auto``
                   to count labels per class; never ground truth of unlabelled items).
    """

    embeddings: np.ndarray
    labelled_mask: np.ndarray
    batch_size: int
    seed: int = 0
    probs: np.ndarray | None = None
    mc_probs: np.ndarray | None = None
    labels: np.ndarray | None = None


@dataclass
class Selection:
    """The chosen batch: indices (B,) int64 into the pool, a score (B,) float32 and a short
    human-readable reason per item ("margin 0.03", "densest point of cluster 17")."""

    indices: np.ndarray
    scores: np.ndarray
    reasons: list[str] = field(default_factory=list)


Strategy = Callable[[SelectionInput], Selection]
_REGISTRY: dict[str, Strategy] = {}


def register(name: str) -> Callable[[Strategy], Strategy]:
    def deco(fn: Strategy) -> Strategy:
        if name in _REGISTRY:
            raise ValueError(f"strategy {name!r} registered twice")
        _REGISTRY[name] = fn
        return fn

    return deco


def get(name: str) -> Strategy:
    try:
        return _REGISTRY[name]
    except KeyError:
        raise KeyError(f"unknown strategy {name!r}; known: {', '.join(sorted(_REGISTRY))}") from None


def names() -> list[str]:
    return sorted(_REGISTRY)


def select(name: str, **kwargs) -> Selection:
    """Run strategy ``name`` on keyword arguments of :class:`SelectionInput`."""
    inp = SelectionInput(**kwargs)
    n = inp.embeddings.shape[0]
    if inp.labelled_mask.shape != (n,):
        raise ValueError(f"labelled_mask must have shape ({n},), got {inp.labelled_mask.shape}")
    if inp.batch_size < 1:
        raise ValueError("batch_size must be >= 1")
    return get(name)(inp)
