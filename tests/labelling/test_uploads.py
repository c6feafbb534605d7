"""Uploading images: good files stored once, every bad file a 4xx with a reason and nothing stored."""

from __future__ import annotations

import io
import struct
import zlib

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from labelling.models import Image
from tests.conftest import stored_files
from tests.factories import image_bytes

pytestmark = pytest.mark.django_db


def upload(client, project, *files: tuple[str, bytes]):
    payload = {"files": [SimpleUploadedFile(name, data) for name, data in files]}
    return client.post(f"/api/projects/{project.id}/images", payload, format="multipart")


@pytest.mark.parametrize("fmt", ["PNG", "JPEG", "WEBP", "BMP", "GIF", "TIFF"])
def test_each_supported_format_is_stored_with_its_size(client_for, users, project, fmt, _media):
    response = upload(
        client_for(users["engineer"]), project, (f"a.{fmt.lower()}", image_bytes(fmt, (20, 10)))
    )
    assert response.status_code == 201, response.json()
    image = Image.objects.get(pk=response.json()["results"][0]["image_id"])
    assert (image.width, image.height, image.format) == (20, 10, fmt)
    assert stored_files(_media) == [image.storage_key]


def test_batch_stores_good_files_and_explains_each_rejection(client_for, users, project, _media):
    good = image_bytes("PNG", seed=1)
    response = upload(
        client_for(users["engineer"]),
        project,
        ("good.png", good),
        ("bad.png", b"<html>hi</html>"),
        ("again.png", good),
    )
    assert response.status_code == 201
    body = response.json()
    assert (body["stored"], body["rejected"], body["duplicates"]) == (1, 1, 1)
    statuses = {r["name"]: (r["status"], r["code"]) for r in body["results"]}
    assert statuses == {
        "good.png": ("stored", ""),
        "bad.png": ("rejected", "unsupported_format"),
        "again.png": ("duplicate", "duplicate"),
    }
    assert Image.objects.count() == 1 and len(stored_files(_media)) == 1


