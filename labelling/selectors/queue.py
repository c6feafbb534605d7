"""Reads about the queue, shared by the annotator API and pages."""

from __future__ import annotations

from datetime import UTC

from django.contrib.auth.models import AbstractBaseUser
from django.db import connection
from django.utils import timezone

from labelling.models import AnnotationCount, Assignment, Project, QueueItem
from labelling.models.queue import QueueState

# "Left in the queue" counts open items up to this many: an exact count of a 60,000-item queue on
# every next-item request cost PostgreSQL more CPU than the rest of the request (bench-load).
LEFT_IN_QUEUE_CAP = 1000


def annotator_progress(*, project: Project, annotator: AbstractBaseUser) -> dict:
    """My labels today (UTC) and in all in this project, and the open items left in its queue
    (counted up to LEFT_IN_QUEUE_CAP; ``left_in_queue_more`` says there are more).

    One SQL statement, on every next-item request: my labels come from my counter row
    (AnnotationCount), not from counting them. The open items are counted in the queue's own order,
    so the plan reads them from its index (queue_next_idx) whatever the statistics say: unordered, a
    sequential scan looked cheaper to a planner that still thought most items open, and stepped
    over every item already done.
    """
    today = timezone.now().astimezone(UTC).date()
    counts, item = AnnotationCount._meta.db_table, QueueItem._meta.db_table
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT (SELECT CASE WHEN c.day = %s THEN c.on_day ELSE 0 END FROM {counts} c"
            "  WHERE c.project_id = %s AND c.annotator_id = %s),"
            f" (SELECT c.annotations FROM {counts} c WHERE c.project_id = %s AND c.annotator_id = %s),"
            f" (SELECT COUNT(*) FROM (SELECT 1 FROM {item} q WHERE q.project_id = %s AND q.state = %s"
            "  ORDER BY q.priority DESC, q.id LIMIT %s) open_items)",
            [
                connection.ops.adapt_datefield_value(today),
                project.pk,
                annotator.pk,
                project.pk,
                annotator.pk,
                project.pk,
                QueueState.OPEN,
                LEFT_IN_QUEUE_CAP + 1,
            ],
        )
        today_count, total, left = cursor.fetchone()
    return {
        "labelled_today": int(today_count or 0),
        "labelled_total": int(total or 0),
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
            # As uploaded, or a PNG of it where browsers cannot show the format (TIFF) or would show
            # it otherwise than training sees it (16-bit PNG): the file API decides, by the file.
            "url": f"/api/images/{image.id}/file"
            + ("" if image.format in ("JPEG", "GIF", "BMP", "WEBP") else "?display=1"),
        },
        "suggestion": suggestion,
    }
