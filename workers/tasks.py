"""Celery tasks: ids in, one job function called, nothing else. Named ``workers.<job kind>``."""

from __future__ import annotations

from workers.celery import app
from workers.jobs import imports
from workers.jobs.base import run_job


@app.task(name="workers.import_zip")
def import_zip(job_id: int) -> None:
    run_job(job_id, imports.import_zip)


@app.task(name="workers.import_dataset")
def import_dataset(job_id: int) -> None:
    run_job(job_id, imports.import_dataset)
