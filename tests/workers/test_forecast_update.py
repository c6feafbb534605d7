"""The forecast a retrain stores: the stop rule over the model versions that scored the same stop set."""

from __future__ import annotations

import numpy as np
import pytest

from labelling.models import EncoderVersion, ModelVersion
from workers.jobs.training import _update_forecast

pytestmark = pytest.mark.django_db


def _version(project, encoder, stop_set: dict, labels: int = 0) -> ModelVersion:
    return ModelVersion.objects.create(
        project=project,
        encoder_version=encoder,
        mode="propagate",
        artifact_key="m",
        train_label_count=labels,
        metrics={"stop_set": stop_set},
    )


def test_stop_rule_leaves_out_the_stop_set_items_labelled_for_each_version(project):
    # Four versions agree everywhere except on the 30 stop-set items each one was trained on (their
    # predictions turn to their labels): a settled model, which the rule must see as settled.
    encoder = EncoderVersion.objects.create(project=project, artifact_key="e", embeddings={"shards": ["s"]})
    ids = list(range(1000, 1500))
    pred, labelled = np.random.default_rng(0).integers(0, 3, 500), np.zeros(500, bool)
    # An older version scored another stop set (the pool grew since): not compared.
    _version(project, encoder, {"ids": ids[:-1], "predictions": ((pred[:-1] + 1) % 3).tolist()})
    versions = []
    for r in range(4):
        new = np.arange(30 * r, 30 * (r + 1))
        pred, labelled = pred.copy(), labelled.copy()
        pred[new], labelled[new] = (pred[new] + 1) % 3, True
        versions.append(
            _version(
                project,
                encoder,
                {"ids": ids, "predictions": pred.tolist(), "labelled": labelled.tolist()},
                labels=100 * (r + 1),
            )
        )
    _update_forecast(project, versions[-1])
    versions[-1].refresh_from_db()
    state = versions[-1].metrics["forecast"]["stop_rule"]
    assert state["kappas"] == [1.0, 1.0, 1.0] and state["fired"] is True
    assert state["labels"] == [200, 300, 400] and state["spacing"] == 100


def test_stop_rule_counts_every_item_for_versions_that_did_not_record_labels(project):
    encoder = EncoderVersion.objects.create(project=project, artifact_key="e", embeddings={"shards": ["s"]})
    ids = list(range(200))
    base = np.arange(200) % 4
    changed = base.copy()
    changed[:20] = (changed[:20] + 1) % 4
    _version(project, encoder, {"ids": ids, "predictions": base.tolist()}, labels=100)
    last = _version(project, encoder, {"ids": ids, "predictions": changed.tolist()}, labels=200)
    _update_forecast(project, last)
    last.refresh_from_db()
    state = last.metrics["forecast"]["stop_rule"]
    assert len(state["kappas"]) == 1 and state["kappas"][0] < 0.9 and state["fired"] is False


def test_stop_rule_compares_versions_a_fixed_number_of_labels_apart(project):
    # A retrain every 20 labels: 16 versions from 100 to 400 labels, each changing 2 % of the stop
    # set. Consecutive versions would agree at kappa ~0.97 and the rule would run on 15 kappas; it
    # compares the versions at 100, 200, 300 and 400 labels (each 5 x 2 % apart) instead.
    from workers.jobs.training import STOP_RULE_SPACING

    encoder = EncoderVersion.objects.create(project=project, artifact_key="e", embeddings={"shards": ["s"]})
    ids = list(range(1000))
    pred = np.arange(1000) % 5
    versions = []
    for r in range(16):
        pred = pred.copy()
        pred[20 * r : 20 * (r + 1)] = (pred[20 * r : 20 * (r + 1)] + 1) % 5
        versions.append(
            _version(project, encoder, {"ids": ids, "predictions": pred.tolist()}, labels=100 + 20 * r)
        )
    _update_forecast(project, versions[-1])
    versions[-1].refresh_from_db()
    state = versions[-1].metrics["forecast"]["stop_rule"]
    assert STOP_RULE_SPACING == 100
    assert state["labels"] == [200, 300, 400]
    assert len(state["kappas"]) == 3 and all(0.85 < k < 0.9 for k in state["kappas"])  # 100 changed of 1000
    assert state["fired"] is False
