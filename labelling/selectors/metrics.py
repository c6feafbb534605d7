"""Learning curve, forecast and stop rule, read from what the workers stored on model versions.

The API and the dashboard both call these, so the page and the API never disagree.
"""

from __future__ import annotations

import math
from typing import Any

from labelling.models import Annotation, Project
from labelling.models.image import ImageStatus


def given_labels(project: Project):
    """The labels given in this project's queue: what its budget spends and its annotators' figures
    count (imported labels are neither)."""
    return Annotation.objects.filter(image__project=project, imported=False)


def labelled_training_images(project: Project) -> int:
    """Training images labelled now (audit ones never train): what the retrain trigger counts."""
    return project.images.filter(is_audit=False, status=ImageStatus.LABELLED).count()


def newest_per_count(points: list, count) -> list:
    """One of ``points`` per label count (``count(point)``), the last given (the newest version's),
    in the order of those last ones: a retrain without new labels (a finetune, a hand-run cycle)
    measures the same labels again, and as separate points it flipped a forecast and drew a
    vertical jump on the chart."""
    newest: dict = {}
    for point in points:
        newest.pop(count(point), None)  # re-inserted: the order is that of each count's newest
        newest[count(point)] = point
    return list(newest.values())


def wilson_interval(correct: int, n: int, z: float = 1.96) -> tuple[float, float]:
    """95 % Wilson score interval of a proportion ``correct / n`` ((0, 1) when n = 0)."""
    if n == 0:
        return 0.0, 1.0
    p = correct / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return max(0.0, centre - half), min(1.0, centre + half)


def audit_by_class(project: Project) -> dict[str, Any]:
    """The current model on the audit slice, class by class: how many audit images of each class
    it got right (recall, with its interval), how often its prediction of the class was right
    (precision), and the class it most often took them for; and the confusion matrix's non-empty
    cells as label ids. Empty where the model predates the measurement or has no audit labels."""
    model = project.current_model
    cells = (model.metrics.get("audit_confusion") if model else None) or []
    label_ids = list(project.label_classes.order_by("order", "id").values_list("id", "name"))
    if not cells:
        return {"model_version": model.id if model else None, "classes": [], "confusion": []}
    k = len(label_ids)
    truth_n, predicted_n, correct = [0] * k, [0] * k, [0] * k
    confused: list[tuple[int, int]] = [(0, -1)] * k  # (count, class) of the most common mistake
    for t, p, n in cells:
        if t >= k or p >= k:  # a class index from a label set since changed: not shown
            continue
        truth_n[t] += n
        predicted_n[p] += n
        if t == p:
            correct[t] += n
        elif n > confused[t][0]:
            confused[t] = (n, p)
    classes = []
    for i, (label_id, name) in enumerate(label_ids):
        low, high = wilson_interval(correct[i], truth_n[i])
        n_conf, other = confused[i]
        classes.append(
            {
                "label": label_id,
                "name": name,
                "audit_labels": truth_n[i],
                "correct": correct[i],
                "recall": correct[i] / truth_n[i] if truth_n[i] else None,
                "recall_interval": [low, high] if truth_n[i] else None,
                "predicted": predicted_n[i],
                "precision": correct[i] / predicted_n[i] if predicted_n[i] else None,
                "confused_with": (
                    {"label": label_ids[other][0], "name": label_ids[other][1], "count": n_conf}
                    if other >= 0
                    else None
                ),
            }
        )
    confusion = [[label_ids[t][0], label_ids[p][0], n] for t, p, n in cells if t < k and p < k]
    return {"model_version": model.id, "classes": classes, "confusion": confusion}


def learning_curve(project: Project) -> list[dict[str, Any]]:
    """One point per model version with an audit measurement: labels, accuracy and its interval. A
    version the newest retrain scored again against today's audit labels (corrected by a review
    since) shows that score, as the forecast fitted it."""
    versions = list(project.model_versions.order_by("id"))
    newest = (versions[-1].metrics.get("forecast") or {}) if versions else {}
    rescored = newest.get("rescored") or {}
    points = []
    for v in versions:
        m = v.metrics
        if str(v.id) in rescored:
            correct, n = rescored[str(v.id)]
            if not n:
                continue
            accuracy, (low, high), audit_labels = correct / n, wilson_interval(correct, n), n
        elif m.get("audit_accuracy") is None:
            continue
        else:
            accuracy, audit_labels = m["audit_accuracy"], m.get("audit_labels", 0)
            low, high = m.get("audit_interval") or (None, None)
        points.append(
            {
                "model_version": v.id,
                "labels": v.train_label_count,
                "accuracy": accuracy,
                "low": low,
                "high": high,
                "audit_labels": audit_labels,
                "created_at": v.created_at,
            }
        )
    return points


