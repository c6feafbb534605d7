"""The admin dashboard: numbers on the page equal the selectors the API serves; admins only."""

from __future__ import annotations

import pytest
from django.test import Client

from labelling.models import Annotation, EncoderVersion, ModelVersion
from labelling.selectors.dashboard import project_dashboard
from tests.factories import pool

pytestmark = pytest.mark.django_db


def demo_state(project, users):
    """Labels (with an audit one) and two model versions with measured accuracy and a forecast."""
    images = pool(project, 12, reference=True)
    labels = list(project.label_classes.all())
    for i, image in enumerate(images[:6]):
        Annotation.objects.create(
            image=image, annotator=users["annotator"], label=labels[i % 3], seconds_spent=2.0 + i
        )
    images[5].is_audit = True
    images[5].save()
    ev = EncoderVersion.objects.create(project=project, artifact_key="e", embeddings={"shards": ["s"]})
    for n, acc, low, high in [(20, 0.61, 0.5, 0.7), (40, 0.72, 0.63, 0.8)]:
        ModelVersion.objects.create(
            project=project, encoder_version=ev, mode="propagate", artifact_key="m", train_label_count=n,
            metrics={"audit_accuracy": acc, "audit_interval": [low, high], "audit_labels": 30,
                     "forecast": {"points": 3, "labels_to_target": [140.0, 100.0, 210.0],
                                  "accuracy_at_budget": [0.86, 0.82, 0.9], "stop_rule": {"fired": False}}},
        )  # fmt: skip
    project.label_budget = 500
    project.save()


def test_dashboard_shows_the_selectors_numbers(users, project):
    demo_state(project, users)
    client = Client()
    client.force_login(users["admin"])
    page = client.get(f"/projects/{project.id}/dashboard/").content.decode()
    data = project_dashboard(project)
    assert f'data-labels-used="{data["budget"]["labels_used"]}"' in page
    for point in data["learning_curve"]:
        assert f'data-labels="{point["labels"]}" data-accuracy="{point["accuracy"]:.4f}"' in page
    assert f'data-target="{project.target_accuracy}"' in page
    more = data["forecast"]["more_labels_to_target"]
    assert more == [140 - 6 + 1, 100 - 6 + 1, 210 - 6 + 1] or more[0] == round(
        140 - data["forecast"]["training_labels"]
    )
    assert f'data-point="{more[0]}"' in page
    api = client.get(f"/api/projects/{project.id}/dashboard").json()
    assert api["budget"]["labels_used"] == data["budget"]["labels_used"]
    assert api["forecast"]["more_labels_to_target"] == more


def test_dashboard_is_for_admins_only(users, project):
    client = Client()
    for role, code in [("engineer", 403), ("annotator", 403), ("outsider", 404)]:
        client.force_login(users[role])
        assert client.get(f"/projects/{project.id}/dashboard/").status_code == code, role


def test_dashboard_buttons_pause_and_set_budget(users, project):
    client = Client()
    client.force_login(users["admin"])
    url = f"/projects/{project.id}/dashboard/action"
    client.post(url, {"action": "pause"})
    client.post(url, {"action": "budget", "label_budget": "750"})
    project.refresh_from_db()
    assert project.labelling_paused and project.label_budget == 750
    response = client.post(url, {"action": "budget", "label_budget": "-3"}, follow=True)
    assert "at least 1" in response.content.decode()
    project.refresh_from_db()
    assert project.label_budget == 750


def test_overview_lists_admin_projects(users, project):
    client = Client()
    client.force_login(users["admin"])
    page = client.get("/overview/").content.decode()
    assert project.name in page
    client.force_login(users["annotator"])
    assert project.name not in client.get("/overview/").content.decode()


def test_dashboard_says_what_the_stop_rule_waits_for(users, project):
    demo_state(project, users)
    client = Client()
    client.force_login(users["admin"])
    page = client.get(f"/projects/{project.id}/dashboard/").content.decode()
    assert "not enough versions yet" in page  # the demo's forecast has no kappas
    assert "No agreement measured yet" in page and 'id="stop-rule-chart"' not in page
    model = project.model_versions.order_by("id").last()
    forecast = model.metrics["forecast"]
    forecast["stop_rule"] = {"fired": False, "mean_kappa": 0.9712, "kappas": [0.95, 0.97, 0.99]}
    model.save(update_fields=["metrics"])
    page = client.get(f"/projects/{project.id}/dashboard/").content.decode()
    assert "predictions still changing (κ 0.971 over the last 3 rounds" in page
    # the chart: one point per kappa, the threshold line, the mean of 3 from the third on
    assert 'id="stop-rule-chart"' in page and 'data-threshold="0.99"' in page
    assert [f'data-kappa="{k:.4f}"' in page for k in (0.95, 0.97, 0.99)] == [True] * 3
    assert "version 4: κ 0.990 (mean of 3: 0.970)" in page  # stored before label counts were
    forecast["stop_rule"]["labels"] = [1200, 1300, 1400]
    model.save(update_fields=["metrics"])
    page = client.get(f"/projects/{project.id}/dashboard/").content.decode()
    assert "1,400 labels: κ 0.990 (mean of 3: 0.970)" in page and ">1,200</text>" in page
    assert "training labels (κ against the version compared before)" in page
    forecast["stop_rule"] = {"fired": True, "mean_kappa": 0.9951, "kappas": [0.99, 0.995, 1.0]}
    model.save(update_fields=["metrics"])
    page = client.get(f"/projects/{project.id}/dashboard/").content.decode()
    assert 'data-fired="true"' in page and "κ 0.995" in page
