"""What an admin sees of a project: budget, progress, classes, annotators, jobs, rounds.

The dashboard page and ``GET /api/projects/{id}/dashboard`` both render these dicts.
"""

from __future__ import annotations

import statistics
from collections import Counter, defaultdict
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from django.db.models import Count, Q
from django.utils import timezone

from labelling.catalog import QUICK_KINDS
from labelling.models import Annotation, Assignment, Image, Job, Project, QueueItem
from labelling.models.image import ImageStatus
from labelling.models.job import FORECAST_KIND, TRAINING_KINDS, JobState
from labelling.models.queue import AssignmentState, QueueState
from labelling.selectors.metrics import audit_by_class, forecast, given_labels, learning_curve
from labelling.selectors.review import review_counts

BURN_WINDOW = timedelta(days=7)
# A gap between two labels longer than this is a break, not labelling: the label after it counts
# only its own seconds_spent.
LABELLING_BREAK = timedelta(minutes=10)
# Labelling time is at least this, so a single label does not make an absurd rate.
LABELLING_MIN = timedelta(minutes=1)


def labelling_time(labels: list[tuple[datetime, float | None]]) -> timedelta:
    """Time spent labelling, from labels as (created_at, seconds_spent) sorted by time: the gap since
    the label before, or the label's own seconds_spent after a break (longer than LABELLING_BREAK)
    and for the first; at least LABELLING_MIN. The budget card and the annotators table both use
    it, so their labels per hour agree."""
    total = timedelta()
    previous = None
    for at, seconds in labels:
        gap = None if previous is None else at - previous
        if gap is not None and gap <= LABELLING_BREAK:
            total += gap
        else:
            total += timedelta(seconds=seconds or 0)
        previous = at
    return max(total, LABELLING_MIN)


def budget_state(project: Project) -> dict[str, Any]:
    """Labels and money used of the limits; the labelling rate of the last 7 days, per hour spent
    labelling (all annotators together, breaks left out), and how many hours of labelling at that
    rate the budget has left."""
    now = timezone.now()
    labels = given_labels(project)
    used = labels.count()
    recent = list(
        labels.filter(created_at__gte=now - BURN_WINDOW)
        .order_by("created_at")
        .values_list("created_at", "seconds_spent")
    )
    active = labelling_time(recent) if recent else None
    per_hour = len(recent) / (active.total_seconds() / 3600) if active else 0.0
    left = None if project.label_budget is None else max(0, project.label_budget - used)
    hours_left = left / per_hour if left is not None and per_hour > 0 else None
    cost = project.cost_per_label
    return {
        "labels_used": used,
        "label_budget": project.label_budget,
        "labels_left": left,
        "fraction_used": (used / project.label_budget) if project.label_budget else None,
        "cost_per_label": str(cost) if cost is not None else None,
        "currency": project.currency,
        "money_spent": str((cost * used).quantize(Decimal("0.01"))) if cost is not None else None,
        "money_budget": str((cost * project.label_budget).quantize(Decimal("0.01")))
        if cost is not None and project.label_budget
        else None,
        "labels_last_7_days": len(recent),
        "active_hours": active.total_seconds() / 3600 if active else 0.0,
        "labels_per_hour": round(per_hour, 2),
        "labelling_hours_left": hours_left,
        "paused": project.labelling_paused,
    }


def progress_counts(project: Project) -> dict[str, int]:
    now = timezone.now()
    images = Image.objects.filter(project=project).aggregate(
        pool=Count("id"),
        labelled=Count("id", filter=Q(status="labelled")),
        flagged=Count("id", filter=Q(status="flagged")),
        audit=Count("id", filter=Q(is_audit=True)),
    )
    return {
        **images,
        "in_queue": QueueItem.objects.filter(project=project, state=QueueState.OPEN).count(),
        "reserved": Assignment.objects.filter(
            project=project, state=AssignmentState.ACTIVE, expires_at__gt=now
        ).count(),
        "skipped": Assignment.objects.filter(project=project, state=AssignmentState.SKIPPED).count(),
        "imported": project.imported_labels,  # labels brought in, not given here (no budget spent)
    }


