"""Reads about the queue, shared by the annotator API and pages."""

from __future__ import annotations

from django.contrib.auth.models import AbstractBaseUser
from django.db import connection
from django.utils import timezone

from labelling.models import Annotation, Assignment, Image, Project, QueueItem
from labelling.models.queue import QueueState

# "Left in the queue" counts open items up to this many: an exact count of a 60,000-item queue on
# every next-item request cost PostgreSQL more CPU than the rest of the request (bench-load).
LEFT_IN_QUEUE_CAP = 1000


def annotator_progress(*, project: Project, annotator: AbstractBaseUser) -> dict:
    """My labels today and in all in this project, and the open items left in its queue (counted up
    to LEFT_IN_QUEUE_CAP; ``left_in_queue_more`` says there are more).

    One SQL statement: it runs on every next-item request, where building the two ORM queries it
    replaces cost more than running them.
    """
    today = timezone.now().replace(hour=0, minute=0, second=0, microsecond=0)
    annotation, image, item = Annotation._meta.db_table, Image._meta.db_table, QueueItem._meta.db_table
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT COALESCE(SUM(CASE WHEN a.created_at >= %s THEN 1 ELSE 0 END), 0), COUNT(a.id),"
            f" (SELECT COUNT(*) FROM (SELECT 1 FROM {item} q WHERE q.project_id = %s AND q.state = %s"
            "  LIMIT %s) open_items)"
            f" FROM {annotation} a JOIN {image} i ON i.id = a.image_id"
            " WHERE i.project_id = %s AND a.annotator_id = %s",
            [
                connection.ops.adapt_datetimefield_value(today),
                project.pk,
                QueueState.OPEN,
                LEFT_IN_QUEUE_CAP + 1,
                project.pk,
                annotator.pk,
            ],
        )
        today_count, total, left = cursor.fetchone()
    return {
        "labelled_today": int(today_count),
        "labelled_total": int(total),
        "left_in_queue": min(int(left), LEFT_IN_QUEUE_CAP),
        "left_in_queue_more": int(left) > LEFT_IN_QUEUE_CAP,
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
