"""The admin dashboard in a real browser: a project with labels and two model versions; the chart
and the forecast are drawn with the numbers the selectors (and so the API) give."""

from __future__ import annotations

import pytest

from labelling.selectors.dashboard import project_dashboard
from tests.labelling.test_annotate_browser import ARTIFACTS, log_in, page  # noqa: F401  (the fixture)
from tests.labelling.test_dashboard import demo_state


@pytest.mark.browser
@pytest.mark.django_db(transaction=True)
def test_admin_sees_curve_forecast_and_numbers(live_server, settings, page, users, project):  # noqa: F811
    settings.SESSION_COOKIE_SECURE = settings.CSRF_COOKIE_SECURE = False
    demo_state(project, users)
    expected = project_dashboard(project)

    log_in(page, live_server, users["admin"])
    page.goto(f"{live_server.url}/projects/{project.id}/dashboard/")

    # The learning curve: one point per model version, at the measured accuracy, above the band's low.
    points = page.eval_on_selector_all(
        "#learning-curve circle.point",
        "els => els.map(e => [+e.dataset.labels, +e.dataset.accuracy, +e.getAttribute('cy')])",
    )
    curve = expected["learning_curve"]
    assert [(p[0], round(p[1], 4)) for p in points] == [(c["labels"], round(c["accuracy"], 4)) for c in curve]
    assert points[1][2] < points[0][2]  # higher accuracy is drawn higher (smaller y)
    assert page.is_visible("#learning-curve polygon.band")
    assert float(page.get_attribute("#learning-curve line.target", "data-target")) == project.target_accuracy

    # The forecast sentence, with the point and interval of the selectors.
    more = expected["forecast"]["more_labels_to_target"]
    text = page.inner_text("#labels-to-target")
    assert f"{more[0]} more labels" in text and f"between {more[1]} and {more[2]}" in text
    assert "86.0 %" in page.inner_text("#accuracy-at-budget")
    assert page.inner_text("#budget .big").startswith(str(expected["budget"]["labels_used"]))
    assert int(page.get_attribute("#progress dd[data-k='pool']", "data-n")) == expected["progress"]["pool"]
    assert page.eval_on_selector_all("#class-bars rect.labelled[data-count]", "els => els.length") == 3
    assert "ann-annotator" in page.inner_text("#annotators")
    # Accuracy by class: the weakest (bird, 60 %) first, and the confusion matrix drawn.
    assert page.inner_text("#by-class tbody tr:first-child td:first-child") == "bird"
    assert page.eval_on_selector_all("#confusion rect.cell", "els => els.length") == 9
    assert page.get_attribute("#confusion rect[data-true='bird'][data-predicted='cat']", "data-count") == "4"
    assert not page.errors
    page.set_viewport_size({"width": 1280, "height": 1500})
    page.screenshot(path=str(ARTIFACTS / "dashboard-browser.png"), full_page=True)


@pytest.mark.browser
@pytest.mark.django_db(transaction=True)
def test_dashboard_on_a_phone_scrolls_wide_tables_in_their_own_box(
    live_server,
    settings,
    page,  # noqa: F811
    users,
    project,
):
    settings.SESSION_COOKIE_SECURE = settings.CSRF_COOKIE_SECURE = False
    demo_state(project, users)
    page.set_viewport_size({"width": 390, "height": 844})
    log_in(page, live_server, users["admin"])
    page.goto(f"{live_server.url}/projects/{project.id}/dashboard/")

    # The page itself does not scroll sideways; the annotators table, wider than the screen, scrolls
    # inside its own box.
    assert page.evaluate("document.documentElement.scrollWidth") <= 390
    box = page.eval_on_selector(
        "#annotators table",
        "t => { const b = t.parentElement; return [b.scrollWidth, b.clientWidth, getComputedStyle(b).overflowX]; }",
    )
    assert box[0] > box[1] and box[2] == "auto", box
    assert page.eval_on_selector("#annotators", "e => e.getBoundingClientRect().right") <= 390
    page.screenshot(path=str(ARTIFACTS / "dashboard-browser-390x844.png"), full_page=True)


@pytest.mark.browser
@pytest.mark.django_db(transaction=True)
def test_a_finished_job_keeps_a_form_being_filled(live_server, settings, page, users, project):  # noqa: F811
    # A review: a retrain every ~20 labels reloaded the dashboard and wiped half-typed input.
    from labelling.models import Job

    settings.SESSION_COOKIE_SECURE = settings.CSRF_COOKIE_SECURE = False
    job = Job.objects.create(project=project, kind="cycle", state="running")
    log_in(page, live_server, users["admin"])
    page.goto(f"{live_server.url}/projects/{project.id}/dashboard/")
    page.fill("input[name=label_budget]", "1234")
    Job.objects.filter(pk=job.pk).update(state="succeeded", progress=1.0, message="done")
    page.wait_for_selector("#jobs-done", timeout=15_000)
    assert page.input_value("input[name=label_budget]") == "1234"  # not reloaded
    assert "A job finished: reload the page" in page.inner_text("#jobs-done")
    assert not page.errors
