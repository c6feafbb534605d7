"""`make bench-annotate`: the annotator loop under load, on SQLite and on PostgreSQL.

The closed loop Label Studio 1.23.2 was measured with on this machine: each simulated annotator is
a thread with its own user and API token that repeats next-item then submit, no think time, until
it has given ``--labels`` labels or ``--seconds`` have passed; at 1, 8 and 32 annotators. SQLite is
served by what `make run` starts (``manage.py runserver --noreload``, DEBUG off); PostgreSQL (a
throwaway cluster with default durability) by gunicorn. Each run gets a fresh project and queue.

Afterwards the database is checked: ``duplicates`` counts images two annotators held at the same
time (seen by the clients, and any item with more live reservations than it needs, by SQL), and
``lost`` counts 2xx submits whose annotation row is missing. Results go to
bench/results/annotate.json.

    python -m bench.annotate [--clients 1,8,32] [--labels 200] [--seconds 60] [--db sqlite,postgres]
    python -m bench.annotate seed ...   (internal: creates a project, run inside Django)
"""

from __future__ import annotations

import argparse
import asyncio
import http.client
import json
import os
import platform
import random
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from bench.common import stop_process

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results" / "annotate.json"
LABELS = ["cat", "dog", "bird", "fish"]
# Label Studio 1.23.2, same loop, same machine (issue 6): labels/s and p95 next-task ms.
LABEL_STUDIO = {
    "postgresql_uwsgi_4": {1: (8.7, 67), 8: (15.6, 304), 32: (12.9, 1445)},
    "sqlite_default": {32: (2.9, 17800)},
}


# --- data: a fresh project, annotators with tokens, a queue ------------------------------------------


def seed_in_django(*, images: int, annotators: int, budget: int | None, per_image: int) -> dict:
    """Runs inside a Django process pointed at the database under test."""
    import django

    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "labelling.settings")
    django.setup()
    from django.contrib.auth import get_user_model
    from django.db import transaction
    from rest_framework.authtoken.models import Token

    from labelling.models import Image, Role, SelectionRound
    from labelling.services.projects import membership_set, project_create
    from labelling.services.queue import Pick, queue_fill

    User = get_user_model()
    with transaction.atomic():
        admin, _ = User.objects.get_or_create(username="bench-admin")
        project = project_create(
            name=f"bench {time.time_ns()}",
            labels=LABELS,
            created_by=admin,
            label_budget=budget,
            audit_fraction=0.0,
            annotations_per_image=per_image,
        )
        tokens = []
        for i in range(annotators):
            user, _ = User.objects.get_or_create(username=f"bench-annotator-{i:02d}")
            membership_set(project=project, user=user, role=Role.ANNOTATOR)
            tokens.append(Token.objects.get_or_create(user=user)[0].key)
        # Rows only: the loop never downloads an image, so no bytes are stored.
        rows = Image.objects.bulk_create(
            Image(project=project, sha256=f"{project.id:016x}{i:048x}", storage_key=f"bench/{project.id}/{i}",
                  width=28, height=28, format="PNG", size_bytes=0)
            for i in range(images)
        )  # fmt: skip
        rnd = SelectionRound.objects.create(
            project=project, number=1, strategy="random", requested_strategy="random", batch_size=images
        )
        queue_fill(project=project, round=rnd, picks=[Pick(im.id, 1.0, "bench") for im in rows])
    labels = list(project.label_classes.values_list("id", flat=True))
    return {"project": project.id, "tokens": tokens, "labels": labels}


def seed(*, env: dict, images: int, annotators: int, budget: int | None = None, per_image: int = 1) -> dict:
    """A fresh project in the database ``env`` points at: {"project", "tokens", "labels"}."""
    cmd = [sys.executable, "-m", "bench.annotate", "seed", "--images", str(images),
           "--annotators", str(annotators), "--per-image", str(per_image)]  # fmt: skip
    if budget is not None:
        cmd += ["--budget", str(budget)]
    out = subprocess.run(cmd, env=env, cwd=ROOT, capture_output=True, text=True)
    if out.returncode:
        raise RuntimeError(f"seeding failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def migrate(env: dict) -> None:
    out = subprocess.run(
        [sys.executable, "manage.py", "migrate", "--noinput", "-v", "0"],
        env=env,
        cwd=ROOT,
        capture_output=True,
    )
    if out.returncode:
        raise RuntimeError(f"migrate failed:\n{out.stderr.decode()[-3000:]}")


def server_env(*, database_url: str, var_dir: Path, debug: bool) -> dict:
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "labelling.settings",
        "DATABASE_URL": database_url,
        "VAR_DIR": str(var_dir),
        "MEDIA_ROOT": str(var_dir / "media"),
        "DEBUG": "1" if debug else "0",
        "DEV_SERVER": "1",  # as `make run`: HTTP cookies, static files from the apps
        "PYTHONUNBUFFERED": "1",
        "LOG_LEVEL": "WARNING",
    }
    env.pop("CELERY_TASK_ALWAYS_EAGER", None)
    return env


