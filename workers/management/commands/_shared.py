"""Helpers for the import commands: find or create the project, draw a progress bar."""

from __future__ import annotations

from django.core.management.base import CommandError

from labelling.models import Project


def project_lookup(ref: str) -> Project | None:
    """A project by id (digits) or exact name."""
    if ref.isdigit():
        return Project.objects.filter(pk=int(ref)).first()
    matches = list(Project.objects.filter(name=ref)[:2])
    if len(matches) > 1:
        raise CommandError(f"two projects are named {ref!r}: give the id instead")
    return matches[0] if matches else None


class TqdmProgress:
    """A job progress callback that draws a tqdm bar in the terminal."""

    def __init__(self, total: int, unit: str = "img") -> None:
        from tqdm import tqdm

        self.bar = tqdm(total=total, unit=unit)

    def __call__(self, fraction: float, message: str = "", *, force: bool = False) -> None:
        done = round(fraction * self.bar.total)
        self.bar.update(max(0, done - self.bar.n))

    def close(self) -> None:
        self.bar.close()
