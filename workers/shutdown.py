"""A worker asked to stop (SIGTERM: ``docker stop``, a redeploy, Ctrl-C) hands its running job back.

Celery's warm shutdown waits for the running task, and a pretraining runs for minutes: the stop's
grace period ends first, the worker is killed, and its unacknowledged task comes back only after the
broker's visibility timeout (12 h), the job showing "running" and blocking the project's training
all that while. Instead the worker's main process leaves a marker (its host name and process id) in
the scratch folder when shutdown begins; the job, polling it with its cancel check, stops at the next
check (a pretraining checkpoints first), goes back to ``queued`` and its task is sent again, so the
next worker resumes it. The marker is removed when a worker with that name and id starts or ends.
"""

from __future__ import annotations

import logging
import os
import socket
import time
from pathlib import Path

from celery.signals import worker_init, worker_shutdown, worker_shutting_down

log = logging.getLogger(__name__)


class JobHandedBack(BaseException):  # noqa: N818 - not an error: ``except Exception`` must let it by
    """Raised inside a job when its worker is stopping; the job is queued again, nothing is cleaned up."""


def _marker(pid: int) -> Path:
    from workers.jobs.storage import scratch_dir

    return scratch_dir() / f"stopping-{socket.gethostname()}-{pid}"


@worker_shutting_down.connect
def _mark(**_kwargs) -> None:
    try:
        _marker(os.getpid()).touch()
        log.info("worker stopping: a running job is handed back to the queue")
    except OSError:
        log.exception("could not mark the worker as stopping; a running job finishes or is redelivered")


@worker_init.connect
@worker_shutdown.connect
def _unmark(**_kwargs) -> None:
    _marker(os.getpid()).unlink(missing_ok=True)


_checked = [float("-inf"), False]


def worker_stopping(*, every: float = 1.0) -> bool:
    """True once the worker this process serves began to shut down (a pool process: its parent;
    the solo pool: itself). Looked up at most every ``every`` seconds."""
    now = time.monotonic()
    if now - _checked[0] >= every:
        _checked[0] = now
        _checked[1] = _marker(os.getppid()).exists() or _marker(os.getpid()).exists()
    return _checked[1]
