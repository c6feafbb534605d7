"""The annotation queue and its reservations.

A queue item is one image waiting for ``annotations_needed`` labels from distinct annotators. An
assignment reserves an item for one annotator until ``expires_at``; a lapsed one simply stops
counting (no sweeper needed). One row per (item, annotator): nobody labels the same item twice.
"""

from __future__ import annotations

from django.conf import settings
from django.db import models

from labelling.models.image import Image
from labelling.models.project import Project
from labelling.models.training import SelectionRound


class QueueState(models.TextChoices):
    OPEN = "open", "Open"
    DONE = "done", "Done"
    REMOVED = "removed", "Removed"  # replaced by a newer selection round, or flagged


class QueueItem(models.Model):
    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="queue_items")
    image = models.ForeignKey(Image, on_delete=models.CASCADE, related_name="queue_items")
    round = models.ForeignKey(
        SelectionRound, null=True, blank=True, on_delete=models.SET_NULL, related_name="items"
    )
    priority = models.FloatField(default=0.0)  # higher first
    score = models.FloatField(default=0.0)
    reason = models.CharField(max_length=200, blank=True, default="")
    is_audit = models.BooleanField(default=False)
    state = models.CharField(max_length=10, choices=QueueState.choices, default=QueueState.OPEN)
    annotations_needed = models.PositiveSmallIntegerField(default=1)
    annotations_done = models.PositiveSmallIntegerField(default=0)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-priority", "id"]
        indexes = [models.Index(fields=["project", "state", "-priority", "id"], name="queue_next_idx")]
        constraints = [
            models.UniqueConstraint(
                fields=["image"], condition=models.Q(state="open"), name="queue_one_open_item_per_image"
            )
        ]


class AssignmentState(models.TextChoices):
    ACTIVE = "active", "Active"
    SUBMITTED = "submitted", "Submitted"
    SKIPPED = "skipped", "Skipped"
    FLAGGED = "flagged", "Flagged"
    RELEASED = "released", "Released"  # expired and taken back, or given back


class Assignment(models.Model):
    item = models.ForeignKey(QueueItem, on_delete=models.CASCADE, related_name="assignments")
    # No index of its own: assignment_mine_idx starts with it. A plain project index was also a plan
    # the database could pick, from stale statistics, to find one annotator's or the live
    # reservations, reading every assignment the project ever had (bench-load's first minutes).
    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="assignments", db_index=False)
    annotator = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="assignments"
    )
    state = models.CharField(max_length=10, choices=AssignmentState.choices, default=AssignmentState.ACTIVE)
    reserved_at = models.DateTimeField()
    expires_at = models.DateTimeField()
    finished_at = models.DateTimeField(null=True, blank=True)
    skip_reason = models.CharField(max_length=200, blank=True, default="")

    class Meta:
        ordering = ["-id"]
        constraints = [
            models.UniqueConstraint(fields=["item", "annotator"], name="assignment_once_per_annotator")
        ]
        indexes = [
            models.Index(fields=["project", "annotator", "state"], name="assignment_mine_idx"),
            models.Index(fields=["item", "state", "expires_at"], name="assignment_holders_idx"),
            # The live reservations of a project, which the budget check counts on every
            # reservation: without it the count reads every assignment the project ever had.
            models.Index(
                fields=["project", "expires_at"],
                condition=models.Q(state="active"),
                name="assignment_live_idx",
            ),
        ]
