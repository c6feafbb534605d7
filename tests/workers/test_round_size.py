"""A retrain's round outlasts the next retrain at the pace annotators label (they waited at every
retrain when they labelled faster than a retrain ran: a review's two annotators at 1 label/s)."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from labelling.models import Annotation, Job
from tests.factories import pool
from workers.jobs.training import round_size

pytestmark = pytest.mark.django_db


def _labels_aged(
    project, annotator, ages_s: list[float], *, now, imported: bool = False, seed: int = 0
) -> None:
    """One label on a new image for each age, given that many seconds before ``now``."""
    label = project.label_classes.first()
    for image, age in zip(pool(project, len(ages_s), seed=seed), ages_s, strict=True):
        a = Annotation.objects.create(image=image, annotator=annotator, label=label, imported=imported)
        Annotation.objects.filter(pk=a.pk).update(created_at=now - timedelta(seconds=age))


def _labels(project, annotator, n: int, *, over_s: float, now, imported: bool = False) -> None:
    """``n`` labels spread evenly over the last ``over_s`` seconds."""
    ages = [over_s * (k + 1) / n for k in range(n)]
    seed = len(Annotation.objects.all()) + 100 * imported
    _labels_aged(project, annotator, ages, now=now, imported=imported, seed=seed)


def test_a_round_grows_to_cover_a_retrain_at_the_labelling_pace(project, users):
    now = timezone.now()
    project.batch_size, project.cycle_every = 40, 20
    job = Job.objects.create(project=project, kind="cycle", started_at=now - timedelta(seconds=60))
    assert round_size(job, project, now=now) == (40, "")  # nobody has labelled yet
    # 120 labels over the last two minutes: 1 a second; a 60 s retrain takes 60 more, 90 with the margin.
    _labels(project, users["annotator"], 120, over_s=120, now=now)
    size, why = round_size(job, project, now=now)
    assert size == 90 and "60 labels a minute" in why and "60 s retrain" in why
    # Imported labels are no one's pace; three labels per image need a third of the images.
    _labels(project, users["engineer"], 60, over_s=60, now=now, imported=True)
    project.annotations_per_image = 3
    assert round_size(job, project, now=now) == (40, "")
    project.annotations_per_image = 1
    # A slow retrain at that pace: more; the budget left caps it (never under batch_size).
    slow = Job.objects.create(project=project, kind="cycle", started_at=now - timedelta(seconds=600))
    assert round_size(slow, project, now=now)[0] == 900
    project.label_budget = 120 + 300
    assert round_size(slow, project, now=now)[0] == 300
    project.label_budget = 130
    assert round_size(slow, project, now=now) == (40, "")
    # An engineer's batch_size is taken as given; a select job (no retrain) keeps the project's.
    asked = Job.objects.create(project=project, kind="cycle", params={"batch_size": 7}, started_at=now)
    assert round_size(asked, project, now=now) == (7, "")
    select = Job.objects.create(project=project, kind="select", started_at=now - timedelta(seconds=600))
    assert round_size(select, project, now=now) == (40, "")
    # The pace is that of the last ten minutes: labels of an hour ago do not count.
    Annotation.objects.update(created_at=now - timedelta(hours=1))
    project.label_budget = None
    assert round_size(slow, project, now=now) == (40, "")


def test_a_rounds_reasons_name_classes_by_their_labels():
    # A scale review read "predicted class 1" in the selection's reasons: the class's index.
    from workers.jobs.training import _class_named

    reason = (
        "auto: balanced_margin (300 labels >= 20 per class x 2 classes): margin 0.031 among predicted class 1"
    )
    assert _class_named(reason, ["T-shirt/top", "Trouser"]).endswith('among predicted class "Trouser"')
    assert "per class x 2" in _class_named(reason, ["a", "b"])
    assert _class_named("densest point of cluster 17", ["a"]) == "densest point of cluster 17"


def test_the_pace_is_the_teams_while_labelling_not_counting_waits(project, users):
    # A scale review: a 50 s wait for a retrain among the labels of the window made the team read
    # half as fast (29 labels a minute against 55), so the next round was too short and they waited again.
    from workers.jobs.training import labelling_pace

    now = timezone.now()
    _labels_aged(project, users["annotator"], [*range(0, 30), *range(80, 110)], now=now)  # 1/s, a 50 s wait
    assert labelling_pace(project, now=now) == pytest.approx(1.0, rel=0.05)
    # Two annotators a second each, interleaved unevenly: 2 labels a second, not more (dropping the
    # longest fifth of the gaps read a re-check's steady team 30 % fast).
    Annotation.objects.all().delete()
    ages = [k + (0.1 if j else 0.0) for k in range(30) for j in (0, 1)]
    _labels_aged(project, users["annotator"], ages, now=now, seed=5)
    assert labelling_pace(project, now=now) == pytest.approx(2.0, rel=0.05)
    Annotation.objects.filter(pk__in=list(Annotation.objects.values_list("pk", flat=True)[:52])).delete()
    assert labelling_pace(project, now=now) == 0.0  # 8 labels: too few to tell


def test_the_message_says_what_was_queued_when_the_pool_had_fewer_left(project, monkeypatch):
    """A review: "round 16 queued (284 images, not 40 ...)" for a round of 56, all the pool had left."""
    import numpy as np

    from labelling.models import EncoderVersion
    from workers.jobs import training
    from workers.jobs.storage import store_npy

    images = pool(project, 3)
    store_npy(np.array([im.id for im in images]), "e/ids.npy")
    store_npy(np.random.default_rng(0).standard_normal((3, 4)).astype(np.float32), "e/s0.npy")
    project.current_encoder = EncoderVersion.objects.create(
        project=project, artifact_key="x", embeddings={"ids_key": "e/ids.npy", "shards": ["e/s0.npy"]}
    )
    project.selection_strategy, project.audit_fraction = "random", 0.0
    project.save()
    why = "10 images, not 4: at 60 labels a minute a 10 s retrain would empty a shorter queue"
    monkeypatch.setattr(training, "round_size", lambda job, project: (10, why))
    job = Job.objects.create(project=project, kind="select", state="running")
    result = training.cycle(job, lambda *a, **k: None)
    assert result["_message"] == (
        "round 1 queued (3 images, all that was left to pick; 10 wanted, not 4: at 60 labels a minute a"
        " 10 s retrain would empty a shorter queue)"
    )
