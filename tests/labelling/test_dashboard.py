"""The admin dashboard: numbers on the page equal the selectors the API serves; admins only."""

from __future__ import annotations

import math

import pytest
from django.test import Client

from labelling.models import Annotation, EncoderVersion, ModelVersion
from labelling.selectors.dashboard import project_dashboard
from tests.factories import pool

pytestmark = pytest.mark.django_db


# The fitted curve ahead, as the worker stores it: from the last measured count (40) to a little past
# where it reaches 90 % (the forecast's 140, high end 210).
_AHEAD = [40 + 8 * i for i in range(25)]


def _fitted(n: float) -> float:
    return 0.98 - 8.37 * n**-0.941  # 72 % at 40, 90 % at 140


PROJECTION = {
    "labels": _AHEAD,
    "accuracy": [round(_fitted(n), 4) for n in _AHEAD],
    "low": [round(_fitted(n) - 0.0004 * (n - 40), 4) for n in _AHEAD],
    "high": [round(min(1.0, _fitted(n) + 0.0003 * (n - 40)), 4) for n in _AHEAD],
}


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
        model = ModelVersion.objects.create(
            project=project, encoder_version=ev, mode="propagate", artifact_key="m", train_label_count=n,
            metrics={"audit_accuracy": acc, "audit_interval": [low, high], "audit_labels": 30,
                     "forecast": {"points": 3, "labels_to_target": [140.0, 100.0, 210.0], "reachable": True,
                                  "target_accuracy": project.target_accuracy, "label_budget": 500,
                                  "accuracy_at_budget": [0.86, 0.82, 0.9], "stop_rule": {"fired": False},
                                  "projection": PROJECTION},
                     # cat 8 (6 right), dog 12 (10 right), bird 10 (6 right): the audit slice by class
                     "audit_confusion": [[0, 0, 6], [0, 1, 2], [1, 1, 10], [1, 2, 2], [2, 2, 6], [2, 0, 4]]},
        )  # fmt: skip
    project.current_model = model
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
    # 5 labelled training images (the 6th is audit); each more one costs 1 / (1 - 0.05) budget labels.
    assert data["forecast"]["training_labels"] == 5
    assert data["forecast"]["more_images_to_target"] == [135, 95, 205]
    more = data["forecast"]["more_labels_to_target"]
    assert more == [math.ceil(v / 0.95) for v in (135, 95, 205)] == [143, 100, 216]
    assert f'data-point="{more[0]}"' in page
    # And as time: the labels to the target at the team's rate (an admin's review asked for it).
    from labelling.web.dashboard import _hours

    per_hour = data["budget"]["labels_per_hour"]
    assert (
        per_hour > 0
        and f'<span id="hours-to-target">{_hours(more[0] / per_hour)}</span> of labelling' in page
    )
    # The exports and the current model are a click away (they were API-only: a review).
    assert f'href="/api/projects/{project.id}/export/labels.csv"' in page
    assert f'href="/api/models/{project.current_model_id}/download"' in page
    assert client.get(f"/api/projects/{project.id}/export/labels.csv").status_code == 200  # the session
    assert "just now" in client.get("/overview/").content.decode()  # not "0 minutes ago"
    api = client.get(f"/api/projects/{project.id}/dashboard").json()
    assert api["budget"]["labels_used"] == data["budget"]["labels_used"]
    assert api["forecast"]["more_labels_to_target"] == more


def test_the_dashboard_counts_the_labels_given_once(users, project):
    # The budget and the forecast's "spent since the version" check both need it: one COUNT.
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    demo_state(project, users)
    project.label_budget = 5  # spent: the forecast's check runs
    project.save()
    client = Client()
    client.force_login(users["admin"])
    for url in (f"/projects/{project.id}/dashboard/", "/overview/"):
        with CaptureQueriesContext(connection) as queries:
            assert client.get(url).status_code == 200
        counts = [
            q["sql"] for q in queries.captured_queries
            if q["sql"].startswith("SELECT COUNT(*)") and '"imported"' in q["sql"]
            and "created_at" not in q["sql"] and "annotator_id" not in q["sql"]
        ]  # fmt: skip
        assert len(counts) == 1, (url, counts)
    assert project_dashboard(project)["forecast"]["budget_spent"] is True


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
    for raw, says in [("-3", "at least 1"), ("12.5", "whole number"), ("99999999999999999999", "at most")]:
        response = client.post(url, {"action": "budget", "label_budget": raw}, follow=True)
        assert response.status_code == 200 and says in response.content.decode(), raw
    project.refresh_from_db()
    assert project.label_budget == 750
    # A budget no larger than the labels already given says that labelling stops.
    demo_state(project, users)  # 6 labels given
    page = client.post(url, {"action": "budget", "label_budget": "6"}, follow=True).content.decode()
    assert "no more than the 6 already given, so labelling stops" in page
    page = client.post(url, {"action": "budget", "label_budget": "7"}, follow=True).content.decode()
    assert "Budget saved." in page and "labelling stops" not in page


