import numpy as np
import pytest
import torch


@pytest.fixture(autouse=True)
def _two_threads():
    # Tests share the machine with benchmarks; two threads keep them predictable.
    torch.set_num_threads(2)


@pytest.fixture(autouse=True)
def _short_consistency_on_gpu(monkeypatch):
    # Where CUDA is present the learner adds consistency training (10,000 steps, ~100 s a fit):
    # a few steps exercise that path without making every learner test minutes long.
    monkeypatch.setattr("models_zoo.transfer.CONSISTENCY_STEPS_ON_GPU", 5)


def blobs_images(n_per_class: int = 40, n_classes: int = 3, size: int = 12, seed: int = 0):
    """Tiny grey images: class c is a bright square in a class-specific corner, plus noise."""
    rng = np.random.default_rng(seed)
    X, y = [], []
    for c in range(n_classes):
        for _ in range(n_per_class):
            im = rng.integers(0, 60, (size, size))
            r, q = divmod(c, 2)
            im[r * size // 2 : (r + 1) * size // 2, q * size // 2 : (q + 1) * size // 2] += 180
            X.append(np.clip(im, 0, 255))
            y.append(c)
    return np.array(X, dtype=np.uint8), np.array(y, dtype=np.int64)


@pytest.fixture
def blobs():
    return blobs_images()
