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
    from labelling.models import Image, LabelClass

    names = ["..", "a/b", "a_b", "C:\\x"]
    classes = [LabelClass.objects.create(project=project, name=n, order=10 + i) for i, n in enumerate(names)]
    images = pool(project, 4)
    # Files keep the base name they were uploaded with (its folders and unsafe characters dropped).
    uploaded = ["日本/画像/img_2_ñ.png", "../../etc/passwd", "", "C:\\Users\\a\\b.jpg"]
    for image, label, name in zip(images, classes, uploaded, strict=True):
        Image.objects.filter(pk=image.pk).update(original_name=name)
        Annotation.objects.create(image=image, annotator=users["annotator"], label=label, seconds_spent=1.0)
    response = client_for(users["engineer"]).get(f"/api/projects/{project.id}/export/labels.zip")
    assert response.status_code == 200
    members = zipfile.ZipFile(io.BytesIO(b"".join(response.streaming_content))).namelist()  # streamed
    folders = [m.split("/")[0] for m in members]
    assert all(
        m.count("/") == 1 and ".." not in m.split("/") and "\\" not in m and ":" not in m for m in members
    )
    assert len(set(folders)) == 4, members  # four classes, four folders
    files = sorted(m.split("/")[1] for m in members)
    ids = [im.id for im in images]
    assert files == sorted(
        [f"{ids[0]}-img_2_ñ.png", f"{ids[1]}-passwd.png", f"{ids[2]}.png", f"{ids[3]}-b.png"]
    )


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
    transactional_db, users, project, client_for, monkeypatch, caplog
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
    assert error["code"] == "queue_unavailable" and "cannot be reached" in error["message"]
    job = Job.objects.get(pk=error["details"]["job_id"])
    assert job.state == "failed" and "could not enqueue" in job.error
    # The broker's address stays in the log: users see no host, port or socket path.
    assert "6379" not in error["message"] and "6379" not in job.error
    assert "Connection refused" in caplog.text
    monkeypatch.setattr(app, "send_task", lambda name, args=None, **kw: sent.append((name, args)))
    response = client.post(f"/api/projects/{project.id}/jobs", {"kind": "select"}, format="json")
    assert response.status_code == 202 and sent == [("workers.select", [response.json()["id"]])]


def test_predict_never_writes_one_encoders_scores_onto_another_encoders_pool(
    users, project, client_for, _media
):
    # Model M scored encoder E1's pool [a, b, c]; E2 (after b was flagged) holds [a, c]. Scoring E2's
    # rows with M's stored scores would give c the label M gave b.
    import numpy as np

    from labelling.models import EncoderVersion, Image, Job, ModelVersion
    from workers.jobs.storage import store_npy
    from workers.jobs.training import cycle

    a, b, c = (im.id for im in pool(project, 3))
    store_npy(np.array([a, b, c]), "e1/ids.npy")
    store_npy(np.zeros((3, 4), np.float32), "e1/s0.npy")
    e1 = EncoderVersion.objects.create(
        project=project, artifact_key="x", embeddings={"ids_key": "e1/ids.npy", "shards": ["e1/s0.npy"]}
    )
    store_npy(np.eye(3, dtype=np.float32) * 0.9 + 0.0333, "m/probs.npy")
    m = ModelVersion.objects.create(
        project=project,
        encoder_version=e1,
        mode="probe",
        artifact_key="m.joblib",
        predictions_key="m/probs.npy",
    )
    Image.objects.filter(pk=b).update(status="flagged")
    store_npy(np.array([a, c]), "e2/ids.npy")
    store_npy(np.zeros((2, 4), np.float32), "e2/s0.npy")
    e2 = EncoderVersion.objects.create(
        project=project, artifact_key="y", embeddings={"ids_key": "e2/ids.npy", "shards": ["e2/s0.npy"]}
    )
    project.current_encoder, project.current_model = e2, m
    project.save()
    job = Job.objects.create(project=project, kind="predict", state="running")
    with pytest.raises(ValueError, match="trained on encoder #"):
        cycle(job, lambda *a, **k: None)
    Job.objects.filter(pk=job.pk).update(state="failed")  # as the worker marks it
    assert not Image.objects.filter(predicted_label__isnull=False).exists()
    # Activating the model brings back its encoder; then predict writes M's own scores.
    response = client_for(users["engineer"]).post(f"/api/models/{m.id}/activate")
    assert response.status_code == 200
    project.refresh_from_db()
    assert project.current_encoder_id == e1.id and project.current_model_id == m.id
    cycle(Job.objects.create(project=project, kind="predict", state="running"), lambda *a, **k: None)
    order = list(project.label_classes.order_by("order", "id").values_list("id", flat=True))
    got = dict(Image.objects.filter(pk__in=[a, b, c]).values_list("id", "predicted_label_id"))
    assert got == {a: order[0], b: order[1], c: order[2]}


