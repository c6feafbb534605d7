"""An idle worker gives back what its last job freed (a scale review saw 1.5 GB held after a
60,000-image retrain: Python and glibc keep freed heap for the next allocation)."""

from __future__ import annotations

import numpy as np

from workers.jobs.base import release_memory


def _rss_mb() -> float:
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[1]) * 4096 / 2**20


def test_release_memory_returns_freed_heap_to_the_system():
    blocks = [np.ones(1000) for _ in range(40_000)]  # 320 MB in small heap blocks, as a job's arrays
    held = _rss_mb()
    del blocks
    release_memory()
    assert held - _rss_mb() > 250, (held, _rss_mb())
