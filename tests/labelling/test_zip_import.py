"""Zip imports: unsafe archives refused in the request (4xx, nothing stored, no job)."""

from __future__ import annotations

import io
import stat
import zipfile

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from labelling.models import Image, Job
from tests.conftest import stored_files
from tests.factories import image_bytes, zip_bytes

pytestmark = pytest.mark.django_db


def post_zip(client, project, data: bytes, name: str = "images.zip"):
    return client.post(
        f"/api/projects/{project.id}/imports", {"file": SimpleUploadedFile(name, data)}, format="multipart"
    )


def _symlink_zip() -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        info = zipfile.ZipInfo("link.png")
        info.external_attr = (stat.S_IFLNK | 0o777) << 16
        zf.writestr(info, "/etc/passwd")
    return buf.getvalue()


def _many_members(n: int) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_STORED) as zf:
        for i in range(n):
            zf.writestr(f"x/{i}.png", b"")
    return buf.getvalue()


BAD_ZIPS = {
    "../ member": (lambda: zip_bytes({"../evil.png": image_bytes()}), "zip_unsafe_member"),
    "nested ../ member": (lambda: zip_bytes({"a/../../evil.png": image_bytes()}), "zip_unsafe_member"),
    "absolute path": (lambda: zip_bytes({"/tmp/evil.png": image_bytes()}), "zip_unsafe_member"),
    "symbolic link": (_symlink_zip, "zip_unsafe_member"),
    "zip bomb": (lambda: zip_bytes({"bomb.png": b"\0" * (50 * 1024 * 1024)}), "zip_bomb"),
    "10,000 members": (lambda: _many_members(10_000), "zip_too_many_members"),
    "not a zip": (lambda: b"this is plain text", "not_a_zip"),
    "corrupt zip": (lambda: b"PK\x03\x04" + b"\0" * 100, "corrupt_zip"),
    "empty archive": (lambda: zip_bytes({"__MACOSX/._a.png": b"x"}), "empty_zip"),
}


@pytest.mark.parametrize("case", list(BAD_ZIPS))
def test_unsafe_zip_is_refused_with_a_reason_and_nothing_stored(client_for, users, project, case, _media):
    make, code = BAD_ZIPS[case]
    response = post_zip(client_for(users["engineer"]), project, make())
    assert 400 <= response.status_code < 500, response.content
    assert response.json()["error"]["code"] == code
    assert response.json()["error"]["message"]
    assert Job.objects.count() == 0 and Image.objects.count() == 0
    assert stored_files(_media) == []


def test_good_zip_is_stored_and_queued_as_a_job(
    client_for, users, project, _media, django_capture_on_commit_callbacks
):
    data = zip_bytes({"cats/a.png": image_bytes(seed=1), "b.jpg": image_bytes("JPEG", seed=2)})
    sent = []
    from workers.celery import app

    original = app.send_task
    app.send_task = lambda name, args=None, **kw: sent.append((name, args))
    try:
        with django_capture_on_commit_callbacks(execute=True):
            response = post_zip(client_for(users["engineer"]), project, data)
    finally:
        app.send_task = original
    assert response.status_code == 202
    job = Job.objects.get(pk=response.json()["id"])
    assert job.kind == "import_zip" and job.state == "queued" and job.params["members"] == 2
    assert sent == [("workers.import_zip", [job.id])]
    assert stored_files(_media) == [job.params["storage_key"]]


def test_zip_too_large_is_a_413(client_for, users, project, settings, _media):
    settings.UPLOAD_MAX_ZIP_BYTES = 100
    response = post_zip(client_for(users["engineer"]), project, zip_bytes({"a.png": image_bytes(seed=3)}))
    assert response.status_code == 413
    assert response.json()["error"]["code"] == "too_large"
    assert stored_files(_media) == [] and Job.objects.count() == 0
