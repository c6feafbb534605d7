"""Server CPU and SQL queries per label on the annotator hot path (GET next item + POST submit).

In-process and single-threaded, so the figure means something on a shared, noisy machine: the
requests go straight into Django's WSGI handler (what gunicorn calls), with an API token as the
load benchmark's annotators send, and ``time.process_time()`` is read around each call. The
database server's own CPU is not counted (as in bench-load's ``server_cpu_ms_per_label``). A
warm-up, then ``--pairs`` next+submit pairs rotating over ``--annotators`` users; the median of
``--repeats`` timed passes is reported, and a separate pass counts queries
(``CaptureQueriesContext``, whose bookkeeping would otherwise be timed).

    python -m bench.label_cpu [--db sqlite,postgres] [--pairs 200] [--repeats 3] [--budget N] [--labelled N]
                              [--holding N] [--profile 25] [--sql] [--gunicorn] [--write]

SQLite lives in a temp dir; PostgreSQL is a throwaway cluster (tests/pg.py, durable like a real
server). With a budget (the default) the budget checks run on every reservation and submit.
``make bench-label-cpu`` runs both databases with ``--labelled 10000 --gunicorn --write``
(bench/results/label_cpu.json). ``--holding N``: N other annotators hold two items each for the
whole run, as a crowd does (bench-load); every reservation has to look past them.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

from bench.annotate import ROOT

RESULTS = ROOT / "bench" / "results" / "label_cpu.json"


def _call(handler, *, method: str, path: str, token: str, body: dict | None = None, query: str = ""):
    data = json.dumps(body).encode() if body is not None else b""
    environ = {
        "REQUEST_METHOD": method,
        "PATH_INFO": path,
        "QUERY_STRING": query,
        "SCRIPT_NAME": "",
        "SERVER_NAME": "127.0.0.1",
        "SERVER_PORT": "8000",
        "SERVER_PROTOCOL": "HTTP/1.1",
        "HTTP_HOST": "127.0.0.1",
        "HTTP_AUTHORIZATION": f"Token {token}",
        "REMOTE_ADDR": "127.0.0.1",
        "CONTENT_TYPE": "application/json",
        "CONTENT_LENGTH": str(len(data)),
        "wsgi.input": io.BytesIO(data),
        "wsgi.errors": sys.stderr,
        "wsgi.url_scheme": "http",
        "wsgi.version": (1, 0),
        "wsgi.multithread": True,
        "wsgi.multiprocess": True,
        "wsgi.run_once": False,
    }
    status: list[str] = []
    result = handler(environ, lambda s, headers, exc_info=None: status.append(s))
    try:
        payload = b"".join(result)
    finally:
        result.close()  # request_finished: what a server does after each response
    return int(status[0].split()[0]), (json.loads(payload) if payload else None)


def _pair(handler, seeded: dict, i: int) -> tuple[float, float, dict]:
    """One next + submit as annotator ``i``; returns the CPU seconds of each and the next answer."""
    token = seeded["tokens"][i % len(seeded["tokens"])]
    t0 = time.process_time()
    status, body = _call(
        handler, method="GET", path=f"/api/projects/{seeded['project']}/queue/next", token=token
    )
    t1 = time.process_time()
    if status != 200 or body["assignment"] is None:
        raise RuntimeError(f"next item: {status} {body}")
    label = seeded["labels"][i % len(seeded["labels"])]
    status, answer = _call(
        handler,
        method="POST",
        path=f"/api/assignments/{body['assignment']['id']}/submit",
        token=token,
        body={"label": label, "seconds_spent": 1.5},
    )
    t2 = time.process_time()
    if status != 201:
        raise RuntimeError(f"submit: {status} {answer}")
    return t1 - t0, t2 - t1, body


def _past_labels(*, project_id: int, n: int) -> None:
    """``n`` labelled images with their annotations, by one past annotator: what the budget check
    counts in a project that has been running a while (bench-load ends near 50,000)."""
    from django.contrib.auth import get_user_model
    from django.db import connection

    from labelling.models import Annotation, Image, LabelClass
    from labelling.models.image import ImageStatus

    user, _ = get_user_model().objects.get_or_create(username="bench-past-annotator")
    label = LabelClass.objects.filter(project_id=project_id).first()
    for start in range(0, n, 5000):
        images = Image.objects.bulk_create(
            Image(project_id=project_id, sha256=f"past{project_id:012x}{i:048x}", storage_key=f"past/{i}",
                  width=28, height=28, format="PNG", status=ImageStatus.LABELLED)
            for i in range(start, min(n, start + 5000))
        )  # fmt: skip
        Annotation.objects.bulk_create(Annotation(image=im, annotator=user, label=label) for im in images)
    try:  # the budget's counter (migration 0003); absent when measuring the code from before it
        from labelling.models import AnnotationCount
    except ImportError:
        pass
    else:
        AnnotationCount.objects.create(project_id=project_id, annotator=user, annotations=n)
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("ANALYZE")  # as autovacuum would have after so many inserts: realistic plans


def _backend_cpu(connection) -> tuple[int, float] | None:
    """(pid, CPU seconds) of this connection's PostgreSQL backend process; None on SQLite."""
    if connection.vendor != "postgresql":
        return None
    from bench.annotate import cpu_seconds

    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        pid = cursor.fetchone()[0]
    return pid, cpu_seconds(pid)