def test_a_new_project_shows_its_first_step_and_the_button_starts_it(users, project):
    # Without an encoder nothing comes to annotators by itself: the dashboard says what to do and
    # its button queues the pretrain (on a pool big enough for it).
    from labelling.models import Job

    client = Client()
    client.force_login(users["admin"])
    page = client.get(f"/projects/{project.id}/dashboard/").content.decode()
    assert 'id="first-step"' in page and "Pretrain on the pool" in page
    url = f"/projects/{project.id}/dashboard/action"
    page = client.post(url, {"action": "pretrain"}, follow=True).content.decode()
    assert "pretraining needs at least 16" in page and not Job.objects.exists()
    pool(project, 16)
    page = client.post(url, {"action": "pretrain"}, follow=True).content.decode()
    job = Job.objects.get()
    assert job.kind == "pretrain" and f"Job #{job.id} (pretrain) queued" in page
    page = client.post(url, {"action": "retrain"}, follow=True).content.decode()
    assert "pretrain an encoder first: the Pretrain button below" in page
    assert 'id="no-audit"' not in page
    project.audit_fraction = 0.0  # allowed, but then nothing can measure the model: said so
    project.save()
    assert 'id="no-audit"' in client.get(f"/projects/{project.id}/dashboard/").content.decode()


def test_project_update_names_a_rejected_field_and_saves_nothing(project):
    from labelling.services.errors import InvalidInput
    from labelling.services.projects import project_update

    with pytest.raises(InvalidInput, match="target_accuracy") as caught:
        project_update(project=project, target_accuracy=2.0, label_budget=10)
    assert caught.value.code == "invalid_project"
    project.refresh_from_db()
    assert project.target_accuracy != 2.0 and project.label_budget != 10


def test_overview_lists_admin_projects(users, project):
    client = Client()
    client.force_login(users["admin"])
    page = client.get("/overview/").content.decode()
    assert project.name in page
    demo_state(project, users)  # measured on 30 audit labels: the accuracy says on how many
    page = client.get("/overview/").content.decode()
    assert "on 30 audit labels" in page and "(63.0 %–80.0 %) on 30" in page
    assert "budget spent" not in page and "last training job failed" not in page
    # The states an admin acts on show in the row (a review: only "paused" did).
    from labelling.models import Job

    project.label_budget = 5
    project.save()
    Job.objects.create(project=project, kind="cycle", state="failed")
    page = client.get("/overview/").content.decode()
    assert "budget spent" in page and "last training job failed" in page
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


def test_stop_rule_verdict_follows_the_projects_threshold_at_once(users, project):
    # The worker stores the kappas; the page and the API judge their mean against the project's
    # stop_kappa now, so an admin who lowers it sees the verdict change without a retrain.
    demo_state(project, users)
    model = project.model_versions.order_by("id").last()
    model.metrics["forecast"]["stop_rule"] = {
        "fired": False,
        "mean_kappa": 0.986,
        "kappas": [0.98, 0.99, 0.988],
    }
    model.save(update_fields=["metrics"])
    client = Client()
    client.force_login(users["admin"])

    def state():
        page = client.get(f"/projects/{project.id}/dashboard/").content.decode()
        return page, client.get(f"/api/projects/{project.id}/metrics").json()["forecast"]["stop_rule"]

    page, api = state()
    assert api["fired"] is False and api["threshold"] == 0.99 and "it fires at 0.990" in page
    r = client.patch(f"/api/projects/{project.id}", {"stop_kappa": 0.985}, content_type="application/json")
    assert r.status_code == 200 and r.json()["stop_kappa"] == 0.985
    page, api = state()
    assert api["fired"] is True and api["threshold"] == 0.985
    assert 'data-fired="true"' in page and 'data-threshold="0.985"' in page
    for bad in (0.3, 1.5, "x", None):
        r = client.patch(f"/api/projects/{project.id}", {"stop_kappa": bad}, content_type="application/json")
        assert r.status_code == 400 and "stop_kappa" in str(r.json()["error"]), r.json()
    project.refresh_from_db()
    assert project.stop_kappa == 0.985


