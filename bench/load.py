"""`make bench-load`: a labelling team under load, on PostgreSQL, gunicorn and a real worker.

Each simulated annotator is an asyncio task with its own user, API token and keep-alive connection:
it asks for the next item, looks at it for 1-3 s (uniform, as people do), submits a label, and
again, until the time is up or the label budget is spent. One event loop in one thread carries all
200, lighter than 200 client threads (which gave p95 101 ms where this client measured 89 on the
same server). Loopback only. Meanwhile a real Celery worker (embedded Redis) imports a zip of real
images into a second project every minute, through the same API and the same database, so the
service is not idle behind the annotators.

After the run the database is asked, by SQL (bench.annotate.audit): items held by more people
than they need (``duplicates``), 2xx submits without their row (``lost``), labels over the budget.
Every non-2xx answer is counted by status and code; 5xx separately. The record goes to
bench/results/load.json in bench-annotate's record format, plus ``think_time_s``.

    python -m bench.load [--annotators 200] [--seconds 600] [--think 1,3] [--budget N]
    python -m bench.load seed-imports   (internal: a project + engineer token for the worker's imports)
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from bench.annotate import (
    ROOT,
    AnnotatorLog,
    AsyncHttp,
    Server,
    annotator,
    audit,
    cpu_seconds,
    machine,
    machine_busy_seconds,
    merge_logs,
    migrate,
    overlapping_holds,
    pct,
    seed,
    server_env,
)
from bench.common import stop_process

RESULTS = ROOT / "bench" / "results" / "load.json"
GOAL = {"next_p95_ms": 50, "next_p99_ms": 150, "duplicates": 0, "lost": 0, "errors_5xx": 0, "over_budget": 0}


# --- the annotators: asyncio tasks ------------------------------------------------------------------


def run_crowd(port: int, tokens: list[str], logs: list[AnnotatorLog], **task) -> threading.Thread:
    """All annotators as tasks of one event loop, in a thread of their own (started here)."""

    async def crowd() -> None:
        await asyncio.gather(
            *(annotator(http=AsyncHttp(port, token), log=log, seed=i, retry_delay=1.0, **task)
              for i, (token, log) in enumerate(zip(tokens, logs, strict=True)))
        )  # fmt: skip

    thread = threading.Thread(target=asyncio.run, args=(crowd(),), daemon=True)
    thread.start()
    return thread


# --- the worker's side load ---------------------------------------------------------------------------


def seed_imports_in_django() -> dict:
    import django

    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "labelling.settings")
    django.setup()
    from django.contrib.auth import get_user_model
    from rest_framework.authtoken.models import Token

    from labelling.services.projects import project_create

    user, _ = get_user_model().objects.get_or_create(
        username="bench-engineer"
    )  # admin of it: engineer rights
    project = project_create(name=f"bench imports {time.time_ns()}", labels=["a", "b"], created_by=user)
    return {"project": project.id, "token": Token.objects.get_or_create(user=user)[0].key}


def _zip_of_images(n: int, seed: int) -> bytes:
    import io
    import zipfile

    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(seed)
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for i in range(n):
            png = io.BytesIO()
            Image.fromarray(rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)).save(png, format="PNG")
            zf.writestr(f"img/{seed}-{i}.png", png.getvalue())
    return buf.getvalue()


def _post_zip(port: int, token: str, project: int, data: bytes) -> tuple[int, dict]:
    import http.client

    boundary = "benchloadboundary"
    body = (
        (
            f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="i.zip"\r\n'
            "Content-Type: application/zip\r\n\r\n"
        ).encode()
        + data
        + f"\r\n--{boundary}--\r\n".encode()
    )
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    conn.request(
        "POST",
        f"/api/projects/{project}/imports",
        body=body,
        headers={
            "Authorization": f"Token {token}",
            "Content-Type": f"multipart/form-data; boundary={boundary}",
        },
    )
    response = conn.getresponse()
    answer = json.loads(response.read() or b"{}")
    conn.close()
    return response.status, answer


def start_worker(env: dict, log_path: Path) -> subprocess.Popen:
    log = open(log_path, "w")  # noqa: SIM115  (closed with the process)
    proc = subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", "workers", "worker", "--loglevel", "INFO", "--concurrency", "1",
         "--without-mingle", "--without-gossip", "--hostname", f"bench-load-{os.getpid()}@%h"],
        cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
    )  # fmt: skip
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"worker exited:\n{log_path.read_text()[-3000:]}")
        if " ready." in log_path.read_text():
            return proc
        time.sleep(0.2)
    proc.kill()
    raise RuntimeError(f"worker not ready in 90 s:\n{log_path.read_text()[-3000:]}")


# --- the annotators -------------------------------------------------------------------------------------


def run_load(*, database_url: str, var_dir: Path, annotators: int, seconds: float,
             think: tuple[float, float] = (1.0, 3.0), budget: int | None = None, workers: int = 2,
             threads: int = 2, import_every: float = 60.0, quiet: bool = False,
             db_pid: int | None = None) -> dict:  # fmt: skip
    """One run against the database at ``database_url`` (migrated here); returns the record.
    ``db_pid``: the database server's process, to count its CPU in the record's breakdown."""
    from workers import embedded_redis

    say = (lambda *a: None) if quiet else print
    var_dir.mkdir(parents=True, exist_ok=True)
    mean_think = sum(think) / 2
    expected = int(annotators * seconds / (mean_think + 0.05))
    if budget is None:
        budget = max(annotators, int(0.8 * expected))  # spent near the end: the budget is tested under load
    images = int((budget or expected) * 1.5) + annotators
    redis_dir = Path(tempfile.mkdtemp(prefix="bl-", dir="/tmp"))  # unix socket paths are short
    redis = embedded_redis.start(redis_dir / "redis.sock")
    worker = None
    try:
        env = server_env(database_url=database_url, var_dir=var_dir, debug=False)
        env["REDIS_URL"] = f"redis+socket://{redis_dir / 'redis.sock'}"
        migrate(env)
        say(f"seeding {images} queued images, {annotators} annotators, budget {budget or 'none'}")
        data = seed(env=env, images=images, annotators=annotators, budget=budget or None)
        out = subprocess.run(
            [sys.executable, "-m", "bench.load", "seed-imports"],
            env=env,
            cwd=ROOT,
            capture_output=True,
            text=True,
        )
        if out.returncode:
            raise RuntimeError(f"seeding the imports project failed:\n{out.stderr[-3000:]}")
        imports = json.loads(out.stdout.strip().splitlines()[-1])
        worker = start_worker(env, var_dir / "worker.log")
        with Server(
            "gunicorn", env=env, log_path=var_dir / "gunicorn.log", workers=workers, threads=threads
        ) as server:
            logs = [AnnotatorLog(client=i) for i in range(annotators)]
            pids = {"gunicorn": server.proc.pid, "worker": worker.pid, "postgresql": db_pid}
            cpu0 = _cpu_now(pids)
            deadline = time.monotonic() + seconds
            t0 = time.perf_counter()
            crowd = run_crowd(server.port, data["tokens"][:annotators], logs, project=data["project"],
                              labels=data["labels"], deadline=deadline, think=think)  # fmt: skip
            jobs: list[int] = []
            import_errors: list[str] = []
            next_import = time.monotonic()
            while crowd.is_alive():
                if import_every and time.monotonic() >= next_import and time.monotonic() < deadline:
                    status, answer = _post_zip(server.port, imports["token"], imports["project"],
                                               _zip_of_images(50, seed=len(jobs)))  # fmt: skip
                    (
                        jobs.append(answer["id"])
                        if status == 202
                        else import_errors.append(f"{status} {answer}")
                    )
                    next_import = time.monotonic() + import_every
                if not quiet:
                    done = sum(log.labels for log in logs)
                    print(f"\r{time.perf_counter() - t0:6.0f} s  {done:6d} labels", end="", flush=True)
                time.sleep(1.0)
            elapsed = time.perf_counter() - t0
            cpu = {role: now - cpu0[role] for role, now in _cpu_now(pids).items()}
            say()
        jobs_done = _wait_jobs(database_url, jobs, timeout=120)
        checked = audit(database_url, data["project"], logs)
    finally:
        if worker is not None:
            stop_process(worker)
        embedded_redis.stop(redis)
    next_ms, submit_ms, statuses, total = merge_logs(logs)
    return {
        "db": "postgresql",
        "server": f"gunicorn {workers}x{threads} gthread",
        "clients": annotators,
        "think_time_s": list(think),
        "labels": total,
        "seconds": round(elapsed, 2),
        "labels_per_s": round(total / elapsed, 1),
        "next_requests": len(next_ms),
        "next_p50_ms": pct(next_ms, 50),
        "next_p95_ms": pct(next_ms, 95),
        "next_p99_ms": pct(next_ms, 99),
        # does the latency drift as the run goes on (tables grow, the database checkpoints)?
        "next_p95_ms_by_minute": _p95_by_minute(logs, t0),
        "submit_p50_ms": pct(submit_ms, 50),
        "submit_p95_ms": pct(submit_ms, 95),
        "submit_p99_ms": pct(submit_ms, 99),
        "duplicates": overlapping_holds(logs) + checked["over_held"],
        "lost": checked["lost"],
        "annotations_in_db": checked["annotations"],
        "budget": budget,
        "over_budget": max(0, checked["annotations"] - budget) if budget else 0,
        "budget_spent": {log.empty_reason for log in logs} == {"budget_exhausted"},
        # annotators told "nothing to label" before the end (and why): with a budget left and a full
        # queue there should be none
        "annotators_stopped_early": {
            reason: sum(log.empty_reason == reason for log in logs)
            for reason in sorted({log.empty_reason for log in logs if log.empty_reason})
        },
        "errors": sum(statuses.values()),
        "errors_5xx": sum(n for key, n in statuses.items() if key[:1] == "5" or key[:1] == "0"),
        "error_kinds": statuses,
        "worker_imports": {"sent": len(jobs), "succeeded": jobs_done, "refused": import_errors},
        "server_cpu_ms_per_label": round(cpu["gunicorn"] * 1000 / max(total, 1), 1),
        "server_cpu_share": round(cpu["gunicorn"] / elapsed, 2),
        # where the machine's CPU went during the run, per label given: the web server, the database,
        # the Celery worker, this load client (the annotators' event loop), and everything on the
        # machine together (ours and anyone else's); busy share = of all cores
        "cpu_ms_per_label": {
            role: round(seconds * 1000 / max(total, 1), 2)
            for role, seconds in cpu.items()
            if role != "machine_total"
        },
        "machine_busy_share": round(cpu["machine"] / max(cpu["machine_total"], 1e-9), 3),
    }


def _p95_by_minute(logs: list[AnnotatorLog], t0: float) -> list[float | None]:
    """p95 of next-item latency in each minute of the run (the last one may be partial)."""
    minutes: dict[int, list[float]] = {}
    for log in logs:
        for at, ms in zip(log.next_at, log.next_ms, strict=True):
            minutes.setdefault(int((at - t0) // 60), []).append(ms)
    return [pct(minutes.get(m, []), 95) for m in range(max(minutes, default=-1) + 1)]


def _cpu_now(pids: dict[str, int | None]) -> dict[str, float]:
    """CPU seconds used so far by each process tree in ``pids`` (those given), by this process (the
    client) and by the machine (busy, and busy + idle over all cores)."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    busy, total = machine_busy_seconds()
    return {
        **{role: cpu_seconds(pid) for role, pid in pids.items() if pid is not None},
        "client": usage.ru_utime + usage.ru_stime,
        "machine": busy,
        "machine_total": total,
    }