def class_distribution(project: Project) -> list[dict[str, Any]]:
    """Per class: human labels (training + audit) and the current model's predictions over the pool."""
    labelled = Counter(
        dict(
            Annotation.objects.filter(image__project=project).values_list("label_id").annotate(n=Count("id"))
        )
    )
    predicted = Counter(
        dict(
            Image.objects.filter(project=project, predicted_label__isnull=False)
            .values_list("predicted_label_id")
            .annotate(n=Count("id"))
        )
    )
    total_l, total_p = sum(labelled.values()) or 1, sum(predicted.values()) or 1
    return [
        {
            "label": lc.name,
            "labelled": labelled[lc.id],
            "labelled_share": labelled[lc.id] / total_l,
            "predicted": predicted[lc.id],
            "predicted_share": predicted[lc.id] / total_p,
        }
        for lc in project.label_classes.all()
    ]


def annotator_stats(project: Project) -> list[dict[str, Any]]:
    """Labels, labels per hour spent labelling (``labelling_time``, all of the annotator's labels),
    median seconds per label, agreement with other annotators on overlap images and with the hidden
    reference on audit images."""
    rows = list(
        given_labels(project)
        .values_list("annotator__username", "image_id", "label_id", "seconds_spent", "created_at",
                     "image__reference_label_id", "image__is_audit")
        .order_by("created_at")
    )  # fmt: skip
    by_image: dict[int, list[tuple[str, int]]] = defaultdict(list)
    for user, image_id, label_id, *_ in rows:
        by_image[image_id].append((user, label_id))
    out = []
    for user in sorted({r[0] for r in rows}):
        mine = [r for r in rows if r[0] == user]
        seconds = [r[3] for r in mine if r[3] is not None]
        span_h = labelling_time([(r[4], r[3]) for r in mine]).total_seconds() / 3600
        agree = total = 0
        for _, image_id, label_id, *_ in mine:
            others = [lab for u, lab in by_image[image_id] if u != user]
            total += len(others)
            agree += sum(lab == label_id for lab in others)
        audit = [r for r in mine if r[6] and r[5] is not None]
        out.append(
            {
                "annotator": user,
                "labels": len(mine),
                "labels_per_hour": round(len(mine) / span_h, 1),
                "median_seconds": statistics.median(seconds) if seconds else None,
                "overlap_agreement": agree / total if total else None,
                "overlap_pairs": total,
                "reference_agreement": sum(r[2] == r[5] for r in audit) / len(audit) if audit else None,
                "reference_checked": len(audit),
            }
        )
    return out


# A job queued this long while no job of any project runs: probably no worker is taking jobs.
QUEUE_STALL_S = 120