def _forecast(project, users, **stored):
    """One model version whose stored forecast is ``stored``; the page, API and overview render it."""
    ev = EncoderVersion.objects.create(project=project, artifact_key="e", embeddings={"shards": ["s"]})
    ModelVersion.objects.create(
        project=project, encoder_version=ev, mode="propagate", artifact_key="m", train_label_count=40,
        metrics={"audit_accuracy": 0.7, "audit_interval": [0.6, 0.8], "audit_labels": 30,
                 "forecast": {"points": 3, "stop_rule": {"fired": False}, **stored}},
    )  # fmt: skip
    client = Client()
    client.force_login(users["admin"])
    page = client.get(f"/projects/{project.id}/dashboard/")
    api = client.get(f"/api/projects/{project.id}/metrics")
    overview = client.get("/overview/")
    assert page.status_code == api.status_code == overview.status_code == 200
    return page.content.decode(), api.json()["forecast"]


def test_a_target_the_curve_has_reached_is_no_zero_labels_between_zero_and_zero(users, project):
    # 4 training labels; the curve puts the target at 3 (interval 2-40): "≈ 0 more labels (between
    # 0 and 0)" was printed; now the page says where the curve puts it and how far its interval reaches.
    label = project.label_classes.first()
    for image in pool(project, 4):
        Annotation.objects.create(image=image, annotator=users["annotator"], label=label)
    page, api = _forecast(project, users, labels_to_target=[3.0, 2.0, 40.0], reachable=True,
                          target_accuracy=project.target_accuracy)  # fmt: skip
    assert api["more_labels_to_target"][:2] == [0, 0] and api["more_labels_to_target"][2] > 0
    assert "at the labels given so far; its interval reaches up to" in page and "between 0 and" not in page
    client = Client()
    client.force_login(users["admin"])
    overview = client.get("/overview/").content.decode()
    assert "at the target by the curve" in overview and "≈ 0 more" not in overview


def test_forecast_with_an_unbounded_interval_says_or_more(users, project):
    # A bootstrap curve that never reaches the target leaves the upper bound infinite (stored null).
    page, api = _forecast(project, users, labels_to_target=[300.0, 200.0, None], reachable=True,
                          target_accuracy=project.target_accuracy)  # fmt: skip
    assert api["more_labels_to_target"][2] is None and api["more_images_to_target"] == [300, 200, None]
    assert f"{api['more_labels_to_target'][1]} or more" in page


def test_forecast_sentences_out_of_reach_fit_error_and_too_few_label_counts(users, project):
    page, api = _forecast(
        project, users, labels_to_target=None, reachable=False, target_accuracy=project.target_accuracy
    )
    assert api["reachable"] is False and "looks out of reach" in page
    assert api["note"] == "the fitted curve levels off below 90%"  # the API says why, too
    assert "newest audit accuracy is at it" not in page  # 70 % measured
    client = Client()
    client.force_login(users["admin"])
    assert "target out of reach on the curve" in client.get("/overview/").content.decode()  # was "–"
    # Measured at the target, yet the (low-erring) curve levels off below it: the page says both.
    ModelVersion.objects.update(metrics={**ModelVersion.objects.get().metrics, "audit_accuracy": 0.9})
    page = client.get(f"/projects/{project.id}/dashboard/").content.decode()
    assert "looks out of reach on the current curve, though the newest audit accuracy is at it" in page
    api = client.get(f"/api/projects/{project.id}/metrics").json()["forecast"]
    assert api["note"].startswith(
        "the fitted curve levels off below 90%; the newest audit accuracy is at the target"
    )
    ModelVersion.objects.all().delete()
    page, api = _forecast(project, users, error="the curve did not converge")
    assert api["reachable"] is None and "No forecast: the curve did not converge" in page
    assert "out of reach" not in page
    ModelVersion.objects.all().delete()
    page, api = _forecast(project, users)  # 3 versions, but not at 3 different label counts: no fit
    assert "three different label counts" in page and "out of reach" not in page


def test_forecast_numbers_wait_for_a_changed_target_or_budget(users, project):
    project.label_budget = 500
    project.save()
    stored = dict(labels_to_target=[140.0, 100.0, 210.0], reachable=True, target_accuracy=project.target_accuracy,
                  label_budget=500, accuracy_at_budget=[0.86, 0.82, 0.9])  # fmt: skip
    page, api = _forecast(project, users, **stored)
    assert api["accuracy_at_budget"] == [0.86, 0.82, 0.9] and "86.0 %" in page
    project.label_budget = 2000
    project.save()
    page, api = _forecast(project, users, **stored)
    assert api["accuracy_at_budget"] is None and "86.0 %" not in page
    assert "budget of 2,000 labels: being refitted for it" in page
    project.target_accuracy = 0.95
    project.save()
    page, api = _forecast(project, users, **stored)
    assert api["labels_to_target"] is None and api["more_labels_to_target"] is None
    assert "target changed" in api["note"] and "more labels to reach" not in page


