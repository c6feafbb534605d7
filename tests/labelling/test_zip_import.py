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


def test_member_names_written_in_utf8_without_the_flag_are_read_as_utf8_in_nfc():
    """Info-ZIP on Linux and the macOS Finder write UTF-8 names without flag bit 11; Python reads
    them as cp437 ("été façade 🐱.png" was stored as "├⌐t├⌐ fa├ºade ≡ƒÉ▒.png")."""
    import io
    import struct
    import unicodedata
    import zipfile
    import zlib

    from labelling.services.zips import zip_archive_check, zip_members_read
    from tests.factories import image_bytes

    mac = unicodedata.normalize("NFD", "Fotos/été façade 🐱.png").encode()
    shown = "Fotos/été façade 🐱.png"
    dos = "CAFÉ.png".encode("cp437")  # a genuine cp437 name stays as it is
    path = "über.png"
    legacy = b"uber.png"
    # An Info-ZIP Unicode Path field names the last member in UTF-8 beside its cp437 name.
    field = b"\x01" + struct.pack("<I", zlib.crc32(legacy)) + path.encode()
    names = [mac, dos, legacy]
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:  # ASCII stand-ins of the same length, swapped below: no
        for i, raw in enumerate(names):  # UTF-8 flag, the name's bytes as such archivers write them
            info = zipfile.ZipInfo(chr(65 + i) * len(raw))
            if raw is legacy:
                info.extra = struct.pack("<HH", 0x7075, len(field)) + field
            zf.writestr(info, image_bytes(seed=i))
    data = buf.getvalue()
    for i, raw in enumerate(names):
        data = data.replace(chr(65 + i).encode() * len(raw), raw)
    buf = io.BytesIO(data)
    buf.seek(0)
    assert [m.name for m in zip_archive_check(buf)] == [shown, "CAFÉ.png", path]
    assert [name for name, _, _ in zip_members_read(buf)] == [shown, "CAFÉ.png", path]


def test_a_unicode_path_field_that_climbs_out_is_refused():
    import io
    import struct
    import zipfile
    import zlib

    import pytest

    from labelling.services.zips import ZipRejected, zip_archive_check

    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        info = zipfile.ZipInfo("ok.png")
        field = b"\x01" + struct.pack("<I", zlib.crc32(b"ok.png")) + b"../../etc/x.png"
        info.extra = struct.pack("<HH", 0x7075, len(field)) + field
        zf.writestr(info, b"\x89PNG")
    buf.seek(0)
    with pytest.raises(ZipRejected) as exc:
        zip_archive_check(buf)
    assert exc.value.code == "zip_unsafe_member"


@pytest.mark.django_db
def test_an_import_stores_a_batch_once_its_files_reach_the_byte_budget(project, monkeypatch):
    """Batches of 500 files held up to 500 large photos in memory at once: a batch is also stored
    once its files reach BATCH_BYTES."""
    from labelling.services.images import IngestItem
    from tests.factories import image_bytes
    from workers.jobs import imports

    sizes = []
    real = imports.pool_images_ingest_bulk

    def counting(*, project, items):
        sizes.append(len(items))
        return real(project=project, items=items)

    files = [IngestItem(name=f"{i}.png", data=image_bytes(size=(64, 64), seed=i)) for i in range(7)]
    monkeypatch.setattr(imports, "pool_images_ingest_bulk", counting)
    monkeypatch.setattr(imports, "BATCH_BYTES", 2 * min(len(f.data) for f in files))  # any two, not one
    results = imports._ingest_all(project, iter(files), len(files), lambda *a, **k: None)
    assert [r.status for r in results] == ["stored"] * 7
    assert sizes == [2, 2, 2, 1]
