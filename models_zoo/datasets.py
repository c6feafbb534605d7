"""Labelled image datasets as uint8 numpy arrays: a pool (X, y) and a test split.

Loaders: ``.npz`` files, image folders (one sub-folder per class), Fashion-MNIST from
Debian's ``dataset-fashion-mnist`` IDX files and scikit-learn's digits. :func:`load`
dispatches on a spec string as the simulator's ``--data`` takes it.
"""

from __future__ import annotations

import gzip
import os
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

FASHION_MNIST_DIR = Path(os.environ.get("FASHION_MNIST_DIR", "/usr/share/datasets/fashion-mnist"))
IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp"}


@dataclass
class Dataset:
    """X: uint8 (N,H,W) or (N,H,W,C) pool; y: int64 (N,); X_test/y_test likewise."""

    name: str
    X: np.ndarray
    y: np.ndarray
    X_test: np.ndarray
    y_test: np.ndarray
    classes: list[str] = field(default_factory=list)

    @property
    def n_classes(self) -> int:
        return int(max(self.y.max(), self.y_test.max()) + 1)


def _holdout(X: np.ndarray, y: np.ndarray, test_fraction: float, seed: int) -> tuple[np.ndarray, ...]:
    """A fixed, stratified-by-shuffling split so every run sees the same test set."""
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(X))
    n_test = max(1, int(round(len(X) * test_fraction)))
    test, pool = order[:n_test], order[n_test:]
    return X[pool], y[pool], X[test], y[test]


def _as_uint8(X: np.ndarray) -> np.ndarray:
    if X.dtype == np.uint8:
        return X
    X = np.asarray(X, dtype=np.float64)
    if X.max() <= 1.0:  # floats in [0, 1]
        X = X * 255
    return np.clip(np.round(X), 0, 255).astype(np.uint8)


def load_npz(path: str | os.PathLike, test_fraction: float = 0.2, seed: int = 0) -> Dataset:
    """``X`` (N,H,W[,C]) uint8 and ``y``; ``X_test``/``y_test`` optional, else a fixed holdout."""
    with np.load(path) as f:
        X, y = _as_uint8(f["X"]), np.asarray(f["y"]).astype(np.int64)
        if "X_test" in f and "y_test" in f:
            Xt, yt = _as_uint8(f["X_test"]), np.asarray(f["y_test"]).astype(np.int64)
        else:
            X, y, Xt, yt = _holdout(X, y, test_fraction, seed)
    return Dataset(Path(path).stem, X, y, Xt, yt)


def _read_folder(root: Path) -> tuple[list[np.ndarray], list[int], list[str]]:
    from PIL import Image  # only this loader needs Pillow

    classes = sorted(d.name for d in root.iterdir() if d.is_dir())
    if not classes:
        raise ValueError(f"{root} has no class sub-folders")
    images, labels = [], []
    for k, cls in enumerate(classes):
        for p in sorted((root / cls).iterdir()):
            if p.suffix.lower() in IMAGE_SUFFIXES:
                with Image.open(p) as im:
                    grey = im.mode in ("1", "L", "LA", "I", "I;16", "F")
                    images.append(np.asarray(im.convert("L" if grey else "RGB")))
                labels.append(k)
    return images, labels, classes


def _stack(images: list[np.ndarray], size: tuple[int, int] | None = None) -> np.ndarray:
    """Stack images of possibly different sizes/modes: resize to ``size`` (default: the most
    common size) and make all colour if any is colour."""
    from PIL import Image

    size = size or Counter(im.shape[:2] for im in images).most_common(1)[0][0]
    colour = any(im.ndim == 3 for im in images)
    out = []
    for im in images:
        if colour and im.ndim == 2:
            im = np.repeat(im[..., None], 3, axis=2)  # (H, W) -> (H, W, 3)
        if im.shape[:2] != size:
            im = np.asarray(Image.fromarray(im).resize((size[1], size[0]), Image.BILINEAR))
        out.append(im)
    return np.stack(out).astype(np.uint8)