def _truncated_jpeg() -> bytes:
    data = image_bytes("JPEG", (64, 64), seed=2)
    return data[: len(data) // 2]


def _png_bomb(width: int = 100_000, height: int = 100_000) -> bytes:
    """A tiny PNG that claims 10 gigapixels: the header alone must get it refused."""

    def chunk(kind: bytes, body: bytes) -> bytes:
        return (
            struct.pack(">I", len(body))
            + kind
            + body
            + struct.pack(">I", zlib.crc32(kind + body) & 0xFFFFFFFF)
        )

    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    idat = zlib.compress(b"\x00" * 1024)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")


BAD_FILES = {
    "truncated JPEG": ("photo.jpg", _truncated_jpeg(), "corrupt_image"),
    "decompression bomb": ("bomb.png", _png_bomb(), "too_many_pixels"),
    "HTML named .png": (
        "page.png",
        b"<!DOCTYPE html><html><script>alert(1)</script></html>",
        "unsupported_format",
    ),
    "SVG": (
        "logo.svg",
        b'<svg xmlns="http://www.w3.org/2000/svg"><script>alert(1)</script></svg>',
        "unsupported_format",
    ),
    "empty file": ("empty.png", b"", "empty_file"),
    "PNG header then garbage": ("fake.png", b"\x89PNG\r\n\x1a\n" + b"garbage" * 20, "corrupt_image"),
    "PDF": ("doc.png", b"%PDF-1.4\n1 0 obj\n<<>>\nendobj\n", "unsupported_format"),
}


@pytest.mark.parametrize("case", list(BAD_FILES))
def test_bad_file_is_a_4xx_with_a_reason_and_nothing_stored(client_for, users, project, case, _media):
    name, data, code = BAD_FILES[case]
    response = upload(client_for(users["engineer"]), project, (name, data))
    assert response.status_code == 400, response.content
    body = response.json()
    assert body["error"]["code"] == code
    assert body["results"][0]["reason"]
    assert Image.objects.count() == 0
    assert stored_files(_media) == []


def test_oversize_file_is_refused_before_decoding(client_for, users, project, settings, _media):
    settings.UPLOAD_MAX_IMAGE_BYTES = 1000
    response = upload(client_for(users["engineer"]), project, ("big.png", image_bytes("PNG", (64, 64))))
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "file_too_large"
    assert "over the limit of 1,000 bytes" in response.json()["results"][0]["reason"]
    assert Image.objects.count() == 0 and stored_files(_media) == []


def test_duplicate_alone_is_a_409_naming_the_existing_image(client_for, users, project, _media):
    client = client_for(users["engineer"])
    data = image_bytes("PNG", seed=5)
    first = upload(client, project, ("a.png", data)).json()["results"][0]["image_id"]
    response = upload(client, project, ("b.png", data))
    assert response.status_code == 409
    assert response.json()["error"]["code"] == "duplicate"
    assert response.json()["results"][0]["image_id"] == first
    assert Image.objects.count() == 1 and len(stored_files(_media)) == 1


def test_a_duplicate_and_a_refused_file_answer_the_refusals_reason(client_for, users, project, _media):
    # The duplicate first, then a file that is no image: the top-level code is the refusal's, not
    # "duplicate" (the first result's), which read as if nothing was wrong with the second.
    client = client_for(users["engineer"])
    data = image_bytes("PNG", seed=8)
    assert upload(client, project, ("a.png", data)).status_code == 201
    response = upload(client, project, ("again.png", data), ("notes.png", b"just some text"))
    assert response.status_code == 400
    body = response.json()
    assert [r["status"] for r in body["results"]] == ["duplicate", "rejected"]
    assert body["error"]["code"] == body["results"][1]["code"] != "duplicate"
    assert body["error"]["message"].startswith("no image stored: notes.png:")


def test_same_content_in_two_projects_is_stored_once_on_disk(client_for, users, project, _media):
    from tests.factories import project_with_members

    other = project_with_members(admin=users["engineer"], name="Other")
    client = client_for(users["engineer"])
    data = image_bytes("PNG", seed=6)
    assert upload(client, project, ("a.png", data)).status_code == 201
    assert upload(client, other, ("a.png", data)).status_code == 201
    assert Image.objects.count() == 2 and len(stored_files(_media)) == 1


def test_no_files_is_a_400(client_for, users, project):
    response = client_for(users["engineer"]).post(
        f"/api/projects/{project.id}/images", {}, format="multipart"
    )
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "no_files"


def test_image_is_served_to_members_with_its_type_and_nosniff(client_for, users, project):
    data = image_bytes("JPEG", seed=7)
    image_id = upload(client_for(users["engineer"]), project, ("a.jpg", data)).json()["results"][0][
        "image_id"
    ]
    response = client_for(users["annotator"]).get(f"/api/images/{image_id}/file")
    assert response.status_code == 200
    assert response["Content-Type"] == "image/jpeg"
    assert response["X-Content-Type-Options"] == "nosniff"
    assert b"".join(response.streaming_content) == data
    assert client_for(users["outsider"]).get(f"/api/images/{image_id}/file").status_code == 404


def test_thumbnail_is_a_small_png(client_for, users, project):
    from PIL import Image as PILImage

    image_id = upload(
        client_for(users["engineer"]), project, ("big.png", image_bytes("PNG", (400, 200)))
    ).json()["results"][0]["image_id"]
    response = client_for(users["annotator"]).get(f"/api/images/{image_id}/thumbnail")
    assert response.status_code == 200 and response["Content-Type"] == "image/png"
    thumb = PILImage.open(io.BytesIO(response.content))
    assert max(thumb.size) == 128


def test_pool_list_filters(client_for, users, project):
    from tests.factories import pool, queue_round

    images = pool(project, 6)
    label = project.label_classes.first()
    Image.objects.filter(pk__in=[i.id for i in images[:3]]).update(predicted_label=label, confidence=0.95)
    Image.objects.filter(pk__in=[i.id for i in images[3:]]).update(confidence=0.4)
    queue_round(project, images[4:])
    client = client_for(users["engineer"])

    def ids(**params):
        body = client.get(f"/api/projects/{project.id}/images", params)
        assert body.status_code == 200, body.content
        return [r["id"] for r in body.json()["results"]]

    assert ids(predicted_label=label.id) == [i.id for i in images[:3]]
    assert ids(max_confidence=0.5) == [i.id for i in images[3:]]
    assert ids(min_confidence=0.9, status="unlabelled") == [i.id for i in images[:3]]
    assert ids(round=1) == [i.id for i in images[4:]]
    bad = client.get(f"/api/projects/{project.id}/images", {"min_confidence": "high"})
    assert bad.status_code == 400 and bad.json()["error"]["code"] == "invalid"
    typo = client.get(f"/api/projects/{project.id}/images", {"confidense": 1})
    assert typo.status_code == 400 and typo.json()["error"]["code"] == "unknown_field"


def test_bulk_ingest_matches_file_by_file_outcomes(project, _media):
    from labelling.services.images import IngestItem, pool_image_ingest, pool_images_ingest_bulk

    first = image_bytes(seed=11)
    already = pool_image_ingest(project=project, item=IngestItem(name="old.png", data=first)).image_id
    new = image_bytes(seed=12)
    results = pool_images_ingest_bulk(
        project=project,
        items=[
            IngestItem(name="a.png", data=new),
            IngestItem(name="again.png", data=new),
            IngestItem(name="old-again.png", data=first),
            IngestItem(name="bad.png", data=b"<svg/>"),
        ],
    )
    assert [(r.name, r.status, r.code) for r in results] == [
        ("a.png", "stored", ""),
        ("again.png", "duplicate", "duplicate"),
        ("old-again.png", "duplicate", "duplicate"),
        ("bad.png", "rejected", "unsupported_format"),
    ]
    assert results[1].image_id == results[0].image_id and results[2].image_id == already
    assert Image.objects.count() == 2 and len(stored_files(_media)) == 2