@pytest.fixture
def two_holders(users, project, client_for):
    """Two annotations per image, one image, and two annotators each holding it."""
    from labelling.models import Role
    from labelling.services.projects import membership_set
    from tests.factories import UserFactory, queue_round

    project.audit_fraction, project.annotations_per_image = 0.0, 2
    project.save()
    bob = UserFactory(username="bob")
    membership_set(project=project, user=bob, role=Role.ANNOTATOR)
    (image,) = pool(project, 1)
    queue_round(project, [image])
    ca, cb = client_for(users["annotator"]), client_for(bob)
    na = ca.get(f"/api/projects/{project.id}/queue/next").json()["assignment"]
    nb = cb.get(f"/api/projects/{project.id}/queue/next").json()["assignment"]
    assert na["image"]["id"] == nb["image"]["id"] == image.id
    return {
        "image": image,
        "a": (ca, na["id"]),
        "b": (cb, nb["id"]),
        "label": project.label_classes.first().id,
    }


def test_a_flag_is_not_undone_by_a_coannotators_label(two_holders, project):
    from labelling.models import Image

    (ca, a_id), (cb, b_id), label = two_holders["a"], two_holders["b"], two_holders["label"]
    assert ca.post(f"/api/assignments/{a_id}/flag", {"reason": "broken"}, format="json").status_code == 204
    response = cb.post(f"/api/assignments/{b_id}/submit", {"label": label}, format="json")
    assert response.status_code == 409 and response.json()["error"]["code"] == "item_removed"
    assert Image.objects.get().status == "flagged" and not Image.objects.get().annotations.exists()
    # And the flagged item is no longer offered to the one who still held it.
    assert cb.get(f"/api/projects/{project.id}/queue/next").json()["assignment"] is None


def test_a_flag_after_a_coannotators_label_takes_the_image_out_of_training(two_holders, project):
    import numpy as np

    from labelling.models import Image
    from workers.jobs.training import pool_labels

    (ca, a_id), (cb, b_id), label = two_holders["a"], two_holders["b"], two_holders["label"]
    image = two_holders["image"]
    assert ca.post(f"/api/assignments/{a_id}/submit", {"label": label}, format="json").status_code == 201
    assert cb.post(f"/api/assignments/{b_id}/flag", {"reason": "ambiguous"}, format="json").status_code == 204
    assert Image.objects.get().status == "flagged"
    train, audit = pool_labels(project, np.array([image.id]))
    assert train.tolist() == [-1] and audit.tolist() == [-1]  # the label is kept, but trains nothing
    # Undoing the label now would bring back an item that left the queue: refused, flag kept.
    response = ca.post(f"/api/projects/{project.id}/queue/undo")
    assert response.status_code == 409 and Image.objects.get().status == "flagged"
    assert Image.objects.get().annotations.count() == 1


def test_a_job_cancelled_after_its_training_publishes_nothing_and_queues_nothing(project):
    from labelling.models import EncoderVersion, Job
    from labelling.services.jobs import job_cancel
    from workers.jobs.base import JobCancelled, run_job
    from workers.jobs.training import _after_pretrain

    # A pretrain cancelled after its encoder was trained: no embed job follows.
    job = Job.objects.create(project=project, kind="pretrain", state="running")
    version = EncoderVersion.objects.create(project=project, artifact_key="e", job=job)
    job_cancel(job=job)
    with pytest.raises(JobCancelled):
        _after_pretrain(job, version)
    assert not Job.objects.filter(kind="embed").exists()

    # A job cancelled while its function ran stays cancelled, and its "then" job is not queued.
    chained = Job.objects.create(project=project, kind="import_zip", params={"then": {"kind": "pretrain"}})

    def work(job, progress):
        job_cancel(job=job)  # the cancel arrives just before the function returns
        return {"_message": "imported"}

    run_job(chained.id, work)
    chained.refresh_from_db()
    assert chained.state == "cancelled" and Job.objects.filter(kind="pretrain").count() == 1  # the first


def test_a_job_whose_worker_dies_every_time_is_failed_after_the_delivery_limit(
    project, settings, client_for, users
):
    from labelling.models import Job
    from labelling.services.jobs import job_start
    from workers.jobs.base import run_job

    settings.JOB_MAX_DELIVERIES = 3
    job = Job.objects.create(project=project, kind="pretrain")
    for delivery in (1, 2, 3):  # each start is one delivery; the worker "dies" before finishing
        assert job_start(job_id=job.id) is not None
        job.refresh_from_db()
        assert job.state == "running" and job.deliveries == delivery
    ran = []
    run_job(job.id, lambda job, progress: ran.append(job.id) or {})  # the 4th delivery
    job.refresh_from_db()
    assert ran == [] and job.state == "failed" and "died each of the 3 times" in job.error
    body = client_for(users["engineer"]).get(f"/api/jobs/{job.id}").json()
    assert body["deliveries"] == 3 and body["state"] == "failed"


