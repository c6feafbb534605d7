"""The project's pool as one uint8 array, the shape models_zoo expects.

Images of any size and mode are brought to one square side S and one channel count by a single
rule: S is the median of the images' longer sides, clamped to [8, 64] (CPU budget); channels are
1 when every image is grey, else 3. The decoded array is cached in storage, keyed by the pool's
content, so later jobs skip decoding.
"""

from __future__ import annotations

import hashlib
import io

import numpy as np
from django.core.files.storage import default_storage
from PIL import Image as PILImage

from labelling.models import Image, Project
from labelling.models.image import ImageStatus
from labelling.services.image_checks import as_shown
from workers.jobs.storage import load_npy, store_npy

MIN_SIDE, MAX_SIDE = 8, 64


def pool_images(project: Project) -> list[Image]:
    """Every usable image of the pool (flagged ones excluded), in id order."""
    return list(
        Image.objects.filter(project=project)
        .exclude(status=ImageStatus.FLAGGED)
        .order_by("id")
        .only("id", "storage_key", "width", "height", "sha256")
    )


def side_for(images: list[Image]) -> int:
    if not images:
        return MIN_SIDE
    longer = np.median([max(im.width, im.height) for im in images])
    return int(np.clip(round(longer), MIN_SIDE, MAX_SIDE))


def _decode(image: Image, side: int) -> np.ndarray:
    with default_storage.open(image.storage_key, "rb") as fh, PILImage.open(io.BytesIO(fh.read())) as img:
        if img.format == "JPEG" and max(img.size) > 2 * side:
            img.draft("RGB", (2 * side, 2 * side))  # a large JPEG decoded at a fraction of its size
        rgb = as_shown(img).convert("RGB")  # upright, transparency on white: what annotators saw
        if rgb.size != (side, side):
            rgb = rgb.resize((side, side), PILImage.Resampling.BILINEAR)
        return np.asarray(rgb, dtype=np.uint8)  # (S, S, 3)


def decode_images(images: list[Image], side: int, channels: int, progress=None) -> np.ndarray:
    """(N, S, S) uint8 when channels == 1, else (N, S, S, 3)."""
    out = np.empty((len(images), side, side, 3), dtype=np.uint8)
    for i, image in enumerate(images):
        out[i] = _decode(image, side)
        if progress is not None and i % 500 == 0:
            progress(i / max(len(images), 1))
    return out[..., 0].copy() if channels == 1 else out


def pool_array(project: Project, progress=None) -> tuple[np.ndarray, np.ndarray]:
    """(ids (N,) int64, images uint8 (N,S,S) or (N,S,S,3)) of the whole pool, cached."""
    images = pool_images(project)
    ids = np.array([im.id for im in images], dtype=np.int64)
    side = side_for(images)
    # "|s": decoded through as_shown (earlier arrays: sideways photos, the colour under transparency).
    digest = hashlib.sha256(("|".join(im.sha256 for im in images) + f"|{side}|s").encode()).hexdigest()[:24]
    folder = f"cache/pool/{project.id}"
    key = f"{folder}/{digest}.npy"
    if default_storage.exists(key):
        try:
            return ids, load_npy(key)
        except FileNotFoundError:  # a job that saw the pool change deleted it meanwhile: decode
            pass
    rgb = decode_images(images, side, 3, progress)
    grey = bool(rgb.size) and bool((rgb[..., 0] == rgb[..., 1]).all() and (rgb[..., 1] == rgb[..., 2]).all())
    X = rgb[..., 0].copy() if grey else rgb
    store_npy(X, key)
    # One decoded pool per project: the arrays of earlier pools (a whole pool each, before an
    # upload or a flag changed it) are not read again. Writers' temp files (".name.pid.tmp") stay.
    _, names = default_storage.listdir(folder)
    for name in names:
        if name != f"{digest}.npy" and not name.startswith("."):
            default_storage.delete(f"{folder}/{name}")
    return ids, X


def images_for(project: Project, ids: np.ndarray) -> np.ndarray:
    """The images of ``ids`` (an encoder version's embedding rows), in that order, as pool_array
    decodes them: from its cache where the pool still has them, decoded here where not (flagged,
    or the pool changed since the embedding). Rows must match the embedding's, whatever happened."""
    pool_ids, X = pool_array(project)
    row = {int(i): r for r, i in enumerate(pool_ids)}
    where = np.array([row.get(int(i), -1) for i in ids], dtype=np.int64)
    if (where >= 0).all():
        return X[where]
    missing = [int(i) for i in np.asarray(ids)[where < 0]]
    found = {im.id: im for im in Image.objects.filter(project=project, pk__in=missing)}
    if len(found) != len(missing):
        raise ValueError("images of this encoder version's embedding are gone from the pool: embed it again")
    extra = decode_images(
        [found[i] for i in missing], X.shape[1] if X.size else MIN_SIDE, 1 if X.ndim == 3 else 3
    )
    out = np.empty((len(ids), *extra.shape[1:]), dtype=np.uint8)
    out[where >= 0] = X[where[where >= 0]]
    out[where < 0] = extra
    return out
