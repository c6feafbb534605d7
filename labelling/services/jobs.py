"""Background jobs: a Job row first, the Celery task only once that row is committed.

Tasks are enqueued by name (``workers.<kind>``) so the web process never imports worker code.
"""

from __future__ import annotations

import logging
from typing import Any

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction
from django.utils import timezone

from labelling.models import Job, Project
from labelling.models.job import FINISHED_STATES, JobState
from labelling.services.errors import Conflict, Unavailable

logger = logging.getLogger(__name__)


def task_name_for(kind: str) -> str:
    return f"workers.{kind}"


def _send(job_id: int, kind: str) -> None:
    """Enqueue the job's task. If the broker cannot take it, the job is marked failed (a row left
    queued would wait for ever and block the project's training) and ``Unavailable`` says so."""
    from workers.celery import app  # celery only; no torch on the web path

    try:
        app.send_task(task_name_for(kind), args=[job_id])
    except Exception as exc:  # kombu's OperationalError when Redis is down, or anything else
        # The broker's own words (its address, a socket path) go to the log, not to users.
        logger.warning("job #%s: could not enqueue %s: %s", job_id, task_name_for(kind), exc)
        job_fail(
            job_id=job_id,
            error=f"could not enqueue the task: the job queue was unreachable ({type(exc).__name__})",
        )
        raise Unavailable(
            f"the job queue cannot be reached; job #{job_id} was marked failed, try again later",
            code="queue_unavailable",
            details={"job_id": job_id},
        ) from exc


def job_create(
    *,
    project: Project,
    kind: str,
    params: dict[str, Any] | None = None,
    created_by: AbstractBaseUser | None = None,
) -> Job:
    """Create a queued job and enqueue its task when the surrounding transaction commits."""
    job = Job.objects.create(project=project, kind=kind, params=params or {}, created_by=created_by)
    transaction.on_commit(lambda: _send(job.id, kind))
    return job


def job_start(*, job_id: int) -> Job | None:
    """Mark a job running; None when it is already finished (a redelivered task must not redo it)
    or has been delivered ``JOB_MAX_DELIVERIES`` times already (then it is failed: a task whose
    worker process dies every time, out of memory say, would otherwise come back for ever)."""
    with transaction.atomic():
        job = Job.objects.select_for_update().get(pk=job_id)
        if job.state in FINISHED_STATES:
            return None
        if job.deliveries >= settings.JOB_MAX_DELIVERIES:
            job.state, job.message, job.finished_at = JobState.FAILED, "failed", timezone.now()
            job.error = (
                f"the worker process died each of the {job.deliveries} times it ran this job"
                " (out of memory? a crash in native code?); it is not retried again"
            )
            job.save(update_fields=["state", "message", "finished_at", "error"])
            _job_uploads_forget(job_id)
            return None
        job.state = JobState.RUNNING
        job.started_at = job.started_at or timezone.now()
        job.deliveries += 1
        job.save(update_fields=["state", "started_at", "deliveries"])
    return job


# Params naming an uploaded file the job consumes (a zip to import, a checkpoint to start from), and the
# folders such files live in: once the job has ended, however it ended, nothing reads the file again.
_UPLOAD_PARAMS = ("storage_key", "upload_key")
_UPLOAD_FOLDERS = ("imports/", "uploads/")


def _job_uploads_forget(job_id: int) -> None:
    """Delete the uploaded files an ended job consumed, once the surrounding transaction commits
    (a job cancelled while queued never ran to delete them; a worker killed mid-job redelivers,
    so the files stay until then)."""
    from labelling.services.storage import storage_file_delete

    params = Job.objects.filter(pk=job_id).values_list("params", flat=True).first() or {}
    keys = [
        key
        for key in (params.get(name) for name in _UPLOAD_PARAMS)
        if isinstance(key, str) and key.startswith(_UPLOAD_FOLDERS)
    ]
    if keys:
        transaction.on_commit(lambda: [storage_file_delete(key) for key in keys])


def job_progress(*, job_id: int, fraction: float, message: str = "") -> None:
    Job.objects.filter(pk=job_id, state=JobState.RUNNING).update(
        progress=max(0.0, min(1.0, float(fraction))), message=message[:500]
    )


def job_finish(*, job_id: int, result: dict[str, Any], message: str = "done") -> bool:
    """Mark a running job succeeded; a job cancelled meanwhile stays cancelled (returns False)."""
    finished = Job.objects.filter(pk=job_id, state=JobState.RUNNING).update(
        state=JobState.SUCCEEDED,
        progress=1.0,
        result=result,
        message=message[:500],
        finished_at=timezone.now(),
    )
    if finished:
        _job_uploads_forget(job_id)
    return bool(finished)


def job_hand_back(*, job_id: int) -> bool:
    """A running job whose worker is stopping goes back to the queue and its task is sent again: the
    next worker resumes it (a pretraining from its checkpoint). The stop is not counted as a delivery
    (those count workers that died), so redeploys never fail a job. False if it was not running."""
    job = Job.objects.filter(pk=job_id, state=JobState.RUNNING).first()
    if job is None:
        return False
    handed = Job.objects.filter(pk=job_id, state=JobState.RUNNING).update(
        state=JobState.QUEUED,
        deliveries=max(0, job.deliveries - 1),
        message="its worker stopped: it resumes on the next worker",
    )
    if handed:
        transaction.on_commit(lambda: _send(job_id, job.kind))
    return bool(handed)


def job_fail(*, job_id: int, error: str) -> None:
    if (
        Job.objects.filter(pk=job_id)
        .exclude(state__in=FINISHED_STATES)
        .update(state=JobState.FAILED, error=error[:10_000], message="failed", finished_at=timezone.now())
    ):
        _job_uploads_forget(job_id)


def job_cancel(*, job: Job) -> Job:
    """Ask a job to stop: a queued one never starts, a running one stops at its next progress check.
    A job that already succeeded or failed cannot be cancelled (Conflict); cancelling a cancelled
    one again is a no-op."""
    if (
        Job.objects.filter(pk=job.pk)
        .exclude(state__in=FINISHED_STATES)
        .update(state=JobState.CANCELLED, message="cancelled", finished_at=timezone.now())
    ):
        _job_uploads_forget(job.pk)
    job.refresh_from_db()
    if job.state in (JobState.SUCCEEDED, JobState.FAILED):
        raise Conflict(
            f"the job already {job.state}; nothing to cancel",
            code="job_finished",
            details={"state": job.state},
        )
    return job


def job_is_cancelled(*, job_id: int) -> bool:
    """Cancelled, or gone with its deleted project: either way its worker should stop."""
    state = Job.objects.filter(pk=job_id).values_list("state", flat=True).first()
    return state is None or state == JobState.CANCELLED
