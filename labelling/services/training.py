"""Asking for training work, one job per project at a time, and making its results current.

Single flight: a request while a training job is queued or running answers 409 naming that job,
or, for automatic cycles (``coalesce``), returns it. A queued job will see the new labels; a running
one may have read its labels already, so when it finishes ``retrain_for_changes_during`` asks for
the next one.
"""

from __future__ import annotations

import logging
from typing import Any

from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction

from labelling.models import EncoderVersion, Job, ModelVersion, Project
from labelling.models.job import FORECAST_KIND, TRAINING_KINDS, JobState
from labelling.services.errors import Conflict, InvalidInput
from labelling.services.jobs import job_create

logger = logging.getLogger(__name__)


def running_training_job(project: Project) -> Job | None:
    return _on_its_way(project, TRAINING_KINDS)


def _on_its_way(project: Project, kinds: tuple[str, ...]) -> Job | None:
    """The project's oldest job of one of ``kinds`` queued or running."""
    return (
        Job.objects.filter(project=project, kind__in=kinds, state__in=(JobState.QUEUED, JobState.RUNNING))
        .order_by("id")
        .first()
    )


def training_job_request(
    *,
    project: Project,
    kind: str,
    params: dict[str, Any] | None = None,
    created_by: AbstractBaseUser | None = None,
    coalesce: bool = False,
) -> Job:
    """Create a training job unless one is already queued or running for the project."""
    if kind not in TRAINING_KINDS:
        raise InvalidInput(f"kind must be one of {', '.join(TRAINING_KINDS)}", code="invalid_kind")
    return _single_flight(project, kind, TRAINING_KINDS, params, created_by, coalesce)


def _single_flight(project, kind, kinds, params, created_by, coalesce) -> Job:
    """A new job of ``kind`` unless one of ``kinds`` is queued or running for the project: then that
    one (``coalesce``) or Conflict ``job_running``."""
    with transaction.atomic():
        # The project row lock serialises concurrent requests (SQLite serialises all writers anyway).
        Project.objects.select_for_update().get(pk=project.pk)
        running = _on_its_way(project, kinds)
        if running is not None:
            if coalesce:
                return running
            raise Conflict(
                f"a {running.kind} job (#{running.id}) is already {running.state} for this project",
                code="job_running",
                details={"job_id": running.id, "kind": running.kind, "state": running.state},
            )
        return job_create(project=project, kind=kind, params=params or {}, created_by=created_by)


def retrain_for_changes_during(job: Job) -> Job | None:
    """After a job of the retrain chain (``cycle``, ``finetune``, ``predict``, ``select``) finished:
    labels or images that came while it ran may not be in its model. Imported labels and images the
    embedding lacks queue the next retrain at once (their import or upload asked for one, and got
    this running job); labels given in the queue count towards the usual ``cycle_every`` rule,
    checked here as a submit would check it (else they would wait for the next submit)."""
    from labelling.models import Annotation
    from labelling.services.queue import retrain_if_due  # queue -> training, lazily

    project = Project.objects.get(pk=job.project_id)
    since = job.started_at or job.created_at
    imported = Annotation.objects.filter(image__project=project, imported=True, created_at__gte=since)
    if imported.exists() or unembedded_images(project):
        trigger = "import" if imported.exists() else "images"
        return training_job_request(project=project, kind="cycle", params={"trigger": trigger}, coalesce=True)
    retrain_if_due(project)
    forecast_if_stale(project)
    return None


def forecast_if_stale(project: Project) -> Job | None:
    """Queue a forecast refit when the newest model version's forecast was made for other settings
    than the project's now (``forecast_made_for_other_settings``): an admin changed them
    (``project_update``), or did while a job that had read them ran."""
    from labelling.selectors.metrics import forecast_made_for_other_settings

    newest = project.model_versions.order_by("-id").values_list("metrics__forecast", flat=True).first()
    if not forecast_made_for_other_settings(project, newest):
        return None
    try:
        return forecast_refit_request(project=project, params={"trigger": "settings"}, coalesce=True)
    except Exception:  # the broker down: that request still succeeds, and the next change asks again
        logger.exception("could not queue a forecast refit for project %s", project.pk)
        return None


def forecast_refit_request(
    *,
    project: Project,
    params: dict[str, Any] | None = None,
    created_by: AbstractBaseUser | None = None,
    coalesce: bool = False,
) -> Job:
    """A ``forecast`` job unless one is queued or running for the project (``coalesce``: that one,
    else Conflict ``job_running``). It runs beside the training jobs: merged into one of them, a
    settings change during a pretraining that was then cancelled got no refit, and a review's retrain
    asked for during a refit was merged into the refit and never came (a review)."""
    return _single_flight(project, FORECAST_KIND, (FORECAST_KIND,), params, created_by, coalesce)


