"""Images added to a pool that an encoder has embedded already queue the retrain that embeds them."""

from __future__ import annotations

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.utils import timezone

from labelling.models import EncoderVersion, Job
from labelling.services.training import images_added, retrain_for_changes_during, unembedded_images
from tests.factories import image_bytes, pool

pytestmark = pytest.mark.django_db


def _embedded(project, images, **extra) -> EncoderVersion:
    version = EncoderVersion.objects.create(
        project=project,
        artifact_key="e",
        embeddings={"shards": ["s"], "ids_key": "i", "count": len(images), **extra},
    )
    project.current_encoder = version
    project.save(update_fields=["current_encoder"])
    return version


def _upload(client, project, seed: int):
    return client.post(
        f"/api/projects/{project.id}/images",
        {"files": [SimpleUploadedFile(f"new{seed}.png", image_bytes(seed=777_000 + seed))]},
        format="multipart",
    )


def test_an_upload_after_the_embedding_queues_one_retrain(client_for, users, project):
    images = pool(project, 4)
    eng = client_for(users["engineer"])
    # No encoder yet: the pretraining's embedding will read the whole pool, nothing to queue.
    assert _upload(eng, project, 1).status_code == 201
    assert not Job.objects.filter(project=project).exists()
    images = list(project.images.order_by("id"))
    _embedded(project, images, max_image_id=images[-1].id)
    assert not unembedded_images(project)
    assert _upload(eng, project, 2).status_code == 201
    job = Job.objects.get(project=project)
    assert job.kind == "cycle" and job.state == "queued" and job.params == {"trigger": "images"}
    # A second upload joins the retrain on its way; a duplicate adds nothing.
    assert _upload(eng, project, 3).status_code == 201
    assert _upload(eng, project, 3).json()["results"][0]["status"] == "duplicate"
    assert Job.objects.filter(project=project).count() == 1
    # An image flagged is not in the pool: no retrain for it alone.
    Job.objects.all().delete()
    newest = list(project.images.order_by("id"))
    project.images.filter(pk__in=[im.id for im in newest[len(images) :]]).update(status="flagged")
    assert not unembedded_images(project) and images_added(project) is None


def test_an_embedding_from_before_the_newest_id_was_kept_compares_counts(project):
    images = pool(project, 3)
    _embedded(project, images)  # no max_image_id
    assert not unembedded_images(project)
    pool(project, 1, seed=9)
    assert unembedded_images(project)


def test_images_added_while_a_retrain_ran_get_the_next_one(project):
    images = pool(project, 3)
    _embedded(project, images, max_image_id=max(im.id for im in images))
    running = Job.objects.create(project=project, kind="select", state="running", started_at=timezone.now())
    assert images_added(project) is None  # nothing new yet
    pool(project, 2, seed=5)
    assert images_added(project) == running  # coalesced with the running job
    Job.objects.filter(pk=running.pk).update(state="succeeded", finished_at=timezone.now())
    running.refresh_from_db()
    follow = retrain_for_changes_during(running)
    assert follow is not None and follow.kind == "cycle" and follow.params["trigger"] == "images"


def test_an_upload_is_stored_and_answered_when_the_broker_is_down(
    transactional_db, client_for, users, project, monkeypatch
):
    """Queueing the retrain for new images is not the upload: with Redis down the images are stored
    and the answer is 201 (the retrain job is failed, as any job the broker refuses)."""
    from kombu.exceptions import OperationalError

    from workers.celery import app

    images = pool(project, 2)
    _embedded(project, images, max_image_id=images[-1].id)

    def broker_down(name, args=None, **kw):
        raise OperationalError("Connection refused.")

    monkeypatch.setattr(app, "send_task", broker_down)
    response = _upload(client_for(users["engineer"]), project, 1)
    assert response.status_code == 201, response.content
    assert project.images.count() == 3
    assert Job.objects.get(project=project).state == "failed"
    # The queue's own request for a round answers too (no encoder check fails it).
    from labelling.services.queue import queue_empty_reason

    Job.objects.all().delete()
    assert queue_empty_reason(project=project) == "queue_empty"


def test_a_cancelled_retrain_leaves_no_files_of_the_images_it_embedded(project, settings):
    """A review: a cycle cancelled while it embedded new images left its ids and shard files."""
    from pathlib import Path

    import numpy as np

    from models_zoo.train import PretrainConfig, pretrain
    from workers.jobs import training
    from workers.jobs.base import JobCancelled
    from workers.jobs.storage import store_file, store_npy

    images = pool(project, 3)
    art = pretrain(np.random.default_rng(0).integers(0, 255, (32, 8, 8), dtype=np.uint8),
                   PretrainConfig(width=8, batch_size=16, max_minutes=None, max_steps=1))  # fmt: skip
    local = Path(settings.MEDIA_ROOT) / "tmp-enc.pt"
    art.save(local)
    store_file(local, "encoders/e.pt")
    store_npy(np.array([im.id for im in images]), "emb/ids.npy")
    store_npy(art.embed(np.zeros((3, 8, 8), np.uint8)).astype(np.float32), "emb/s0.npy")
    version = _embedded(project, images, max_image_id=images[-1].id)
    version.artifact_key = "encoders/e.pt"
    version.embeddings = {**version.embeddings, "ids_key": "emb/ids.npy", "shards": ["emb/s0.npy"]}
    version.save()
    pool(project, 2, seed=4)  # added since
    job = Job.objects.create(project=project, kind="cycle", state="cancelled")
    with pytest.raises(JobCancelled):
        training.embeddings_with_new_images(job, version, lambda *a, **k: None)
    assert not list((Path(settings.MEDIA_ROOT) / "embeddings").rglob("*.npy"))
    version.refresh_from_db()
    assert version.embeddings["ids_key"] == "emb/ids.npy"  # unchanged
    Job.objects.filter(pk=job.pk).update(state="running")  # not cancelled: the rows are appended
    ids, Z = training.embeddings_with_new_images(job, version, lambda *a, **k: None)
    assert len(ids) == len(Z) == 5 and version.embeddings["max_image_id"] == ids[-1]
