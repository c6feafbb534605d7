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
