"""GET /healthz and the dashboard's note on a job nobody takes: an operator learns that no worker
runs (a deployment review stopped the worker: jobs sat queued and nothing said why)."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.test import Client
from django.utils import timezone

from bench.common import stop_process
from labelling.models import Job
from tests.factories import project_with_members

pytestmark = pytest.mark.django_db(transaction=True)


def test_health_counts_the_workers_and_fails_without_the_broker(celery_worker):
    from workers.celery import app

    client = Client(HTTP_HOST="not-in-allowed-hosts.example")  # a probe's address: no host check
    body = client.get("/healthz").json()
    assert body == {"database": "ok", "broker": "ok", "workers": 1}
    stop_process(celery_worker, timeout=20)
    response = client.get("/healthz")
    assert response.status_code == 200 and response.json()["workers"] == 0
    assert "no worker answered" in response.json()["warning"]
    url = app.conf.broker_url
    app.conf.broker_url = "redis+socket:///nonexistent/redis.sock"
    try:
        response = client.get("/healthz")
    finally:
        app.conf.broker_url = url
    assert response.status_code == 503 and response.json()["broker"] == "unreachable"


def test_the_dashboard_says_when_a_job_waits_with_no_worker_running(users, project):
    web = Client()
    web.force_login(users["admin"])
    job = Job.objects.create(project=project, kind="pretrain")
    page = web.get(f"/projects/{project.id}/dashboard/").content.decode()
    assert 'id="queue-wait"' not in page  # queued a moment ago: nothing to say
    Job.objects.filter(pk=job.pk).update(created_at=timezone.now() - timedelta(minutes=5))
    page = web.get(f"/projects/{project.id}/dashboard/").content.decode()
    assert f"Job #{job.id} (pretrain) has waited 5 min and no job of any project is running" in page
    # Another project's job runs: this one waits its turn.
    other = project_with_members(admin=users["outsider"], name="Other")
    Job.objects.create(project=other, kind="cycle", state="running")
    earlier = Job.objects.create(project=other, kind="cycle")
    Job.objects.filter(pk=earlier.pk).update(created_at=timezone.now() - timedelta(minutes=9))
    page = web.get(f"/projects/{project.id}/dashboard/").content.decode()
    assert "has waited 5 min behind 2 other jobs of this service" in page
    # A retrain waits only behind retrains: they have a worker of their own.
    Job.objects.filter(pk=job.pk).update(state="succeeded")
    mine = Job.objects.create(project=project, kind="cycle")
    Job.objects.filter(pk=mine.pk).update(created_at=timezone.now() - timedelta(minutes=3))
    Job.objects.create(project=other, kind="pretrain", state="running")
    page = web.get(f"/projects/{project.id}/dashboard/").content.decode()
    assert f"Job #{mine.id} (cycle) has waited 3 min behind 2 other jobs" in page  # not the pretraining