def measure(
    *,
    pairs: int,
    repeats: int,
    annotators: int,
    budget: int | None,
    labelled: int,
    profile: int,
    sql: bool,
    holding: int = 0,
) -> dict:
    """Run inside a process whose environment points Django at the database under test."""
    import django

    django.setup()
    from django.core.handlers.wsgi import WSGIHandler
    from django.core.management import call_command
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from bench.annotate import seed_in_django

    call_command("migrate", verbosity=0)
    warmup = 30
    wanted = warmup + pairs * (repeats + 1) + 10
    budget = None if budget == 0 else (budget or labelled + wanted * 10)
    wanted += 2 * holding
    seeded = seed_in_django(images=wanted + 50, annotators=annotators + holding, budget=budget, per_image=1)
    if labelled:
        _past_labels(project_id=seeded["project"], n=labelled)
    handler = WSGIHandler()
    # A crowd's live reservations: ``holding`` more annotators each hold two items (the current one
    # and the one ahead, as the UI asks) at the top of the queue for the whole run, as 200 thinking
    # annotators do in bench-load; every reservation below has to look past them.
    for token in seeded["tokens"][:holding]:
        status, body = _call(
            handler, method="GET", path=f"/api/projects/{seeded['project']}/queue/next", token=token,
            query="lookahead=1",
        )  # fmt: skip
        assert status == 200 and body["upcoming"], (status, body)
    seeded = {**seeded, "tokens": seeded["tokens"][holding:]}
    n = 0
    for _ in range(warmup):
        _pair(handler, seeded, n)
        n += 1

    # Queries: one pass with the capture on.
    next_q, submit_q = [], []
    for _ in range(pairs):
        token = seeded["tokens"][n % len(seeded["tokens"])]
        with CaptureQueriesContext(connection) as nq:
            status, body = _call(
                handler, method="GET", path=f"/api/projects/{seeded['project']}/queue/next", token=token
            )
        with CaptureQueriesContext(connection) as sq:
            _call(
                handler,
                method="POST",
                path=f"/api/assignments/{body['assignment']['id']}/submit",
                token=token,
                body={"label": seeded["labels"][0], "seconds_spent": 1.5},
            )
        next_q.append(len(nq.captured_queries))
        submit_q.append(len(sq.captured_queries))
        n += 1
    if sql:
        for title, queries in (("next", nq.captured_queries), ("submit", sq.captured_queries)):
            print(f"--- {title}: {len(queries)} queries")
            for q in queries:
                print(f"  {q['sql'][:300]}")
                if connection.vendor == "postgresql" and q["sql"].startswith("SELECT"):
                    # What the database spends on it (a repeat: the rows are there, warm in cache).
                    with connection.cursor() as cursor:
                        cursor.execute("EXPLAIN (ANALYZE, FORMAT JSON) " + q["sql"])
                        plan = cursor.fetchone()[0][0]
                    print(f"      {plan['Execution Time']:.3f} ms in PostgreSQL")
                    if plan["Execution Time"] > 1.0:  # worth reading: the plan
                        with connection.cursor() as cursor:
                            cursor.execute("EXPLAIN (ANALYZE, BUFFERS) " + q["sql"])
                            print("\n".join("        " + r[0] for r in cursor.fetchall()))

    profiler = None
    if profile:
        import cProfile

        profiler = cProfile.Profile(time.process_time)  # CPU, not waits on the database
    passes = []
    db_before = _backend_cpu(connection)
    for _ in range(repeats):
        next_s, submit_s = [], []
        if profiler:
            profiler.enable()
        for _ in range(pairs):
            a, b, _body = _pair(handler, seeded, n)
            next_s.append(a)
            submit_s.append(b)
            n += 1
        if profiler:
            profiler.disable()
        passes.append((sum(next_s) / pairs * 1000, sum(submit_s) / pairs * 1000))
    if profiler:
        import pstats

        stats = pstats.Stats(profiler)
        stats.sort_stats("cumulative").print_stats(profile)
        stats.sort_stats("tottime").print_stats(profile)
    db_after = _backend_cpu(connection)
    db_ms = None
    if db_before and db_after and db_before[0] == db_after[0]:  # one persistent connection throughout
        db_ms = round((db_after[1] - db_before[1]) * 1000 / (pairs * repeats), 2)
    next_ms = statistics.median(p[0] for p in passes)
    submit_ms = statistics.median(p[1] for p in passes)
    return {
        "db": connection.vendor,
        "pairs": pairs,
        "repeats": repeats,
        "budget": budget,
        "labelled_before": labelled,
        "holding": holding,
        "next_cpu_ms": round(next_ms, 2),
        "submit_cpu_ms": round(submit_ms, 2),
        "cpu_ms_per_label": round(next_ms + submit_ms, 2),
        "next_queries": statistics.median(next_q),
        "submit_queries": statistics.median(submit_q),
        "queries_per_label": statistics.median(a + b for a, b in zip(next_q, submit_q, strict=True)),
        "passes_ms": [round(a + b, 2) for a, b in passes],
        # The PostgreSQL backend's own CPU per label (mean over all passes; clock ticks, so coarse).
        "db_cpu_ms_per_label": db_ms,
    }


