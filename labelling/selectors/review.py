"""What the Review page and its API list: possible label mistakes (confident learning's suspects,
written by each training cycle) and images whose annotators disagree."""

from __future__ import annotations

from collections import Counter

from django.db.models import Count, QuerySet

from labelling.models import Annotation, Image, Project
from labelling.models.image import ImageStatus

REVIEW_KINDS = ("suspects", "disagreements", "reviewed")


def review_queryset(*, project: Project, kind: str) -> QuerySet[Image]:
    """``suspects``: the least self-confident first; ``disagreements``: images with two or more
    different labels, not yet reviewed, oldest first; ``reviewed``: the latest review first.
    Flagged images are left out (they are not used)."""
    images = project.images.exclude(status=ImageStatus.FLAGGED)
    if kind == "suspects":
        return images.filter(suspected_label__isnull=False, reviewed_label__isnull=True).order_by(
            "label_self_confidence", "id"
        )
    if kind == "disagreements":
        return (
            images.filter(reviewed_label__isnull=True)
            .annotate(distinct_labels=Count("annotations__label", distinct=True))
            .filter(distinct_labels__gt=1)
            .order_by("id")
        )
    if kind == "reviewed":
        return images.filter(reviewed_label__isnull=False).order_by("-reviewed_at", "-id")
    raise ValueError(kind)


def image_label(image: Image, votes: list[tuple[int, int]]) -> int | None:
    """The image's label now: a reviewer's, else the majority of ``votes`` (``image_votes``'s
    order, so a tie goes to the earliest label, as in training)."""
    return image.reviewed_label_id or (votes[0][0] if votes else None)


def review_counts(*, project: Project) -> dict[str, int]:
    return {kind: review_queryset(project=project, kind=kind).count() for kind in REVIEW_KINDS}


def image_votes(image_ids: list[int]) -> dict[int, list[tuple[int, int]]]:
    """image id -> [(label id, votes)], the most votes first (ties: the earliest label first,
    which is the one training takes)."""
    rows = (
        Annotation.objects.filter(image_id__in=image_ids).order_by("id").values_list("image_id", "label_id")
    )
    counters: dict[int, Counter] = {}
    for image_id, label_id in rows:
        counters.setdefault(image_id, Counter())[label_id] += 1
    return {image_id: counter.most_common() for image_id, counter in counters.items()}
