"""One annotator's label for one image."""

from __future__ import annotations

from django.conf import settings
from django.db import models

from labelling.models.image import Image
from labelling.models.project import LabelClass


class Annotation(models.Model):
    image = models.ForeignKey(Image, on_delete=models.CASCADE, related_name="annotations")
    annotator = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="annotations"
    )
    label = models.ForeignKey(LabelClass, on_delete=models.PROTECT, related_name="annotations")
    created_at = models.DateTimeField(auto_now_add=True)
    seconds_spent = models.FloatField(null=True, blank=True)
    # Brought in with labels made elsewhere (POST /api/projects/{id}/annotations/import) by the
    # engineer named as annotator: it trains and exports like any label, but spends no budget and
    # counts in no annotator's rate or agreement.
    imported = models.BooleanField(default=False, db_default=False)
    # The reservation it answers: one annotation per assignment, so a double submit stores one.
    assignment = models.OneToOneField(
        "labelling.Assignment", null=True, blank=True, on_delete=models.SET_NULL, related_name="annotation"
    )

    class Meta:
        ordering = ["id"]
        constraints = [
            models.UniqueConstraint(fields=["image", "annotator"], name="annotation_once_per_annotator")
        ]

    def __str__(self) -> str:
        return f"{self.image_id}: {self.label}"


class AnnotationCount(models.Model):
    """How many annotations one annotator holds in one project; a project's rows sum to what its
    label budget has spent.

    Kept by the services that add and remove annotations (submit, undo), in the same transaction,
    so the budget check sums a row per annotator instead of counting every label: that COUNT grew
    with the project, 4 ms of PostgreSQL per check at 10,000 labels (bench/label_cpu.py). A row per
    annotator, not a column of Project: two annotators' submits never wait on each other's row
    (nor on the project row, which reservations share-lock), and a ``project.save()`` with a stale
    value cannot overwrite it. Migration 0003 counted the labels given before it.

    ``on_day`` counts those given on ``day`` (UTC), for the annotator's "labelled today": the next-item
    request read both figures with a COUNT over the annotator's labels joined to their images, which
    grew with every label and, planned from stale statistics, scanned every image of the project
    (30-47 ms per request in bench-load's first minute). Migration 0005 counted the day it ran.
    """

    project = models.ForeignKey("labelling.Project", on_delete=models.CASCADE, related_name="+")
    annotator = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    annotations = models.IntegerField(default=0)
    day = models.DateField(null=True, blank=True)
    on_day = models.IntegerField(default=0)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["project", "annotator"], name="annotation_count_once"),
        ]
