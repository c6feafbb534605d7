"""Image validation by content, never by name.

``image_bytes_check`` accepts PNG, JPEG, WebP, BMP, GIF (first frame) and TIFF, recognised by their
magic bytes, fully decoded, within a pixel limit (decompression bombs) and a size limit.
Anything else raises :class:`ImageRejected` with a code and a reason a person can act on.
"""

from __future__ import annotations

import hashlib
import io
import re
import warnings
from dataclasses import dataclass

import numpy as np
from django.conf import settings
from PIL import Image as PILImage
from PIL import ImageOps, UnidentifiedImageError

from labelling.services.errors import InvalidInput

# (magic prefix, Pillow format); WebP is RIFF....WEBP and checked separately.
_MAGIC = [
    (b"\x89PNG\r\n\x1a\n", "PNG"),
    (b"\xff\xd8\xff", "JPEG"),
    (b"GIF87a", "GIF"),
    (b"GIF89a", "GIF"),
    (b"BM", "BMP"),
    (b"II*\x00", "TIFF"),
    (b"MM\x00*", "TIFF"),
]
CONTENT_TYPES = {
    "PNG": "image/png",
    "JPEG": "image/jpeg",
    "GIF": "image/gif",
    "BMP": "image/bmp",
    "TIFF": "image/tiff",
    "WEBP": "image/webp",
}
# What every current browser shows in an <img>; the rest (TIFF: Chrome and Firefox do not) is shown
# to annotators as a PNG made from it (``/file?display=1``), and kept as uploaded.
BROWSER_FORMATS = frozenset({"PNG", "JPEG", "GIF", "BMP", "WEBP"})
EXTENSIONS = {"PNG": "png", "JPEG": "jpg", "GIF": "gif", "BMP": "bmp", "TIFF": "tif", "WEBP": "webp"}


def as_8bit(img: PILImage.Image) -> PILImage.Image:
    """An image ``convert("RGB")`` does not clip: 16- and 32-bit integer and float greyscale
    (modes I;16*, I, F: microscopy, medical and satellite TIFFs, 16-bit PNGs) stretched from the
    image's own minimum to its maximum over 0..255 ("L"); any other mode as it is. Pillow's
    conversion clips those modes at 255 (a 12-bit image came out white, a 0..1 float one black)."""
    if not (img.mode in ("I", "F") or img.mode.startswith("I;16")):
        return img
    a = np.nan_to_num(np.asarray(img, dtype=np.float64), nan=0.0, posinf=0.0, neginf=0.0)
    lo, hi = float(a.min()), float(a.max())
    scaled = (a - lo) * (255.0 / (hi - lo)) if hi > lo else np.zeros_like(a)
    return PILImage.fromarray(np.clip(np.round(scaled), 0, 255).astype(np.uint8), "L")


# EXIF orientations that turn the image a quarter (width and height trade places when applied).
_QUARTER_TURNS = frozenset({5, 6, 7, 8})
_EXIF_ORIENTATION = 0x0112


def as_shown(img: PILImage.Image) -> PILImage.Image:
    """The first frame of an image as a person sees it, in mode "L" or "RGB": turned upright by its
    EXIF orientation (phones store portrait photos sideways and say so in a tag, which browsers
    follow), deep greyscale stretched (:func:`as_8bit`), and transparent pixels shown on white, as
    the labelling page shows them (what lies under them would differ from image to image).
    Thumbnails, the annotators' display of a TIFF and the training pool all read images through it,
    so the model learns from the picture the annotator labelled."""
    img.seek(0)
    if _orientation(img) not in (None, 1):
        img = ImageOps.exif_transpose(img)
    img = as_8bit(img)
    if img.mode in ("RGBA", "LA", "PA", "RGBa", "La") or "transparency" in img.info:
        rgba = img.convert("RGBA")
        white = PILImage.new("RGBA", rgba.size, (255, 255, 255, 255))
        img = PILImage.alpha_composite(white, rgba)
    return img if img.mode in ("L", "RGB") else img.convert("RGB")


def shown_size(img: PILImage.Image) -> tuple[int, int]:
    """(width, height) as shown: swapped when the EXIF orientation turns the image a quarter."""
    width, height = img.size
    return (height, width) if _orientation(img) in _QUARTER_TURNS else (width, height)


def _orientation(img: PILImage.Image) -> int | None:
    try:
        return img.getexif().get(_EXIF_ORIENTATION)
    except Exception:  # an unreadable EXIF block is no orientation
        return None


class ImageRejected(InvalidInput):
    """One file is not an acceptable image; ``code`` says which rule it broke."""


