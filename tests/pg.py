"""A throwaway PostgreSQL cluster for tests and benchmarks: initdb into a temp dir, start it on a
free 127.0.0.1 port (and a unix socket in the same dir), drop it all at the end.

PostgreSQL refuses to run as root; when we are root the cluster belongs to the ``postgres`` system
user that Debian's package creates, and its commands run through ``runuser``.
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
from pathlib import Path

import pytest


def bin_dir() -> Path | None:
    """The newest installed server binaries (Debian keeps them out of PATH)."""
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=lambda p: int(p.split("/")[4]))
    if found:
        return Path(found[-1]).parent
    initdb = shutil.which("initdb")
    return Path(initdb).parent if initdb else None


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class PostgresCluster:
    """``with PostgresCluster() as pg: url = pg.create_database("x")``.

    ``durable=False`` turns off fsync and synchronous commit: fine for tests (the cluster is thrown
    away), wrong for a benchmark that compares with a normally configured server.
    """

    def __init__(self, *, durable: bool = True, max_connections: int = 200) -> None:
        self.durable = durable
        self.max_connections = max_connections
        self.port = 0
        self.dir: Path | None = None

    # --- lifecycle ---

    def __enter__(self) -> PostgresCluster:
        self.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    def _as_owner(self, cmd: list[str]) -> list[str]:
        return ["runuser", "-u", "postgres", "--", *cmd] if os.geteuid() == 0 else cmd

    def start(self) -> None:
        bindir = bin_dir()
        if bindir is None:
            raise RuntimeError("PostgreSQL server binaries not found (apt-get install postgresql)")
        # Short path: a unix socket path must stay under 107 bytes.
        self.dir = Path(tempfile.mkdtemp(prefix="pg-", dir="/tmp"))
        if os.geteuid() == 0:
            owner = pwd.getpwnam("postgres")
            os.chown(self.dir, owner.pw_uid, owner.pw_gid)
        data = self.dir / "data"
        subprocess.run(
            self._as_owner(
                [str(bindir / "initdb"), "-D", str(data), "-U", "postgres", "-A", "trust", "-E", "UTF8",
                 "--no-locale", "--no-sync"]
            ),
            check=True, capture_output=True, cwd="/tmp",
        )  # fmt: skip
        options = [
            "-c listen_addresses=127.0.0.1",
            f"-k {self.dir}",
            f"-c max_connections={self.max_connections}",
        ]
        if not self.durable:
            options += ["-c fsync=off", "-c synchronous_commit=off", "-c full_page_writes=off"]
        for _attempt in range(3):  # another process may take the free port before the server does
            self.port = free_port()
            result = subprocess.run(
                self._as_owner(
                    [str(bindir / "pg_ctl"), "-D", str(data), "-l", str(self.dir / "server.log"), "-w",
                     "-t", "60", "-o", " ".join([f"-p {self.port}", *options]), "start"]
                ),
                capture_output=True, text=True, cwd="/tmp",
            )  # fmt: skip
            if result.returncode == 0:
                self._bindir = bindir
                return
        log = (self.dir / "server.log").read_text() if (self.dir / "server.log").exists() else ""
        raise RuntimeError(f"PostgreSQL did not start: {result.stderr}\n{log[-2000:]}")

    def stop(self) -> None:
        if self.dir is None:
            return
        subprocess.run(
            self._as_owner([str(self._bindir / "pg_ctl"), "-D", str(self.dir / "data"), "-m", "immediate",
                            "stop"]),
            capture_output=True, cwd="/tmp",
        )  # fmt: skip
        shutil.rmtree(self.dir, ignore_errors=True)
        self.dir = None

    # --- use ---

    def server_pid(self) -> int:
        """The postmaster's process id (its backends are its children)."""
        return int((self.dir / "data" / "postmaster.pid").read_text().split()[0])

    def url(self, dbname: str = "postgres") -> str:
        return f"postgres://postgres@127.0.0.1:{self.port}/{dbname}"

    def connect(self, dbname: str = "postgres"):
        import psycopg

        return psycopg.connect(
            host="127.0.0.1", port=self.port, user="postgres", dbname=dbname, autocommit=True
        )

    def create_database(self, name: str) -> str:
        with self.connect() as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}"')
            conn.execute(f'CREATE DATABASE "{name}"')
        return self.url(name)


@pytest.fixture(scope="session")
def postgres():
    """A running throwaway PostgreSQL (skipped without the server binaries; fails in CI)."""
    from tests.conftest import require

    require(bin_dir() is not None, "PostgreSQL server binaries (apt-get install postgresql)")
    require(
        os.geteuid() != 0 or _has_user("postgres"),
        "running as root needs the 'postgres' system user to own the cluster",
    )
    with PostgresCluster(durable=False) as cluster:
        yield cluster


def _has_user(name: str) -> bool:
    try:
        pwd.getpwnam(name)
    except KeyError:
        return False
    return True
