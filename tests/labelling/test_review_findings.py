"""Regressions for defects a code review found (2026-11-27): each test failed before its fix."""

from __future__ import annotations

import io
import zipfile

import pytest

from labelling.models import Annotation
from tests.factories import pool

pytestmark = pytest.mark.django_db


def test_labels_zip_folders_stay_inside_the_archive_and_apart(users, project, client_for, _media):
    # Label names are free text: "..", "a/b" or "a_b" must neither climb out of the archive on unzip
    # nor merge two classes into one folder.
    from labelling.models import LabelClass

    names = ["..", "a/b", "a_b", "C:\\x"]
    classes = [LabelClass.objects.create(project=project, name=n, order=10 + i) for i, n in enumerate(names)]
    for image, label in zip(pool(project, 4), classes, strict=True):
        Annotation.objects.create(image=image, annotator=users["annotator"], label=label, seconds_spent=1.0)
    response = client_for(users["engineer"]).get(f"/api/projects/{project.id}/export/labels.zip")
    assert response.status_code == 200
    members = zipfile.ZipFile(io.BytesIO(response.content)).namelist()
    folders = [m.split("/")[0] for m in members]
    assert all(
        m.count("/") == 1 and ".." not in m.split("/") and "\\" not in m and ":" not in m for m in members
    )
    assert len(set(folders)) == 4, members  # four classes, four folders


def test_project_output_returns_the_cadence_and_reservation_settings(users, project, client_for):
    client = client_for(users["admin"])
    response = client.patch(
        f"/api/projects/{project.id}",
        {"cycle_every": 50, "batch_size": 80, "reservation_minutes": 30},
        format="json",
    )
    assert response.status_code == 200
    for body in (response.json(), client.get(f"/api/projects/{project.id}").json()):
        assert (body["cycle_every"], body["batch_size"], body["reservation_minutes"]) == (50, 80, 30)


def test_a_job_the_broker_refuses_is_failed_not_left_queued(
    transactional_db, users, project, client_for, monkeypatch
):
    # Redis down when the job is created: the API answers 503 and the job is marked failed, so the
    # project's next training request is not refused as "already queued" for ever.
    from kombu.exceptions import OperationalError

    from labelling.models import EncoderVersion, Job
    from workers.celery import app

    project.current_encoder = EncoderVersion.objects.create(project=project, artifact_key="e")
    project.save()
    sent = []

    def broker_down(name, args=None, **kw):
        raise OperationalError("Error 111 connecting to localhost:6379. Connection refused.")

    monkeypatch.setattr(app, "send_task", broker_down)
    client = client_for(users["engineer"])
    # transactional_db: the job row really commits, so its on-commit send runs inside the request.
    response = client.post(f"/api/projects/{project.id}/jobs", {"kind": "select"}, format="json")
    assert response.status_code == 503, response.content
    error = response.json()["error"]
    assert error["code"] == "queue_unavailable" and "Connection refused" in error["message"]
    job = Job.objects.get(pk=error["details"]["job_id"])
    assert job.state == "failed" and "could not enqueue" in job.error
    monkeypatch.setattr(app, "send_task", lambda name, args=None, **kw: sent.append((name, args)))
    response = client.post(f"/api/projects/{project.id}/jobs", {"kind": "select"}, format="json")
    assert response.status_code == 202 and sent == [("workers.select", [response.json()["id"]])]