def _run_child(database_url: str, var_dir: Path, args: argparse.Namespace) -> dict:
    """A fresh interpreter per database: Django binds its settings once per process."""
    import subprocess

    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "labelling.settings",
        "DATABASE_URL": database_url,
        "VAR_DIR": str(var_dir),
        "MEDIA_ROOT": str(var_dir / "media"),
        "DEBUG": "0",
        "LOG_LEVEL": "WARNING",
    }
    env.pop("CELERY_TASK_ALWAYS_EAGER", None)
    cmd = [sys.executable, "-m", "bench.label_cpu", "child", "--pairs", str(args.pairs), "--repeats",
           str(args.repeats), "--annotators", str(args.annotators), "--budget", str(args.budget), "--labelled", str(args.labelled),
           "--profile", str(args.profile), "--holding", str(args.holding)] + (["--sql"] if args.sql else [])  # fmt: skip
    out = subprocess.run(cmd, env=env, cwd=ROOT, capture_output=True, text=True)
    if out.returncode:
        raise RuntimeError(f"measurement failed:\n{out.stdout[-3000:]}\n{out.stderr[-5000:]}")
    lines = out.stdout.strip().splitlines()
    if len(lines) > 1:
        print("\n".join(lines[:-1]))
    return json.loads(lines[-1])


