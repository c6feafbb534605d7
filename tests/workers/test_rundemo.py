"""`make run` end to end: `manage.py rundemo` starts Redis, a worker and the web server, the demo
project's queue fills, and SIGTERM stops every process it started."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from tests.pg import free_port

ROOT = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.slow


def _session_pids(sid: int) -> list[int]:
    """Processes of session ``sid`` (field 6 of /proc/PID/stat), the command itself included."""
    pids = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[3]) == sid and fields[0] != "Z":
            pids.append(int(stat.parent.name))
    return pids


def _call(url: str, *, token: str | None = None, body: dict | None = None) -> dict:
    headers = {"Content-Type": "application/json"}
    if token:
        headers["Authorization"] = f"Token {token}"
    data = json.dumps(body).encode() if body is not None else None
    with urllib.request.urlopen(urllib.request.Request(url, data, headers), timeout=10) as r:
        return json.loads(r.read())


def test_rundemo_serves_a_labelling_queue_and_sigterm_stops_everything_it_started():
    var = Path(tempfile.mkdtemp(prefix="demo", dir="/tmp"))  # short: Redis's socket path is limited
    port = free_port()
    env = {k: v for k, v in os.environ.items() if k not in ("REDIS_URL", "DATABASE_URL", "MEDIA_ROOT")}
    env.update(DJANGO_SETTINGS_MODULE="labelling.settings", VAR_DIR=str(var), PYTHONUNBUFFERED="1")
    log = (var / "log").open("w")
    proc = subprocess.Popen(
        [sys.executable, "manage.py", "rundemo", "--addr", f"127.0.0.1:{port}", "--limit", "300"]
        + ["--pretrain-minutes", "0.05"],
        cwd=ROOT,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    base = f"http://127.0.0.1:{port}/api"
    try:
        deadline = time.monotonic() + 240
        item = None
        while item is None and time.monotonic() < deadline:
            assert proc.poll() is None, (var / "log").read_text()[-3000:]
            time.sleep(2)
            try:
                logins = json.loads((var / "demo-logins.json").read_text())
                token = _call(
                    f"{base}/auth/token", body={"username": "annotator", "password": logins["annotator"]}
                )
                projects = _call(f"{base}/projects", token=token["token"])
                rows = projects["results"] if isinstance(projects, dict) else projects
                nxt = _call(f"{base}/projects/{rows[0]['id']}/queue/next", token=token["token"])
                item = nxt["assignment"]
            except (OSError, ValueError, KeyError, IndexError, urllib.error.URLError):
                continue  # not up yet, or the queue is still empty
        assert item is not None, (var / "log").read_text()[-3000:]
        assert item["image"]["id"]
        started = _session_pids(proc.pid)
        # rundemo, Redis, the two workers (and their pools), the web server
        assert len(started) >= 6, started
        text = (var / "log").read_text()
        assert "demo@" in text and "quick@" in text  # the worker for quick jobs (retrains) is up too
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(60)
        finally:
            left = []
            for _ in range(40):
                left = [p for p in _session_pids(proc.pid) if p != proc.pid]
                if not left:
                    break
                time.sleep(0.5)
            for pid in left:
                os.kill(pid, signal.SIGKILL)
            log.close()
    assert proc.returncode == 0, (var / "log").read_text()[-3000:]
    assert not left, f"still running after SIGTERM: {left}"
    assert "Stopped." in (var / "log").read_text()
    shutil.rmtree(var, ignore_errors=True)