def test_the_learning_curve_draws_the_forecast_ahead_with_its_marks(users, project):
    # The budget ends at 475 training images (as the worker stored it): past the projection's 232,
    # so no budget mark; the target's mark sits at the forecast's point (140 training labels).
    project.label_budget = 500
    project.save()
    stored = dict(labels_to_target=[140.0, 100.0, 210.0], reachable=True, target_accuracy=project.target_accuracy,
                  label_budget=500, budget_images=475.0, accuracy_at_budget=[0.86, 0.82, 0.9],
                  projection=PROJECTION)  # fmt: skip
    page, api = _forecast(project, users, **stored)
    assert api["projection"] == PROJECTION and api["budget_images"] == 475.0
    assert 'class="forecast-line" data-from="40" data-to="232"' in page and 'class="forecast-band"' in page
    assert 'class="reach" data-labels="140"' in page and "target at ≈ 140" in page
    assert 'id="curve-caption"' in page and 'class="budget-point"' not in page
    assert "Expected accuracy when the budget runs out" in page
    # The line stops a little past the target, before the budget's end: the caption says so (it
    # said "to where the budget runs out": a review).
    assert api["projection_ends"] == "target" and "to a little past where it reaches the target" in page
    assert "ahead to where the budget runs out" not in page
    # A projection that reaches the budget's end marks the accuracy expected there.
    page, api = _forecast(project, users, **{**stored, "budget_images": 190.0})
    assert 'class="budget-point" cx=' in page and 'data-labels="190" data-accuracy="0.8600"' in page
    assert "budget runs out</text>" in page
    assert api["projection_ends"] == "budget" and "ahead to where the budget runs out" in page
    # The pool runs out before the budget: said so, in the text and at the mark.
    page, api = _forecast(project, users, **{**stored, "budget_images": 190.0, "pool_ends_first": True})
    assert api["pool_ends_first"] is True and "when every image of the pool is labelled" in page
    assert "pool labelled</text>" in page
    # The budget was spent when the version was trained: no figure "when it runs out".
    page, api = _forecast(project, users, **{**stored, "budget_spent": True, "accuracy_at_budget": None,
                                                "budget_images": None})  # fmt: skip
    assert (
        api["budget_spent"] is True
        and "The budget is spent: labelling ends here" in page
        and "budget-point" not in page
    )
    # Annotations per image (or the audit share) changed since: the budget's end moved, so the
    # figure and the curve wait for the next version.
    page, api = _forecast(project, users, **{**stored, "labels_per_image": 2.0})
    assert api["accuracy_at_budget"] is None and api["projection"] is None
    # The budget got spent since the version was trained: said so, no figure.
    project.label_budget = 6
    project.save()
    label = project.label_classes.first()
    for image in pool(project, 6):
        Annotation.objects.create(image=image, annotator=users["annotator"], label=label)
    page, api = _forecast(project, users, **{**stored, "label_budget": 6})
    assert api["budget_spent"] is True and api["accuracy_at_budget"] is None
    Annotation.objects.all().delete()
    project.label_budget = 500
    project.save()
    # A budget changed since: the curve ran to the old one's end, so it waits for the next version.
    project.label_budget = 200
    project.save()
    page, api = _forecast(project, users, **stored)
    assert api["projection"] is None and api["budget_images"] is None and "forecast-line" not in page
    # A target changed since: its extent followed the old target, so it waits too.
    project.label_budget, project.target_accuracy = 500, 0.95
    project.save()
    page, api = _forecast(project, users, **stored)
    assert api["projection"] is None and 'class="reach"' not in page
    # No fit yet: no projection, no caption.
    ModelVersion.objects.all().delete()
    page, api = _forecast(project, users)
    assert api["projection"] is None and "forecast-line" not in page and "curve-caption" not in page


def test_more_labels_count_every_annotation_and_the_audit_share(users, project):
    # Two annotations per image and a 20 % audit slice: a training image costs 2 / 0.8 = 2.5 labels.
    images = pool(project, 4)
    label = project.label_classes.first()
    for image in images[:3]:  # 3 labelled images, 6 annotations
        for who in ("annotator", "engineer"):
            Annotation.objects.create(image=image, annotator=users[who], label=label, seconds_spent=1.0)
    project.annotations_per_image, project.audit_fraction = 2, 0.2
    project.save()
    page, api = _forecast(project, users, labels_to_target=[103.0, 53.0, 203.0], reachable=True,
                          target_accuracy=project.target_accuracy)  # fmt: skip
    assert api["training_labels"] == 3 and api["more_images_to_target"] == [100, 50, 200]
    assert api["more_labels_to_target"] == [250, 125, 500]