# --- the server under test ---------------------------------------------------------------------------


class Server:
    """``runserver`` (what `make run` starts) or gunicorn, as a child process, until the block ends."""

    def __init__(self, kind: str, *, env: dict, log_path: Path, workers: int = 4, threads: int = 8) -> None:
        from tests.pg import free_port

        self.kind, self.env, self.log_path = kind, env, log_path
        self.port = free_port()
        if kind == "runserver":
            self.cmd = [sys.executable, "manage.py", "runserver", f"127.0.0.1:{self.port}", "--noreload"]
            self.label = "runserver (make run)"
        elif kind == "gunicorn":
            self.cmd = [sys.executable, "-m", "gunicorn", "labelling.wsgi:application",
                        "-b", f"127.0.0.1:{self.port}", "-w", str(workers), "-k", "gthread",
                        "--threads", str(threads), "--log-level", "warning"]  # fmt: skip
            self.label = f"gunicorn {workers}x{threads} gthread"
        else:
            raise ValueError(kind)
        self.proc: subprocess.Popen | None = None

    def __enter__(self) -> Server:
        self._log = open(self.log_path, "w")  # noqa: SIM115  (closed in __exit__)
        self.proc = subprocess.Popen(
            self.cmd, env=self.env, cwd=ROOT, stdout=self._log, stderr=subprocess.STDOUT
        )
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.kind} exited:\n{self.log_path.read_text()[-3000:]}")
            try:
                conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=2)
                conn.request("GET", "/api/me")
                conn.getresponse().read()
                conn.close()
                return self
            except OSError:
                time.sleep(0.2)
        self.__exit__()
        raise RuntimeError(f"{self.kind} did not answer in 60 s:\n{self.log_path.read_text()[-3000:]}")

    def __exit__(self, *exc) -> None:
        if self.proc is not None:
            stop_process(self.proc, timeout=20)
        self._log.close()


# --- the closed loop ---------------------------------------------------------------------------------


class Http:
    """One keep-alive connection with an API token; reconnects (once per call) when it drops."""

    def __init__(self, port: int, token: str, *, keep_alive: bool = True) -> None:
        self.port = port
        self.headers = {"Authorization": f"Token {token}", "Content-Type": "application/json"}
        if not keep_alive:
            self.headers["Connection"] = "close"
        self.conn: http.client.HTTPConnection | None = None

    def call(self, method: str, path: str, body: dict | None = None) -> tuple[int, dict | None]:
        for attempt in (0, 1):
            try:
                if self.conn is None:
                    self.conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=120)
                self.conn.request(method, path, body=json.dumps(body) if body else None, headers=self.headers)
                response = self.conn.getresponse()
                data = response.read()
                if response.getheader("Connection", "").lower() == "close":
                    self.close()
                return response.status, (json.loads(data) if data else None)
            except (http.client.HTTPException, OSError) as exc:
                # A retried submit is safe: the server stores one annotation per reservation.
                self.close()
                if attempt:
                    return 0, {"error": {"code": "transport", "message": repr(exc)}}
        raise AssertionError("unreachable")

    def close(self) -> None:
        if self.conn is not None:
            self.conn.close()
            self.conn = None


