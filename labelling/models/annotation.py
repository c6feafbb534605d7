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
