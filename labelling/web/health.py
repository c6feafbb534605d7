"""``GET /healthz``: is this web process able to serve, and is anything taking jobs?

Answered before every other middleware: no host check (a container's health probe calls
127.0.0.1, which production's ALLOWED_HOSTS may not list), no HTTPS redirect, no session. It says
nothing private: three states and a count.

- ``database``: a query runs; ``broker``: the job queue's Redis answers. Either down: 503.
- ``workers``: how many Celery workers answered a ping within half a second. None is still 200
  (the web serves labelling without them), with a warning: jobs wait until one starts.
"""

from __future__ import annotations

import logging

from django.db import connection
from django.http import HttpRequest, HttpResponse, JsonResponse

log = logging.getLogger(__name__)

PATH = "/healthz"


def _database() -> str:
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
            cursor.fetchone()
        return "ok"
    except Exception as exc:  # any failure is the answer, not an error page
        log.warning("health: database: %s", exc)
        return "unreachable"


def _broker_and_workers() -> tuple[str, int]:
    from workers.celery import app  # celery only: no torch on the web path

    try:
        with app.connection_for_write() as conn:
            conn.ensure_connection(max_retries=1, timeout=2)
    except Exception as exc:
        log.warning("health: broker: %s", exc)
        return "unreachable", 0
    try:
        return "ok", len(app.control.ping(timeout=0.5) or [])
    except Exception as exc:
        log.warning("health: worker ping: %s", exc)
        return "ok", 0


def health(request: HttpRequest) -> HttpResponse:
    database = _database()
    broker, workers = _broker_and_workers()
    body: dict = {"database": database, "broker": broker, "workers": workers}
    if broker == "ok" and not workers:
        body["warning"] = "no worker answered: pretraining, retrains and imports wait until one runs"
    ok = database == "ok" and broker == "ok"
    response = JsonResponse(body, status=200 if ok else 503)
    response["Cache-Control"] = "no-store"
    return response


class HealthMiddleware:
    def __init__(self, get_response) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if request.path == PATH and request.method in ("GET", "HEAD"):
            return health(request)
        return self.get_response(request)
