"""Which training labels judge the learner's second view: those a strategy that samples the pool queued."""

from __future__ import annotations

import numpy as np
import pytest

from labelling.models import Image, QueueItem, SelectionRound
from workers.jobs.training import pool_sample_labels

pytestmark = pytest.mark.django_db


def test_labels_from_random_and_typical_rounds_judge_those_from_uncertainty_rounds_do_not(project):
    images = [
        Image.objects.create(
            project=project, sha256=f"{i:064x}", storage_key=f"k{i}", width=8, height=8, format="PNG"
        )
        for i in range(8)
    ]
    rounds = {
        s: SelectionRound.objects.create(
            project=project, number=n, strategy=s, requested_strategy="auto", batch_size=2
        )
        for n, s in enumerate(["auto:typiclust", "auto:balanced_margin", "random", "margin"], start=1)
    }
    queued = {0: "auto:typiclust", 1: "auto:typiclust", 2: "auto:balanced_margin", 3: "random", 4: "margin"}
    for i, s in queued.items():
        QueueItem.objects.create(project=project, image=images[i], round=rounds[s], state="done")
    # Image 5: queued by TypiClust, taken off the queue, then queued again by margin and labelled there.
    QueueItem.objects.create(
        project=project, image=images[5], round=rounds["auto:typiclust"], state="removed"
    )
    QueueItem.objects.create(project=project, image=images[5], round=rounds["margin"], state="done")
    # Image 6: the reverse. Image 7: queued by random but not labelled (no training label).
    QueueItem.objects.create(project=project, image=images[6], round=rounds["margin"], state="removed")
    QueueItem.objects.create(project=project, image=images[6], round=rounds["random"], state="done")
    QueueItem.objects.create(project=project, image=images[7], round=rounds["random"], state="open")
    ids = np.array([im.id for im in images][::-1])  # rows in another order than the ids
    train = np.array([0, 1, 1, 0, 1, 0, 1, -1][::-1])
    mask = pool_sample_labels(project, ids, train)
    assert mask[::-1].tolist() == [True, True, False, True, False, False, True, False]


def test_the_next_fit_gets_the_live_models_view_decision_for_the_same_encoder(project):
    from labelling.models import EncoderVersion, ModelVersion
    from workers.jobs.training import live_view_decision

    first = EncoderVersion.objects.create(project=project, artifact_key="e1", embeddings={"shards": ["s"]})
    second = EncoderVersion.objects.create(project=project, artifact_key="e2", embeddings={"shards": ["s"]})
    assert live_view_decision(project, first) is None  # no model yet

    def live(metrics: dict) -> None:
        model = ModelVersion.objects.create(
            project=project, encoder_version=first, mode="propagate", artifact_key="m", metrics=metrics
        )
        project.current_model = model
        project.save(update_fields=["current_model"])

    live({"view": True})
    assert live_view_decision(project, first) is True
    assert live_view_decision(project, second) is None  # another encoder's embeddings: decide afresh
    live({"view": False})
    assert live_view_decision(project, first) is False
    live({"audit_accuracy": 0.9})  # a model from before the metric
    assert live_view_decision(project, first) is None
