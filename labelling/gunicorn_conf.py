"""gunicorn settings for the web process: ``gunicorn -c python:labelling.gunicorn_conf labelling.wsgi``.

Defaults measured with ``make bench-load`` (200 annotators, PostgreSQL, 2 cores): one worker process
per core, each with 2 threads. The request path is short CPU work between database round trips, so a
few threads per process keep the cores busy while more only queue on the interpreter lock: at the
same 94 labels/s, 2 workers x 8 threads gave next-item p95 / p99 of 110 / 204-284 ms, 2 x 4 gave 77 /
243, 2 x 2 gave 63 / 100 and 2 x 1 gave 94 / 170 (150 s runs, listed in docs/reliability.md under
"gunicorn threads"; bench/results/load.json keeps only the last full run).
Override with GUNICORN_WORKERS, GUNICORN_THREADS, GUNICORN_BIND and GUNICORN_TIMEOUT.
"""

import os

bind = os.environ.get("GUNICORN_BIND", "0.0.0.0:8000")
worker_class = "gthread"
workers = int(
    os.environ.get(
        "GUNICORN_WORKERS",
        len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 2,
    )
)
threads = int(os.environ.get("GUNICORN_THREADS", 2))
timeout = int(os.environ.get("GUNICORN_TIMEOUT", 120))  # uploads and zip imports of large pools
keepalive = 5  # annotators come back every few seconds
