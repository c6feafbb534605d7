"""The strategy contract and registry.

A strategy is a pure function ``fn(inp: SelectionInput) -> Selection``. It never sees a
model, a database or a file: only arrays. Adding a strategy is adding one file that
decorates its function with ``@register("name")`` and importing it in ``__init__``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np


class NeedsModel(ValueError):
    """The strategy needs a trained model's outputs (probs or MC samples) that were not given."""


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
    n_classes:     optional number of classes C of the project, known before any label or
                   model exists (cold start); otherwise taken from ``probs`` or ``labels``.
    """

    embeddings: np.ndarray
    labelled_mask: np.ndarray
    batch_size: int
    seed: int = 0
    probs: np.ndarray | None = None
    mc_probs: np.ndarray | None = None
    labels: np.ndarray | None = None
    n_classes: int | None = None

    def pool(self) -> np.ndarray:
        """Indices (U,) int64 of the unlabelled items, the only ones a strategy may pick."""
        return np.flatnonzero(~self.labelled_mask).astype(np.int64)

    def require_probs(self, strategy: str) -> np.ndarray:
        """The (N, C) probabilities, or a ``ValueError`` naming what is missing."""
        if self.probs is None:
            raise NeedsModel(f"strategy {strategy!r} needs probs (N, C) from a trained model")
        if self.probs.ndim != 2 or self.probs.shape[0] != self.embeddings.shape[0]:
            raise ValueError(
                f"probs must have shape (N={self.embeddings.shape[0]}, C), got {self.probs.shape}"
            )
        return self.probs

    def require_mc_probs(self, strategy: str) -> np.ndarray:
        """The (T, N, C) MC samples, or a ``ValueError`` naming what is missing."""
        if self.mc_probs is None:
            raise NeedsModel(f"strategy {strategy!r} needs mc_probs (T, N, C) from MC dropout or an ensemble")
        if self.mc_probs.ndim != 3 or self.mc_probs.shape[1] != self.embeddings.shape[0]:
            raise ValueError(
                f"mc_probs must have shape (T, N={self.embeddings.shape[0]}, C), got {self.mc_probs.shape}"
            )
        return self.mc_probs

    def class_count(self) -> int | None:
        """C from ``n_classes``, else ``probs``, else the known labels; None if unknowable."""
        if self.n_classes is not None:
            return int(self.n_classes)
        if self.probs is not None:
            return int(self.probs.shape[1])
        if self.mc_probs is not None:
            return int(self.mc_probs.shape[2])
        if self.labels is not None and (self.labels >= 0).any():
            return int(self.labels.max()) + 1
        return None


@dataclass
class Selection:
    """The chosen batch: indices (B,) int64 into the pool, a score (B,) float32 and a short
    human-readable reason per item ("margin 0.03", "densest point of cluster 17"), and the
    registered strategy that picked it (what ``auto`` delegated to; :func:`select` fills it)."""

    indices: np.ndarray
    scores: np.ndarray
    reasons: list[str] = field(default_factory=list)
    strategy: str = ""

    @property
    def samples_pool(self) -> bool:
        """Whether its picks sample the pool (:func:`samples_pool`)."""
        return samples_pool(self.strategy)


Strategy = Callable[[SelectionInput], Selection]
_REGISTRY: dict[str, Strategy] = {}
_SAMPLES_POOL: set[str] = set()


def take_top(scores: np.ndarray, candidates: np.ndarray, k: int) -> np.ndarray:
    """Positions (k,) into ``candidates`` of the k largest ``scores`` (U,), best first.

    O(U) selection then O(k log k) sort; ties go to the lower pool index, so the result is
    deterministic.
    """
    k = min(k, scores.size)
    if k == 0:
        return np.zeros(0, np.int64)
    if k < scores.size:
        part = np.argpartition(-scores, k - 1)[:k]
        # argpartition settles ties at the k-th score arbitrarily: take those by pool index.
        kth = scores[part].min()
        if np.count_nonzero(scores >= kth) > k:
            above, tied = np.flatnonzero(scores > kth), np.flatnonzero(scores == kth)
            need = k - above.size  # >= 1, < tied.size
            tied = tied[np.argpartition(candidates[tied], need - 1)[:need]]
            part = np.concatenate([above, tied])
    else:
        part = np.arange(scores.size)
    order = np.lexsort((candidates[part], -scores[part]))
    return part[order].astype(np.int64)


def register(name: str, samples_pool: bool = False) -> Callable[[Strategy], Strategy]:
    """samples_pool: its picks spread over the pool like a sample of it (random, typical or
    covering points), not over the class boundaries; the learner judges its second view on
    such labels (``models_zoo.transfer.second_view_helps``)."""

    def deco(fn: Strategy) -> Strategy:
        if name in _REGISTRY:
            raise ValueError(f"strategy {name!r} registered twice")
        _REGISTRY[name] = fn
        if samples_pool:
            _SAMPLES_POOL.add(name)
        return fn

    return deco


def samples_pool(name: str) -> bool:
    """Whether registered strategy ``name`` picks a sample of the pool (see :func:`register`)."""
    return name in _SAMPLES_POOL


def get(name: str) -> Strategy:
    try:
        return _REGISTRY[name]
    except KeyError:
        raise KeyError(f"unknown strategy {name!r}; known: {', '.join(sorted(_REGISTRY))}") from None


def names() -> list[str]:
    return sorted(_REGISTRY)


def select(name: str | Strategy, **kwargs) -> Selection:
    """Run strategy ``name`` (a registry name, or a strategy function such as an ``auto``
    variant) on keyword arguments of :class:`SelectionInput`.

    Raises ``KeyError`` for an unknown name and ``ValueError`` for inputs the strategy
    cannot use (wrong shapes, missing ``probs``/``mc_probs``): both are the caller's error.
    """
    inp = SelectionInput(**kwargs)
    if inp.embeddings.ndim != 2:
        raise ValueError(f"embeddings must have shape (N, d), got {inp.embeddings.shape}")
    n = inp.embeddings.shape[0]
    if inp.labelled_mask.shape != (n,):
        raise ValueError(f"labelled_mask must have shape ({n},), got {inp.labelled_mask.shape}")
    if inp.batch_size < 1:
        raise ValueError("batch_size must be >= 1")
    fn = get(name) if isinstance(name, str) else name
    sel = fn(inp)
    if not sel.strategy:
        sel.strategy = next((n for n, f in _REGISTRY.items() if f is fn), "")
    return sel