def test_stop_rule_chart_marks_the_mean_points_so_a_single_one_shows():
    from labelling.web.charts import stop_rule_svg

    # Three kappas: the mean of 3 exists at the last one only, a one-point line nobody sees.
    svg = str(stop_rule_svg([0.95, 0.97, 0.99], [200, 300, 400], threshold=0.99))
    assert svg.count('class="mean-point"') == 1 and 'data-mean="0.9700"' in svg
    svg = str(stop_rule_svg([0.95, 0.97, 0.99, 0.995], [200, 300, 400, 500], threshold=0.99))
    assert svg.count('class="mean-point"') == 2
    assert "400 labels: mean of 3 κ 0.970" in svg
    assert 'class="mean-point"' not in str(stop_rule_svg([0.95, 0.97], [200, 300]))


def test_stop_rule_chart_places_versions_by_their_training_labels():
    # Versions compared at 200, 300 and 1,000 labels: the third is 7 times as far from the second as
    # the second from the first (they were drawn evenly spaced), and the axis counts labels in round
    # steps, not one tick per version.
    import re

    from labelling.web.charts import stop_rule_svg

    svg = str(stop_rule_svg([0.95, 0.97, 0.99], [200, 300, 1000], threshold=0.99))
    xs = [float(x) for x in re.findall(r'<circle class="point" cx="([\d.]+)"', svg)]
    assert (xs[2] - xs[1]) == pytest.approx(7 * (xs[1] - xs[0]), rel=0.01)
    ticks = re.findall(r'text-anchor="middle">([\d,]+)</text>', svg)
    assert ticks == ["200", "400", "600", "800", "1,000"]
    assert re.findall(r'text-anchor="middle">(\d+)</text>', str(stop_rule_svg([0.95, 0.97], None))) == [
        "2",
        "3",
    ]


def test_stop_rule_chart_says_why_there_is_no_kappa_yet():
    from labelling.web.charts import stop_rule_svg

    none = str(stop_rule_svg([], [], version_labels=[], spacing=100))
    assert "two model versions at least 100 training labels apart" in none and "none so far" in none
    # Versions exist, but closer together than the rule's spacing: not "from the second version on".
    close = str(stop_rule_svg([], [], version_labels=[20, 40, 60], spacing=100))
    assert "second model version" not in close
    assert "at least 100 training labels apart" in close and "3 model versions so far span 20 to 60" in close
    assert "from 120 training labels on" in close
    # Far enough apart, yet no pair (each scored another stop set, the pool having grown).
    apart = str(stop_rule_svg([], [], version_labels=[20, 200], spacing=100))
    assert "same stop set" in apart and "span" not in apart
    assert "No agreement measured yet" in str(stop_rule_svg([], []))  # stored before the spacing was


def test_dashboard_says_the_versions_are_too_close_for_the_stop_rule(users, project):
    demo_state(project, users)  # two versions, at 20 and 40 training labels
    model = project.model_versions.order_by("id").last()
    model.metrics["forecast"]["stop_rule"] = {"fired": False, "kappas": [], "labels": [], "spacing": 100}
    model.save(update_fields=["metrics"])
    client = Client()
    client.force_login(users["admin"])
    page = client.get(f"/projects/{project.id}/dashboard/").content.decode()
    assert "2 model versions so far span 20 to 40 training labels" in page
    assert "from the second model version on" not in page


def test_forecast_and_budget_numbers_have_thousands_separators(users, project):
    project.label_budget = 250000
    project.save()
    page, api = _forecast(project, users, labels_to_target=[12345.0, 10000.0, 23456.0], reachable=True,
                          target_accuracy=project.target_accuracy)  # fmt: skip
    more = api["more_labels_to_target"]
    assert min(more) >= 10000
    assert f"<strong>{more[0]:,}</strong> more labels" in page
    assert f"between {more[1]:,} and {more[2]:,}" in page
    assert "of 250,000 labels" in page
    assert f'data-point="{more[0]}"' in page  # what scripts and tests read stays a plain number
    overview = Client()
    overview.force_login(users["admin"])
    assert f"≈ {more[0]:,} more labels" in overview.get("/overview/").content.decode()
    ModelVersion.objects.all().delete()
    page, api = _forecast(project, users, labels_to_target=[12345.0, 10000.0, None], reachable=True,
                          target_accuracy=project.target_accuracy)  # fmt: skip
    assert f"{api['more_labels_to_target'][1]:,} or more" in page