def load_image_folder(path: str | os.PathLike, test_fraction: float = 0.2, seed: int = 0) -> Dataset:
    """``DIR/<class>/*.png`` (a fixed holdout is the test split) or ``DIR/train/<class>/...``
    plus ``DIR/test/<class>/...``. Images are resized to the most common size."""
    root = Path(path)
    if (root / "train").is_dir() and (root / "test").is_dir():
        imgs, labels, classes = _read_folder(root / "train")
        timgs, tlabels, tclasses = _read_folder(root / "test")
        if tclasses != classes:
            raise ValueError("train/ and test/ must have the same class folders")
        X = _stack(imgs)
        Xt = _stack(timgs, size=X.shape[1:3])
        return Dataset(root.name, X, np.array(labels), Xt, np.array(tlabels), classes)
    imgs, labels, classes = _read_folder(root)
    X, y, Xt, yt = _holdout(_stack(imgs), np.array(labels, dtype=np.int64), test_fraction, seed)
    return Dataset(root.name, X, y, Xt, yt, classes)


def _read_idx(path: Path) -> np.ndarray:
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rb") as f:
        data = f.read()
    ndim = data[3]
    shape = tuple(int.from_bytes(data[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim))
    return np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * ndim).reshape(shape)


FASHION_MNIST_CLASSES = [
    "T-shirt",
    "Trouser",
    "Pullover",
    "Dress",
    "Coat",
    "Sandal",
    "Shirt",
    "Sneaker",
    "Bag",
    "Boot",
]


def load_fashion_mnist(root: str | os.PathLike | None = None, pool_size: int | None = 20000) -> Dataset:
    """Fashion-MNIST (Xiao et al., 2017): the first ``pool_size`` training images as the pool
    (None: all 60,000) and the 10,000 test images."""
    root = Path(root) if root else FASHION_MNIST_DIR

    def find(stem: str) -> Path:
        for name in (stem + ".gz", stem):
            if (root / name).exists():
                return root / name
        raise FileNotFoundError(f"{stem} not found in {root} (install Debian's dataset-fashion-mnist)")

    X = _read_idx(find("train-images-idx3-ubyte"))
    y = _read_idx(find("train-labels-idx1-ubyte")).astype(np.int64)
    Xt = _read_idx(find("t10k-images-idx3-ubyte"))
    yt = _read_idx(find("t10k-labels-idx1-ubyte")).astype(np.int64)
    if pool_size is not None:
        X, y = X[:pool_size], y[:pool_size]
    return Dataset("fashion-mnist", X.copy(), y, Xt.copy(), yt, FASHION_MNIST_CLASSES)


def load_digits(test_fraction: float = 0.25, seed: int = 0) -> Dataset:
    """scikit-learn's 8x8 digits (values 0..16, rescaled to 0..255), fixed holdout."""
    from sklearn.datasets import load_digits as sk_digits

    d = sk_digits()
    X = np.round(d.images * (255 / 16)).astype(np.uint8)  # (1797, 8, 8)
    X, y, Xt, yt = _holdout(X, d.target.astype(np.int64), test_fraction, seed)
    return Dataset("digits", X, y, Xt, yt, [str(i) for i in range(10)])


def load(spec: str, pool_size: int | None = None) -> Dataset:
    """``fashion-mnist``, ``digits``, ``PATH.npz`` or an image folder ``DIR``."""
    if spec == "fashion-mnist":
        return load_fashion_mnist(pool_size=pool_size or 20000)
    if spec == "digits":
        return load_digits()
    p = Path(spec)
    if p.suffix == ".npz":
        ds = load_npz(p)
    elif p.is_dir():
        ds = load_image_folder(p)
    else:
        raise ValueError(f"unknown dataset {spec!r}: use fashion-mnist, digits, a .npz file or a folder")
    if pool_size is not None:
        ds.X, ds.y = ds.X[:pool_size], ds.y[:pool_size]
    return ds
