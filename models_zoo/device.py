"""Where tensors live and how many CPU threads torch may use.

Workers call :func:`configure` once per process; library functions take an optional
``device`` and fall back to :func:`pick_device` (CUDA when present, else CPU).
"""

from __future__ import annotations

import torch


def pick_device(device: str | torch.device | None = None) -> torch.device:
    """The device to run on: ``device`` if given, else CUDA when available, else CPU."""
    if device is not None:
        return torch.device(device)
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def configure(threads: int | None = None) -> None:
    """Set torch's intra-op thread count (``None`` keeps torch's default).

    A Celery worker sharing a machine with others should set this to its share of cores:
    oversubscribed threads make every process slower, not just this one.
    """
    if threads is not None and threads > 0:
        torch.set_num_threads(int(threads))
