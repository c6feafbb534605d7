"""Artifacts in Django's storage: written whole (temp file, then moved into place), read back as
local files for torch and numpy. Keys are what the database rows point at."""

from __future__ import annotations

import io
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
from django.conf import settings
from django.core.files import File
from django.core.files.storage import default_storage


def _fs_path(key: str) -> Path | None:
    try:
        return Path(default_storage.path(key))
    except NotImplementedError:  # remote storage (S3): no local path
        return None


def _remove_stale_temps(target: Path) -> None:
    """Delete temp copies of ``target`` left by writers that died mid-copy (a killed worker process
    cannot clean up; the redelivered task writes the same key again)."""
    for stale in target.parent.glob(f".{target.name}.*.tmp"):
        try:
            pid = int(stale.name[len(target.name) + 2 : -len(".tmp")])
            os.kill(pid, 0)  # still running: its copy is in progress
        except ProcessLookupError:
            stale.unlink(missing_ok=True)
        except (ValueError, PermissionError):
            continue


def store_file(local: Path, key: str) -> str:
    """Put a finished local file under ``key``, replacing what was there, atomically on a file system."""
    target = _fs_path(key)
    if target is not None:
        target.parent.mkdir(parents=True, exist_ok=True)
        _remove_stale_temps(target)
        tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
        with open(local, "rb") as src, open(tmp, "wb") as dst:
            while chunk := src.read(1 << 20):
                dst.write(chunk)
            dst.flush()
            os.fsync(dst.fileno())
        os.replace(tmp, target)
        return key
    if default_storage.exists(key):
        default_storage.delete(key)
    with open(local, "rb") as fh:
        return default_storage.save(key, File(fh))


@contextmanager
def local_copy(key: str) -> Iterator[Path]:
    """A local path holding the bytes under ``key`` (the file itself on a file system)."""
    path = _fs_path(key)
    if path is not None:
        yield path
        return
    with tempfile.NamedTemporaryFile(suffix=Path(key).suffix) as tmp:
        with default_storage.open(key, "rb") as src:
            while chunk := src.read(1 << 20):
                tmp.write(chunk)
        tmp.flush()
        yield Path(tmp.name)


def store_npy(array: np.ndarray, key: str) -> str:
    with tempfile.TemporaryDirectory() as tmp:
        local = Path(tmp) / "a.npy"
        np.save(local, array, allow_pickle=False)
        return store_file(local, key)


def load_npy(key: str) -> np.ndarray:
    with default_storage.open(key, "rb") as fh:
        return np.load(io.BytesIO(fh.read()), allow_pickle=False)


def scratch_dir() -> Path:
    """Local working space of workers (checkpoints): survives a worker restart on this machine."""
    path = Path(settings.VAR_DIR) / "scratch"
    path.mkdir(parents=True, exist_ok=True)
    return path