@dataclass(frozen=True)
class CheckedImage:
    data: bytes
    sha256: str
    format: str  # a key of CONTENT_TYPES
    width: int
    height: int
    frames: int = 1  # an animation's or a multi-page TIFF's; the first is the image

    @property
    def note(self) -> str:
        """What a person should know of the stored image ("" mostly)."""
        if self.frames > 1:
            return f"{self.frames} frames: the first is the one labelled and trained on"
        return ""


def sniff_format(head: bytes) -> str | None:
    """The image format the first bytes announce, or None."""
    if len(head) >= 12 and head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "WEBP"
    for magic, fmt in _MAGIC:
        if head.startswith(magic):
            return fmt
    return None


# Image formats people have that this service does not take, by their signatures: named in the
# refusal so the user knows what to convert ("none of PNG, JPEG, ..." did not say what the file was).
_UNSUPPORTED = [
    (4, (b"ftypheic", b"ftypheix", b"ftyphevc", b"ftypmif1", b"ftypmsf1"), "HEIC/HEIF (an iPhone photo)"),
    (4, (b"ftypavif", b"ftypavis"), "AVIF"),
    (0, (b"\x00\x00\x00\x0cjP  \r\n\x87\n", b"\xff\x4f\xff\x51"), "JPEG 2000"),
    (0, (b"8BPS",), "a Photoshop document (PSD)"),
    (0, (b"%PDF",), "a PDF"),
    (128, (b"DICM",), "DICOM"),
]


def _known_unsupported(head: bytes) -> str:
    for offset, signatures, name in _UNSUPPORTED:
        if any(head[offset:].startswith(sig) for sig in signatures):
            return name
    return ""


def image_bytes_check(data: bytes, *, name: str = "") -> CheckedImage:
    """Validate one uploaded file; raise ImageRejected with a precise reason otherwise."""
    max_bytes = settings.UPLOAD_MAX_IMAGE_BYTES
    if len(data) == 0:
        raise ImageRejected("the file is empty", code="empty_file")
    if len(data) > max_bytes:
        raise ImageRejected(
            f"the file is {len(data):,} bytes, over the limit of {max_bytes:,} bytes", code="file_too_large"
        )
    fmt = sniff_format(data[:16])
    if fmt is None:
        head = data[:256].lstrip().lower()
        if head.startswith((b"<svg", b"<?xml")) or b"<svg" in head:
            raise ImageRejected(
                "SVG is not accepted (vector images can carry scripts)", code="unsupported_format"
            )
        if head.startswith((b"<!doctype", b"<html")) or b"<html" in head or b"<script" in head:
            raise ImageRejected("the file is HTML, not an image", code="unsupported_format")
        named = _known_unsupported(data[:160])
        raise ImageRejected(
            (f"{named} is not accepted: convert it to PNG or JPEG" if named else "not a supported image")
            + ": the content is none of PNG, JPEG, WebP, BMP, GIF or TIFF",
            code="unsupported_format",
        )
    max_pixels = settings.UPLOAD_MAX_IMAGE_PIXELS
    try:
        with warnings.catch_warnings():
            # Pillow warns between its limit and twice it, and raises beyond: treat both as a bomb.
            warnings.simplefilter("error", PILImage.DecompressionBombWarning)
            with PILImage.open(io.BytesIO(data)) as img:
                # Pillow names a JPEG whose MPF segment lists more images (a camera's large preview)
                # MPO; it is a JPEG to every browser, and its first image is the picture.
                if img.format != fmt and not (fmt == "JPEG" and img.format == "MPO"):
                    raise ImageRejected(
                        f"the content starts like {fmt} but decodes as {img.format}", code="format_mismatch"
                    )
                width, height = img.size
                if width < 1 or height < 1:
                    raise ImageRejected("the image has no pixels", code="corrupt_image")
                if width * height > max_pixels:
                    raise ImageRejected(
                        f"{width}x{height} is {width * height:,} pixels, over the limit of {max_pixels:,} "
                        "(decompression bomb guard)",
                        code="too_many_pixels",
                    )
                frames = int(getattr(img, "n_frames", 1) or 1)
                img.seek(0)  # GIF/TIFF: the first frame is the image
                img.load()  # full decode: truncated or corrupt data fails here
                width, height = shown_size(img)  # as shown: a portrait photo stored sideways is portrait
    except ImageRejected:
        raise
    except (PILImage.DecompressionBombError, PILImage.DecompressionBombWarning) as exc:
        raise ImageRejected(f"decompression bomb: {exc}", code="too_many_pixels") from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError, EOFError) as exc:
        why = re.sub(r" <[^<>]* object at 0x[0-9a-f]+>", "", str(exc))  # Pillow names its BytesIO
        raise ImageRejected(f"the image cannot be decoded ({why})", code="corrupt_image") from None
    return CheckedImage(
        data=data,
        sha256=hashlib.sha256(data).hexdigest(),
        format=fmt,
        width=width,
        height=height,
        frames=frames,
    )