def _run_gunicorn(database_url: str, var_dir: Path, args: argparse.Namespace) -> dict:
    """The same pairs over HTTP to gunicorn as bench-load serves them (gthread, one worker here),
    from one client thread: the server process's CPU per label, HTTP parsing and threads included
    (bench-load's ``server_cpu_ms_per_label``, without the load). Clock ticks: use many pairs."""
    from bench.annotate import Http, Server, cpu_seconds, migrate, seed, server_env

    env = server_env(database_url=database_url, var_dir=var_dir, debug=False)
    migrate(env)
    warmup, pairs = 30, args.pairs * args.repeats
    budget = None if args.budget == 0 else (args.budget if args.budget > 0 else (warmup + pairs) * 10)
    data = seed(env=env, images=warmup + pairs + 50, annotators=args.annotators, budget=budget)
    with Server("gunicorn", env=env, log_path=var_dir / "gunicorn.log", workers=1, threads=8) as server:
        clients = [Http(server.port, token) for token in data["tokens"]]

        def pair(i: int) -> None:
            http = clients[i % len(clients)]
            status, body = http.call("GET", f"/api/projects/{data['project']}/queue/next")
            assert status == 200 and body["assignment"], (status, body)
            label = data["labels"][i % len(data["labels"])]
            status, answer = http.call(
                "POST", f"/api/assignments/{body['assignment']['id']}/submit", {"label": label}
            )
            assert status == 201, (status, answer)

        for i in range(warmup):
            pair(i)
        before = cpu_seconds(server.proc.pid)
        for i in range(warmup, warmup + pairs):
            pair(i)
        cpu = cpu_seconds(server.proc.pid) - before
        for http in clients:
            http.close()
    return {
        "server": "gunicorn 1x8 gthread",
        "pairs": pairs,
        "server_cpu_ms_per_label": round(cpu * 1000 / pairs, 2),
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("mode", nargs="?", default="run", choices=["run", "child"])
    parser.add_argument("--db", default="sqlite,postgres")
    parser.add_argument("--pairs", type=int, default=200)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--annotators", type=int, default=8)
    parser.add_argument("--budget", type=int, default=-1, help="0: no budget; default: far above the run")
    parser.add_argument("--labelled", type=int, default=0, help="labels given before the run (budget counts)")
    parser.add_argument("--profile", type=int, default=0, help="print the top N functions (cProfile)")
    parser.add_argument(
        "--holding", type=int, default=0, help="other annotators holding two items each throughout"
    )
    parser.add_argument("--sql", action="store_true", help="print the SQL of the last next and submit")
    parser.add_argument("--gunicorn", action="store_true", help="also over HTTP to gunicorn (PostgreSQL)")
    parser.add_argument("--write", action="store_true", help=f"write the records to {RESULTS.name}")
    args = parser.parse_args()
    if args.mode == "child":
        budget = None if args.budget < 0 else args.budget
        print(json.dumps(measure(pairs=args.pairs, repeats=args.repeats, annotators=args.annotators,
                                 budget=budget, labelled=args.labelled, profile=args.profile, sql=args.sql,
                                 holding=args.holding)))  # fmt: skip
        return
    records = []
    for db in args.db.split(","):
        with tempfile.TemporaryDirectory(prefix="label-cpu-") as tmp:
            var_dir = Path(tmp)
            if db == "sqlite":
                records.append(_run_child(f"sqlite:///{var_dir / 'db.sqlite3'}", var_dir, args))
            elif db == "postgres":
                from tests.pg import PostgresCluster

                with PostgresCluster(durable=True) as pg:
                    records.append(_run_child(pg.create_database("label_cpu"), var_dir, args))
                    if args.gunicorn:
                        served = _run_gunicorn(pg.create_database("label_cpu_http"), var_dir / "http", args)
                        records[-1]["gunicorn"] = served
            else:
                raise SystemExit(f"unknown database {db!r}")
    print(
        f"{'db':<11}{'next ms':>9}{'submit ms':>11}{'ms/label':>10}{'next q':>8}{'submit q':>10}{'q/label':>9}"
        f"{'db ms/label':>13}"
    )
    for r in records:
        print(
            f"{r['db']:<11}{r['next_cpu_ms']:>9}{r['submit_cpu_ms']:>11}{r['cpu_ms_per_label']:>10}"
            f"{r['next_queries']:>8}{r['submit_queries']:>10}{r['queries_per_label']:>9}"
            f"{r['db_cpu_ms_per_label'] if r['db_cpu_ms_per_label'] is not None else '-':>13}"
        )
        if "gunicorn" in r:
            g = r["gunicorn"]
            print(f"  over HTTP, {g['server']}: {g['server_cpu_ms_per_label']} ms of server CPU per label")
    from bench.annotate import machine

    if args.write:
        RESULTS.write_text(json.dumps({"machine": machine(), "records": records}, indent=2) + "\n")
        print(f"written: {RESULTS.relative_to(ROOT)}")
    else:
        print(json.dumps(records))


if __name__ == "__main__":
    main()
