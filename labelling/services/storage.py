"""Removing stored files nothing points at any more: a deleted project's artifacts, the thumbnails of
bytes no image uses, an upload whose job has ended. Works on any Django storage (listdir), so an
S3 bucket is cleaned like the local media folder."""

from __future__ import annotations

import contextlib
import logging
import os
from pathlib import PurePosixPath

from django.core.files.storage import default_storage

log = logging.getLogger(__name__)

# Every key a project's jobs write starts with one of these, then the project's id and a "/".
PROJECT_PREFIXES = ("encoders", "embeddings", "models", "cache/pool", "imports", "uploads")


def storage_tree_delete(prefix: str) -> int:
    """Delete every file under the folder ``prefix`` (and the emptied folders on a file system).
    Returns how many files went; a missing folder is 0, a file that cannot be deleted is logged."""
    try:
        folders, files = default_storage.listdir(prefix)
    except (FileNotFoundError, NotADirectoryError):
        return 0
    gone = 0
    for name in files:
        gone += storage_file_delete(f"{prefix}/{name}")
    for name in folders:
        gone += storage_tree_delete(f"{prefix}/{name}")
    try:
        path = default_storage.path(prefix)
    except NotImplementedError:  # object stores have no folders to remove
        return gone
    with contextlib.suppress(OSError):  # not empty (a writer came back meanwhile) or already gone
        os.rmdir(path)
    return gone


def storage_file_delete(key: str) -> int:
    """Delete one stored file; 1 if it went, 0 if it was not there or could not be deleted."""
    try:
        if not default_storage.exists(key):
            return 0
        default_storage.delete(key)
        return 1
    except OSError as exc:
        log.warning("could not delete %s from storage: %s", key, exc)
        return 0


def project_files_delete(project_id: int) -> int:
    """Every artifact a deleted project's jobs stored (encoders, embeddings, models and their
    predictions, the decoded pool, uploads not yet consumed). Ids are never reused, so nothing of
    another project lives under these folders."""
    return sum(storage_tree_delete(f"{prefix}/{project_id}") for prefix in PROJECT_PREFIXES)


def thumbnails_delete(sha256: str) -> int:
    """The cached thumbnails (every size) of the image bytes with this hash."""
    folder = f"thumbs/{sha256[:2]}"
    try:
        _, files = default_storage.listdir(folder)
    except (FileNotFoundError, NotADirectoryError):
        return 0
    return sum(storage_file_delete(f"{folder}/{name}") for name in files if name.startswith(f"{sha256}_"))


def image_bytes_delete(key: str) -> int:
    """An image's stored bytes (content-addressed: ``images/../../<sha256>.<ext>``) and thumbnails."""
    return storage_file_delete(key) + thumbnails_delete(PurePosixPath(key).stem)
