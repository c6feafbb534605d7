"""Import jobs: unpack a zip of images, or a built-in dataset, into a project's pool."""

from __future__ import annotations

import gzip
import io
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
from django.core.files.storage import default_storage
from PIL import Image as PILImage

from labelling.models import Job, LabelClass, Project
from labelling.services.images import IngestItem, IngestResult, pool_images_ingest_bulk
from labelling.services.training import images_added
from labelling.services.zips import zip_members_read
from models_zoo.datasets import FASHION_MNIST_DIR  # Debian's path, or $FASHION_MNIST_DIR

FASHION_MNIST_CLASSES = [
    "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot",
]  # fmt: skip
DIGITS_CLASSES = [str(i) for i in range(10)]
DATASETS = {"fashion-mnist": FASHION_MNIST_CLASSES, "digits": DIGITS_CLASSES}


def _summarise(results: list[IngestResult], *, max_listed: int = 200) -> dict[str, Any]:
    counts = Counter(r.status for r in results)
    problems = [r.as_dict() for r in results if r.status != "stored"]
    return {
        "stored": counts["stored"],
        "duplicates": counts["duplicate"],
        "rejected": counts["rejected"],
        "problems": problems[:max_listed],
        "problems_not_listed": max(0, len(problems) - max_listed),
    }


BATCH = 500
BATCH_BYTES = 128 * 1024 * 1024  # a batch of large photos is stored before 500 of them are held


def _ingest_all(
    project: Project, items: Iterator[IngestItem | IngestResult], total: int, progress: Callable[..., None]
) -> list[IngestResult]:
    """Ingest in batches of 500 files or 128 MB, whichever comes first (40 photos of 8.5 MB held
    at once took a worker from 0.5 to 0.9 GB); an IngestResult in the stream is a file already
    refused upstream."""
    results: list[IngestResult] = []
    batch: list[IngestItem] = []
    held = 0

    def flush() -> None:
        nonlocal held
        results.extend(pool_images_ingest_bulk(project=project, items=batch))
        batch.clear()
        held = 0
        progress(len(results) / max(total, 1), f"{len(results):,} of {total:,} files")

    for item in items:
        if isinstance(item, IngestResult):
            results.append(item)
            continue
        batch.append(item)
        held += len(item.data)
        if len(batch) >= BATCH or held >= BATCH_BYTES:
            flush()
    if batch:
        flush()
    if any(r.status == "stored" for r in results):
        images_added(project)  # a project with an encoder embeds them in its next retrain, queued now
    return results


def import_zip(job: Job, progress: Callable[..., None]) -> dict[str, Any]:
    """Unpack the zip stored at params.storage_key; the archive is deleted once imported, or when
    the import fails or is cancelled."""
    key = job.params["storage_key"]
    total = int(job.params.get("members") or 0)

    def items() -> Iterator[IngestItem | IngestResult]:
        with default_storage.open(key, "rb") as fh:
            for name, data, problem in zip_members_read(fh):
                if data is None:
                    yield IngestResult(
                        name=name, status="rejected", code="corrupt_zip_member", reason=problem
                    )
                else:
                    yield IngestItem(name=name, data=data)

    try:
        results = _ingest_all(job.project, items(), total, progress)
    except Exception:  # failed or cancelled: the job ends here, and so does its upload (a worker
        default_storage.delete(key)  # killed mid-import raises nothing: the redelivery needs the zip)
        raise
    default_storage.delete(key)
    summary = _summarise(results)
    summary["_message"] = (
        f"{summary['stored']} stored, {summary['duplicates']} duplicates, {summary['rejected']} rejected"
    )
    return summary


def _read_idx(path: Path) -> np.ndarray:
    """An IDX file (the MNIST format): magic, dimension sizes, then uint8 data."""
    with gzip.open(path, "rb") as fh:
        raw = fh.read()
    ndim = raw[3]
    shape = tuple(int.from_bytes(raw[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim))
    return np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * ndim).reshape(shape)


def dataset_arrays(name: str) -> tuple[np.ndarray, np.ndarray]:
    """Images (N, H, W) uint8 and labels (N,) of a built-in dataset; no network."""
    if name == "fashion-mnist":
        if not FASHION_MNIST_DIR.exists():
            raise FileNotFoundError(
                f"{FASHION_MNIST_DIR} is missing: install Debian's dataset-fashion-mnist package"
            )
        return (
            _read_idx(FASHION_MNIST_DIR / "train-images-idx3-ubyte.gz"),
            _read_idx(FASHION_MNIST_DIR / "train-labels-idx1-ubyte.gz"),
        )
    if name == "digits":
        from sklearn.datasets import load_digits

        digits = load_digits()
        # 0..16 grey levels scaled to 0..255
        return (digits.images * (255.0 / 16.0)).round().astype(np.uint8), digits.target.astype(np.int64)
    raise ValueError(f"unknown dataset {name!r}; known: {', '.join(DATASETS)}")


def _png(pixels: np.ndarray) -> bytes:
    buf = io.BytesIO()
    PILImage.fromarray(pixels).save(buf, format="PNG")
    return buf.getvalue()


def import_dataset(job: Job, progress: Callable[..., None]) -> dict[str, Any]:
    """Import a built-in dataset as PNG files; with_reference_labels stores ground truth (hidden)."""
    name = job.params["dataset"]
    limit = job.params.get("limit")
    with_reference = bool(job.params.get("with_reference_labels"))
    images, labels = dataset_arrays(name)
    if limit:
        images, labels = images[: int(limit)], labels[: int(limit)]
    classes = {lc.name: lc for lc in LabelClass.objects.filter(project=job.project)}
    names = DATASETS[name]
    missing = [n for n in names if n not in classes]
    if with_reference and missing:
        raise ValueError(f"the project's label set lacks {missing}: cannot store reference labels")

    def items() -> Iterator[IngestItem]:
        for i, (pixels, y) in enumerate(zip(images, labels, strict=True)):
            yield IngestItem(
                name=f"{name}-{i:05d}.png",
                data=_png(pixels),
                reference_label=classes[names[int(y)]] if with_reference else None,
            )

    results = _ingest_all(job.project, items(), len(images), progress)
    summary = _summarise(results)
    summary["dataset"] = name
    summary["_message"] = f"{summary['stored']:,} images of {name} stored"
    return summary
