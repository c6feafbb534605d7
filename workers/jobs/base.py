"""Running a job function against its Job row: start, progress, cancel, finish or fail."""

from __future__ import annotations

import contextlib
import ctypes
import gc
import logging
import time
from collections.abc import Callable
from typing import Any

from django.conf import settings

from labelling.models import Job, Project
from labelling.services.jobs import (
    job_fail,
    job_finish,
    job_hand_back,
    job_is_cancelled,
    job_progress,
    job_start,
)
from workers.shutdown import JobHandedBack, worker_stopping

log = logging.getLogger(__name__)


# Returned by a job function whose work continues in other tasks (a group): they finish the job.
PENDING = object()


class JobCancelled(Exception):
    """Raised inside a job when its row was cancelled; the job stops where it is."""


class Progress:
    """Reports progress to the Job row at most every ``interval`` seconds, and notices a cancel."""

    def __init__(self, job_id: int, *, interval: float = 0.5) -> None:
        self.job_id = job_id
        self.interval = interval
        self._last = 0.0

    def __call__(self, fraction: float, message: str = "", *, force: bool = False) -> None:
        now = time.monotonic()
        if not force and now - self._last < self.interval:
            return
        self._last = now
        if job_is_cancelled(job_id=self.job_id):
            raise JobCancelled()
        if worker_stopping():
            raise JobHandedBack()
        job_progress(job_id=self.job_id, fraction=fraction, message=message)


JobFunction = Callable[[Job, Progress], dict[str, Any]]


def public_error(exc: BaseException) -> str:
    """What a failed job tells API users: the exception's type and message, with the server's
    folders (media, var, the code's) replaced by placeholders; no traceback."""
    text = f"{type(exc).__name__}: {exc}"
    roots = {
        str(settings.MEDIA_ROOT): "<media>",
        str(settings.VAR_DIR): "<var>",
        str(settings.BASE_DIR): "<app>",
    }
    for root, name in sorted(roots.items(), key=lambda kv: -len(kv[0])):  # the deepest folder first
        text = text.replace(root, name)
    return text


def release_memory() -> None:
    """Give the memory a finished job freed back to the system: Python keeps freed objects' pages and
    glibc's malloc keeps freed heap, so an idle worker held its largest job's 1.5 GB until the next
    one (a 60,000-image pool, a scale review)."""
    gc.collect()
    with contextlib.suppress(OSError, AttributeError):  # not glibc (musl, macOS): nothing to trim
        ctypes.CDLL("libc.so.6").malloc_trim(0)


def run_job(job_id: int, fn: JobFunction) -> None:
    """Run ``fn`` for the job once; a redelivered task for a finished job does nothing."""
    try:
        _run_job(job_id, fn)
    finally:
        release_memory()


def _run_job(job_id: int, fn: JobFunction) -> None:
    job = job_start(job_id=job_id)
    if job is None:
        log.info("job %s already finished; nothing to do", job_id)
        return
    progress = Progress(job_id)
    try:
        result = fn(job, progress)
    except JobCancelled:
        log.info("job %s cancelled", job_id)
        return
    except JobHandedBack:
        log.info("job %s handed back: the worker is stopping", job_id)
        job_hand_back(job_id=job_id)
        return
    except Exception as exc:  # a failed job records why; the worker keeps serving
        log.exception("job %s failed", job_id)  # the traceback goes to the worker's log only
        job_fail(job_id=job_id, error=public_error(exc))
        return
    if result is PENDING:
        return
    summary = result.pop("_message", "done") if isinstance(result, dict) else "done"
    finished = job_finish(job_id=job_id, result=result, message=summary)
    then = job.params.get("then")
    if finished and then:  # e.g. the demo's import, then pretraining (not after a cancel)
        from labelling.services.training import training_job_request

        training_job_request(
            project=job.project, kind=then["kind"], params=then.get("params", {}), coalesce=True
        )
    elif finished and job.kind == "forecast":  # settings changed after it read them: once more
        from labelling.services.training import forecast_if_stale

        forecast_if_stale(Project.objects.get(pk=job.project_id))
    elif finished and job.kind in ("cycle", "finetune", "predict", "select"):
        from labelling.services.training import retrain_for_changes_during

        try:
            retrain_for_changes_during(job)
        except Exception:  # the job itself succeeded; the next label or import asks again
            log.exception("could not queue a retrain after job %s", job_id)
