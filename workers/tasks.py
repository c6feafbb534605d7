"""Celery tasks: ids in, one job function called, nothing else. Named ``workers.<job kind>``."""

from __future__ import annotations

from workers.celery import app
from workers.jobs import imports, training
from workers.jobs.base import run_job


@app.task(name="workers.import_zip")
def import_zip(job_id: int) -> None:
    run_job(job_id, imports.import_zip)


@app.task(name="workers.import_dataset")
def import_dataset(job_id: int) -> None:
    run_job(job_id, imports.import_dataset)


@app.task(name="workers.pretrain")
def pretrain(job_id: int) -> None:
    run_job(job_id, training.pretrain)


@app.task(name="workers.embed")
def embed(job_id: int) -> None:
    run_job(job_id, training.embed)


@app.task(name="workers.embed_chunk")
def embed_chunk(job_id: int, index: int) -> None:
    training.embed_chunk(job_id, index)


@app.task(name="workers.finetune")
def finetune(job_id: int) -> None:
    run_job(job_id, training.cycle)


@app.task(name="workers.predict")
def predict(job_id: int) -> None:
    run_job(job_id, training.cycle)


@app.task(name="workers.select")
def select(job_id: int) -> None:
    run_job(job_id, training.cycle)


@app.task(name="workers.cycle")
def cycle(job_id: int) -> None:
    run_job(job_id, training.cycle)


@app.task(name="workers.forecast")
def forecast(job_id: int) -> None:
    run_job(job_id, training.forecast)
