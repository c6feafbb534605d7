"""A row for background work (imports now, training later): state, progress and outcome."""

from __future__ import annotations

from django.conf import settings
from django.db import models

from labelling.models.project import Project


class JobKind(models.TextChoices):
    IMPORT_ZIP = "import_zip", "Import a zip of images"
    IMPORT_DATASET = "import_dataset", "Import a built-in dataset"
    PRETRAIN = "pretrain", "Pretrain an encoder (self-supervised)"
    EMBED = "embed", "Embed the pool"
    FINETUNE = "finetune", "Train a classifier on the labels"
    PREDICT = "predict", "Score the pool"
    SELECT = "select", "Select images to label"
    CYCLE = "cycle", "Retrain, score and select"
    FORECAST = "forecast", "Refit the forecast"


# Kinds that train or rewrite the project's model state: at most one runs per project at a time.
TRAINING_KINDS = ("pretrain", "embed", "finetune", "predict", "select", "cycle")
# A forecast refit (new settings) only rewrites the newest model version's forecast: it runs beside
# those, one at a time per project, and a training job never waits for it nor is merged into it.
FORECAST_KIND = "forecast"


class JobState(models.TextChoices):
    QUEUED = "queued", "Queued"
    RUNNING = "running", "Running"
    SUCCEEDED = "succeeded", "Succeeded"
    FAILED = "failed", "Failed"
    CANCELLED = "cancelled", "Cancelled"


FINISHED_STATES = (JobState.SUCCEEDED, JobState.FAILED, JobState.CANCELLED)


class Job(models.Model):
    kind = models.CharField(max_length=30, choices=JobKind.choices)
    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="jobs")
    state = models.CharField(max_length=20, choices=JobState.choices, default=JobState.QUEUED)
    progress = models.FloatField(default=0.0)  # 0..1
    message = models.CharField(max_length=500, blank=True, default="")
    error = models.TextField(blank=True, default="")
    params = models.JSONField(default=dict, blank=True)
    result = models.JSONField(default=dict, blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    deliveries = models.PositiveIntegerField(default=0)  # times a worker started it (redeliveries too)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-id"]
        indexes = [models.Index(fields=["project", "state"])]

    def __str__(self) -> str:
        return f"{self.kind} #{self.pk} ({self.state})"

    @property
    def is_finished(self) -> bool:
        return self.state in FINISHED_STATES