def test_a_cancelled_or_failed_zip_import_deletes_its_upload(project, _media):
    from django.core.files.base import ContentFile
    from django.core.files.storage import default_storage

    from labelling.models import Job
    from tests.factories import image_bytes, zip_bytes
    from workers.jobs.base import JobCancelled
    from workers.jobs.imports import import_zip

    key = default_storage.save(
        "imports/1/up.zip", ContentFile(zip_bytes({f"{i}.png": image_bytes(seed=i) for i in range(3)}))
    )
    job = Job.objects.create(project=project, kind="import_zip", params={"storage_key": key, "members": 3})

    def cancelled(*args, **kwargs):
        raise JobCancelled()

    with pytest.raises(JobCancelled):
        import_zip(job, cancelled)
    assert not default_storage.exists(key)


def test_a_flagged_image_can_be_looked_at_and_unflagged(two_holders, project, users, client_for):
    from django.test import Client

    from labelling.models import Image

    (ca, a_id), image = two_holders["a"], two_holders["image"]
    assert ca.post(f"/api/assignments/{a_id}/flag", {"reason": "ambiguous"}, format="json").status_code == 204
    # The dashboard lists it with who flagged it and why.
    web = Client()
    web.force_login(users["admin"])
    page = web.get(f"/projects/{project.id}/dashboard/").content.decode()
    assert f'<tr data-image="{image.id}">' in page and "annotator" in page and "(ambiguous," in page
    # Unflagged (from the dashboard's button): an image nobody labelled is selectable again.
    response = web.post(
        f"/projects/{project.id}/dashboard/action", {"action": "unflag", "image": image.id}, follow=True
    )
    assert f"Image #{image.id} unflagged." in response.content.decode()
    assert Image.objects.get().status == "unlabelled"
    assert "No flagged images." in web.get(f"/projects/{project.id}/dashboard/").content.decode()
    # The API refuses an image that is not flagged, and ids no database holds are a message, not a 500.
    engineer = client_for(users["engineer"])
    response = engineer.post(f"/api/images/{image.id}/unflag")
    assert response.status_code == 409 and response.json()["error"]["code"] == "not_flagged"
    response = web.post(
        f"/projects/{project.id}/dashboard/action", {"action": "unflag", "image": "9" * 30}, follow=True
    )
    assert "no such image" in response.content.decode()


def test_unflagging_an_image_with_a_coannotators_label_makes_it_labelled(two_holders, users, client_for):
    from labelling.models import Image

    (ca, a_id), (cb, b_id), label = two_holders["a"], two_holders["b"], two_holders["label"]
    assert ca.post(f"/api/assignments/{a_id}/submit", {"label": label}, format="json").status_code == 201
    assert cb.post(f"/api/assignments/{b_id}/flag", {"reason": "broken"}, format="json").status_code == 204
    response = client_for(users["engineer"]).post(f"/api/images/{two_holders['image'].id}/unflag")
    assert response.status_code == 200 and response.json()["status"] == "labelled"
    assert Image.objects.get().status == "labelled"


def test_a_models_images_match_its_embedding_rows_after_the_pool_changed(project, _media):
    # The worker gives the learner the images of the embedding's rows (HOG view, fine-tuning): an
    # image flagged since (out of the decoded pool) or one uploaded since must not shift the rows.
    import numpy as np

    from labelling.models import Image
    from workers.jobs.pool import decode_images, images_for, pool_array

    imgs = pool(project, 4)
    ids = np.array([imgs[3].id, imgs[0].id, imgs[2].id])  # any order, as the embedding stored them
    Image.objects.filter(pk=imgs[2].id).update(status="flagged")
    pool(project, 1, seed=5)  # uploaded after the embedding
    X = images_for(project, ids)
    _, pooled = pool_array(project)
    expected = decode_images(
        [Image.objects.get(pk=int(i)) for i in ids], pooled.shape[1], 1 if pooled.ndim == 3 else 3
    )
    np.testing.assert_array_equal(X, expected)


def test_pretraining_a_pool_too_small_is_refused_at_once_unless_an_import_is_on_its_way(
    users, project, client_for, _media
):
    # The README's quick start with two images used to be accepted (202) and fail in the worker.
    from labelling.models import Job
    from tests.conftest import stored_files

    pool(project, 3)
    client = client_for(users["engineer"])
    response = client.post(f"/api/projects/{project.id}/jobs", {"kind": "pretrain"}, format="json")
    assert response.status_code == 400, response.content
    error = response.json()["error"]
    assert error["code"] == "pool_too_small" and error["details"] == {"images": 3, "needed": 16}
    files = stored_files(_media)
    upload = io.BytesIO(b"PK\x03\x04" + b"\0" * 100)
    upload.name = "encoder.pt"
    response = client.post(
        f"/api/projects/{project.id}/encoders/upload", {"file": upload}, format="multipart"
    )
    assert response.status_code == 400 and response.json()["error"]["code"] == "pool_too_small"
    assert not Job.objects.exists() and stored_files(_media) == files
    # A zip being unpacked will grow the pool: the worker checks again when the job runs.
    Job.objects.create(project=project, kind="import_zip", state="queued")
    response = client.post(f"/api/projects/{project.id}/jobs", {"kind": "pretrain"}, format="json")
    assert response.status_code == 202, response.content