class AsyncHttp:
    """One keep-alive HTTP/1.1 connection with an API token, on asyncio streams; reconnects (once per
    call) when it drops, like Http."""

    def __init__(self, port: int, token: str, *, timeout: float = 120.0) -> None:
        self.port, self.timeout = port, timeout
        self.head = f"Host: 127.0.0.1\r\nAuthorization: Token {token}\r\nContent-Type: application/json\r\n"
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def call(self, method: str, path: str, body: dict | None = None) -> tuple[int, dict | None]:
        payload = json.dumps(body).encode() if body else b""
        request = f"{method} {path} HTTP/1.1\r\n{self.head}Content-Length: {len(payload)}\r\n\r\n".encode()
        for attempt in (0, 1):
            try:
                return await asyncio.wait_for(self._exchange(request + payload), self.timeout)
            except (TimeoutError, OSError, EOFError, ValueError, asyncio.IncompleteReadError) as exc:
                # A retried submit is safe: the server stores one annotation per reservation.
                self.close()
                if attempt:
                    return 0, {"error": {"code": "transport", "message": repr(exc)}}
        raise AssertionError("unreachable")

    async def _exchange(self, request: bytes) -> tuple[int, dict | None]:
        if self.writer is None:
            self.reader, self.writer = await asyncio.open_connection("127.0.0.1", self.port)
        self.writer.write(request)
        status_line = await self.reader.readline()
        if not status_line:
            raise EOFError("the server closed the connection")
        status = int(status_line.split()[1])
        headers = {}
        while (line := await self.reader.readline()) not in (b"\r\n", b""):
            key, _, value = line.decode("latin-1").partition(":")
            headers[key.strip().lower()] = value.strip()
        if "content-length" in headers:
            data = await self.reader.readexactly(int(headers["content-length"]))
        elif headers.get("transfer-encoding", "").lower() == "chunked":
            data = b""
            while size := int((await self.reader.readline()).split(b";")[0], 16):
                data += await self.reader.readexactly(size)
                await self.reader.readline()
            await self.reader.readline()
        else:
            data = await self.reader.read()
            self.close()
        if headers.get("connection", "").lower() == "close":
            self.close()
        return status, (json.loads(data) if data else None)

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            self.reader = self.writer = None


@dataclass
class AnnotatorLog:
    client: int
    next_ms: list[float] = field(default_factory=list)
    next_at: list[float] = field(default_factory=list)  # when each next-item request was sent (perf_counter)
    submit_ms: list[float] = field(default_factory=list)
    labels: int = 0  # 201s
    # (image id, assignment id, asked for it, submit answered): perf_counter seconds. The hold lies
    # within; with no skips and no lapsed reservations an item never legitimately changes hands, so
    # any overlap of these intervals between more annotators than the overlap allows is a duplicate.
    holds: list[tuple[int, int, float, float]] = field(default_factory=list)
    acked: list[tuple[int, int, int]] = field(default_factory=list)  # (assignment, annotation, label) of 2xx
    repeats: int = 0  # double submits sent
    repeats_wrong: int = 0  # ...that did not answer 200 with the same annotation
    statuses: dict[str, int] = field(default_factory=dict)  # non-2xx answers, by status and code
    empty_reason: str | None = None

    def count(self, status: int, body: dict | None) -> None:
        code = ((body or {}).get("error") or {}).get("code", "")
        key = f"{status} {code}".strip()
        self.statuses[key] = self.statuses.get(key, 0) + 1


async def annotator(
    *, http: AsyncHttp, log: AnnotatorLog, project: int, labels: list[int], deadline: float,
    max_labels: float = float("inf"), double_submit_every: int = 0, seed: int,
    think: tuple[float, float] = (0.0, 0.0), retry_delay: float = 0.05,
) -> None:  # fmt: skip
    """One simulated annotator: next item, (think), submit, until the deadline or ``max_labels``.

    ``think`` (seconds, uniform) is 0 for the closed loop of bench-annotate and 1-3 s for
    bench-load, whose annotators also start at a random moment within the first think time.
    A coroutine: bench-load runs its 200 as tasks of one event loop, bench-annotate each in a thread
    of its own.
    """
    rng = random.Random(seed)
    next_path = f"/api/projects/{project}/queue/next"
    if think[1] > 0:
        await asyncio.sleep(rng.uniform(0, think[1]))  # people do not all start in the same millisecond
    while log.labels < max_labels and time.monotonic() < deadline:
        t0 = time.perf_counter()
        status, body = await http.call("GET", next_path)
        log.next_ms.append((time.perf_counter() - t0) * 1000)
        log.next_at.append(t0)
        if status != 200:
            log.count(status, body)
            await asyncio.sleep(retry_delay)
            continue
        assignment = body["assignment"]
        if assignment is None:
            log.empty_reason = body["empty_reason"]
            break
        label = rng.choice(labels)
        thought = 0.0
        if think[1] > 0:
            thought = rng.uniform(*think)
            await asyncio.sleep(thought)
        path = f"/api/assignments/{assignment['id']}/submit"
        t2 = time.perf_counter()
        status, answer = await http.call("POST", path, {"label": label, "seconds_spent": round(thought, 2)})
        t3 = time.perf_counter()
        log.submit_ms.append((t3 - t2) * 1000)
        log.holds.append((assignment["image"]["id"], assignment["id"], t0, t3))
        if status in (200, 201):
            log.acked.append((assignment["id"], answer["annotation_id"], label))
            log.labels += status == 201
            if double_submit_every and log.labels % double_submit_every == 0:
                # A double click / retry after a timeout: must answer 200 with the same annotation.
                log.repeats += 1
                again, again_body = await http.call("POST", path, {"label": label, "seconds_spent": 0})
                if again != 200 or again_body["annotation_id"] != answer["annotation_id"]:
                    log.repeats_wrong += 1
        else:
            log.count(status, answer)
    http.close()


