"""An image of a project's pool. Bytes live in storage under a content-addressed key."""

from __future__ import annotations

from django.conf import settings
from django.db import models

from labelling.models.project import LabelClass, Project


class ImageStatus(models.TextChoices):
    UNLABELLED = "unlabelled", "Unlabelled"
    LABELLED = "labelled", "Labelled"
    FLAGGED = "flagged", "Flagged"


class Image(models.Model):
    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="images")
    sha256 = models.CharField(max_length=64)
    storage_key = models.CharField(max_length=255)
    width = models.PositiveIntegerField()
    height = models.PositiveIntegerField()
    format = models.CharField(max_length=10)  # Pillow's format name: PNG, JPEG, WEBP, BMP, GIF, TIFF
    size_bytes = models.PositiveBigIntegerField(default=0)
    original_name = models.CharField(max_length=255, blank=True, default="")
    status = models.CharField(max_length=20, choices=ImageStatus.choices, default=ImageStatus.UNLABELLED)
    # Ground truth of demo/evaluation datasets: never shown to annotators, never used for training.
    reference_label = models.ForeignKey(
        LabelClass, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    # Audit slice: a random sample whose labels only measure accuracy; never used for training.
    is_audit = models.BooleanField(default=False)
    # The current model's view of the image (written by the predict job).
    predicted_label = models.ForeignKey(
        LabelClass, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    confidence = models.FloatField(null=True, blank=True)  # top class probability
    uncertainty = models.FloatField(null=True, blank=True)  # 1 - margin between the two top classes
    predicted_by = models.ForeignKey(
        "labelling.ModelVersion", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    # Confident learning on the labels (written by each training cycle, models_zoo/review.py): the
    # probability of the image's label from a probe that never saw it, and, for a suspected
    # mistake, the class it more likely is. Shown on the Review page.
    label_self_confidence = models.FloatField(null=True, blank=True)
    # The label that probability is of: the image's label when the check ran (a review since may
    # have changed it).
    checked_label = models.ForeignKey(
        LabelClass, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    suspected_label = models.ForeignKey(
        LabelClass, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    # A person's final say on the label (the Review page), over the annotators' votes: training and
    # the exports use it.
    reviewed_label = models.ForeignKey(
        LabelClass, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    reviewed_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    reviewed_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["id"]
        constraints = [models.UniqueConstraint(fields=["project", "sha256"], name="image_unique_content")]
        indexes = [models.Index(fields=["project", "status"])]

    def __str__(self) -> str:
        return self.original_name or self.sha256[:12]