def test_a_failed_job_tells_the_api_why_without_a_traceback_or_server_paths(
    project, settings, client_for, users, caplog
):
    from labelling.models import Job
    from workers.jobs.base import run_job

    job = Job.objects.create(project=project, kind="pretrain")
    missing = settings.MEDIA_ROOT / "uploads" / str(project.id) / "abc.pt"

    def work(job, progress):
        missing.read_bytes()  # FileNotFoundError naming the absolute path

    run_job(job.id, work)
    body = client_for(users["engineer"]).get(f"/api/jobs/{job.id}").json()
    assert body["state"] == "failed"
    assert (
        body["error"]
        == f"FileNotFoundError: [Errno 2] No such file or directory: '<media>/uploads/{project.id}/abc.pt'"
    )
    assert "Traceback" in caplog.text and str(missing) in caplog.text  # the worker's log keeps it all


def test_small_api_answers_a_review_found_unclear(project, client_for, users):
    from labelling.models import Job
    from tests.factories import image_bytes

    eng = client_for(users["engineer"])
    # Cancelling a job that already finished says so (409), instead of a 200 that changed nothing;
    # a queued job is cancelled, and cancelling it again is harmless.
    done = Job.objects.create(project=project, kind="import_zip", state="succeeded")
    response = eng.post(f"/api/jobs/{done.id}/cancel")
    assert response.status_code == 409 and response.json()["error"]["code"] == "job_finished"
    queued = Job.objects.create(project=project, kind="import_zip", state="queued")
    for _ in range(2):
        response = eng.post(f"/api/jobs/{queued.id}/cancel")
        assert response.status_code == 200 and response.json()["state"] == "cancelled"
    # lookahead must be a boolean, not anything at all.
    annotator = client_for(users["annotator"])
    assert annotator.get(f"/api/projects/{project.id}/queue/next?lookahead=banana").status_code == 400
    assert annotator.get(f"/api/projects/{project.id}/queue/next?lookahead=true").status_code == 200
    # A corrupt image's reason names what is wrong, not Pillow's buffer object.
    bad = io.BytesIO(b"\x89PNG\r\n\x1a\n" + image_bytes(seed=1)[8:40])
    bad.name = "cut.png"
    body = eng.post(f"/api/projects/{project.id}/images", {"files": [bad]}, format="multipart").json()
    (result,) = body["results"]
    assert result["code"] == "corrupt_image" and "object at 0x" not in result["reason"], result
    # An upper-case hotkey is the same key.
    admin = client_for(users["admin"])
    response = admin.post(
        "/api/projects",
        {"name": "Keys", "labels": [{"name": "ant", "hotkey": "A"}, {"name": "bee", "hotkey": "b"}]},
        format="json",
    )
    assert response.status_code == 201, response.content
    assert [label["hotkey"] for label in response.json()["labels"]] == ["a", "b"]
    # A label named by one key is on that key: digits "0"-"9" had "0" on 1 and "9" on 0 (a review).
    digits = admin.post(
        "/api/projects", {"name": "Digits", "labels": [str(d) for d in range(10)]}, format="json"
    )
    assert [label["hotkey"] for label in digits.json()["labels"]] == [str(d) for d in range(10)]
    mixed = admin.post("/api/projects", {"name": "Mixed", "labels": ["cat", "1", "B", "s"]}, format="json")
    # "1" and "B" get their keys; "cat" the first free one after them; "s" (skip) none of its own.
    assert [label["hotkey"] for label in mixed.json()["labels"]] == ["2", "1", "b", "3"]
    added = admin.post(f"/api/projects/{digits.json()['id']}/labels", {"name": "x"}, format="json")
    assert added.json()["hotkey"] == "x"