def merge_logs(logs: list[AnnotatorLog]) -> tuple[list[float], list[float], dict[str, int], int]:
    """All annotators together: next-item and submit latencies (ms), error answers by kind, labels given."""
    next_ms = [x for log in logs for x in log.next_ms]
    submit_ms = [x for log in logs for x in log.submit_ms]
    statuses: dict[str, int] = {}
    for log in logs:
        for key, n in log.statuses.items():
            statuses[key] = statuses.get(key, 0) + n
    return next_ms, submit_ms, statuses, sum(log.labels for log in logs)


def cpu_seconds(pid: int) -> float:
    """User + system CPU of a process and its children (gunicorn's workers, PostgreSQL's
    backends), from /proc: the live children's own, plus what the children it has already reaped
    used (cutime, cstime: a backend that closed its connection)."""
    tick = os.sysconf("SC_CLK_TCK")
    total = 0.0
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(stat.parent.name) == pid:
            total += sum(int(x) for x in fields[11:15]) / tick  # utime, stime, cutime, cstime
        elif int(fields[1]) == pid:  # fields[1]: parent pid
            total += (int(fields[11]) + int(fields[12])) / tick
    return total


def machine_busy_seconds() -> tuple[float, float]:
    """(busy, total) CPU seconds of the whole machine so far, from /proc/stat: every core, every
    process, ours or not."""
    tick = os.sysconf("SC_CLK_TCK")
    user, nice, system, idle, iowait, irq, softirq, steal = (
        int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:9]
    )
    busy = user + nice + system + irq + softirq + steal
    return busy / tick, (busy + idle + iowait) / tick


def closed_loop(
    *, port: int, project: int, tokens: list[str], labels: list[int], seconds: float, max_labels: int,
    double_submit_every: int = 0,
) -> tuple[list[AnnotatorLog], float]:  # fmt: skip
    """Run one thread per token until each has ``max_labels`` labels or ``seconds`` passed."""
    logs = [AnnotatorLog(client=i) for i in range(len(tokens))]
    start_gate = threading.Barrier(len(tokens) + 1)

    def run(i: int) -> None:
        start_gate.wait()
        asyncio.run(annotator(
            http=AsyncHttp(port, tokens[i]), log=logs[i], project=project, labels=labels,
            deadline=deadline, max_labels=max_labels, double_submit_every=double_submit_every, seed=i,
        ))  # fmt: skip

    threads = [threading.Thread(target=run, args=(i,), daemon=True) for i in range(len(tokens))]
    for t in threads:
        t.start()
    deadline = time.monotonic() + seconds
    t0 = time.perf_counter()
    start_gate.wait()
    for t in threads:
        t.join()
    return logs, time.perf_counter() - t0


def overlapping_holds(logs: list[AnnotatorLog], *, per_image: int = 1) -> int:
    """Images more than ``per_image`` annotators held at the same time, as the clients saw it."""
    by_image: dict[int, list[tuple[float, int, int]]] = {}
    for log in logs:
        for image, _assignment, start, end in log.holds:
            events = by_image.setdefault(image, [])
            events += [(start, 1, log.client), (end, -1, log.client)]
    duplicates = 0
    for events in by_image.values():
        holders = 0
        # At equal times the release sorts first: touching intervals do not overlap.
        for _t, delta, _client in sorted(events, key=lambda e: (e[0], e[1])):
            holders += delta
            if holders > per_image:
                duplicates += 1
                break
    return duplicates


