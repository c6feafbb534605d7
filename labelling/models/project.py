"""A project: a pool of images, an ordered label set, a label budget and a target accuracy."""

from __future__ import annotations

from decimal import Decimal

from django.conf import settings
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models

# The most labels a budget may name: the API and the dashboard both hold to it.
LABEL_BUDGET_MAX = 100_000_000


class Project(models.Model):
    name = models.CharField(max_length=200)
    description = models.TextField(blank=True, default="")
    instructions = models.TextField(
        blank=True, default="", help_text="Shown to annotators as plain text (line breaks kept)."
    )
    # Label budget: the most labels to pay for (null: no limit), and optionally what one costs.
    label_budget = models.PositiveIntegerField(
        null=True, blank=True, validators=[MinValueValidator(1), MaxValueValidator(LABEL_BUDGET_MAX)]
    )
    cost_per_label = models.DecimalField(
        max_digits=10, decimal_places=4, null=True, blank=True, validators=[MinValueValidator(Decimal(0))]
    )
    currency = models.CharField(max_length=3, blank=True, default="")
    target_accuracy = models.FloatField(
        default=0.9, validators=[MinValueValidator(0.0), MaxValueValidator(1.0)], help_text="0..1"
    )
    annotations_per_image = models.PositiveSmallIntegerField(
        default=1, validators=[MinValueValidator(1), MaxValueValidator(10)]
    )
    audit_fraction = models.FloatField(
        default=0.05, validators=[MinValueValidator(0.0), MaxValueValidator(0.5)]
    )
    selection_strategy = models.CharField(max_length=50, default="auto")
    # The stop rule (Bloodgood & Vijay-Shanker 2009) says "stop" once the mean kappa between
    # successive model versions' predictions over 3 rounds reaches this; lower stops sooner
    # (docs/selection.md, "Stop rule", has the measured trade-off).
    stop_kappa = models.FloatField(
        default=0.99, validators=[MinValueValidator(0.5), MaxValueValidator(1.0)], help_text="0.5..1"
    )
    labelling_paused = models.BooleanField(default=False)
    # Active learning: a cycle (finetune -> predict -> select) is queued after every `cycle_every`
    # new training labels; each selection round queues `batch_size` images.
    cycle_every = models.PositiveIntegerField(default=20, validators=[MinValueValidator(1)])
    batch_size = models.PositiveIntegerField(
        default=40, validators=[MinValueValidator(1), MaxValueValidator(10_000)]
    )
    reservation_minutes = models.PositiveIntegerField(
        default=10, validators=[MinValueValidator(1), MaxValueValidator(24 * 60)]
    )
    labels_at_last_cycle = models.PositiveIntegerField(default=0)
    # Imported annotations (Annotation.imported): the retrain trigger's quick check adds them to the
    # budget's counters, which count only labels given here.
    imported_labels = models.PositiveIntegerField(default=0)
    current_encoder = models.ForeignKey(
        "labelling.EncoderVersion", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    current_model = models.ForeignKey(
        "labelling.ModelVersion", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+"
    )

    class Meta:
        ordering = ["id"]

    def __str__(self) -> str:
        return self.name

    def labels_per_training_image(self) -> float:
        """Budget labels one more training image costs: its own ``annotations_per_image``, plus those
        of the audit images the queue hands out beside it (a share ``audit_fraction`` of all it hands
        out). The forecast's learning curve counts training images; the budget counts labels."""
        return self.annotations_per_image / (1.0 - self.audit_fraction)


class LabelClass(models.Model):
    """One class of a project's ordered label set; the hotkey is a single key (1-9, 0, a-z)."""

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="label_classes")
    name = models.CharField(max_length=100)
    hotkey = models.CharField(max_length=1, blank=True, default="")
    order = models.PositiveIntegerField(default=0)

    class Meta:
        ordering = ["project_id", "order", "id"]
        constraints = [
            models.UniqueConstraint(fields=["project", "name"], name="label_class_unique_name"),
            models.UniqueConstraint(
                fields=["project", "hotkey"], condition=~models.Q(hotkey=""), name="label_class_unique_hotkey"
            ),
        ]

    def __str__(self) -> str:
        return self.name


class Role(models.TextChoices):
    ADMIN = "admin", "Admin"
    ENGINEER = "engineer", "ML engineer"
    ANNOTATOR = "annotator", "Annotator"


class Membership(models.Model):
    """A user's role in one project. No membership: the project does not exist for that user."""

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="memberships")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="memberships")
    role = models.CharField(max_length=20, choices=Role.choices)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["project", "user"], name="membership_unique")]

    def __str__(self) -> str:
        return f"{self.user} as {self.role} of {self.project}"


class Invite(models.Model):
    """A link that lets people join a project in a role, with a new account or their own.

    Only the token's SHA-256 is stored: the link is shown once, when it is made. It works until it
    expires, is used ``max_uses`` times or is withdrawn (deleted)."""

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="invites")
    role = models.CharField(max_length=20, choices=Role.choices)
    token_hash = models.CharField(max_length=64, unique=True)
    note = models.CharField(max_length=100, blank=True, default="")  # whom it is for: "Tuesday group"
    max_uses = models.PositiveIntegerField(default=1, validators=[MinValueValidator(1)])
    used_count = models.PositiveIntegerField(default=0)
    expires_at = models.DateTimeField()
    created_at = models.DateTimeField(auto_now_add=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+"
    )

    class Meta:
        ordering = ["id"]

    def __str__(self) -> str:
        return f"invite #{self.pk} to {self.project} as {self.role}"
