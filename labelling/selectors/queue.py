"""Reads about the queue, shared by the annotator API and pages."""

from __future__ import annotations

from django.contrib.auth.models import AbstractBaseUser
from django.db.models import Count, Q
from django.utils import timezone

from labelling.models import Annotation, Assignment, Project, QueueItem
from labelling.models.queue import QueueState


def annotator_progress(*, project: Project, annotator: AbstractBaseUser) -> dict:
    today = timezone.now().replace(hour=0, minute=0, second=0, microsecond=0)
    # One query for both of my counts: this runs on every next-item request.
    mine = Annotation.objects.filter(image__project=project, annotator=annotator).aggregate(
        labelled_today=Count("id", filter=Q(created_at__gte=today)), labelled_total=Count("id")
    )
    return {
        **mine,
        "left_in_queue": QueueItem.objects.filter(project=project, state=QueueState.OPEN).count(),
    }


def assignment_view(assignment: Assignment) -> dict:
    """What an annotator may see of a reservation. On audit items the model's suggestion is hidden,
    so it cannot anchor the human whose label measures the model."""
    image = assignment.item.image
    suggestion = None
    if not assignment.item.is_audit and image.predicted_label_id is not None:
        suggestion = {"label": image.predicted_label_id, "confidence": image.confidence}
    return {
        "id": assignment.id,
        "expires_at": assignment.expires_at,
        "image": {
            "id": image.id,
            "width": image.width,
            "height": image.height,
            "url": f"/api/images/{image.id}/file",
        },
        "suggestion": suggestion,
    }
