"""The real thing: embedded Redis, a `celery -A workers worker` process, the API, the database."""

from __future__ import annotations

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from labelling.models import Image
from labelling.models.job import JobKind
from labelling.services.jobs import job_create
from tests.conftest import stored_files, wait_for_job
from tests.factories import image_bytes, zip_bytes


@pytest.mark.django_db(transaction=True)
def test_zip_uploaded_through_the_api_ends_as_stored_images_and_a_succeeded_job(
    celery_worker, client_for, users, project, _media
):
    good = {f"birds/{i}.png": image_bytes("PNG", (24, 24), seed=i) for i in range(5)}
    archive = zip_bytes({**good, "readme.txt": b"not an image", "birds/dup.png": good["birds/0.png"]})
    response = client_for(users["engineer"]).post(
        f"/api/projects/{project.id}/imports",
        {"file": SimpleUploadedFile("birds.zip", archive)},
        format="multipart",
    )
    assert response.status_code == 202, response.content
    job = wait_for_job(response.json()["id"], worker=celery_worker)

    assert job.state == "succeeded", job.error
    assert job.progress == 1.0
    assert (job.result["stored"], job.result["duplicates"], job.result["rejected"]) == (5, 1, 1)
    assert {p["name"]: p["code"] for p in job.result["problems"]} == {
        "readme.txt": "unsupported_format",
        "birds/dup.png": "duplicate",
    }
    assert sorted(Image.objects.filter(project=project).values_list("original_name", flat=True)) == sorted(
        good
    )
    # The uploaded archive is removed once imported; only the images stay.
    assert all(key.startswith("images/") for key in stored_files(_media))
    assert len(stored_files(_media)) == 5
    # And the job is visible through the API with its progress.
    body = client_for(users["engineer"]).get(f"/api/jobs/{job.id}").json()
    assert body["state"] == "succeeded" and body["result"]["stored"] == 5


@pytest.mark.django_db(transaction=True)
def test_worker_imports_a_dataset_with_hidden_reference_labels(celery_worker, users, _media):
    from labelling.services.projects import project_create
    from workers.jobs.imports import DIGITS_CLASSES

    project = project_create(name="digits", labels=DIGITS_CLASSES, created_by=users["admin"])
    job = job_create(
        project=project,
        kind=JobKind.IMPORT_DATASET,
        params={"dataset": "digits", "limit": 40, "with_reference_labels": True},
    )
    job = wait_for_job(job.id, worker=celery_worker)
    assert job.state == "succeeded", job.error
    images = Image.objects.filter(project=project)
    assert images.count() == 40
    assert images.filter(reference_label__isnull=True).count() == 0
    assert {i.width for i in images} == {8}
