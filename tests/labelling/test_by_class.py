"""Accuracy by class: the worker stores the audit slice's confusion cells with each model version;
the metrics and dashboard APIs and the dashboard read them back class by class."""

from __future__ import annotations

import numpy as np
import pytest
from django.test import Client

from labelling.models import EncoderVersion, ModelVersion
from labelling.selectors.metrics import audit_by_class

pytestmark = pytest.mark.django_db


def _model(project, cells):
    ev = EncoderVersion.objects.create(project=project, artifact_key="e", embeddings={"shards": ["s"]})
    model = ModelVersion.objects.create(
        project=project, encoder_version=ev, mode="probe", artifact_key="m", train_label_count=30,
        metrics={"audit_accuracy": 0.7, "audit_interval": [0.5, 0.85], "audit_labels": 20,
                 "audit_confusion": cells},
    )  # fmt: skip
    project.current_model = model
    project.save()
    return model


# cat, dog, bird: 8 cats (6 right, 2 taken for dogs), 10 dogs (9 right, 1 bird), 2 birds (0 right,
# both taken for cats); and a cell of a class index the label set no longer has.
CELLS = [[0, 0, 6], [0, 1, 2], [1, 1, 9], [1, 2, 1], [2, 0, 2], [7, 0, 3]]


def test_per_class_recall_precision_and_the_usual_mistake(users, project):
    _model(project, CELLS)
    data = audit_by_class(project)
    cat, dog, bird = data["classes"]
    assert (cat["audit_labels"], cat["correct"], cat["recall"]) == (8, 6, 0.75)
    assert cat["predicted"] == 8 and cat["precision"] == 6 / 8  # 6 cats + 2 birds called cat
    assert cat["confused_with"]["name"] == "dog" and cat["confused_with"]["count"] == 2
    assert dog["recall"] == 0.9 and dog["precision"] == 9 / 11
    assert bird["recall"] == 0.0 and bird["precision"] == 0.0 and bird["confused_with"]["name"] == "cat"
    low, high = cat["recall_interval"]
    assert 0.35 < low < 0.75 < high < 0.97
    assert len(data["confusion"]) == 5  # the stale class index left out
    assert {tuple(c) for c in data["confusion"]} >= {(cat["label"], dog["label"], 2)}


def test_no_measurement_no_rows(users, project):
    assert audit_by_class(project) == {"model_version": None, "classes": [], "confusion": []}
    _model(project, [])
    assert audit_by_class(project)["classes"] == []


def test_the_apis_and_the_dashboard_show_it(users, project, client_for):
    model = _model(project, CELLS)
    eng = client_for(users["engineer"])
    by_class = eng.get(f"/api/projects/{project.id}/metrics").json()["by_class"]
    assert by_class["model_version"] == model.id and [c["name"] for c in by_class["classes"]] == [
        "cat",
        "dog",
        "bird",
    ]
    admin_api = client_for(users["admin"]).get(f"/api/projects/{project.id}/dashboard").json()
    assert admin_api["by_class"] == by_class
    client = Client()
    client.force_login(users["admin"])
    page = client.get(f"/projects/{project.id}/dashboard/").content.decode()
    section = page.split('id="by-class"')[1].split("</section>")[0]
    rows = [r.split('data-label="')[1].split('"')[0] for r in section.split("<tr ")[1:]]
    labels = {c["name"]: str(c["label"]) for c in by_class["classes"]}
    assert rows == [labels["bird"], labels["cat"], labels["dog"]]  # the weakest class first
    assert "75.0 %" in section and "cat (2)" in section
    assert 'data-true="cat" data-predicted="dog" data-count="2"' in section  # the matrix


def test_the_worker_stores_the_cells():
    from workers.jobs.training import _confusion_cells

    truth, predicted = np.array([0, 0, 1, 2, 2, 2]), np.array([0, 1, 1, 2, 2, 0])
    assert _confusion_cells(truth, predicted) == [[0, 0, 1], [0, 1, 1], [1, 1, 1], [2, 0, 1], [2, 2, 2]]
    assert _confusion_cells(np.array([], dtype=int), np.array([], dtype=int)) == []
