"""Synthetic pools with known structure, shared by the strategy tests."""

from __future__ import annotations

import numpy as np
import pytest


def planted_mixture(
    n_clusters: int, per_cluster: int, d: int = 8, spread: float = 0.3, *, seed: int = 0
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Well-separated Gaussian blobs: embeddings (N, d) float32, cluster ids (N,), centres (K, d)."""
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((n_clusters, d)) * 10.0  # (K, d), far apart relative to spread
    y = np.repeat(np.arange(n_clusters), per_cluster)  # (N,)
    x = centres[y] + spread * rng.standard_normal((y.size, d))
    return x.astype(np.float32), y, centres.astype(np.float32)


def softmax(logits: np.ndarray) -> np.ndarray:
    z = np.exp(logits - logits.max(axis=1, keepdims=True))
    return (z / z.sum(axis=1, keepdims=True)).astype(np.float32)


@pytest.fixture
def pool() -> dict:
    """A small pool with embeddings, probs, MC samples and a few labels: every strategy runs on it."""
    x, y, _ = planted_mixture(5, 60, seed=3)
    rng = np.random.default_rng(3)
    probs = softmax(rng.standard_normal((x.shape[0], 5)) * 2)  # (N, C)
    mc = np.stack([softmax(rng.standard_normal((x.shape[0], 5)) * 2) for _ in range(4)])  # (T, N, C)
    labelled = np.zeros(x.shape[0], bool)
    labelled[rng.choice(x.shape[0], 12, replace=False)] = True
    labels = np.where(labelled, y, -1)
    return dict(embeddings=x, labelled_mask=labelled, probs=probs, mc_probs=mc, labels=labels)
