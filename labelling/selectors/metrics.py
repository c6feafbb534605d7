"""Learning curve, forecast and stop rule, read from what the workers stored on model versions.

The API and the dashboard both call these, so the page and the API never disagree.
"""

from __future__ import annotations

import math
from typing import Any

from labelling.models import Annotation, Project
from labelling.models.image import ImageStatus


def learning_curve(project: Project) -> list[dict[str, Any]]:
    """One point per model version with an audit measurement: labels, accuracy and its interval."""
    points = []
    for v in project.model_versions.order_by("id"):
        m = v.metrics
        if m.get("audit_accuracy") is None:
            continue
        low, high = m.get("audit_interval") or (None, None)
        points.append(
            {
                "model_version": v.id,
                "labels": v.train_label_count,
                "accuracy": m["audit_accuracy"],
                "low": low,
                "high": high,
                "audit_labels": m.get("audit_labels", 0),
                "created_at": v.created_at,
            }
        )
    return points


def forecast(project: Project) -> dict[str, Any]:
    """The newest forecast: labels to the target (point, low, high), accuracy at the budget's end,
    and the stop rule's state; ``None`` fields where there is not enough data yet.

    The stored curve counts training images (``labels_to_target``, ``more_images_to_target``);
    ``more_labels_to_target`` converts to budget labels (several per image, and the audit slice's).
    A bound the bootstrap never reached is ``None`` ("or more"). Numbers computed for another
    target or budget than the project's now are left out until the next model version."""
    latest = project.model_versions.order_by("-id").first()
    stored = (latest.metrics.get("forecast") if latest else None) or {}
    images = (  # training images, as the worker counts them (pool_labels)
        Annotation.objects.filter(image__project=project, image__is_audit=False)
        .exclude(image__status=ImageStatus.FLAGGED)
        .values("image_id")
        .distinct()
        .count()
    )
    note = stored.get("error", "")
    reach = stored.get("labels_to_target")
    reachable = stored.get("reachable", True if reach else None)  # forecasts stored before it: from reach
    if stored.get("target_accuracy", project.target_accuracy) != project.target_accuracy:
        reach = reachable = None
        note = "the target changed since the last model version; the forecast follows the next one"
    more_images = more_labels = None
    if reach and reachable is False:  # the curve gets there only beyond the pool's images
        note = (
            f"the curve reaches the target only after about {round(reach[0]):,} training images; "
            f"the pool holds {stored.get('pool_images', 0):,}"
        )
    elif reach:
        per_image = project.labels_per_training_image()
        more_images = [None if v is None else max(0, round(v - images)) for v in reach]
        more_labels = [None if v is None else math.ceil(v * per_image) for v in more_images]
    at_budget = stored.get("accuracy_at_budget")
    if not project.label_budget or stored.get("label_budget") != project.label_budget:
        at_budget = None  # no budget now, or computed for another one (or before it was recorded)
    stop = stored.get("stop_rule") or {"fired": False}
    return {
        "target_accuracy": project.target_accuracy,
        "training_labels": images,
        "labels_to_target": reach,
        "more_images_to_target": more_images,
        "more_labels_to_target": more_labels,
        "reachable": reachable,
        "accuracy_at_budget": at_budget,
        "label_budget": project.label_budget,
        "stop_rule": {
            # Judged against the project's threshold now, so that changing it shows at once.
            "fired": stop.get("mean_kappa") is not None and stop["mean_kappa"] >= project.stop_kappa,
            "threshold": project.stop_kappa,
            "mean_kappa": stop.get("mean_kappa"),
            "kappas": stop.get("kappas", []),
            "labels": stop.get("labels", []),
            "spacing": stop.get("spacing"),
        },
        "points": stored.get("points", 0),
        "note": note,
    }
