"""Stored files nothing points at any more are deleted: a deleted project's images, thumbnails and
artifacts (not those another project shares), and an upload whose job ended without consuming it.
(The campaign test in tests/workers deletes a trained project and checks the media folder is empty.)"""

from __future__ import annotations

import pytest
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage

from labelling.models import Job, Project
from tests.factories import pool, project_with_members

pytestmark = pytest.mark.django_db


def _files(media) -> set[str]:
    return {str(p.relative_to(media)) for p in media.rglob("*") if p.is_file()}


def test_deleting_a_project_deletes_its_files_and_keeps_what_another_project_shares(
    users, project, client_for, _media, django_capture_on_commit_callbacks
):
    other = project_with_members(admin=users["admin"])
    shared, own = pool(project, 2, seed=1)
    pool(other, 1, seed=1)  # the same bytes as ``shared``: one stored file for both
    admin = client_for(users["admin"])
    for image in (shared, own):
        assert admin.get(f"/api/images/{image.id}/thumbnail").status_code == 200
    for prefix in ("encoders", "embeddings/{}/ev-1/job-2", "models", "cache/pool", "imports", "uploads"):
        for pid in (project.id, other.id):
            default_storage.save(f"{prefix.format(pid)}/{pid}/artifact.bin", ContentFile(b"x"))
    before = _files(_media)
    with django_capture_on_commit_callbacks(execute=True):
        assert admin.delete(f"/api/projects/{project.id}").status_code == 204
    after = _files(_media)
    gone = before - after
    assert {f for f in gone if f.startswith(("images/", "thumbs/"))} == {
        own.storage_key,
        *(f for f in before if f.startswith(f"thumbs/{own.sha256[:2]}/{own.sha256}_")),
    }
    assert shared.storage_key in after and any(f.startswith(f"thumbs/{shared.sha256[:2]}/") for f in after)
    assert all(f"/{project.id}/" in f"/{f}" for f in gone if not f.startswith(("images/", "thumbs/")))
    assert not any(f"/{project.id}/" in f"/{f}" for f in after)
    assert sum(f"/{other.id}/" in f"/{f}" for f in after) == 6  # the other project's six stay
    assert not (_media / "models" / str(project.id)).exists()  # emptied folders go too


def test_an_upload_goes_when_its_job_is_cancelled_before_it_ran(
    users, project, client_for, _media, django_capture_on_commit_callbacks
):
    key = default_storage.save(f"uploads/{project.id}/enc.pt", ContentFile(b"PK\x03\x04"))
    zip_key = default_storage.save(f"imports/{project.id}/z.zip", ContentFile(b"PK\x03\x04"))
    pretrain = Job.objects.create(project=project, kind="pretrain", params={"upload_key": key})
    unpack = Job.objects.create(project=project, kind="import_zip", params={"storage_key": zip_key})
    eng = client_for(users["engineer"])
    with django_capture_on_commit_callbacks(execute=True):
        assert eng.post(f"/api/jobs/{pretrain.id}/cancel").status_code == 200
    assert not default_storage.exists(key) and default_storage.exists(zip_key)
    with django_capture_on_commit_callbacks(execute=True):
        assert eng.post(f"/api/jobs/{unpack.id}/cancel").status_code == 200
    assert not default_storage.exists(zip_key)


def test_an_upload_goes_when_its_job_ends_and_nothing_else_is_touched(
    project, _media, django_capture_on_commit_callbacks
):
    from labelling.services.jobs import job_fail, job_finish, job_start

    keys = [default_storage.save(f"uploads/{project.id}/{i}.pt", ContentFile(b"x")) for i in range(2)]
    image = pool(project, 1)[0]
    done = Job.objects.create(project=project, kind="pretrain", params={"upload_key": keys[0]})
    failed = Job.objects.create(project=project, kind="pretrain", params={"upload_key": keys[1]})
    # A param outside the upload folders is never deleted, whatever a row says.
    odd = Job.objects.create(project=project, kind="pretrain", params={"upload_key": image.storage_key})
    for job in (done, failed, odd):
        job_start(job_id=job.id)
    with django_capture_on_commit_callbacks(execute=True):
        assert job_finish(job_id=done.id, result={})
        job_fail(job_id=failed.id, error="boom")
        job_fail(job_id=odd.id, error="boom")
    assert not default_storage.exists(keys[0]) and not default_storage.exists(keys[1])
    assert default_storage.exists(image.storage_key)
    assert Project.objects.filter(pk=project.pk).exists()