# --- checking the database -----------------------------------------------------------------------------


def db_connect(database_url: str):
    """A DB-API connection and its parameter marker, for the checks after a run."""
    if database_url.startswith("sqlite:///"):
        import sqlite3

        return sqlite3.connect(database_url.removeprefix("sqlite:///"), timeout=60), "?"
    import psycopg

    return psycopg.connect(database_url.replace("postgres://", "postgresql://", 1), autocommit=True), "%s"


def audit(database_url: str, project: int, logs: list[AnnotatorLog]) -> dict:
    """What the database says after a run: lost labels, over-held items, the labels stored."""
    conn, p = db_connect(database_url)
    try:
        rows = conn.execute(
            "SELECT a.id, a.assignment_id, a.label_id FROM labelling_annotation a"
            f" JOIN labelling_image i ON i.id = a.image_id WHERE i.project_id = {p}",
            (project,),
        ).fetchall()
        over_held = conn.execute(
            "SELECT COUNT(*) FROM (SELECT s.item_id FROM labelling_assignment s"
            " JOIN labelling_queueitem q ON q.id = s.item_id"
            f" WHERE s.project_id = {p} AND s.state IN ('active', 'submitted')"
            " GROUP BY s.item_id, q.annotations_needed HAVING COUNT(*) > q.annotations_needed) t",
            (project,),
        ).fetchone()[0]
        budget = conn.execute(
            f"SELECT label_budget FROM labelling_project WHERE id = {p}", (project,)
        ).fetchone()[0]
    finally:
        conn.close()
    stored = {(assignment, annotation, label) for annotation, assignment, label in rows}
    acked = {entry for log in logs for entry in log.acked}
    return {
        "annotations": len(rows),
        "lost": len(acked - stored),
        "over_held": int(over_held),
        "budget": budget,
    }


# --- one run, the whole benchmark ---------------------------------------------------------------------


def pct(values: list[float], q: float) -> float | None:
    return round(float(np.percentile(values, q)), 1) if values else None


def run_once(*, db: str, server: Server, env: dict, database_url: str, clients: int, labels: int,
             seconds: float) -> dict:  # fmt: skip
    data = seed(env=env, images=clients * (labels + 2) + 10, annotators=clients)
    server_cpu, client_cpu = cpu_seconds(server.proc.pid), time.process_time()
    logs, elapsed = closed_loop(
        port=server.port, project=data["project"], tokens=data["tokens"], labels=data["labels"],
        seconds=seconds, max_labels=labels,
    )  # fmt: skip
    server_cpu = cpu_seconds(server.proc.pid) - server_cpu
    client_cpu = time.process_time() - client_cpu
    checked = audit(database_url, data["project"], logs)
    next_ms, submit_ms, statuses, total = merge_logs(logs)
    return {
        "db": db,
        "server": server.label,
        "clients": clients,
        "labels": total,
        "seconds": round(elapsed, 2),
        "labels_per_s": round(total / elapsed, 1),
        "next_p50_ms": pct(next_ms, 50),
        "next_p95_ms": pct(next_ms, 95),
        "next_p99_ms": pct(next_ms, 99),
        "submit_p50_ms": pct(submit_ms, 50),
        "submit_p95_ms": pct(submit_ms, 95),
        "submit_p99_ms": pct(submit_ms, 99),
        "duplicates": overlapping_holds(logs) + checked["over_held"],
        "lost": checked["lost"],
        "errors": sum(statuses.values()),
        "error_kinds": statuses,
        # Where the time went: CPU per label of the server (all its processes) and of the clients.
        "server_cpu_ms_per_label": round(server_cpu * 1000 / max(total, 1), 1),
        "client_cpu_ms_per_label": round(client_cpu * 1000 / max(total, 1), 1),
        "server_cpu_share": round(server_cpu / elapsed, 2),  # cores the server used on average
    }


def machine() -> dict:
    cpuinfo = Path("/proc/cpuinfo")
    lines = cpuinfo.read_text().splitlines() if cpuinfo.exists() else []
    model = next((line.split(":", 1)[1].strip() for line in lines if line.startswith("model name")), "")
    return {
        "cpu": model or platform.processor(),
        "cores": os.cpu_count(),
        "python": platform.python_version(),
        "load_avg_at_start": [round(x, 2) for x in os.getloadavg()],
        "platform": platform.platform(),
    }


