"""End to end through the API with a real worker and embedded Redis, on scikit-learn's digits:
upload, pretrain (tiny budget), the cold-start round, labels, an automatic cycle, the curve."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from PIL import Image as PILImage

from labelling.models import EncoderVersion, Job, ModelVersion, SelectionRound
from tests.conftest import wait_for_job, wait_until
from tests.factories import zip_bytes

pytestmark = pytest.mark.django_db(transaction=True)


def digits_zip(n: int) -> tuple[bytes, dict[str, int]]:
    from sklearn.datasets import load_digits

    digits = load_digits()
    members, truth = {}, {}
    for i in range(n):
        buf = io.BytesIO()
        PILImage.fromarray((digits.images[i] * 255 / 16).astype(np.uint8)).save(buf, format="PNG")
        members[f"d/{i:04d}.png"] = buf.getvalue()
        truth[f"d/{i:04d}.png"] = int(digits.target[i])
    return zip_bytes(members), truth


def test_campaign_through_the_api(celery_worker, client_for, users):
    eng = client_for(users["engineer"])
    created = eng.post(
        "/api/projects",
        {"name": "digits", "labels": [{"name": str(i)} for i in range(10)], "audit_fraction": 0.2},
        format="json",
    )
    assert created.status_code == 201, created.content
    project_id = created.json()["id"]
    eng.patch(f"/api/projects/{project_id}", {"cycle_every": 10, "batch_size": 20}, format="json")
    archive, truth = digits_zip(300)
    imported = eng.post(
        f"/api/projects/{project_id}/imports",
        {"file": SimpleUploadedFile("d.zip", archive)},
        format="multipart",
    )
    assert wait_for_job(imported.json()["id"], worker=celery_worker).state == "succeeded"

    started = eng.post(
        f"/api/projects/{project_id}/jobs",
        {"kind": "pretrain", "params": {"max_steps": 15, "batch_size": 64}},
        format="json",
    )
    assert started.status_code == 202, started.content
    pretrain = wait_for_job(started.json()["id"], timeout=180, worker=celery_worker)
    assert pretrain.state == "succeeded", pretrain.error
    # pretrain -> embed -> select (cold start) run by themselves.
    wait_until(
        lambda: SelectionRound.objects.filter(project_id=project_id).exists(),
        worker=celery_worker,
        what="the cold-start selection round",
    )
    encoders = eng.get(f"/api/projects/{project_id}/encoders").json()["results"]
    assert len(encoders) == 1 and encoders[0]["is_current"] and encoders[0]["embeddings"]["count"] == 300

    # An annotator labels through the API (the oracle is the digits' ground truth).
    names = {img["id"]: img["original_name"] for img in _all(eng, f"/api/projects/{project_id}/images")}
    ann = client_for(users["annotator"])
    from labelling.models import Project
    from labelling.services.projects import membership_set

    membership_set(project=Project.objects.get(pk=project_id), user=users["annotator"], role="annotator")
    label_ids = [lc["id"] for lc in created.json()["labels"]]
    for _ in range(14):
        body = ann.get(f"/api/projects/{project_id}/queue/next").json()
        assert body["assignment"], body
        image_id = body["assignment"]["image"]["id"]
        label = label_ids[truth[names[image_id]]]
        assert (
            ann.post(f"/api/assignments/{body['assignment']['id']}/submit", {"label": label}).status_code
            == 201
        )
    # >= 10 training labels: a cycle queued itself, trains a model and queues round 2.
    wait_until(
        lambda: SelectionRound.objects.filter(project_id=project_id, number=2).exists(),
        timeout=180,
        worker=celery_worker,
        what="the automatic cycle's round",
    )
    # The round is committed a moment before its job finishes: wait for the job, not the round.
    cycle = wait_for_job(
        Job.objects.filter(project_id=project_id, kind="cycle").get().id, worker=celery_worker
    )
    assert cycle.params.get("trigger") == "labels"
    # The cycle looked for possible label mistakes (the oracle made none; few labels per class).
    assert isinstance(cycle.result.get("label_suspects"), int)
    assert eng.get(f"/api/projects/{project_id}/review").status_code == 200
    models = eng.get(f"/api/projects/{project_id}/models").json()["results"]
    assert len(models) == 1 and models[0]["is_current"] and models[0]["train_label_count"] >= 10
    # Its predictions for every audit image, labelled or not yet, for later versions to rescore.
    from labelling.models import Image

    kept = ModelVersion.objects.get(pk=models[0]["id"]).metrics["audit_predictions"]["ids"]
    audit_now = set(Image.objects.filter(project_id=project_id, is_audit=True).values_list("id", flat=True))
    assert set(kept) <= audit_now and len(kept) >= models[0]["metrics"]["audit_labels"]
    assert "audit_predictions" not in models[0]["metrics"]  # the worker's, not the API's
    metrics = eng.get(f"/api/projects/{project_id}/metrics").json()
    assert len(metrics["learning_curve"]) == 1
    point = metrics["learning_curve"][0]
    assert 0 <= point["low"] <= point["accuracy"] <= point["high"] <= 1
    # Class by class, the same audit images.
    by_class = metrics["by_class"]
    assert len(by_class["classes"]) == 10
    assert sum(c["audit_labels"] for c in by_class["classes"]) == point["audit_labels"]
    assert sum(c["correct"] for c in by_class["classes"]) == round(point["accuracy"] * point["audit_labels"])
    rounds = eng.get(f"/api/projects/{project_id}/rounds").json()["results"]
    assert [r["number"] for r in rounds] == [2, 1]
    # Each round names the model whose probabilities ranked it: none at cold start, then the one its
    # cycle trained (it named the model current before the cycle).
    assert [r["model_version"] for r in rounds] == [models[0]["id"], None]
    items = eng.get(f"/api/projects/{project_id}/rounds/2/items").json()["results"]
    assert items and all(item["reason"] for item in items)
    # Predictions reached the pool, and the annotator sees a suggestion on non-audit items.
    assert eng.get(f"/api/projects/{project_id}/export/predictions.csv").status_code == 200

    # The model runs as TorchScript without this package.
    import torch

    blob = eng.get(f"/api/models/{models[0]['id']}/download")
    assert blob.status_code == 200
    module = torch.jit.load(io.BytesIO(b"".join(blob.streaming_content)))
    probs = module(torch.rand(3, 1, 8, 8))
    assert probs.shape == (3, 10) and torch.allclose(probs.sum(1), torch.ones(3), atol=1e-4)

    # An engineer asks for consistency training (a CUDA worker's default; off on this CPU): the
    # worker loads the pool's images for it and the new version is that mode, exported the same way.
    started = eng.post(
        f"/api/projects/{project_id}/jobs",
        {"kind": "finetune", "params": {"consistency_steps": 2}},
        format="json",
    )
    assert started.status_code == 202, started.content
    finetune = wait_for_job(started.json()["id"], timeout=180, worker=celery_worker)
    assert finetune.state == "succeeded", finetune.error
    newest = eng.get(f"/api/projects/{project_id}/models").json()["results"][0]
    assert newest["mode"] == "consistency" and newest["is_current"]
    assert f"model #{newest['id']} (audit accuracy" in finetune.message and "audit image" in finetune.message
    blob = eng.get(f"/api/models/{newest['id']}/download")
    module = torch.jit.load(io.BytesIO(b"".join(blob.streaming_content)))
    assert module(torch.rand(2, 1, 8, 8)).shape == (2, 10)

    # The pool changes (an image flagged, one uploaded) and is embedded again: every row is its own
    # image's embedding. The second embed used to reuse the first one's shards (keyed by encoder
    # only): the new image got no row, and every row after the flagged image another image's.
    from labelling.models import Image
    from workers.jobs.pool import decode_images
    from workers.jobs.storage import local_copy
    from workers.jobs.training import load_embeddings

    # Flagged as an engineer would find it: an image no one is asked to label now.
    flagged = Image.objects.filter(project_id=project_id).exclude(queue_items__state="open").order_by("id")[5]
    Image.objects.filter(pk=flagged.pk).update(status="flagged")
    from sklearn.datasets import load_digits

    extra = io.BytesIO()
    PILImage.fromarray((load_digits().images[400] * 255 / 16).astype(np.uint8)).save(extra, format="PNG")
    truth["new.png"] = int(load_digits().target[400])
    version = EncoderVersion.objects.get(project_id=project_id)
    first_embedding = dict(version.embeddings)
    up = eng.post(f"/api/projects/{project_id}/images", {"files": [SimpleUploadedFile("new.png", extra.getvalue())]},
                  format="multipart")  # fmt: skip
    assert up.status_code == 201, up.content
    new_id = up.json()["results"][0]["image_id"]
    # The upload queued a retrain, which embedded the new image first (appended: the earlier rows keep
    # their places), trained with it in the pool and wrote its prediction; the stop set stayed.
    grown = wait_for_job(Job.objects.get(project_id=project_id, kind="cycle", params__trigger="images").id,
                         timeout=180, worker=celery_worker)  # fmt: skip
    assert grown.state == "succeeded", grown.error
    version.refresh_from_db()
    ids, Z = load_embeddings(version)
    assert len(ids) == version.embeddings["count"] == 301 and ids[-1] == new_id
    assert version.embeddings["max_image_id"] == new_id
    assert version.embeddings["shards"][:-1] == first_embedding["shards"]
    from models_zoo.artifact import EncoderArtifact

    with local_copy(version.artifact_key) as path:
        artifact = EncoderArtifact.load(path)
    expected = artifact.embed(decode_images([Image.objects.get(pk=new_id)], artifact.config.image_size, 3))
    np.testing.assert_allclose(Z[-1:], expected, atol=1e-4)
    assert Image.objects.get(pk=new_id).predicted_label_id is not None
    models = ModelVersion.objects.filter(project_id=project_id).order_by("id")
    before_ids = models[len(models) - 2].metrics["stop_set"]["ids"]  # the whole pool of 300: kept, and
    assert models.last().metrics["stop_set"]["ids"] == [*before_ids, new_id]  # topped up with the new one
    assert not Job.objects.filter(project_id=project_id, state__in=["queued", "running"]).exists()
    # The first model, trained before the image came, made current again: its stored scores have a
    # row fewer than the pool, so the predict job scores the grown pool with it.
    Image.objects.filter(pk=new_id).update(predicted_label=None)
    assert eng.post(f"/api/models/{models.first().id}/activate").status_code == 200
    again = wait_for_job(Job.objects.filter(project_id=project_id, kind="predict").get().id,
                         timeout=180, worker=celery_worker)  # fmt: skip
    assert again.state == "succeeded", again.error
    assert Image.objects.get(pk=new_id).predicted_label_id is not None
    assert eng.post(f"/api/models/{models.last().id}/activate").status_code == 200
    wait_until(lambda: not Job.objects.filter(project_id=project_id, state__in=["queued", "running"]).exists(),
               timeout=180, worker=celery_worker, what="the predict job of the newest model")  # fmt: skip
    before = dict(version.embeddings)
    started = eng.post(
        f"/api/projects/{project_id}/jobs",
        {"kind": "embed", "params": {"encoder_version": version.id}},
        format="json",
    )
    assert started.status_code == 202, started.content
    assert wait_for_job(started.json()["id"], timeout=180, worker=celery_worker).state == "succeeded"
    wait_until(lambda: not Job.objects.filter(project_id=project_id, state__in=["queued", "running"]).exists(),
               timeout=180, worker=celery_worker, what="the cycle after the embedding")  # fmt: skip
    version.refresh_from_db()
    ids, Z = load_embeddings(version)
    assert len(ids) == len(Z) == version.embeddings["count"] == 300  # 301 images, one flagged
    assert version.embeddings["shards"] != before["shards"]
    check = [0, len(ids) // 2, len(ids) - 1]  # the first row, one past the flagged image, the new one
    rows = [Image.objects.get(pk=int(ids[i])) for i in check]
    expected = artifact.embed(decode_images(rows, artifact.config.image_size, 3))
    np.testing.assert_allclose(Z[check], expected, atol=1e-4)
    assert rows[-1].original_name == "new.png"

    # Labels made elsewhere for every image still unlabelled, imported by file name: the retrain
    # the import queues trains on them and, the pool being done, selects nothing and still succeeds;
    # the annotator is told the pool is labelled.
    rows = [
        {"original_name": img["original_name"], "label": str(truth[img["original_name"]])}
        for img in _all(eng, f"/api/projects/{project_id}/images")
        if img["status"] == "unlabelled"
    ]
    imported = eng.post(f"/api/projects/{project_id}/annotations/import", {"labels": rows}, format="json")
    assert imported.status_code == 200, imported.content
    assert imported.json()["labelled"] == len(rows) > 200
    retrain = wait_for_job(imported.json()["retrain_job"], timeout=180, worker=celery_worker)
    assert retrain.state == "succeeded", retrain.error
    assert "nothing left to select" in retrain.message and "selection_round" not in retrain.result
    newest = eng.get(f"/api/projects/{project_id}/models").json()["results"][0]
    assert newest["is_current"] and newest["train_label_count"] > 200
    assert ann.get(f"/api/projects/{project_id}/queue/next").json()["empty_reason"] == "pool_labelled"

    # One decoded pool is kept (the pool changed twice: one array per pool was left before), and
    # deleting the project deletes every file it stored: images, thumbnails and every artifact.
    from django.conf import settings

    media = Path(settings.MEDIA_ROOT)
    assert len(list((media / "cache" / "pool" / str(project_id)).iterdir())) == 1
    assert eng.get(f"/api/images/{flagged.id}/thumbnail").status_code == 200
    stored = {p.relative_to(media).parts[0] for p in media.rglob("*") if p.is_file()}
    assert {"images", "thumbs", "encoders", "embeddings", "models", "cache"} <= stored, stored
    assert eng.delete(f"/api/projects/{project_id}?confirm=true").status_code == 204  # its creator
    left = [p.relative_to(media) for p in media.rglob("*") if p.is_file()]
    assert left == [], left[:10]


def _all(client, url):
    out, page = [], 1
    while True:
        body = client.get(url, {"page": page, "page_size": 500}).json()
        out += body["results"]
        if not body["next"]:
            return out
        page += 1


def test_single_flight_under_20_concurrent_requests(live_server, redis_server, users, project):
    import json
    import threading
    import urllib.request

    from rest_framework.authtoken.models import Token

    from labelling.models import EncoderVersion as EV

    # A project with an encoder, so a cycle is a valid request.
    ev = EV.objects.create(project=project, artifact_key="x", embeddings={"shards": ["x"]})
    project.current_encoder = ev
    project.save()
    token = Token.objects.create(user=users["engineer"]).key
    codes = []

    def request():
        req = urllib.request.Request(
            f"{live_server.url}/api/projects/{project.id}/jobs",
            data=json.dumps({"kind": "cycle"}).encode(),
            headers={"Authorization": f"Token {token}", "Content-Type": "application/json"},
            method="POST",
        )
        try:
            with urllib.request.urlopen(req, timeout=30) as resp:
                codes.append(resp.status)
        except urllib.error.HTTPError as err:
            codes.append(err.code)
            assert json.loads(err.read())["error"]["code"] == "job_running"

    threads = [threading.Thread(target=request) for _ in range(20)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(codes) == [202] + [409] * 19
    assert Job.objects.filter(project=project, kind="cycle").count() == 1


def test_cancel_stops_a_running_pretrain(celery_worker, client_for, users, project):
    from tests.factories import pool

    pool(project, 32)
    eng = client_for(users["engineer"])
    job_id = eng.post(
        f"/api/projects/{project.id}/jobs", {"kind": "pretrain", "params": {"max_minutes": 10}}, format="json"
    ).json()["id"]
    from workers.jobs.training import pretrain_checkpoint_path

    checkpoint = pretrain_checkpoint_path(Job.objects.get(pk=job_id))  # the worker's VAR_DIR is ours
    wait_until(
        lambda: Job.objects.get(pk=job_id).message.startswith("step") and checkpoint.exists(),
        worker=celery_worker,
        what="training steps and a checkpoint",
    )
    cancelled = eng.post(f"/api/jobs/{job_id}/cancel")
    assert cancelled.status_code == 200 and cancelled.json()["state"] == "cancelled"
    # The worker notices within its polling interval and is free for the next job.
    imported = eng.post(
        f"/api/projects/{project.id}/imports",
        {"file": SimpleUploadedFile("z.zip", zip_bytes({"x.png": _png()}))},
        format="multipart",
    )
    assert wait_for_job(imported.json()["id"], timeout=60, worker=celery_worker).state == "succeeded"
    assert Job.objects.get(pk=job_id).state == "cancelled"
    assert not EncoderVersion.objects.filter(project=project).exists()
    assert not Job.objects.filter(project=project, kind="embed").exists()
    assert not checkpoint.exists()  # a cancelled job never resumes: its checkpoint went with it


def _png() -> bytes:
    from tests.factories import image_bytes

    return image_bytes(seed=4242)


def test_a_long_job_of_one_project_does_not_hold_another_projects_retrain(
    celery_worker, client_for, users, project, settings, tmp_path
):
    """Workers take one job at a time: a 2-hour pretraining of one project held every other
    project's retrains (annotators waiting) until it ended. Retrains go to their own queue, which a
    worker of its own (`-Q quick`, started by make run and the compose file) takes meanwhile."""
    from labelling.models import EncoderVersion as EV
    from tests.conftest import start_worker, stop_process
    from tests.factories import pool, project_with_members
    from workers.jobs.storage import store_npy

    quick = start_worker(
        env_extra={"MEDIA_ROOT": str(settings.MEDIA_ROOT)}, log_path=tmp_path / "quick.log", queues="quick"
    )
    quick.log_path = tmp_path / "quick.log"  # what a failed wait shows
    try:
        pool(project, 32)
        eng = client_for(users["engineer"])
        long_id = eng.post(
            f"/api/projects/{project.id}/jobs",
            {"kind": "pretrain", "params": {"max_minutes": 10}},
            format="json",
        ).json()["id"]
        wait_until(lambda: Job.objects.get(pk=long_id).message.startswith("step"), worker=celery_worker,
                   what="the long pretraining running")  # fmt: skip
        other = project_with_members(admin=users["admin"], engineer=users["engineer"], name="Other")
        other.selection_strategy = "random"
        images = pool(other, 5, seed=3)
        store_npy(np.array([im.id for im in images]), "emb/ids.npy")
        store_npy(np.random.default_rng(0).standard_normal((5, 4)).astype(np.float32), "emb/s0.npy")
        other.current_encoder = EV.objects.create(
            project=other, artifact_key="x", embeddings={"ids_key": "emb/ids.npy", "shards": ["emb/s0.npy"]}
        )
        other.save()
        started = eng.post(f"/api/projects/{other.id}/jobs", {"kind": "select"}, format="json")
        assert started.status_code == 202, started.content
        done = wait_for_job(started.json()["id"], timeout=90, worker=quick)
        assert done.state == "succeeded", done.error
        assert Job.objects.get(pk=long_id).state == "running"  # it ran meanwhile, not after
        assert SelectionRound.objects.filter(project=other).exists()
        assert eng.post(f"/api/jobs/{long_id}/cancel").status_code == 200
    finally:
        stop_process(quick, timeout=20)


def test_a_changed_target_or_budget_is_forecast_again_by_the_worker(
    celery_worker, client_for, users, project
):
    """An admin who changed the target saw no forecast until the next retrain, and none came while
    labelling was paused: the change queues a forecast refit on the quick queue, which a real worker
    runs in a second, and the metrics answer for the new target and budget."""
    from labelling.models import Annotation, Image
    from tests.factories import pool

    project.labelling_paused, project.audit_fraction = True, 0.0
    project.save()
    images = pool(project, 30)
    Image.objects.filter(pk__in=[im.id for im in images[:20]]).update(is_audit=True)
    labels = list(project.label_classes.order_by("order", "id"))
    truth = [i % 3 for i in range(20)]
    for image, t in zip(images, truth, strict=False):
        Annotation.objects.create(image=image, annotator=users["annotator"], label=labels[t])
    encoder = EncoderVersion.objects.create(project=project, artifact_key="e", embeddings={"shards": ["s"]})
    audit_ids = [im.id for im in images[:20]]
    for n, k in zip([20, 40, 60, 80, 100], [11, 13, 15, 16, 17], strict=True):  # right on the first k
        ModelVersion.objects.create(
            project=project, encoder_version=encoder, mode="probe", artifact_key="m", train_label_count=n,
            metrics={"audit_accuracy": k / 20, "audit_labels": 20, "audit_predictions": {
                "ids": audit_ids, "predicted": truth[:k] + [(t + 1) % 3 for t in truth[k:]]}},
        )  # fmt: skip
    eng, admin = client_for(users["engineer"]), client_for(users["admin"])
    started = eng.post(f"/api/projects/{project.id}/jobs", {"kind": "forecast"}, format="json")
    assert started.status_code == 202, started.content
    first = wait_for_job(started.json()["id"], timeout=60, worker=celery_worker)
    assert first.state == "succeeded" and "refitted" in first.message, (first.error, first.message)
    before = eng.get(f"/api/projects/{project.id}/metrics").json()["forecast"]
    assert before["target_accuracy"] == project.target_accuracy and before["labels_to_target"] is not None

    changed = admin.patch(
        f"/api/projects/{project.id}", {"target_accuracy": 0.7, "label_budget": 400}, format="json"
    )
    assert changed.status_code == 200, changed.content
    refit = Job.objects.filter(project=project, kind="forecast").order_by("-id").first()
    assert refit.id != first.id and refit.params == {"trigger": "settings"}
    assert wait_for_job(refit.id, timeout=60, worker=celery_worker).state == "succeeded"
    after = eng.get(f"/api/projects/{project.id}/metrics").json()["forecast"]
    assert after["target_accuracy"] == 0.7 and "target changed" not in after["note"]
    assert (
        after["labels_to_target"] is not None and after["labels_to_target"][0] < before["labels_to_target"][0]
    )
    assert after["label_budget"] == 400 and after["accuracy_at_budget"] is not None