def forecast_made_for_other_settings(project: Project, stored: dict | None) -> bool:
    """Whether a stored forecast was fitted for another target or budget than the project's now, or,
    with a budget, another number of labels per training image: a ``forecast`` job refits it (queued
    by the change); without a budget, labels per image convert the stored curve when it is read."""
    if not stored or "target_accuracy" not in stored:
        return False  # none fitted (too few points, or an error): no numbers to answer for old settings
    if (stored["target_accuracy"], stored.get("label_budget")) != (
        project.target_accuracy,
        project.label_budget,
    ):
        return True
    return (
        bool(project.label_budget) and stored.get("labels_per_image") != project.labels_per_training_image()
    )


def forecast(project: Project, *, spent: int | None = None) -> dict[str, Any]:
    """The newest forecast: labels to the target (point, low, high), accuracy at the budget's end,
    and the stop rule's state; ``None`` fields where there is not enough data yet. ``spent``: the
    project's given labels when the caller has counted them already (one COUNT less).

    The stored curve counts training images (``labels_to_target``, ``more_images_to_target``);
    ``more_labels_to_target`` converts to budget labels (several per image, and the audit slice's).
    A bound the bootstrap never reached is ``None`` ("or more"). Numbers computed for another
    target or budget than the project's now are left out until they are refitted (the change queued a
    ``forecast`` job: seconds)."""
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
        note = "the target changed since this forecast was made; it is being refitted for the new one"
    more_images = more_labels = None
    if reachable is False and not reach and not note:
        note = f"the fitted curve levels off below {project.target_accuracy:.0%}"
    if reach and reachable is False:  # the curve gets there only beyond the pool's images
        pool = stored.get("pool_images", 0)
        after = (  # a flat curve put it at a 60-digit number of images (a review)
            f"about {round(reach[0]):,}" if reach[0] < 100 * max(pool, 1) else "over 100 times as many"
        )
        note = f"the curve reaches the target only after {after} training images; the pool holds {pool:,}"
    elif reach:
        per_image = project.labels_per_training_image()
        pool = stored.get("pool_images")
        if pool and reach[2] is not None and reach[2] > pool:
            reach = [reach[0], reach[1], None]  # past the pool's images: open-ended, not a number
        more_images = [None if v is None else max(0, round(v - images)) for v in reach]
        more_labels = [None if v is None else math.ceil(v * per_image) for v in more_images]
    newest = latest.metrics.get("audit_accuracy") if latest else None
    if reachable is False and newest is not None and newest >= project.target_accuracy:
        note = (note + "; " if note else "") + (  # as the dashboard says it
            "the newest audit accuracy is at the target, though: the curve is fitted to every version's "
            "and errs on the low side, and more audit labels will tell which holds"
        )
    at_budget = stored.get("accuracy_at_budget")
    budget_images = stored.get("budget_images")
    budget_spent = stored.get("budget_spent", False)
    projection = stored.get("projection")
    if not project.label_budget or stored.get("label_budget") != project.label_budget:
        # No budget now, or computed for another one (or before it was recorded).
        at_budget = budget_images = None
        budget_spent = False
        if stored.get("label_budget") != project.label_budget:
            projection = None  # it ran to the old budget's end: the next version draws the new one
    if stored.get("target_accuracy", project.target_accuracy) != project.target_accuracy:
        projection = None  # its extent followed the old target
    if (
        stored.get("labels_per_image", project.labels_per_training_image())
        != project.labels_per_training_image()
    ):
        at_budget = budget_images = projection = None  # annotations per image or the audit share changed
    if project.label_budget and not budget_spent:
        if spent is None:
            spent = given_labels(project).count()
        if spent >= project.label_budget:  # spent since the version was trained
            at_budget, budget_images, budget_spent = None, None, True
    stop = stored.get("stop_rule") or {"fired": False}
    return {
        "target_accuracy": project.target_accuracy,
        "training_labels": images,
        "labels_to_target": reach,
        "more_images_to_target": more_images,
        "more_labels_to_target": more_labels,
        "reachable": reachable,
        "accuracy_at_budget": at_budget,
        "budget_images": budget_images,
        "pool_ends_first": bool(stored.get("pool_ends_first")) if budget_images is not None else False,
        "budget_spent": budget_spent,
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
        "refitting": forecast_made_for_other_settings(project, stored),  # numbers left out meanwhile
        "projection": projection,
        "projection_ends": _projection_ends(projection, budget_images, reach, stored),
        "note": note,
    }


def _projection_ends(projection, budget_images, reach, stored) -> str:
    """Where the drawn forecast stops, for the chart's caption: "budget" or "pool" (it runs to where
    that runs out), "target" (a little past where the target is reached, before the budget's end),
    or "" (3 times the labels so far, with neither). The caption said "to where the budget runs
    out" of a line that stopped at the target (a review)."""
    if not projection:
        return ""
    end = projection["labels"][-1]
    if budget_images and end >= 0.99 * budget_images:
        return "pool" if stored.get("pool_ends_first") else "budget"
    if reach:
        return "target"
    return ""