def test_labelling_rate_is_over_the_time_spent_labelling_and_agrees_with_the_annotators_table(users, project):
    from datetime import timedelta

    from django.utils import timezone

    from labelling.selectors.dashboard import annotator_stats, budget_state

    now = timezone.now()
    images = pool(project, 42)
    label = project.label_classes.first()

    def labelled(image, at, seconds):
        a = Annotation.objects.create(
            image=image, annotator=users["annotator"], label=label, seconds_spent=seconds
        )
        Annotation.objects.filter(pk=a.pk).update(created_at=at)

    # 10 days ago, outside the 7-day window: one label.
    labelled(images[0], now - timedelta(days=10), 8.0)
    # 3 days ago: 31 labels 10 s apart (the first took 10 s) = 310 s of labelling.
    start = now - timedelta(days=3)
    for i in range(31):
        labelled(images[1 + i], start + timedelta(seconds=10 * i), 10.0)
    # 1 day ago, after a long break: 10 labels 5 s apart (the first took 5 s) = 50 s.
    start = now - timedelta(days=1)
    for i in range(10):
        labelled(images[32 + i], start + timedelta(seconds=5 * i), 5.0)
    project.label_budget = 1000
    project.save()

    budget = budget_state(project)
    # 41 labels in the window over 360 s spent labelling (not over the 3 days since the first one).
    assert budget["labels_last_7_days"] == 41
    assert budget["active_hours"] == pytest.approx(360 / 3600)
    assert budget["labels_per_hour"] == pytest.approx(41 / (360 / 3600), abs=0.01)  # 410 labels/hour
    assert budget["labelling_hours_left"] == pytest.approx((1000 - 42) / 410, abs=0.01)
    # The annotators table counts the same way, over all of this annotator's labels (8 s more).
    (row,) = annotator_stats(project)
    assert row["labels_per_hour"] == pytest.approx(42 / (368 / 3600), abs=0.1)

    client = Client()
    client.force_login(users["admin"])
    page = client.get(f"/projects/{project.id}/dashboard/").content.decode()
    assert "41 labels in the last 7 days, in 6 min of labelling: 410 labels/hour" in page
    assert "958 labels left take about 2.3 hours of labelling" in page
    assert "over the last 7 days;" not in page
    # A budget lowered below what was spent: spent, not "0 labels left take about 1 min".
    project.label_budget = 30
    project.save()
    page = client.get(f"/projects/{project.id}/dashboard/").content.decode()
    assert "410 labels/hour; the budget is spent." in page and "labels left take" not in page


def test_labelling_rate_of_a_single_label_counts_at_least_a_minute(users, project):
    from labelling.selectors.dashboard import budget_state

    Annotation.objects.create(
        image=pool(project, 1)[0],
        annotator=users["annotator"],
        label=project.label_classes.first(),
        seconds_spent=None,
    )
    budget = budget_state(project)
    assert budget["labels_last_7_days"] == 1 and budget["active_hours"] == pytest.approx(1 / 60)
    assert budget["labels_per_hour"] == 60.0


def test_the_team_is_managed_on_the_dashboard(users, project):
    from labelling.models import Membership

    client = Client()
    client.force_login(users["admin"])
    page = client.get(f"/projects/{project.id}/dashboard/").content.decode()
    assert 'id="team"' in page and users["annotator"].username in page
    url = f"/projects/{project.id}/dashboard/action"
    outsider = users["outsider"]
    # By name: only someone the admin already works with (a security review: any account could pull
    # anyone into its project by name); a stranger hears what a name nobody has hears.
    page = client.post(
        url, {"action": "member_set", "username": outsider.username, "role": "engineer"}, follow=True
    ).content.decode()
    assert "no one you work with in another project is named &#x27;oscar-outsider&#x27;" in page
    assert not Membership.objects.filter(project=project, user=outsider).exists()
    from tests.factories import project_with_members

    project_with_members(admin=users["admin"], annotator=outsider, name="Elsewhere")
    page = client.post(
        url, {"action": "member_set", "username": outsider.username, "role": "engineer"}, follow=True
    )
    assert Membership.objects.get(project=project, user=outsider).role == "engineer"
    client.post(url, {"action": "member_set", "username": outsider.username, "role": "annotator"})
    assert Membership.objects.get(project=project, user=outsider).role == "annotator"
    for data, says in (
        ({"action": "member_set", "username": "nobody-here", "role": "annotator"}, "no one you work with"),
        ({"action": "member_set", "username": outsider.username, "role": "boss"}, "role must be one of"),
        ({"action": "member_remove", "user_id": "x"}, "no such member"),
        ({"action": "member_remove", "user_id": str(users["admin"].pk)}, "at least one admin"),
    ):
        page = client.post(url, data, follow=True).content.decode()
        assert says in page, data
    client.post(url, {"action": "member_remove", "user_id": str(outsider.pk)})
    assert not Membership.objects.filter(project=project, user=outsider).exists()
    # An engineer cannot do it.
    client.force_login(users["engineer"])
    response = client.post(url, {"action": "member_set", "username": outsider.username, "role": "admin"})
    assert (
        response.status_code == 403 and not Membership.objects.filter(project=project, user=outsider).exists()
    )