def test_team_changes_and_exports_a_second_review_found_wrong(users, project, client_for, _media):
    import csv as csvlib

    from labelling.models import Assignment, Image, LabelClass, QueueItem
    from labelling.services.queue import assignment_flag, assignments_reserve
    from tests.factories import queue_round

    admin, eng = client_for(users["admin"]), client_for(users["engineer"])
    annotator = users["annotator"]
    images = pool(project, 4)
    queue_round(project, images)

    # Removing a member gives back the items they held at once (they counted against the budget).
    held = assignments_reserve(project=project, annotator=annotator, count=2)
    assert len(held) == 2
    assert admin.delete(f"/api/projects/{project.id}/members/{annotator.id}").status_code == 204
    assert not Assignment.objects.filter(annotator=annotator, state="active").exists()
    # Adding them back (by name: someone the admin works with elsewhere) answers 201; a role change 200.
    from tests.factories import project_with_members

    project_with_members(admin=users["admin"], annotator=annotator, name="Elsewhere")
    body = {"username": annotator.username, "role": "annotator"}
    assert admin.post(f"/api/projects/{project.id}/members", body, format="json").status_code == 201
    body["role"] = "engineer"
    assert admin.post(f"/api/projects/{project.id}/members", body, format="json").status_code == 200
    body["role"] = "annotator"
    admin.post(f"/api/projects/{project.id}/members", body, format="json")

    # Paused: not even the items already held are handed out.
    held = assignments_reserve(project=project, annotator=annotator, count=1)
    assert len(held) == 1
    project.labelling_paused = True
    project.save()
    body = client_for(annotator).get(f"/api/projects/{project.id}/queue/next").json()
    assert body["assignment"] is None and body["empty_reason"] == "paused"
    project.labelling_paused = False
    project.save()

    # A flagged image is not in the exports (training leaves it out), whatever labels it had; text
    # cells a spreadsheet would run as a formula are quoted; the CSV says its charset.
    label = LabelClass.objects.create(project=project, name="=HYPERLINK(1)", order=99)
    first, second = images[0], images[1]
    Image.objects.filter(pk=second.pk).update(original_name="@sum.png")
    Annotation.objects.create(image=first, annotator=users["admin"], label=label, seconds_spent=1.0)
    Annotation.objects.create(image=second, annotator=users["admin"], label=label, seconds_spent=1.0)
    mine = assignments_reserve(project=project, annotator=annotator, count=4)
    flagged = next(a for a in mine if a.item.image_id == first.id)
    assignment_flag(assignment_id=flagged.id, annotator=annotator, reason="broken")
    assert Image.objects.get(pk=first.pk).status == "flagged"
    response = eng.get(f"/api/projects/{project.id}/export/labels.csv")
    assert response["Content-Type"] == "text/csv; charset=utf-8"
    rows = list(csvlib.DictReader(b"".join(response.streaming_content).decode().splitlines()))
    assert [int(r["image"]) for r in rows] == [second.id]
    assert rows[0]["label"] == "'=HYPERLINK(1)" and rows[0]["original_name"] == "'@sum.png"
    exported = eng.get(f"/api/projects/{project.id}/export/labels.json").json()
    assert [r["image"] for r in exported] == [second.id]
    # Each image says how many labels it was queued for: one label of two is an unfinished image.
    QueueItem.objects.filter(image=second).update(annotations_needed=2)
    (row,) = eng.get(f"/api/projects/{project.id}/export/labels.json").json()
    assert (row["annotations"], row["needed"]) == (1, 2)
    response = eng.get(f"/api/projects/{project.id}/export/labels.csv")
    (row,) = csvlib.DictReader(b"".join(response.streaming_content).decode().splitlines())
    assert (row["annotations"], row["needed"]) == ("1", "2")
    assert QueueItem.objects.filter(image=first, state="removed").exists()


def test_an_encoder_upload_is_checked_for_what_it_is_before_a_worker_gets_it(
    users, project, client_for, _media
):
    # A model download (TorchScript) uploaded as an encoder used to fail in the worker with torch's
    # hint about weights_only; a zip that torch.save did not write, too.
    import torch

    from labelling.models import Job
    from tests.conftest import stored_files

    pool(project, 16)
    eng = client_for(users["engineer"])
    files = stored_files(_media)

    def upload(data: bytes):
        f = io.BytesIO(data)
        f.name = "encoder.pt"
        return eng.post(f"/api/projects/{project.id}/encoders/upload", {"file": f}, format="multipart")

    script = io.BytesIO()
    torch.jit.save(torch.jit.script(torch.nn.Linear(2, 2)), script)
    response = upload(script.getvalue())
    assert response.status_code == 400 and response.json()["error"]["code"] == "torchscript_not_encoder"
    other = io.BytesIO()
    with zipfile.ZipFile(other, "w") as zf:
        zf.writestr("readme.txt", "not a checkpoint")
    response = upload(other.getvalue())
    assert response.status_code == 400 and response.json()["error"]["code"] == "not_a_checkpoint"
    assert not Job.objects.exists() and stored_files(_media) == files
    saved = io.BytesIO()
    torch.save({"state_dict": {}}, saved)
    # An unknown form field is refused, not dropped (a review's -F method=vicreg was silently ignored).
    f = io.BytesIO(saved.getvalue())
    f.name = "encoder.pt"
    response = eng.post(
        f"/api/projects/{project.id}/encoders/upload", {"file": f, "method": "vicreg"}, format="multipart"
    )
    assert response.status_code == 400 and response.json()["error"]["code"] == "unknown_field"
    assert not Job.objects.exists() and stored_files(_media) == files
    assert upload(saved.getvalue()).status_code == 202  # what torch.save writes goes to the worker


def test_an_uploaded_encoder_is_not_reported_as_trained(project):
    from labelling.models import EncoderVersion, Job
    from workers.jobs.training import _after_pretrain

    job = Job.objects.create(project=project, kind="pretrain", state="running")
    version = EncoderVersion.objects.create(
        project=project, artifact_key="e", job=job, source="upload", metadata={"steps": 589}
    )
    message = _after_pretrain(job, version)["_message"]
    assert (
        message
        == f"encoder #{version.id} taken from the uploaded checkpoint as it is; embedding the pool next"
    )


