"""The bad-input corpus: malformed uploads, zip imports and JSON bodies, one table.

Every case must answer a 4xx with ``{"error": {"code", "message"}}`` (the code the case names),
and leave nothing behind: the same rows in every table and the same stored files as before.
Cases run as the role that may use the endpoint, against a project with one of everything
(``api_world``), so a rejection is about the input, not about permissions or missing objects.
"""

from __future__ import annotations

import io
import json
import stat
import struct
import zipfile
import zlib

import pytest
from django.apps import apps
from django.core.files.uploadedfile import SimpleUploadedFile

from tests.conftest import stored_files
from tests.factories import api_world, image_bytes, project_with_members, zip_bytes

pytestmark = pytest.mark.django_db


# --- builders of bad bytes ---------------------------------------------------------------------------


def _png_chunk(kind: bytes, body: bytes) -> bytes:
    return (
        struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body) & 0xFFFFFFFF)
    )


def png_claiming(width: int, height: int) -> bytes:
    """A tiny PNG whose header claims ``width`` x ``height`` pixels."""
    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + _png_chunk(b"IHDR", header)
        + _png_chunk(b"IDAT", zlib.compress(b"\x00" * 1024))
        + _png_chunk(b"IEND", b"")
    )


def gif_claiming(width: int, height: int) -> bytes:
    data = bytearray(image_bytes("GIF", (4, 4), seed=3))
    data[6:10] = struct.pack("<HH", width, height)  # logical screen
    i = data.index(b"\x2c")  # image descriptor
    data[i + 5 : i + 9] = struct.pack("<HH", width, height)
    return bytes(data)


def bmp_claiming(width: int, height: int) -> bytes:
    data = bytearray(image_bytes("BMP", (4, 4), seed=3))
    data[18:26] = struct.pack("<ii", width, height)
    return bytes(data)