def test_the_label_set_is_edited_on_the_dashboard(users, project):
    from labelling.models import LabelClass

    client = Client()
    client.force_login(users["admin"])
    url = f"/projects/{project.id}/dashboard/action"
    assert 'id="label-set"' in client.get(f"/projects/{project.id}/dashboard/").content.decode()
    first = project.label_classes.order_by("order", "id").first()
    page = client.post(
        url, {"action": "label_update", "label": first.id, "name": "Sparrow", "hotkey": "Q"}, follow=True
    )
    first.refresh_from_db()
    assert (first.name, first.hotkey) == ("Sparrow", "q") and "Label saved" in page.content.decode()
    page = client.post(
        url, {"action": "label_add", "name": "Heron", "hotkey": ""}, follow=True
    ).content.decode()
    heron = LabelClass.objects.get(project=project, name="Heron")
    assert heron.hotkey and "Label &#x27;Heron&#x27; added" in page
    for data, says in (
        ({"action": "label_add", "name": "Heron"}, "already has a label"),
        ({"action": "label_update", "label": "999999", "name": "x"}, "no such label"),
        (
            {"action": "label_update", "label": heron.id, "name": "Heron", "hotkey": "q"},
            "taken by another label",
        ),
    ):
        assert says in client.post(url, data, follow=True).content.decode(), data
    page = client.post(url, {"action": "label_delete", "label": heron.id}, follow=True).content.decode()
    assert not LabelClass.objects.filter(pk=heron.pk).exists() and "removed" in page


def test_an_accuracy_from_a_few_audit_labels_is_not_the_headline(users, project):
    # A review: at 40 labels the card read "0.0 % audit accuracy (0.0 %-79.3 %, 1 audit labels)".
    ev = EncoderVersion.objects.create(project=project, artifact_key="e", embeddings={"shards": ["s"]})
    model = ModelVersion.objects.create(
        project=project, encoder_version=ev, mode="probe", artifact_key="m", train_label_count=40,
        metrics={"audit_accuracy": 0.0, "audit_interval": [0.0, 0.793], "audit_labels": 1},
    )  # fmt: skip
    project.current_model = model
    project.save()
    client = Client()
    client.force_login(users["admin"])
    page = client.get(f"/projects/{project.id}/dashboard/").content.decode()
    assert '<p class="big" data-accuracy' not in page  # not the headline figure
    assert "on 1 audit label (" in page and "too few to say much" in page


def test_an_open_ended_forecast_from_none_more_says_so(users, project):
    # A review: "≈ 145 more labels to reach 85.0 % (0 or more)" said nothing.
    page, api = _forecast(project, users, labels_to_target=[150.0, 0.0, None], reachable=True,
                          target_accuracy=project.target_accuracy)  # fmt: skip
    assert api["more_labels_to_target"][1] == 0
    assert "from none more, the target perhaps reached already, with no upper end yet" in page
    assert "0 or more" not in page


def test_the_learning_curve_draws_one_point_per_label_count():
    from labelling.web.charts import learning_curve_svg

    def point(n, acc):
        return {"labels": n, "accuracy": acc, "low": acc - 0.1, "high": acc + 0.1, "audit_labels": 20}

    svg = learning_curve_svg([point(20, 0.6), point(40, 0.65), point(40, 0.85)], 0.9)
    assert svg.count('data-labels="40"') == 1 and 'data-labels="40" data-accuracy="0.8500"' in svg


def test_a_target_the_newest_accuracy_meets_is_said_to_be_met(users, project):
    # A review: target lowered to 80 % under an audit accuracy of 85 %: "No forecast: the target
    # changed", and nothing said it was met.
    page, api = _forecast(project, users, labels_to_target=[140.0, 100.0, 210.0], reachable=True,
                          target_accuracy=0.95)  # fmt: skip
    project.target_accuracy = 0.65  # under the 70 % measured on 30 audit labels
    project.save()
    client = Client()
    client.force_login(users["admin"])
    page = client.get(f"/projects/{project.id}/dashboard/").content.decode()
    assert "The newest audit accuracy is at the target 65.0 %" in page and "the target changed" in page