def queue_wait(project: Project, *, now=None) -> dict[str, Any] | None:
    """The project's oldest queued job when it has waited over QUEUE_STALL_S, with why it may wait:
    ``behind`` jobs (of any project) queued before it or running, none running meaning no worker
    is taking jobs (workers take one job at a time, oldest first). A quick job (a retrain) waits only
    behind quick ones: they have a worker of their own."""
    now = now or timezone.now()
    oldest = project.jobs.filter(state=JobState.QUEUED).order_by("created_at", "id").first()
    if oldest is None or (now - oldest.created_at).total_seconds() < QUEUE_STALL_S:
        return None
    jobs = Job.objects.filter(kind__in=QUICK_KINDS) if oldest.kind in QUICK_KINDS else Job.objects.all()
    running = jobs.filter(state=JobState.RUNNING).count()
    earlier = jobs.filter(state=JobState.QUEUED, created_at__lt=oldest.created_at).count()
    return {
        "job": oldest,
        "minutes": int((now - oldest.created_at).total_seconds() // 60),
        "running": running,
        "behind": running + earlier,
    }


def jobs_summary(project: Project, limit: int = 10) -> dict[str, Any]:
    # A forecast refit that succeeded says nothing the forecast does not show: every settings change
    # adds one, and ten of them hid the retrains (a review). Failed ones stay listed.
    jobs = list(project.jobs.exclude(kind=FORECAST_KIND, state=JobState.SUCCEEDED).order_by("-id")[:limit])
    running = next((j for j in jobs if j.state in (JobState.RUNNING, JobState.QUEUED)), None)
    return {
        "running": running,
        # a training job on its way (the budget's last labels are being trained on; a refit is not that)
        "retrain_running": any(
            j.kind in TRAINING_KINDS for j in jobs if j.state in (JobState.RUNNING, JobState.QUEUED)
        ),
        "waiting": queue_wait(project),
        "recent": [
            {
                "job": j,
                "seconds": (j.finished_at - (j.started_at or j.created_at)).total_seconds()
                if j.finished_at
                else None,
            }
            for j in jobs
        ],
    }


def recent_rounds(project: Project, limit: int = 3, strip: int = 12) -> list[dict[str, Any]]:
    rounds = []
    for rnd in project.selection_rounds.order_by("-number")[:limit]:
        items = list(
            rnd.items.filter(is_audit=False)
            .order_by("-priority")[:strip]
            .values("image_id", "reason", "score")
        )
        rounds.append({"round": rnd, "items": items})
    return rounds


def model_version_label_counts(project: Project) -> list[int]:
    """The training labels of each model version, oldest first (the stop rule's chart says from
    them why it has no kappa yet)."""
    return list(project.model_versions.order_by("id").values_list("train_label_count", flat=True))


def project_dashboard(project: Project) -> dict[str, Any]:
    budget = budget_state(project)
    return {
        "budget": budget,
        "progress": progress_counts(project),
        "classes": class_distribution(project),
        "learning_curve": learning_curve(project),
        "forecast": forecast(project, spent=budget["labels_used"]),
        "annotators": annotator_stats(project),
        "by_class": audit_by_class(project),
        "review": review_counts(project=project),
    }


def overview_row(project: Project) -> dict[str, Any]:
    curve = learning_curve(project)
    last_label = (
        Annotation.objects.filter(image__project=project)
        .order_by("-created_at")
        .values_list("created_at", flat=True)
        .first()
    )
    budget = budget_state(project)
    return {
        "project": project,
        "budget": budget,
        "accuracy": curve[-1] if curve else None,
        "forecast": forecast(project, spent=budget["labels_used"]),
        "last_activity": last_label or project.created_at,
        "training_failed": project.jobs.filter(kind__in=TRAINING_KINDS)
        .order_by("-id")
        .values_list("state", flat=True)
        .first()
        == JobState.FAILED,
        # "0 minutes ago" read oddly (a review)
        "active_just_now": timezone.now() - (last_label or project.created_at) < timedelta(minutes=1),
    }


def flagged_images(*, project: Project, limit: int = 50) -> list[dict[str, Any]]:
    """The newest flagged images with who flagged them and why, for the dashboard."""
    flags = (
        Assignment.objects.filter(
            project=project, state=AssignmentState.FLAGGED, item__image__status=ImageStatus.FLAGGED
        )
        .select_related("annotator", "item")
        .order_by("-finished_at", "-id")
    )
    out: dict[int, dict[str, Any]] = {}
    for flag in flags.iterator():
        image_id = flag.item.image_id
        if image_id not in out:
            if len(out) >= limit:
                break
            out[image_id] = {"image": image_id, "flags": []}
        out[image_id]["flags"].append(
            {"by": flag.annotator.get_username(), "reason": flag.skip_reason, "at": flag.finished_at}
        )
    return list(out.values())
