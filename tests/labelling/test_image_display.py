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


def _photo(fmt: str = "JPEG", orientation: int | None = None, **save) -> tuple[bytes, np.ndarray]:
    """A 40 x 24 picture (bright left half, dark right) stored turned so that ``orientation`` puts it
    upright, as a phone stores a portrait photo: (file bytes, the upright pixels)."""
    upright = np.zeros((24, 40, 3), np.uint8)
    upright[:, :20] = 230
    stored = PILImage.fromarray(upright)
    if orientation == 6:  # shown turned 90 degrees clockwise: stored turned 90 anticlockwise
        stored = stored.transpose(PILImage.Transpose.ROTATE_90)
    exif = PILImage.Exif()
    if orientation:
        exif[0x0112] = orientation
    buf = io.BytesIO()
    stored.save(buf, format=fmt, exif=exif, **save)
    return buf.getvalue(), upright


@pytest.mark.django_db
def test_a_photo_is_upright_by_its_exif_orientation_for_everyone(users, project, client_for):
    """Browsers turn a photo by its EXIF orientation; the thumbnail, the size and the model's pixels
    used to stay sideways: the model learnt from another picture than the annotator labelled."""
    from workers.jobs.pool import _decode

    data, upright = _photo(orientation=6)
    image = Image.objects.get(
        pk=pool_image_ingest(project=project, item=IngestItem(name="p.jpg", data=data)).image_id
    )
    assert (image.width, image.height) == (40, 24)  # as shown, not as stored (24 x 40)
    thumb = client_for(users["annotator"]).get(f"/api/images/{image.id}/thumbnail")
    with PILImage.open(io.BytesIO(thumb.content)) as img:
        grey = np.asarray(img.convert("L"), dtype=float)
    assert grey.shape[1] > grey.shape[0]  # landscape
    assert grey[:, : grey.shape[1] // 2 - 4].mean() > 200 > 30 > grey[:, grey.shape[1] // 2 + 4 :].mean()
    decoded = _decode(image, 16).astype(float).mean(axis=(0, 2))  # (16,) columns
    assert decoded[:6].mean() > 200 and decoded[-6:].mean() < 30


@pytest.mark.django_db
def test_transparent_pixels_are_white_for_the_model_as_on_the_page(users, project, client_for):
    """What lies under transparent pixels differs from file to file (black, green, white): the page
    shows it on white, and the thumbnail and the model's pixels showed the hidden colour."""
    from workers.jobs.pool import _decode

    ids = []
    for i, hidden in enumerate([(0, 0, 0), (0, 255, 0), (255, 255, 255)]):
        rgba = np.zeros((16, 16, 4), np.uint8)
        rgba[..., :3] = hidden
        rgba[4:12, 4:12] = (200, 0, 0, 255)  # an opaque red square
        buf = io.BytesIO()
        PILImage.fromarray(rgba, "RGBA").save(buf, format="PNG")
        ids.append(
            pool_image_ingest(project=project, item=IngestItem(name=f"{i}.png", data=buf.getvalue())).image_id
        )
    for image in Image.objects.filter(pk__in=ids):
        pixels = _decode(image, 16)
        assert pixels[0, 0].tolist() == [255, 255, 255] and pixels[8, 8].tolist() == [200, 0, 0]
        thumb = client_for(users["annotator"]).get(f"/api/images/{image.id}/thumbnail")
        with PILImage.open(io.BytesIO(thumb.content)) as img:
            assert img.convert("RGB").getpixel((0, 0)) == (255, 255, 255)


@pytest.mark.django_db
def test_a_camera_jpeg_with_an_embedded_preview_is_a_jpeg(project):
    """Pillow names a JPEG whose MPF segment lists a second image MPO: it was refused as
    "starts like JPEG but decodes as MPO"."""
    big = PILImage.fromarray(np.full((32, 48, 3), 120, np.uint8))
    buf = io.BytesIO()
    big.save(buf, format="MPO", save_all=True, append_images=[big.resize((12, 8))])
    result = pool_image_ingest(project=project, item=IngestItem(name="cam.jpg", data=buf.getvalue()))
    assert result.status == "stored", result
    assert Image.objects.get(pk=result.image_id).format == "JPEG"


@pytest.mark.django_db
def test_a_large_tiff_is_shown_at_a_screens_size(users, project, client_for, settings):
    from labelling.api.images import DISPLAY_MAX_SIDE

    buf = io.BytesIO()
    PILImage.fromarray(np.full((300, DISPLAY_MAX_SIDE + 500), 90, np.uint8)).save(buf, format="TIFF")
    image_id = pool_image_ingest(
        project=project, item=IngestItem(name="wide.tif", data=buf.getvalue())
    ).image_id
    shown_ = client_for(users["annotator"]).get(f"/api/images/{image_id}/file?display=1")
    with PILImage.open(io.BytesIO(shown_.content)) as img:
        assert max(img.size) == DISPLAY_MAX_SIDE


@pytest.mark.django_db
def test_a_16_bit_png_is_shown_to_annotators_as_training_sees_it(users, project, client_for):
    """Browsers show a 16-bit PNG's top 8 bits: a microscope's 12-bit image came out near black on
    the labelling page while thumbnails and the model saw it stretched (a review)."""
    ramp = (np.tile(np.linspace(0, 1, 160), (120, 1)) * 4095).astype(np.uint16)
    buf = io.BytesIO()
    PILImage.fromarray(ramp).save(buf, format="PNG")
    image_id = pool_image_ingest(
        project=project, item=IngestItem(name="deep.png", data=buf.getvalue())
    ).image_id
    queue_round(project, [Image.objects.get(pk=image_id)])
    annotator = client_for(users["annotator"])
    url = annotator.get(f"/api/projects/{project.id}/queue/next").json()["assignment"]["image"]["url"]
    assert url == f"/api/images/{image_id}/file?display=1"
    with PILImage.open(io.BytesIO(annotator.get(url).content)) as img:
        grey = np.asarray(img.convert("L"))
    assert grey.min() == 0 and grey.max() == 255  # stretched, not 0..15
    # An 8-bit PNG is its own bytes, display or not.
    plain = _pool_of_every_format(project)[0]
    assert (
        b"".join(annotator.get(f"/api/images/{plain.id}/file?display=1").streaming_content)[:4] == b"\x89PNG"
    )


@pytest.mark.django_db
def test_an_animation_is_stored_with_a_note_that_its_first_frame_is_the_image(users, project, client_for):
    frames = [PILImage.fromarray(np.full((8, 8), v, np.uint8)) for v in (10, 120, 250)]
    buf = io.BytesIO()
    frames[0].save(buf, format="GIF", save_all=True, append_images=frames[1:])
    eng = client_for(users["engineer"])
    from django.core.files.uploadedfile import SimpleUploadedFile

    body = eng.post(
        f"/api/projects/{project.id}/images", {"files": [SimpleUploadedFile("a.gif", buf.getvalue())]},
        format="multipart",
    ).json()  # fmt: skip
    (result,) = body["results"]
    assert (
        result["status"] == "stored"
        and result["reason"] == "3 frames: the first is the one labelled and trained on"
    )
    still = pool_image_ingest(project=project, item=IngestItem(name="b.png", data=image_bytes(seed=5)))
    assert still.status == "stored" and still.reason == ""
