"""Every accepted image format shows on the labelling page. Chrome and Firefox cannot show TIFF in an
<img>: annotators get a PNG made from it (``/file?display=1``), the pool keeps the file as uploaded.
Before, every TIFF read "This image did not load" and would have been flagged as broken."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image as PILImage

from labelling.models import Image
from labelling.services.image_checks import BROWSER_FORMATS, CONTENT_TYPES
from labelling.services.images import IngestItem, pool_image_ingest
from tests.factories import image_bytes, queue_round
from tests.labelling.test_annotate_browser import log_in, page, shown  # noqa: F401  (the fixture)

FORMATS = ["PNG", "JPEG", "GIF", "BMP", "TIFF", "WEBP"]


def _pool_of_every_format(project) -> list[Image]:
    ids = []
    for i, fmt in enumerate(FORMATS):
        data = image_bytes(fmt, size=(20 + i, 10 + i), seed=40 + i)
        ids.append(
            pool_image_ingest(project=project, item=IngestItem(name=f"x.{fmt.lower()}", data=data)).image_id
        )
    images = list(Image.objects.filter(pk__in=ids).order_by("id"))
    assert [im.format for im in images] == FORMATS  # every format is accepted and stored as it is
    return images


def test_the_format_list_names_every_accepted_format():
    assert set(FORMATS) == set(CONTENT_TYPES) and set(FORMATS) - {"TIFF"} == BROWSER_FORMATS


@pytest.mark.django_db
def test_a_tiff_is_shown_as_a_png_and_kept_as_uploaded(users, project, client_for):
    tiff = _pool_of_every_format(project)[4]
    queue_round(project, [tiff])
    annotator = client_for(users["annotator"])
    url = annotator.get(f"/api/projects/{project.id}/queue/next").json()["assignment"]["image"]["url"]
    assert url == f"/api/images/{tiff.id}/file?display=1"
    shown_ = annotator.get(url)
    assert shown_.status_code == 200 and shown_["Content-Type"] == "image/png"
    assert shown_["X-Content-Type-Options"] == "nosniff"
    with PILImage.open(io.BytesIO(shown_.content)) as img:
        assert img.format == "PNG" and img.size == (tiff.width, tiff.height)
    kept = annotator.get(f"/api/images/{tiff.id}/file")
    assert kept["Content-Type"] == "image/tiff" and b"".join(kept.streaming_content)[:4] == b"II*\x00"


@pytest.mark.django_db
def test_a_format_browsers_show_is_served_as_uploaded_even_with_display(users, project, client_for):
    png = _pool_of_every_format(project)[0]
    engineer = client_for(users["engineer"])
    response = engineer.get(f"/api/images/{png.id}/file?display=1")
    assert response["Content-Type"] == "image/png"
    assert b"".join(response.streaming_content) == image_bytes("PNG", size=(20, 10), seed=40)


@pytest.mark.browser
@pytest.mark.django_db(transaction=True)
def test_every_accepted_format_shows_on_the_labelling_page(live_server, settings, page, users, project):  # noqa: F811
    settings.SESSION_COOKIE_SECURE = settings.CSRF_COOKIE_SECURE = False
    project.audit_fraction = 0.0
    project.save()
    images = _pool_of_every_format(project)
    queue_round(project, images)
    log_in(page, live_server, users["annotator"])
    page.goto(f"{live_server.url}/projects/{project.id}/label/")
    seen = {}
    previous = ""
    for _ in FORMATS:
        assignment, image_id = shown(page, not_assignment=previous)
        page.wait_for_function("() => { const i = document.getElementById('image'); return i.complete; }")
        natural = page.eval_on_selector("#image", "i => [i.naturalWidth, i.naturalHeight]")
        seen[Image.objects.get(pk=image_id).format] = tuple(natural)
        previous = str(assignment)
        page.keyboard.press("1")
    expected = {im.format: (im.width, im.height) for im in images}
    assert seen == expected  # each drawn at its own size: it loaded
    assert not page.errors


def _deep(mode: str) -> bytes:
    """A 160x120 gradient TIFF: 12-bit values in 16 bits ("I;16"), or floats in 0..1 ("F")."""
    ramp = np.tile(np.linspace(0, 1, 160), (120, 1))
    if mode == "F":
        img = PILImage.fromarray(ramp.astype(np.float32))
    else:
        img = PILImage.fromarray((ramp * 4095).astype(np.uint16))
    assert img.mode == mode
    buf = io.BytesIO()
    img.save(buf, format="TIFF")
    return buf.getvalue()


@pytest.mark.django_db
@pytest.mark.parametrize("mode", ["I;16", "F"])
def test_16_bit_and_float_images_are_stretched_not_clipped(users, project, client_for, mode):
    """Pillow's convert("RGB") clips these modes at 255: a 12-bit gradient came out white and a
    0..1 float one black, for annotators (the PNG shown) and for training (the worker's decode)."""
    from workers.jobs.pool import _decode

    image_id = pool_image_ingest(project=project, item=IngestItem(name="deep.tif", data=_deep(mode))).image_id
    image = Image.objects.get(pk=image_id)
    shown_ = client_for(users["annotator"]).get(f"/api/images/{image_id}/file?display=1")
    with PILImage.open(io.BytesIO(shown_.content)) as img:
        grey = np.asarray(img.convert("L"))
    assert grey.min() == 0 and grey.max() == 255 and len(np.unique(grey)) > 100
    assert np.all(np.diff(grey[0].astype(int)) >= 0)  # still a left-to-right ramp
    decoded = _decode(image, 64)[..., 0]
    assert decoded.min() < 10 and decoded.max() > 245 and len(np.unique(decoded)) > 50
    thumb = client_for(users["annotator"]).get(f"/api/images/{image_id}/thumbnail")
    with PILImage.open(io.BytesIO(thumb.content)) as img:
        assert len(np.unique(np.asarray(img.convert("L")))) > 50
