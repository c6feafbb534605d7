"""What the workers produce: encoder versions (with the pool's embeddings) and model versions.

A version row is created only once its artifact is written whole and verified, and a project's
current pointer is switched in the same transaction, so it never names a partial artifact.
"""

from __future__ import annotations

from django.db import models

from labelling.models.job import Job
from labelling.models.project import Project


class EncoderVersion(models.Model):
    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="encoder_versions")
    job = models.OneToOneField(
        Job, null=True, blank=True, on_delete=models.SET_NULL, related_name="encoder_version"
    )
    # pretrain: self-supervised on this pool; transfer: continued from parent; upload: a user's checkpoint
    source = models.CharField(max_length=20, default="pretrain")
    parent = models.ForeignKey(
        "self", null=True, blank=True, on_delete=models.SET_NULL, related_name="children"
    )
    artifact_key = models.CharField(max_length=255)
    config = models.JSONField(default=dict)
    metadata = models.JSONField(default=dict)  # method, data hash, steps, seconds, images/s
    # Embeddings of the whole pool: .npy shards in storage, listed here in image order.
    embeddings = models.JSONField(default=dict)  # {"dim", "count", "shards": [{"key", "ids_key"}]}
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-id"]


class ModelVersion(models.Model):
    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="model_versions")
    job = models.OneToOneField(
        Job, null=True, blank=True, on_delete=models.SET_NULL, related_name="model_version"
    )
    encoder_version = models.ForeignKey(
        EncoderVersion, on_delete=models.PROTECT, related_name="model_versions"
    )
    mode = models.CharField(max_length=20)  # probe | propagate | consistency | finetune (models_zoo's rule)
    artifact_key = models.CharField(max_length=255)
    train_label_count = models.PositiveIntegerField(default=0)
    # audit accuracy with its interval, number of audit labels, class counts, timings
    metrics = models.JSONField(default=dict)
    predictions_key = models.CharField(
        max_length=255, blank=True, default=""
    )  # probabilities .npy of the pool
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-id"]


class SelectionRound(models.Model):
    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="selection_rounds")
    job = models.OneToOneField(
        Job, null=True, blank=True, on_delete=models.SET_NULL, related_name="selection_round"
    )
    number = models.PositiveIntegerField()
    strategy = models.CharField(max_length=50)  # the strategy that ran (auto resolves to what it chose)
    requested_strategy = models.CharField(max_length=50)
    model_version = models.ForeignKey(
        ModelVersion, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    encoder_version = models.ForeignKey(
        EncoderVersion, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    batch_size = models.PositiveIntegerField()
    labels_at_selection = models.PositiveIntegerField(default=0)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-number"]
        constraints = [models.UniqueConstraint(fields=["project", "number"], name="round_unique_number")]
