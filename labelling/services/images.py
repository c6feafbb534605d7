"""Getting images into a project's pool, and thumbnails out.

A batch stores the good files and reports every file: ``stored``, ``duplicate`` (same content is
already in the project) or ``rejected`` with a code and reason. A rejected file leaves no row and
no stored bytes.
"""

from __future__ import annotations

import io
from collections.abc import Iterable
from dataclasses import asdict, dataclass

from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.db import IntegrityError, transaction
from PIL import Image as PILImage

from labelling.models import Image, LabelClass, Project
from labelling.services.image_checks import EXTENSIONS, ImageRejected, image_bytes_check

THUMBNAIL_SIZE = 128


@dataclass
class IngestItem:
    """One file offered for the pool; ``reference_label`` is ground truth for evaluation datasets."""

    name: str
    data: bytes
    reference_label: LabelClass | None = None


@dataclass
class IngestResult:
    name: str
    status: str  # "stored" | "duplicate" | "rejected"
    image_id: int | None = None
    code: str = ""
    reason: str = ""

    def as_dict(self) -> dict:
        return asdict(self)


def storage_key_for(sha256: str, fmt: str) -> str:
    """Content-addressed key: the same bytes always land at the same place."""
    return f"images/{sha256[:2]}/{sha256[2:4]}/{sha256}.{EXTENSIONS[fmt]}"


def _store_bytes(key: str, data: bytes) -> tuple[str, bool]:
    """Write ``data`` under ``key`` unless it is already there; return (key, written_now)."""
    if default_storage.exists(key):
        return key, False
    saved = default_storage.save(key, ContentFile(data))
    return saved, True


def _forget_bytes(key: str) -> None:
    """Delete stored bytes that no image row references any more (content keys are shared)."""
    if not Image.objects.filter(storage_key=key).exists():
        default_storage.delete(key)


def pool_image_ingest(*, project: Project, item: IngestItem) -> IngestResult:
    """Validate and store one file. Never raises for bad content: the result says why."""
    name = (item.name or "")[:255]
    try:
        checked = image_bytes_check(item.data, name=name)
    except ImageRejected as exc:
        return IngestResult(name=name, status="rejected", code=exc.code, reason=exc.message)

    existing = (
        Image.objects.filter(project=project, sha256=checked.sha256).values_list("id", flat=True).first()
    )
    if existing is not None:
        return IngestResult(
            name=name,
            status="duplicate",
            image_id=existing,
            code="duplicate",
            reason=f"the same content is already image {existing} of this project",
        )
    key, written = _store_bytes(storage_key_for(checked.sha256, checked.format), checked.data)
    try:
        with transaction.atomic():
            image = Image.objects.create(
                project=project,
                sha256=checked.sha256,
                storage_key=key,
                width=checked.width,
                height=checked.height,
                format=checked.format,
                size_bytes=len(checked.data),
                original_name=name,
                reference_label=item.reference_label,
            )
    except IntegrityError:
        # A concurrent upload of the same content won the race: report it as the duplicate it is.
        if written:
            _forget_bytes(key)
        other = (
            Image.objects.filter(project=project, sha256=checked.sha256).values_list("id", flat=True).first()
        )
        return IngestResult(
            name=name,
            status="duplicate",
            image_id=other,
            code="duplicate",
            reason=f"the same content is already image {other} of this project",
        )
    except BaseException:
        if written:
            _forget_bytes(key)
        raise
    return IngestResult(name=name, status="stored", image_id=image.id)


def pool_images_ingest(*, project: Project, items: Iterable[IngestItem]) -> list[IngestResult]:
    """Ingest a batch file by file: the good ones are stored whatever happens to the others."""
    return [pool_image_ingest(project=project, item=item) for item in items]


def image_thumbnail(*, image: Image, size: int = THUMBNAIL_SIZE) -> bytes:
    """A PNG no larger than ``size`` px on its longest side, cached in storage beside the image."""
    key = f"thumbs/{image.sha256[:2]}/{image.sha256}_{size}.png"
    if default_storage.exists(key):
        with default_storage.open(key, "rb") as fh:
            return fh.read()
    with default_storage.open(image.storage_key, "rb") as fh, PILImage.open(fh) as img:
        img.seek(0)
        thumb = img.convert("RGBA" if img.mode in ("RGBA", "LA", "P") else "RGB")
        # Tiny images (e.g. 28x28) are scaled up with nearest neighbour so they stay crisp.
        if max(thumb.size) < size:
            scale = max(1, size // max(thumb.size))
            thumb = thumb.resize((thumb.width * scale, thumb.height * scale), PILImage.Resampling.NEAREST)
        else:
            thumb.thumbnail((size, size))
        buf = io.BytesIO()
        thumb.save(buf, format="PNG")
    data = buf.getvalue()
    if not default_storage.exists(key):
        default_storage.save(key, ContentFile(data))
    return data