def truncated(fmt: str) -> bytes:
    data = image_bytes(fmt, (64, 64), seed=2)
    return data[: len(data) // 2]


def zip_with(infos: list[tuple[zipfile.ZipInfo | str, bytes]]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for info, data in infos:
            zf.writestr(info, data)
    return buf.getvalue()


def _symlink() -> bytes:
    info = zipfile.ZipInfo("link.png")
    info.external_attr = (stat.S_IFLNK | 0o777) << 16
    return zip_with([(info, b"/etc/passwd")])


def _encrypted() -> bytes:
    raw = bytearray(zip_bytes({"secret.png": image_bytes()}))
    # Set the "encrypted" flag bit in the local header and the central directory entry.
    raw[6] |= 0x1
    raw[raw.rindex(b"PK\x01\x02") + 8] |= 0x1
    return bytes(raw)


def _many(n: int) -> bytes:
    return zip_bytes({f"x/{i}.png": b"" for i in range(n)}, compression=zipfile.ZIP_STORED)


GOOD_PNG = image_bytes(seed=11)
HTML = b"<!DOCTYPE html><html><body><script>alert(document.cookie)</script></body></html>"
SVG = b'<svg xmlns="http://www.w3.org/2000/svg" onload="alert(1)"><script>alert(1)</script></svg>'

# --- the corpus ----------------------------------------------------------------------------------------
# Uploads: (file name, bytes, code). Each is posted alone to /projects/{id}/images (400).
UPLOADS = {
    "empty file": ("a.png", b"", "empty_file"),
    "HTML named .png": ("a.png", HTML, "unsupported_format"),
    "HTML without doctype": ("a.jpg", b"<html><img src=x onerror=alert(1)></html>", "unsupported_format"),
    "bare script tag": ("a.gif", b"<script>alert(1)</script>", "unsupported_format"),
    "SVG": ("a.svg", SVG, "unsupported_format"),
    "SVG with XML prolog": ("a.svg", b'<?xml version="1.0"?>\n' + SVG, "unsupported_format"),
    "SVG behind whitespace": ("a.png", b"\n\n   " + SVG, "unsupported_format"),
    "GIF magic then HTML (polyglot)": ("a.gif", b"GIF89a/*" + HTML + b"*/", "corrupt_image"),
    "PNG magic then HTML (polyglot)": ("a.png", b"\x89PNG\r\n\x1a\n" + HTML, "corrupt_image"),
    "JPEG magic then PHP (polyglot)": (
        "a.jpg",
        b"\xff\xd8\xff\xe0<?php system($_GET['c']); ?>",
        "corrupt_image",
    ),
    "BMP magic then text": ("a.bmp", b"BM" + b"not really a bitmap" * 4, "corrupt_image"),
    "truncated PNG": ("a.png", truncated("PNG"), "corrupt_image"),
    "truncated JPEG": ("a.jpg", truncated("JPEG"), "corrupt_image"),
    "truncated GIF": ("a.gif", truncated("GIF"), "corrupt_image"),
    "truncated WebP": ("a.webp", truncated("WEBP"), "corrupt_image"),
    "truncated TIFF": ("a.tif", truncated("TIFF"), "corrupt_image"),
    "truncated BMP": ("a.bmp", truncated("BMP"), "corrupt_image"),
    "PNG signature only": ("a.png", b"\x89PNG\r\n\x1a\n", "corrupt_image"),
    "PNG bomb 100k x 100k": ("a.png", png_claiming(100_000, 100_000), "too_many_pixels"),
    "PNG bomb 20k x 20k (under Pillow's own limit)": (
        "a.png",
        png_claiming(20_000, 20_000),
        "too_many_pixels",
    ),
    "PNG claiming 0 x 0": ("a.png", png_claiming(0, 0), "corrupt_image"),
    "GIF bomb 65535 x 65535": ("a.gif", gif_claiming(65_535, 65_535), "too_many_pixels"),
    "BMP bomb 30k x 30k": ("a.bmp", bmp_claiming(30_000, 30_000), "too_many_pixels"),
    "BMP with negative width": ("a.bmp", bmp_claiming(-4, 4), "too_many_pixels"),
    "zip uploaded as an image": ("a.png", zip_bytes({"a.png": GOOD_PNG}), "unsupported_format"),
    "PDF": ("a.png", b"%PDF-1.4\n1 0 obj\n<<>>\nendobj\n", "unsupported_format"),
    "ELF executable": ("a.png", b"\x7fELF\x02\x01\x01" + b"\0" * 64, "unsupported_format"),
    "Windows executable": ("a.jpg", b"MZ\x90\x00" + b"\0" * 64, "unsupported_format"),
    "random bytes": ("a.png", bytes(range(256)) * 8, "unsupported_format"),
    "plain text": ("notes.txt", b"just some notes", "unsupported_format"),
}

# Zip imports: (bytes, status, code). Posted to /projects/{id}/imports; refused in the request.
ZIPS = {
    "not a zip": (b"plain text, not an archive", 400, "not_a_zip"),
    "corrupt zip": (b"PK\x03\x04" + b"\0" * 100, 400, "corrupt_zip"),
    "zip-slip ../": (zip_bytes({"../evil.png": GOOD_PNG}), 400, "zip_unsafe_member"),
    "zip-slip nested ../": (zip_bytes({"a/b/../../../evil.png": GOOD_PNG}), 400, "zip_unsafe_member"),
    "zip-slip backslashes": (zip_bytes({"..\\..\\evil.png": GOOD_PNG}), 400, "zip_unsafe_member"),
    "absolute path": (zip_bytes({"/etc/cron.d/evil.png": GOOD_PNG}), 400, "zip_unsafe_member"),
    "Windows drive path": (zip_bytes({"C:/Windows/evil.png": GOOD_PNG}), 400, "zip_unsafe_member"),
    "symbolic link": (_symlink(), 400, "zip_unsafe_member"),
    "encrypted member": (_encrypted(), 400, "zip_unsafe_member"),
    "zip bomb (ratio)": (zip_bytes({"bomb.png": b"\0" * (8 * 1024 * 1024)}), 400, "zip_bomb"),
    "zip bomb (member over the image limit)": (
        zip_bytes({"big.png": b"\0" * (48 * 1024 * 1024)}),
        400,
        "zip_bomb",
    ),
    "too many members": (_many(6_000), 400, "zip_too_many_members"),
    "only archiver junk": (zip_bytes({"__MACOSX/._a.png": b"x", ".DS_Store": b"x"}), 400, "empty_zip"),
    "empty archive": (b"PK\x05\x06" + b"\0" * 18, 400, "empty_zip"),
}

# JSON bodies: (role, method, url, body, status, code). ``{p}``, ``{a}``... are api_world ids.
_P = "/api/projects"
JSON = {
    "project: labels missing": ("admin", "post", _P, {"name": "x"}, 400, "invalid"),
    "project: one label": ("admin", "post", _P, {"name": "x", "labels": [{"name": "a"}]}, 400, "invalid"),
    "project: label is a number": ("admin", "post", _P, {"name": "x", "labels": [1, 2]}, 400, "invalid"),
    "project: label with an unknown field": (
        "admin", "post", _P, {"name": "x", "labels": ["a", {"name": "b", "colour": "red"}]}, 400, "invalid",
    ),
    "project: empty label name": ("admin", "post", _P, {"name": "x", "labels": ["a", ""]}, 400, "invalid"),
    "project: duplicate labels": (
        "admin", "post", _P, {"name": "x", "labels": [{"name": "a"}, {"name": "a"}]}, 400, None,
    ),
    "project: name too long": (
        "admin", "post", _P, {"name": "x" * 201, "labels": [{"name": "a"}, {"name": "b"}]}, 400, "invalid",
    ),
    "project: unknown field": (
        "admin", "post", _P, {"name": "x", "labels": [{"name": "a"}, {"name": "b"}], "owner": 1}, 400,
        "unknown_field",
    ),
    "project: body is a list": ("admin", "post", _P, [{"name": "x"}], 400, "invalid"),
    "project: body is a number": ("admin", "post", _P, 42, 400, "invalid"),
    "project: negative budget": ("admin", "patch", "/api/projects/{p}", {"label_budget": -5}, 400, "invalid"),
    "project: budget 10**30": ("admin", "patch", "/api/projects/{p}", {"label_budget": 10**30}, 400, "invalid"),
    "project: overlap as a word": (
        "admin", "patch", "/api/projects/{p}", {"annotations_per_image": "two"}, 400, "invalid",
    ),
    "project: audit fraction 5": ("admin", "patch", "/api/projects/{p}", {"audit_fraction": 5}, 400, "invalid"),
    "project: currency word": ("admin", "patch", "/api/projects/{p}", {"currency": "dollars"}, 400, "invalid"),
    "project: negative cost": ("admin", "patch", "/api/projects/{p}", {"cost_per_label": "-1"}, 400, "invalid"),
    "project: unknown strategy": (
        "admin", "patch", "/api/projects/{p}", {"selection_strategy": "oracle"}, 400, "invalid",
    ),
    "project: paused as a list": ("admin", "patch", "/api/projects/{p}", {"labelling_paused": [1]}, 400, "invalid"),
    "member: unknown role": (
        "admin", "post", "/api/projects/{p}/members", {"username": "oscar-outsider", "role": "god"}, 400,
        "invalid",
    ),
    "member: unknown user": (
        "admin", "post", "/api/projects/{p}/members", {"username": "nobody", "role": "annotator"}, 404,
        "unknown_user",
    ),
    "submit: unknown label": ("annotator", "post", "/api/assignments/{a}/submit", {"label": 999_999}, 400,
                              "unknown_label"),
    "submit: another project's label": ("annotator", "post", "/api/assignments/{a}/submit", {"label": "{x}"},
                                        400, "unknown_label"),
    "submit: label 2**70": ("annotator", "post", "/api/assignments/{a}/submit", {"label": 2**70}, 400, None),
    "submit: negative label": ("annotator", "post", "/api/assignments/{a}/submit", {"label": -1}, 400,
                               "invalid"),
    "submit: label by name": ("annotator", "post", "/api/assignments/{a}/submit", {"label": "cat"}, 400,
                              "invalid"),
    "submit: label null": ("annotator", "post", "/api/assignments/{a}/submit", {"label": None}, 400, "invalid"),
    "submit: negative seconds": (
        "annotator", "post", "/api/assignments/{a}/submit", {"label": "{l}", "seconds_spent": -1}, 400, "invalid",
    ),
    "submit: a year of seconds": (
        "annotator", "post", "/api/assignments/{a}/submit", {"label": "{l}", "seconds_spent": 3e7}, 400,
        "invalid",
    ),
    "submit: unknown field": (
        "annotator", "post", "/api/assignments/{a}/submit", {"label": "{l}", "user": 1}, 400, "unknown_field",
    ),
    "flag: unknown reason": ("annotator", "post", "/api/assignments/{a}/flag", {"reason": "meh"}, 400,
                             "invalid"),
    "skip: reason too long": ("annotator", "post", "/api/assignments/{a}/skip", {"reason": "x" * 201}, 400,
                              "invalid"),
    "job: unknown kind": ("engineer", "post", "/api/projects/{p}/jobs", {"kind": "mine_bitcoin"}, 400,
                          "invalid"),
    "job: params a list": ("engineer", "post", "/api/projects/{p}/jobs", {"kind": "pretrain", "params": [1]},
                           400, "invalid"),
    "job: negative steps": (
        "engineer", "post", "/api/projects/{p}/jobs", {"kind": "pretrain", "params": {"max_steps": -5}}, 400,
        "invalid",
    ),
    "job: batch 10**12": (
        "engineer", "post", "/api/projects/{p}/jobs", {"kind": "pretrain", "params": {"batch_size": 10**12}},
        400, "invalid",
    ),
    "job: negative consistency steps": (
        "engineer", "post", "/api/projects/{p}/jobs", {"kind": "finetune", "params": {"consistency_steps": -1}},
        400, "invalid",
    ),
    "job: consistency steps on a predict job": (
        "engineer", "post", "/api/projects/{p}/jobs", {"kind": "predict", "params": {"consistency_steps": 5}},
        400, "unknown_field",  # as an unknown field of any body
    ),
    "job: unknown param": (
        "engineer", "post", "/api/projects/{p}/jobs", {"kind": "pretrain", "params": {"gpus": 8}}, 400,
        "unknown_field",
    ),
    "job: another project's encoder": (
        "engineer", "post", "/api/projects/{p}/jobs", {"kind": "pretrain", "params": {"from_encoder": "{e}"}},
        404, "not_found",
    ),
    "job: pretrain on a 3-image pool": ("engineer", "post", "/api/projects/{p}/jobs", {"kind": "pretrain"}, 400,
                                        "pool_too_small"),
    "token: wrong password": ("anonymous", "post", "/api/auth/token", {"username": "alice-admin",
                                                                        "password": "nope"}, 400,
                              "bad_credentials"),
}  # fmt: skip

# Raw bodies that are not JSON at all: (body, content type, status, code).
RAW = {
    "malformed JSON": (b'{"name": "x", "labels": [', "application/json", 400, "parse_error"),
    "NaN in JSON": (b'{"label": NaN}', "application/json", 400, "parse_error"),
    "JSON nested 100,000 deep": (b"[" * 100_000 + b"]" * 100_000, "application/json", 400, "parse_error"),
    "invalid UTF-8": (b'{"label": "\xff\xfe"}', "application/json", 400, "parse_error"),
    "XML body": (b"<label>1</label>", "application/xml", 415, "unsupported_media_type"),
}


# --- the checks ----------------------------------------------------------------------------------------


def _rows() -> dict[str, int]:
    return {m.__name__: m.objects.count() for m in apps.get_app_config("labelling").get_models()}


@pytest.fixture
def world(users, project, _media):
    w = api_world(users=users, project=project)
    other = project_with_members(admin=users["outsider"], name="Elsewhere")
    from labelling.models import EncoderVersion

    w["other_label_id"] = other.label_classes.first().id
    w["other_encoder_id"] = EncoderVersion.objects.create(project=other, artifact_key="x").id
    return w


def _assert_refused(response, status: int, code: str | None, before: dict, files_before: list, media) -> None:
    assert response.status_code == status, response.content[:500]
    error = response.json()["error"]
    if code is not None:
        assert error["code"] == code, error
    assert isinstance(error["code"], str) and error["code"]
    assert isinstance(error["message"], str) and error["message"]
    assert _rows() == before, "a refused request left rows behind"
    assert stored_files(media) == files_before, "a refused request left files behind"


@pytest.mark.parametrize("case", list(UPLOADS))
def test_bad_upload(case, users, world, client_for, _media):
    name, data, code = UPLOADS[case]
    before, files = _rows(), stored_files(_media)
    response = client_for(users["engineer"]).post(
        f"/api/projects/{world['project_id']}/images",
        {"files": [SimpleUploadedFile(name, data)]},
        format="multipart",
    )
    _assert_refused(response, 400, code, before, files, _media)
    assert response.json()["results"][0]["status"] == "rejected"


def test_upload_over_the_size_limit(users, world, client_for, _media, settings):
    settings.UPLOAD_MAX_IMAGE_BYTES = 1000
    before, files = _rows(), stored_files(_media)
    response = client_for(users["engineer"]).post(
        f"/api/projects/{world['project_id']}/images",
        {"files": [SimpleUploadedFile("big.png", image_bytes(size=(200, 200)))]},
        format="multipart",
    )
    _assert_refused(response, 400, "file_too_large", before, files, _media)


def test_upload_without_files(users, world, client_for, _media):
    before, files = _rows(), stored_files(_media)
    response = client_for(users["engineer"]).post(
        f"/api/projects/{world['project_id']}/images", {"file_list": "x"}, format="multipart"
    )
    _assert_refused(response, 400, "no_files", before, files, _media)


@pytest.mark.parametrize("case", list(ZIPS))
def test_bad_zip(case, users, world, client_for, _media, settings):
    data, status, code = ZIPS[case]
    before, files = _rows(), stored_files(_media)
    response = client_for(users["engineer"]).post(
        f"/api/projects/{world['project_id']}/imports",
        {"file": SimpleUploadedFile("images.zip", data)},
        format="multipart",
    )
    _assert_refused(response, status, code, before, files, _media)


@pytest.mark.parametrize(
    ("limit", "value", "status", "code"),
    [("UPLOAD_MAX_ZIP_BYTES", 500, 413, "too_large"), ("ZIP_MAX_TOTAL_BYTES", 100, 400, "zip_bomb")],
)
def test_zip_over_a_limit(limit, value, status, code, users, world, client_for, _media, settings):
    setattr(settings, limit, value)
    before, files = _rows(), stored_files(_media)
    data = zip_bytes({f"{i}.png": image_bytes(seed=i) for i in range(3)}, compression=zipfile.ZIP_STORED)
    response = client_for(users["engineer"]).post(
        f"/api/projects/{world['project_id']}/imports",
        {"file": SimpleUploadedFile("images.zip", data)},
        format="multipart",
    )
    _assert_refused(response, status, code, before, files, _media)


def _fill(value, world):
    ids = {"{p}": "project_id", "{a}": "assignment_id", "{l}": "label_id", "{x}": "other_label_id",
           "{e}": "other_encoder_id"}  # fmt: skip
    if isinstance(value, str):
        for marker, key in ids.items():
            if value == marker:
                return world[key]
            value = value.replace(marker, str(world[key]))
        return value
    if isinstance(value, dict):
        return {k: _fill(v, world) for k, v in value.items()}
    if isinstance(value, list):
        return [_fill(v, world) for v in value]
    return value


@pytest.mark.parametrize("case", list(JSON))
def test_bad_json(case, users, world, client_for, _media):
    role, method, url, body, status, code = JSON[case]
    client = client_for(None if role == "anonymous" else users[role])
    before, files = _rows(), stored_files(_media)
    response = getattr(client, method)(
        _fill(url, world), json.dumps(_fill(body, world)), content_type="application/json"
    )
    _assert_refused(response, status, code, before, files, _media)


@pytest.mark.parametrize("case", list(RAW))
def test_body_that_is_not_json(case, users, world, client_for, _media):
    body, content_type, status, code = RAW[case]
    before, files = _rows(), stored_files(_media)
    response = client_for(users["annotator"]).post(
        f"/api/assignments/{world['assignment_id']}/submit", body, content_type=content_type
    )
    _assert_refused(response, status, code, before, files, _media)


@pytest.mark.parametrize("query", ["predicted_label=1180591620717411303424", "round=1180591620717411303424"])
def test_image_filters_refuse_ids_no_database_holds(query, users, world, client_for):
    response = client_for(users["engineer"]).get(f"/api/projects/{world['project_id']}/images?{query}")
    assert response.status_code == 400 and response.json()["error"]["code"] == "invalid"


def test_the_corpus_has_at_least_50_cases():
    assert len(UPLOADS) + len(ZIPS) + len(JSON) + len(RAW) + 4 >= 50


@pytest.mark.parametrize(
    "head, named",
    [
        (b"\x00\x00\x00\x18ftypheic" + b"\x00" * 40, "HEIC/HEIF"),
        (b"\x00\x00\x00\x1cftypavif" + b"\x00" * 40, "AVIF"),
        (b"\x00\x00\x00\x0cjP  \r\n\x87\n" + b"\x00" * 40, "JPEG 2000"),
        (b"\x00" * 128 + b"DICM" + b"\x00" * 40, "DICOM"),
        (b"%PDF-1.7\n" + b"\x00" * 40, "a PDF"),
    ],
)
def test_formats_people_have_are_named_in_the_refusal(head, named):
    """ "none of PNG, JPEG, ..." did not say what the file was: an iPhone photo (HEIC) is named."""
    from labelling.services.image_checks import ImageRejected, image_bytes_check

    with pytest.raises(ImageRejected) as exc:
        image_bytes_check(head)
    assert exc.value.code == "unsupported_format" and exc.value.message.startswith(named), exc.value.message