def unembedded_images(project: Project) -> bool:
    """Whether the pool has images added since its current encoder embedded it (an upload or import
    since): the next retrain embeds them first. False while there is no embedded encoder (the
    pretraining's embedding reads the pool when it starts)."""
    from labelling.models.image import ImageStatus

    emb = (
        EncoderVersion.objects.filter(pk=project.current_encoder_id)
        .values_list("embeddings", flat=True)
        .first()
    ) or {}
    if not emb.get("shards"):
        return False
    pool = project.images.exclude(status=ImageStatus.FLAGGED)
    if "max_image_id" in emb:
        return pool.filter(pk__gt=emb["max_image_id"]).exists()
    return pool.count() > int(emb.get("count", 0))  # embedded before the newest id was kept


def training_job_request_quietly(*, project: Project, kind: str, trigger: str) -> Job | None:
    """An automatic training job (coalesced, ``params.trigger`` saying why) asked for beside what a
    request did (an upload, a review, a look at an empty queue): a failure to queue it (the broker
    down: the job is marked failed) is logged, and None, never that request's error. The next
    trigger asks again."""
    try:
        return training_job_request(project=project, kind=kind, params={"trigger": trigger}, coalesce=True)
    except Exception:
        logger.exception("could not queue a %s job (%s) for project %s", kind, trigger, project.pk)
        return None


def images_added(project: Project) -> Job | None:
    """Images were added to the pool (an upload, a zip or dataset import, import_images): once the
    project has an embedded encoder, a retrain embeds them and then trains, scores and selects with
    them in the pool (coalesced with the training job queued or running; one that is running asks
    again when it ends). The images are stored whatever happens to that request."""
    if not unembedded_images(project):
        return None
    return training_job_request_quietly(project=project, kind="cycle", trigger="images")


def pretraining_pool_check(*, project: Project) -> None:
    """Refuse a pretrain now (InvalidInput pool_too_small) when the pool is too small for it and no
    import is on its way, instead of accepting a job that can only fail in the worker."""
    from labelling.catalog import MIN_PRETRAIN_POOL
    from labelling.models.image import ImageStatus
    from labelling.models.job import JobKind

    usable = project.images.exclude(status=ImageStatus.FLAGGED).count()
    if usable >= MIN_PRETRAIN_POOL:
        return
    importing = project.jobs.filter(
        kind__in=(JobKind.IMPORT_ZIP, JobKind.IMPORT_DATASET), state__in=(JobState.QUEUED, JobState.RUNNING)
    ).exists()
    if not importing:
        raise InvalidInput(
            f"the pool has {usable} images; pretraining needs at least {MIN_PRETRAIN_POOL}: upload images first",
            code="pool_too_small",
            details={"images": usable, "needed": MIN_PRETRAIN_POOL},
        )


def job_follow_up(*, job: Job, kind: str, params: dict[str, Any] | None = None) -> Job:
    """Queue the next step of a chain (pretrain -> embed -> select). Call while ``job`` is still
    running, in the transaction that finishes it, so no other training job can slip in between."""
    return job_create(project=job.project, kind=kind, params={**(params or {}), "after_job": job.id})


def _no_training_running(project: Project, what: str) -> None:
    """Refuse (409 job_running) to change the current model or encoder while a training job is queued
    or running: its result would replace the choice when it ends (a review: an activation made during
    a cycle was silently undone)."""
    running = running_training_job(project)
    if running is not None:
        raise Conflict(
            f"a {running.kind} job (#{running.id}) is {running.state} for this project and its result "
            f"would replace {what} when it ends: wait for it, or cancel it first",
            code="job_running",
            details={"job_id": running.id, "kind": running.kind, "state": running.state},
        )


@transaction.atomic
def model_version_activate(*, version: ModelVersion) -> Job:
    """An engineer makes an older model version current, with the encoder it was trained on, and
    its predictions are written over the pool again (the images' suggestions, predictions.csv and
    the next round follow it): a ``predict`` job. Refused while a training job is on its way."""
    Project.objects.select_for_update().get(pk=version.project_id)
    _no_training_running(version.project, f"model #{version.id}")
    Project.objects.filter(pk=version.project_id).update(
        current_model=version, current_encoder=version.encoder_version
    )
    return training_job_request(project=version.project, kind="predict", coalesce=True)


@transaction.atomic
def encoder_version_activate(*, version: EncoderVersion) -> Job:
    """An engineer makes another encoder version current. A model trained on another encoder's
    embeddings cannot score this one's rows, so the current model becomes the newest trained on this
    encoder (none if there is none), and a ``cycle`` trains, predicts and selects on it. Refused while
    a training job is on its way."""
    Project.objects.select_for_update().get(pk=version.project_id)
    _no_training_running(version.project, f"encoder #{version.id}")
    newest = version.model_versions.order_by("-id").first()
    Project.objects.filter(pk=version.project_id).update(current_encoder=version, current_model=newest)
    return training_job_request(project=version.project, kind="cycle", coalesce=True)


def encoder_version_publish(*, project: Project, version: EncoderVersion) -> None:
    """Make an encoder version (whose embeddings are complete) the project's current one."""
    Project.objects.filter(pk=project.pk).update(current_encoder=version)


@transaction.atomic
def model_version_publish(*, project: Project, version: ModelVersion, training_labels: int) -> None:
    Project.objects.filter(pk=project.pk).update(current_model=version, labels_at_last_cycle=training_labels)