def test_the_projects_settings_are_edited_on_the_dashboard(users, project):
    # They were PATCH-only (an admin's review). Percent in, fractions stored; a bad or out-of-range
    # value says which and saves nothing.
    client = Client()
    client.force_login(users["admin"])
    url = f"/projects/{project.id}/dashboard/action"
    page = client.get(f"/projects/{project.id}/dashboard/").content.decode()
    assert 'name="target_percent" type="number" min="0" max="100" step="0.1" value="90"' in page
    form = {"action": "settings", "target_percent": "85.5", "audit_percent": "10", "stop_kappa": "0.985",
            "annotations_per_image": "2", "cycle_every": "30", "batch_size": "60"}  # fmt: skip
    page = client.post(url, form, follow=True).content.decode()
    assert "Settings saved." in page
    project.refresh_from_db()
    assert (project.target_accuracy, project.audit_fraction, project.stop_kappa) == (0.855, 0.1, 0.985)
    assert (project.annotations_per_image, project.cycle_every, project.batch_size) == (2, 30, 60)
    assert 'value="85.5"' in page
    for bad, said in ((("stop_kappa", "0.2"), "stop_kappa"), (("batch_size", "ten"), "batch size"),
                      (("audit_percent", "80"), "audit_fraction")):  # fmt: skip
        page = client.post(url, {"action": "settings", "target_percent": "70", bad[0]: bad[1]}, follow=True)
        assert said in page.content.decode(), bad
        project.refresh_from_db()
        assert project.target_accuracy == 0.855  # nothing saved
    # A target set by the API to 0.567 shows as 56.7; the form saved unchanged keeps it 0.567 (it
    # became 0.5670000000000001, a changed target that asked for a forecast refit; a review).
    project.target_accuracy = 0.567
    project.save()
    page = client.get(f"/projects/{project.id}/dashboard/").content.decode()
    assert 'step="0.1" value="56.7"' in page
    client.post(url, {**form, "target_percent": "56.7"})
    project.refresh_from_db()
    assert project.target_accuracy == 0.567


def test_the_jobs_table_leaves_out_forecast_refits_that_succeeded(users, project):
    # Every settings change adds a refit: ten of them hid the retrains from the table. One running
    # is not "the retrain running now" of a spent budget.
    from labelling.models import Job
    from labelling.selectors.dashboard import jobs_summary

    cycle = Job.objects.create(project=project, kind="cycle", state="succeeded")
    for _ in range(12):
        Job.objects.create(project=project, kind="forecast", state="succeeded")
    failed = Job.objects.create(project=project, kind="forecast", state="failed")
    running = Job.objects.create(project=project, kind="forecast", state="running")
    jobs = jobs_summary(project)
    assert [r["job"].id for r in jobs["recent"]] == [running.id, failed.id, cycle.id]
    assert jobs["running"] == running and jobs["retrain_running"] is False
    Job.objects.create(project=project, kind="cycle", state="queued")
    assert jobs_summary(project)["retrain_running"] is True


def test_a_target_far_past_the_pool_is_no_sixty_digit_number(users, project):
    page, api = _forecast(project, users, labels_to_target=[4.2e59, 1e6, None], reachable=False,
                          target_accuracy=project.target_accuracy, pool_images=1000)  # fmt: skip
    assert "after over 100 times as many training images; the pool holds 1,000" in api["note"]
    page, api = _forecast(project, users, labels_to_target=[4200.0, 3000.0, None], reachable=False,
                          target_accuracy=project.target_accuracy, pool_images=1000)  # fmt: skip
    assert "after about 4,200 training images" in api["note"]


def test_a_forecast_past_the_pool_or_out_of_reach_within_its_interval_says_so(users, project):
    # A review: "up to 4,689 more labels" with 1,900 images left; "levels off below 85 %" while the
    # interval at the budget's end reached 91 %.
    page, api = _forecast(project, users, labels_to_target=[150.0, 100.0, 5000.0], reachable=True,
                          target_accuracy=project.target_accuracy, pool_images=1000)  # fmt: skip
    assert api["more_labels_to_target"][2] is None and "or more" in page
    ModelVersion.objects.all().delete()
    project.label_budget = 500
    project.save()
    page, api = _forecast(project, users, labels_to_target=None, reachable=False, label_budget=500,
                          target_accuracy=project.target_accuracy, budget_images=475.0,
                          accuracy_at_budget=[0.8, 0.7, 0.95])  # fmt: skip
    assert "though its interval at the budget's end reaches up to 95.0 %" in page