def test_a_new_annotations_per_image_applies_to_the_images_still_queued(users, project, client_for):
    from django.contrib.auth import get_user_model

    from labelling.models import Membership, QueueItem
    from labelling.services.queue import assignment_submit, assignments_reserve
    from tests.factories import queue_round

    project.annotations_per_image = 2
    project.save()
    images = pool(project, 3)
    queue_round(project, images)
    label = project.label_classes.first()
    (first,) = assignments_reserve(project=project, annotator=users["annotator"], count=1)
    assignment_submit(assignment_id=first.id, annotator=users["annotator"], label_id=label.id)
    admin = client_for(users["admin"])
    response = admin.patch(f"/api/projects/{project.id}", {"annotations_per_image": 1}, format="json")
    assert response.status_code == 200
    done = QueueItem.objects.get(pk=first.item_id)
    assert done.state == "done" and done.annotations_needed == 1  # one label is now enough
    assert set(QueueItem.objects.filter(state="open").values_list("annotations_needed", flat=True)) == {1}
    # A second annotator is not handed that image for a second label the budget would pay for.
    other = get_user_model().objects.create_user("ann2", password="x")
    Membership.objects.create(project=project, user=other, role="annotator")
    taken = assignments_reserve(project=project, annotator=other, count=3)
    assert first.item_id not in {a.item_id for a in taken} and len(taken) == 2
    admin.patch(f"/api/projects/{project.id}", {"annotations_per_image": 3}, format="json")
    assert set(QueueItem.objects.filter(state="open").values_list("annotations_needed", flat=True)) == {3}
    assert QueueItem.objects.get(pk=first.item_id).state == "done"  # a finished image stays finished


def test_the_label_set_can_be_renamed_and_extended_after_labelling_started(users, project, client_for):
    from labelling.models import EncoderVersion, LabelClass, ModelVersion

    admin = client_for(users["admin"])
    base = f"/api/projects/{project.id}/labels"
    labels = list(project.label_classes.order_by("order", "id"))
    image = pool(project, 1)[0]
    Annotation.objects.create(image=image, annotator=users["annotator"], label=labels[0], seconds_spent=1.0)

    # Rename a used label: its labels follow it (they refer to it, not to its name).
    response = admin.patch(f"{base}/{labels[0].id}", {"name": "Sparrow"}, format="json")
    assert response.status_code == 200 and response.json()["name"] == "Sparrow"
    assert Annotation.objects.get(image=image).label.name == "Sparrow"
    # Add one: at the end of the order, with a free hotkey; another with a key of its own.
    added = admin.post(base, {"name": "Heron"}, format="json")
    assert added.status_code == 201, added.content
    body = added.json()
    assert body["order"] > max(lc.order for lc in labels) and body["hotkey"] not in {
        lc.hotkey for lc in labels
    }
    assert admin.post(base, {"name": "Crane", "hotkey": "Z"}, format="json").json()["hotkey"] == "z"
    # Clear errors: a taken name or hotkey, a bad hotkey, an unknown field.
    for payload, code in (
        ({"name": "Heron"}, "invalid_labels"),
        ({"name": "Kite", "hotkey": "z"}, "invalid_labels"),
        ({"name": "Kite", "hotkey": "!"}, "invalid_labels"),
        ({"name": "Kite", "colour": "red"}, "unknown_field"),
    ):
        response = admin.post(base, payload, format="json")
        assert response.status_code == 400 and response.json()["error"]["code"] == code, (
            payload,
            response.content,
        )
    # Removing: a used label never; an unused one only before any model was trained.
    response = admin.delete(f"{base}/{labels[0].id}")
    assert response.status_code == 409 and response.json()["error"]["code"] == "label_in_use"
    assert admin.delete(f"{base}/{body['id']}").status_code == 204
    encoder = EncoderVersion.objects.create(project=project, artifact_key="e")
    ModelVersion.objects.create(project=project, encoder_version=encoder, mode="propagate", artifact_key="m")
    crane = LabelClass.objects.get(project=project, name="Crane")
    response = admin.delete(f"{base}/{crane.id}")
    assert response.status_code == 409 and "trained models" in response.json()["error"]["message"]
    # Annotators and engineers cannot change the label set; another project's label is not found.
    assert client_for(users["engineer"]).post(base, {"name": "Owl"}, format="json").status_code == 403
    from tests.factories import project_with_members

    elsewhere = project_with_members(admin=users["admin"], name="Elsewhere")
    other = elsewhere.label_classes.first()
    response = admin.patch(f"{base}/{other.id}", {"name": "x"}, format="json")  # its id, under this project
    assert response.status_code == 404 and LabelClass.objects.get(pk=other.pk).name != "x"


def test_an_uploaded_file_name_with_a_double_quote_is_stored_as_named(users, project, client_for):
    # Browsers and requests send `with "quote".png` as filename="with %22quote%22.png".
    from labelling.models import Image
    from tests.factories import image_bytes

    boundary = "XyZ"
    body = (
        (
            f'--{boundary}\r\nContent-Disposition: form-data; name="files"; filename="with %22quote%22.png"\r\n'
            "Content-Type: image/png\r\n\r\n"
        ).encode()
        + image_bytes(seed=5)
        + f"\r\n--{boundary}--\r\n".encode()
    )
    response = client_for(users["engineer"]).generic(
        "POST",
        f"/api/projects/{project.id}/images",
        body,
        content_type=f"multipart/form-data; boundary={boundary}",
    )
    assert response.status_code in (200, 201), response.content
    assert Image.objects.get(project=project).original_name == 'with "quote".png'


