"""Learning curve, forecast and stop rule, read from what the workers stored on model versions.

The API and the dashboard both call these, so the page and the API never disagree.
"""

from __future__ import annotations

from typing import Any

from labelling.models import Annotation, Project


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
    and the stop rule's state; ``None`` fields where there is not enough data yet."""
    latest = project.model_versions.order_by("-id").first()
    stored = (latest.metrics.get("forecast") if latest else None) or {}
    used = Annotation.objects.filter(image__project=project, image__is_audit=False).count()
    reach = stored.get("labels_to_target")
    more = None
    if reach:
        more = [max(0, round(v - used)) for v in reach]
    stop = stored.get("stop_rule") or {"fired": False}
    return {
        "target_accuracy": project.target_accuracy,
        "training_labels": used,
        "labels_to_target": reach,
        "more_labels_to_target": more,
        "accuracy_at_budget": stored.get("accuracy_at_budget"),
        "label_budget": project.label_budget,
        "stop_rule": {
            "fired": bool(stop.get("fired")),
            "mean_kappa": stop.get("mean_kappa"),
            "kappas": stop.get("kappas", []),
            "labels": stop.get("labels", []),
            "spacing": stop.get("spacing"),
        },
        "points": stored.get("points", 0),
        "note": stored.get("error", ""),
    }