def print_table(records: list[dict]) -> None:
    head = f"{'db':<10} {'server':<24} {'clients':>7} {'labels/s':>9} {'next p95':>9} {'submit p95':>10} {'dup':>4} {'lost':>4} {'err':>4}"
    print(head)
    print("-" * len(head))
    for r in records:
        print(
            f"{r['db']:<10} {r['server']:<24} {r['clients']:>7} {r['labels_per_s']:>9} {r['next_p95_ms']:>9}"
            f" {r['submit_p95_ms']:>10} {r['duplicates']:>4} {r['lost']:>4} {r['errors']:>4}"
        )


def bench(args: argparse.Namespace) -> None:
    from tests.pg import PostgresCluster

    clients = [int(c) for c in args.clients.split(",")]
    dbs = args.db.split(",")
    records: list[dict] = []
    info = machine()
    with tempfile.TemporaryDirectory(prefix="bench-annotate-") as tmp:
        tmp = Path(tmp)
        if "sqlite" in dbs:
            var = tmp / "sqlite"
            var.mkdir()
            url = f"sqlite:///{var / 'db.sqlite3'}"
            env = server_env(database_url=url, var_dir=var, debug=args.sqlite_debug)  # off, as `make run`
            migrate(env)
            with Server("runserver", env=env, log_path=tmp / "runserver.log") as server:
                server.label += "" if args.sqlite_debug else ", DEBUG off"
                for n in clients:
                    records.append(run_once(db="sqlite", server=server, env=env, database_url=url,
                                            clients=n, labels=args.labels, seconds=args.seconds))  # fmt: skip
                    print_table(records[-1:])
        if "postgres" in dbs:
            var = tmp / "pg"
            var.mkdir()
            with PostgresCluster(durable=True) as pg:
                url = pg.create_database("bench")
                env = server_env(database_url=url, var_dir=var, debug=False)
                migrate(env)
                with Server(
                    "gunicorn",
                    env=env,
                    log_path=tmp / "gunicorn.log",
                    workers=args.workers,
                    threads=args.threads,
                ) as server:
                    for n in clients:
                        records.append(run_once(db="postgresql", server=server, env=env, database_url=url,
                                                clients=n, labels=args.labels, seconds=args.seconds))  # fmt: skip
                        print_table(records[-1:])
    print()
    print_table(records)
    out = {
        "benchmark": "annotate: closed loop next+submit, no think time, "
        f"{args.labels} labels or {args.seconds:g} s per annotator",
        "machine": info,
        "label_studio_1.23.2_same_loop": {
            k: {str(c): {"labels_per_s": v[0], "next_p95_ms": v[1]} for c, v in runs.items()}
            for k, runs in LABEL_STUDIO.items()
        },
        "goal": {"labels_per_s_at_32": 65, "duplicates": 0, "lost": 0},
        "records": records,
    }
    path = Path(args.out)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(out, indent=2) + "\n")
    print(f"\nwrote {path}")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.annotate", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command")
    s = sub.add_parser("seed", help="(internal) create a project with a queue; prints JSON")
    s.add_argument("--images", type=int, required=True)
    s.add_argument("--annotators", type=int, required=True)
    s.add_argument("--budget", type=int, default=None)
    s.add_argument("--per-image", type=int, default=1)
    parser.add_argument("--clients", default="1,8,32")
    parser.add_argument("--labels", type=int, default=200, help="labels per annotator")
    parser.add_argument("--seconds", type=float, default=60, help="time limit per run")
    parser.add_argument("--db", default="sqlite,postgres")
    # One worker per core; a few threads each keep the GIL and the row locks little contended.
    parser.add_argument(
        "--workers", type=int, default=os.cpu_count() or 2, help="gunicorn workers (PostgreSQL)"
    )
    parser.add_argument("--threads", type=int, default=4, help="gunicorn threads per worker")
    parser.add_argument(
        "--sqlite-debug",
        type=int,
        choices=[0, 1],
        default=0,
        help="DEBUG of the SQLite server (0, as make run)",
    )
    parser.add_argument("--out", default=str(RESULTS))
    args = parser.parse_args(argv)
    if args.command == "seed":
        data = seed_in_django(
            images=args.images, annotators=args.annotators, budget=args.budget, per_image=args.per_image
        )
        print(json.dumps(data))
    else:
        bench(args)


if __name__ == "__main__":
    main()