def test_activating_a_version_brings_its_predictions_and_a_matching_model(users, project, client_for):
    # A third review: activating an older model left the pool's predictions (suggestions,
    # predictions.csv) on the newer one; activating another encoder kept a model trained on the
    # first encoder's rows. Now a model's activation queues a predict job, and an encoder's makes the
    # newest model of that encoder current (none if it has none) and queues a cycle.
    from labelling.models import EncoderVersion, Job, ModelVersion

    e1 = EncoderVersion.objects.create(project=project, artifact_key="x", embeddings={"shards": ["s"]})
    e2 = EncoderVersion.objects.create(project=project, artifact_key="y", embeddings={"shards": ["s"]})
    old, new = (
        ModelVersion.objects.create(project=project, encoder_version=e1, mode="probe", artifact_key="m")
        for _ in range(2)
    )
    project.current_encoder, project.current_model = e1, new
    project.save()
    eng = client_for(users["engineer"])
    assert eng.post(f"/api/models/{old.id}/activate").status_code == 200
    job = Job.objects.get(project=project)
    assert job.kind == "predict" and job.state == "queued"
    job.delete()
    assert eng.post(f"/api/encoders/{e2.id}/activate").status_code == 200
    project.refresh_from_db()
    assert project.current_encoder_id == e2.id and project.current_model_id is None
    assert Job.objects.get(project=project).kind == "cycle"
    Job.objects.all().delete()
    assert eng.post(f"/api/encoders/{e1.id}/activate").status_code == 200
    project.refresh_from_db()
    assert project.current_model_id == new.id  # the newest of e1's models
    # While a training job is on its way its result would replace the choice when it ends (a review:
    # an activation during a cycle was silently undone): refused, nothing changed.
    cycle = Job.objects.get(project=project)
    for url in (f"/api/models/{old.id}/activate", f"/api/encoders/{e2.id}/activate"):
        r = eng.post(url)
        assert r.status_code == 409 and r.json()["error"]["code"] == "job_running", r.content
        assert r.json()["error"]["details"]["job_id"] == cycle.id
    project.refresh_from_db()
    assert (project.current_encoder_id, project.current_model_id) == (e1.id, new.id)
    assert Job.objects.filter(project=project).count() == 1


def test_a_job_deleted_with_its_project_stops_its_worker(users, project):
    # A third review: deleting a project while its job ran let the worker train to the end and fail
    # writing the result (IntegrityError). Its progress ticks and commit points now see it gone.
    from labelling.models import Job
    from labelling.services.jobs import job_is_cancelled
    from workers.jobs.base import JobCancelled, Progress
    from workers.jobs.training import _unless_cancelled

    job = Job.objects.create(project=project, kind="pretrain", state="running")
    assert not job_is_cancelled(job_id=job.id)
    job_id = job.id
    project.delete()
    assert job_is_cancelled(job_id=job_id)
    with pytest.raises(JobCancelled):
        Progress(job_id)(0.5, "training", force=True)
    with pytest.raises(JobCancelled):
        _unless_cancelled(job_id)


def test_job_params_errors_name_the_field_and_bald_is_refused_for_a_select_job(users, project, client_for):
    # A third review: unknown params answered code "invalid", a bad value's message named no field,
    # and a select job asked for bald (which needs MC samples only a cycle has) quietly ran margin.
    from labelling.models import Job

    eng = client_for(users["engineer"])
    url = f"/api/projects/{project.id}/jobs"
    r = eng.post(url, {"kind": "select", "params": {"stratgy": "margin"}}, format="json")
    assert (
        r.status_code == 400
        and r.json()["error"]["code"] == "unknown_field"
        and "stratgy" in r.json()["error"]["message"]
    )
    r = eng.post(url, {"kind": "select", "params": {"batch_size": 0}}, format="json")
    assert r.status_code == 400 and "batch_size" in r.json()["error"]["message"]
    r = eng.post(url, {"kind": "select", "params": {"strategy": "bald"}}, format="json")
    assert r.status_code == 400 and "bald needs the MC samples" in r.json()["error"]["message"]
    # What a kind does not use is refused by name, not taken and ignored (a review: a predict took a
    # strategy, a finetune a batch_size).
    for kind, param in (("predict", "strategy"), ("finetune", "batch_size"), ("finetune", "strategy")):
        r = eng.post(url, {"kind": kind, "params": {param: 5}}, format="json")
        assert r.status_code == 400 and r.json()["error"]["code"] == "unknown_field", (kind, param)
    # Another project's encoder: said so, not "pretrain first".
    from labelling.models import EncoderVersion
    from tests.factories import project_with_members

    other = project_with_members(admin=users["engineer"], name="Other")
    theirs = EncoderVersion.objects.create(project=other, artifact_key="e", embeddings={"shards": ["s"]})
    r = eng.post(url, {"kind": "embed", "params": {"encoder_version": theirs.id}}, format="json")
    assert r.status_code == 400 and "is not one of this project's" in r.json()["error"]["message"]
    assert not Job.objects.exists()


