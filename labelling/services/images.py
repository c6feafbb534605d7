"""Getting images into a project's pool, and thumbnails out.

A batch stores the good files and reports every file: ``stored``, ``duplicate`` (same content is
already in the project) or ``rejected`` with a code and reason. A rejected file leaves no row and
no stored bytes.
"""

from __future__ import annotations

import io
from collections.abc import Iterable
from dataclasses import asdict, dataclass

from django.conf import settings
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.db import IntegrityError, transaction
from PIL import Image as PILImage

from labelling.models import Image, LabelClass, Project
from labelling.services.image_checks import (
    BROWSER_FORMATS,
    EXTENSIONS,
    ImageRejected,
    as_shown,
    image_bytes_check,
)
from labelling.services.text import nfc
from labelling.services.training import images_added

THUMBNAIL_SIZE = 128


@dataclass
class IngestItem:
    """One file offered for the pool; ``reference_label`` is ground truth for evaluation datasets."""

    name: str
    data: bytes
    reference_label: LabelClass | None = None

    @property
    def stored_name(self) -> str:
        """The name as stored: NFC (:func:`nfc`), at most the column's 255 characters."""
        return nfc(self.name or "")[:255]


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
    name = item.stored_name
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
    return IngestResult(name=name, status="stored", image_id=image.id, reason=checked.note)


def form_filename(name: str) -> str:
    """A multipart file name as the user named the file: browsers (WHATWG's form-data encoding) and
    requests write a double quote in it as %22, which Django keeps. (Line breaks, written as %0D /
    %0A, stay so: a name is one line in exports and logs.)"""
    return name.replace("%22", '"')


def uploaded_files_ingest(*, project: Project, files: Iterable) -> list[IngestResult]:
    """Uploaded files (Django's UploadedFile) into the pool, each checked and stored on its own:
    one result per file, a file over ``UPLOAD_MAX_IMAGE_BYTES`` rejected unread."""
    results: list[IngestResult] = []
    for upload in files:
        name = form_filename(upload.name or "")
        if upload.size > settings.UPLOAD_MAX_IMAGE_BYTES:
            results.append(
                IngestResult(
                    name=name,
                    status="rejected",
                    code="file_too_large",
                    reason=f"the file is {upload.size:,} bytes, over the limit of "
                    f"{settings.UPLOAD_MAX_IMAGE_BYTES:,} bytes",
                )
            )
            continue
        results.append(pool_image_ingest(project=project, item=IngestItem(name=name, data=upload.read())))
    if any(r.status == "stored" for r in results):
        images_added(project)
    return results


def pool_images_ingest(*, project: Project, items: Iterable[IngestItem]) -> list[IngestResult]:
    """Ingest a batch file by file: the good ones are stored whatever happens to the others."""
    return [pool_image_ingest(project=project, item=item) for item in items]


def pool_images_ingest_bulk(*, project: Project, items: list[IngestItem]) -> list[IngestResult]:
    """The same outcome as :func:`pool_images_ingest` for a batch, with one query for duplicates
    and one insert for the rows: what large imports (datasets, zips) use.

    Rows are inserted in one transaction after their bytes are stored; should that insert fail
    (a concurrent upload of the same content), the batch falls back to file-by-file ingestion.
    """
    results: list[IngestResult | None] = [None] * len(items)
    checked = {}
    for i, item in enumerate(items):
        name = item.stored_name
        try:
            checked[i] = image_bytes_check(item.data, name=name)
        except ImageRejected as exc:
            results[i] = IngestResult(name=name, status="rejected", code=exc.code, reason=exc.message)
    shas = {c.sha256 for c in checked.values()}
    existing = dict(Image.objects.filter(project=project, sha256__in=shas).values_list("sha256", "id"))
    fresh: dict[str, int] = {}  # sha -> index of its first occurrence in this batch
    for i, c in checked.items():
        name = items[i].stored_name
        if c.sha256 in existing or c.sha256 in fresh:
            other = existing.get(c.sha256)
            results[i] = IngestResult(
                name=name, status="duplicate", image_id=other, code="duplicate",
                reason="the same content is already in this project"
                + (f" (image {other})" if other else f" ({items[fresh[c.sha256]].name})"),
            )  # fmt: skip
        else:
            fresh[c.sha256] = i
    written: list[str] = []
    rows = []
    try:
        for sha, i in fresh.items():
            c = checked[i]
            key, was_written = _store_bytes(storage_key_for(sha, c.format), c.data)
            if was_written:
                written.append(key)
            rows.append(
                Image(
                    project=project, sha256=sha, storage_key=key, width=c.width, height=c.height,
                    format=c.format, size_bytes=len(c.data), original_name=items[i].stored_name,
                    reference_label=items[i].reference_label,
                )
            )  # fmt: skip
        with transaction.atomic():
            created = Image.objects.bulk_create(rows)
    except IntegrityError:
        for key in written:
            _forget_bytes(key)
        return pool_images_ingest(project=project, items=items)
    except BaseException:
        for key in written:
            _forget_bytes(key)
        raise
    ids = {img.sha256: img.id for img in created}
    if any(v is None for v in ids.values()):  # backends that do not return ids from bulk inserts
        ids = dict(Image.objects.filter(project=project, sha256__in=list(fresh)).values_list("sha256", "id"))
    for sha, i in fresh.items():
        results[i] = IngestResult(
            name=items[i].stored_name, status="stored", image_id=ids[sha], reason=checked[i].note
        )
    for i, r in enumerate(results):
        if r is not None and r.status == "duplicate" and r.image_id is None:
            r.image_id = ids.get(checked[i].sha256)
    return results  # type: ignore[return-value]


def display_copy_needed(image: Image) -> bool:
    """Whether annotators are shown a PNG made from the image rather than its bytes: browsers cannot
    show its format (TIFF), or would show it otherwise than thumbnails and training see it (a 16-bit
    greyscale PNG: its top 8 bits, near black for a microscope's 12-bit data, not stretched)."""
    if image.format not in BROWSER_FORMATS:
        return True
    if image.format != "PNG":
        return False
    with default_storage.open(image.storage_key, "rb") as fh, PILImage.open(fh) as img:  # the header
        return img.mode in ("I", "F") or img.mode.startswith("I;16")


def image_thumbnail(*, image: Image, size: int = THUMBNAIL_SIZE) -> bytes:
    """A PNG no larger than ``size`` px on its longest side, cached in storage beside the image.
    ``size`` = the image's longest side: the whole image as a PNG (what a browser shows of a TIFF)."""
    # "s": made through as_shown (upright, transparency on white; "b8" ones were neither, the ones
    # before them clipped 16-bit images).
    key = f"thumbs/{image.sha256[:2]}/{image.sha256}_{size}s.png"
    if default_storage.exists(key):
        with default_storage.open(key, "rb") as fh:
            return fh.read()
    with default_storage.open(image.storage_key, "rb") as fh, PILImage.open(fh) as img:
        if max(img.size) > 2 * size and img.format == "JPEG":
            img.draft("RGB", (2 * size, 2 * size))  # decode a large JPEG at a fraction of its size
        thumb = as_shown(img)
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
        default_storage.delete(key.replace(f"_{size}s.png", f"_{size}b8.png"))  # an older make, if any
    return data
