"""Per-process settings for worker processes."""

from __future__ import annotations

import os


def cpu_threads() -> int:
    """Threads for numeric work: the cores this process may use, overridable by WORKER_THREADS."""
    configured = os.environ.get("WORKER_THREADS")
    if configured:
        return max(1, int(configured))
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return max(1, os.cpu_count() or 1)