def test_every_list_refuses_a_bad_page_size(users, project, client_for):
    # A third review: rounds?page_size=0 was ignored (DRF's default) where images?page_size=0 was a 400.
    eng = client_for(users["engineer"])
    for url in (f"/api/projects/{project.id}/rounds", f"/api/projects/{project.id}/images", "/api/projects"):
        for bad in ("0", "-3", "501", "ten"):
            r = eng.get(url, {"page_size": bad})
            assert r.status_code == 400 and "page_size" in r.json()["error"]["message"], (url, bad)
        assert eng.get(url, {"page_size": "2"}).status_code == 200


def test_a_project_takes_its_labels_as_plain_names_or_objects(users, client_for):
    # A third review: `"labels": ["boot", "sandal"]` was a 400 (each label had to be an object).
    admin = client_for(users["admin"])
    r = admin.post("/api/projects", {"name": "Shoes", "labels": ["boot", {"name": "sandal", "hotkey": "s"}]},
                   format="json")  # fmt: skip
    assert r.status_code == 201, r.content
    assert [(label["name"], label["hotkey"]) for label in r.json()["labels"]] == [
        ("boot", "1"),
        ("sandal", "s"),
    ]
    r = admin.post("/api/projects", {"name": "Dup", "labels": ["boot", {"name": "boot"}]}, format="json")
    assert r.status_code == 400, r.content


def test_the_image_list_takes_several_statuses_and_refuses_a_repeated_filter(users, project, client_for):
    # A third review: ?status=flagged&status=labelled listed the labelled images only (the last value).
    from labelling.models import Image

    images = pool(project, 3)
    Image.objects.filter(pk=images[0].pk).update(status="flagged")
    Image.objects.filter(pk=images[1].pk).update(status="labelled")
    eng = client_for(users["engineer"])
    url = f"/api/projects/{project.id}/images"

    def ids(query):
        r = eng.get(f"{url}?{query}")
        assert r.status_code == 200, r.content
        return [row["id"] for row in r.json()["results"]]

    both = sorted([images[0].id, images[1].id])
    assert ids("status=flagged&status=labelled") == ids("status=flagged,labelled") == both
    assert ids("status=unlabelled") == [images[2].id] and len(ids("")) == 3
    r = eng.get(f"{url}?status=flaged")
    assert r.status_code == 400 and "flaged" in r.json()["error"]["message"]
    r = eng.get(f"{url}?min_confidence=0.1&min_confidence=0.9")
    assert r.status_code == 400 and "min_confidence is given 2 times" in r.json()["error"]["message"]


def test_a_stranger_is_not_added_by_name_and_the_answer_tells_nothing(users, project, client_for):
    # A security review: any account could make a project, add anyone to it by name (their home page
    # then showed its text) and tell taken names from free ones (201 against 404).
    from django.contrib.auth import get_user_model

    from labelling.models import Membership

    admin = client_for(users["admin"])
    url = f"/api/projects/{project.id}/members"
    stranger = admin.post(url, {"username": "oscar-outsider", "role": "annotator"}, format="json")
    nobody = admin.post(url, {"username": "no-such-name", "role": "annotator"}, format="json")
    assert stranger.status_code == nobody.status_code == 404
    assert stranger.json() == nobody.json() and "invite link" in nobody.json()["error"]["message"]
    assert not Membership.objects.filter(project=project, user=users["outsider"]).exists()
    staff = get_user_model().objects.create_user("site-staff", password="pw-for-tests", is_staff=True)
    from labelling.services.projects import membership_set

    membership_set(project=project, user=staff, role="admin")
    added = client_for(staff).post(url, {"username": "oscar-outsider", "role": "annotator"}, format="json")
    assert added.status_code == 201  # site staff add anyone


def test_a_pretraining_past_job_max_minutes_is_for_site_staff(users, project, client_for, settings):
    # A security review: any account could ask for a 24-hour pretraining and hold the workers,
    # which take one job at a time, while every other project's jobs waited.
    from django.contrib.auth import get_user_model

    from labelling.models import Job
    from labelling.services.projects import membership_set

    pool(project, 20)
    settings.JOB_MAX_MINUTES = 60
    url = f"/api/projects/{project.id}/jobs"
    r = client_for(users["engineer"]).post(
        url, {"kind": "pretrain", "params": {"max_minutes": 61}}, format="json"
    )
    assert r.status_code == 400 and "JOB_MAX_MINUTES" in r.json()["error"]["message"]
    assert not Job.objects.exists()
    staff = get_user_model().objects.create_user("site-staff", password="pw-for-tests", is_staff=True)
    membership_set(project=project, user=staff, role="engineer")
    r = client_for(staff).post(url, {"kind": "pretrain", "params": {"max_minutes": 600}}, format="json")
    assert r.status_code == 202, r.content  # (queued when the test's transaction would commit)
    assert Job.objects.get().params["max_minutes"] == 600