def _wait_jobs(database_url: str, jobs: list[int], *, timeout: float) -> int:
    """How many of the worker's import jobs succeeded (waiting up to ``timeout`` for the last)."""
    from bench.annotate import db_connect

    if not jobs:
        return 0
    deadline = time.monotonic() + timeout
    while True:
        conn, p = db_connect(database_url)
        try:
            rows = conn.execute(
                f"SELECT state FROM labelling_job WHERE id IN ({', '.join([p] * len(jobs))})", jobs
            ).fetchall()
        finally:
            conn.close()
        states = [r[0] for r in rows]
        if all(s in ("succeeded", "failed", "cancelled") for s in states) or time.monotonic() > deadline:
            return states.count("succeeded")
        time.sleep(1.0)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.load", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command")
    sub.add_parser("seed-imports", help="(internal) a project and engineer token for the worker's imports")
    parser.add_argument("--annotators", type=int, default=200)
    parser.add_argument("--seconds", type=float, default=600)
    parser.add_argument("--think", default="1,3", help="think time range in seconds, uniform")
    parser.add_argument(
        "--budget", type=int, default=None, help="label budget (default: 80%% of expected; 0: none)"
    )
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 2, help="gunicorn workers")
    parser.add_argument(
        "--threads", type=int, default=2, help="gunicorn threads per worker (labelling/gunicorn_conf.py)"
    )
    parser.add_argument(
        "--import-every", type=float, default=60, help="seconds between worker imports (0: none)"
    )
    parser.add_argument("--out", default=str(RESULTS))
    args = parser.parse_args(argv)
    if args.command == "seed-imports":
        print(json.dumps(seed_imports_in_django()))
        return
    from tests.pg import PostgresCluster

    think = tuple(float(x) for x in args.think.split(","))
    info = machine()
    with tempfile.TemporaryDirectory(prefix="bench-load-") as tmp, PostgresCluster(durable=True) as pg:
        record = run_load(
            database_url=pg.create_database("load"), var_dir=Path(tmp) / "var", annotators=args.annotators,
            seconds=args.seconds, think=think, budget=args.budget, workers=args.workers, threads=args.threads,
            import_every=args.import_every, db_pid=pg.server_pid(),
        )  # fmt: skip
    print(json.dumps(record, indent=2))
    met = {
        "next_p95_ms": record["next_p95_ms"] is not None and record["next_p95_ms"] < GOAL["next_p95_ms"],
        "next_p99_ms": record["next_p99_ms"] is not None and record["next_p99_ms"] < GOAL["next_p99_ms"],
        **{k: record[k] == 0 for k in ("duplicates", "lost", "errors_5xx", "over_budget")},
    }
    out = {
        "benchmark": f"load: {args.annotators} annotators, think {args.think} s, {args.seconds:g} s, "
        "PostgreSQL (durable) + gunicorn + a Celery worker importing zips, loopback",
        "machine": info,
        "goal": GOAL,
        "goal_met": met,
        "records": [record],
    }
    path = Path(args.out)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(out, indent=2) + "\n")
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
