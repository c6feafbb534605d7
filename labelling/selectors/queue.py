"""Reads about the queue, shared by the annotator API and pages."""

from __future__ import annotations

from django.contrib.auth.models import AbstractBaseUser
from django.db import connection
from django.utils import timezone

from labelling.models import Annotation, Assignment, Image, Project, QueueItem
from labelling.models.queue import QueueState


def annotator_progress(*, project: Project, annotator: AbstractBaseUser) -> dict:
    """My labels today and in all in this project, and the open items left in its queue.

    One SQL statement: it runs on every next-item request, where building the two ORM queries it
    replaces cost more than running them.
    """
    today = timezone.now().replace(hour=0, minute=0, second=0, microsecond=0)
    annotation, image, item = Annotation._meta.db_table, Image._meta.db_table, QueueItem._meta.db_table
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT COALESCE(SUM(CASE WHEN a.created_at >= %s THEN 1 ELSE 0 END), 0), COUNT(a.id),"
            f" (SELECT COUNT(*) FROM {item} q WHERE q.project_id = %s AND q.state = %s)"
            f" FROM {annotation} a JOIN {image} i ON i.id = a.image_id"
            " WHERE i.project_id = %s AND a.annotator_id = %s",
            [
                connection.ops.adapt_datetimefield_value(today),
                project.pk,
                QueueState.OPEN,
                project.pk,
                annotator.pk,
            ],
        )
        today_count, total, left = cursor.fetchone()
    return {"labelled_today": int(today_count), "labelled_total": int(total), "left_in_queue": int(left)}


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
