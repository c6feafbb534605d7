"""Label review: the suspects each cycle writes (confident learning), disagreements between
annotators, and a person's final say, which training and the exports then use."""

from __future__ import annotations

import csv
import io

import numpy as np
import pytest
from django.test import Client

from labelling.models import Annotation, Image
from tests.factories import UserFactory, pool, project_with_members
from tests.labelling.test_annotate_browser import ARTIFACTS, log_in, page  # noqa: F401  (the fixture)

pytestmark = pytest.mark.django_db


@pytest.fixture
def world(users, project):
    """Eight images: #0 cat (suspected dog), #1 cat and dog (a disagreement), #2 dog (suspected
    cat, less doubted), the rest unlabelled."""
    images = pool(project, 8)
    cat, dog, bird = project.label_classes.order_by("order")
    Annotation.objects.create(image=images[0], annotator=users["annotator"], label=cat)
    Annotation.objects.create(image=images[1], annotator=users["annotator"], label=cat)
    Annotation.objects.create(image=images[1], annotator=users["engineer"], label=dog)
    Annotation.objects.create(image=images[2], annotator=users["annotator"], label=dog)
    Image.objects.filter(pk=images[0].pk).update(
        suspected_label=dog, label_self_confidence=0.05, checked_label=cat
    )
    Image.objects.filter(pk=images[2].pk).update(
        suspected_label=cat, label_self_confidence=0.2, checked_label=dog
    )
    return {"images": images, "cat": cat, "dog": dog, "bird": bird}


def _list(client, project, kind):
    response = client.get(f"/api/projects/{project.id}/review?kind={kind}")
    assert response.status_code == 200, response.content
    return response.json()["results"]


def test_suspects_and_disagreements_are_listed_with_their_votes(users, project, client_for, world):
    eng = client_for(users["engineer"])
    suspects = _list(eng, project, "suspects")
    im, cat, dog = world["images"], world["cat"], world["dog"]
    assert [s["image"] for s in suspects] == [im[0].id, im[2].id]  # the most doubted first
    assert suspects[0]["votes"] == [{"label": cat.id, "count": 1}] and suspects[0]["label"] == cat.id
    assert suspects[0]["suspected_label"] == dog.id and suspects[0]["label_self_confidence"] == 0.05
    assert suspects[0]["thumbnail"] == f"/api/images/{im[0].id}/thumbnail"
    disagreements = _list(eng, project, "disagreements")
    assert [d["image"] for d in disagreements] == [im[1].id]
    assert disagreements[0]["votes"] == [{"label": cat.id, "count": 1}, {"label": dog.id, "count": 1}]
    assert _list(eng, project, "reviewed") == []
    counts = client_for(users["admin"]).get(f"/api/projects/{project.id}/dashboard").json()["review"]
    assert counts == {"suspects": 2, "disagreements": 1, "reviewed": 0}


def test_a_review_decides_the_label_for_training_and_exports(users, project, client_for, world):
    from workers.jobs.training import pool_labels

    eng = client_for(users["engineer"])
    im, dog = world["images"], world["dog"]
    response = eng.post(f"/api/images/{im[0].id}/review", {"label": dog.id}, format="json")
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["reviewed_label"] == dog.id == body["label"] and body["reviewed_by"] == "erin-engineer"
    assert body["suspected_label"] == dog.id  # the suspicion stays on record, the image is not listed
    assert [s["image"] for s in _list(eng, project, "suspects")] == [im[2].id]
    assert [r["image"] for r in _list(eng, project, "reviewed")] == [im[0].id]
    # A disagreement decided leaves that list.
    assert eng.post(f"/api/images/{im[1].id}/review", {"label": dog.id}, format="json").status_code == 200
    assert _list(eng, project, "disagreements") == []

    # Training takes the reviewed label over the votes (dog is class 1 of cat, dog, bird).
    ids = np.array([i.id for i in im])
    train, _ = pool_labels(project, ids)
    assert train[:3].tolist() == [1, 1, 1]
    # So do the exports, which say so.
    rows = list(csv.DictReader(io.StringIO(b"".join(eng.get(
        f"/api/projects/{project.id}/export/labels.csv").streaming_content).decode())))  # fmt: skip
    by_image = {int(r["image"]): r for r in rows}
    assert by_image[im[0].id]["label"] == "dog" and by_image[im[0].id]["votes"] == "0"
    assert by_image[im[0].id]["reviewed"] == "1" and by_image[im[2].id]["reviewed"] == "0"
    # The check's probability is of the label it checked (cat, the vote), not of the decided dog.
    assert by_image[im[0].id]["label_self_confidence"] == "0.0500"
    assert by_image[im[0].id]["checked_label"] == "cat"
    reviewed = {r["image"]: r for r in _list(eng, project, "reviewed")}[im[0].id]
    assert reviewed["checked_label"] == world["cat"].id and reviewed["label"] == dog.id
    from django.test import Client

    web = Client()
    web.force_login(users["engineer"])
    html = web.get(f"/projects/{project.id}/review/?kind=reviewed").content.decode()
    assert "it gives cat 5.0 % (the label it checked)" in html
    # The last check's figures travel with the labels, for work outside the service.
    assert (
        by_image[im[2].id]["label_self_confidence"] == "0.2000"
        and by_image[im[2].id]["suspected_label"] == "cat"
    )
    assert by_image[im[1].id]["label_self_confidence"] == "" and by_image[im[1].id]["suspected_label"] == ""
    labels_json = eng.get(f"/api/projects/{project.id}/export/labels.json").json()
    assert {r["image"]: r["label"] for r in labels_json}[im[0].id] == "dog"
    assert {r["image"]: r["suspected_label"] for r in labels_json}[im[2].id] == "cat"

    # Back to the votes.
    assert eng.delete(f"/api/images/{im[0].id}/review").status_code == 204
    train, _ = pool_labels(project, ids)
    assert train[0] == 0
    assert Image.objects.get(pk=im[0].id).reviewed_by is None


def test_bad_reviews_are_refused_and_change_nothing(users, project, client_for, world):
    eng = client_for(users["engineer"])
    other = project_with_members(admin=UserFactory(username="olga"), name="Other")
    foreign = other.label_classes.first()
    im = world["images"]
    cases = [
        (im[0].id, {"label": foreign.id}, 400, "invalid_label"),
        (im[0].id, {"label": "dog"}, 400, "invalid"),
        (im[0].id, {"label": world["dog"].id, "extra": 1}, 400, "unknown_field"),
        (im[5].id, {"label": world["dog"].id}, 409, "image_not_labelled"),
    ]
    for image_id, body, code, error in cases:
        response = eng.post(f"/api/images/{image_id}/review", body, format="json")
        assert response.status_code == code and response.json()["error"]["code"] == error, body
    assert not Image.objects.filter(reviewed_label__isnull=False).exists()
    bad_kind = eng.get(f"/api/projects/{project.id}/review?kind=everything")
    assert bad_kind.status_code == 400 and bad_kind.json()["error"]["code"] == "invalid_kind"


def test_the_review_page_lists_and_decides(users, project, world):
    client = Client()
    client.force_login(users["engineer"])
    url = f"/projects/{project.id}/review/"
    html = client.get(url).content.decode()
    im, dog = world["images"], world["dog"]
    assert f'data-image="{im[0].id}"' in html and f'data-image="{im[2].id}"' in html
    assert 'data-kind="suspects">2<' in html and 'data-kind="disagreements">1<' in html
    assert "A model that never saw this label says <strong>dog</strong>" in html
    done = client.post(
        f"{url}action", {"image": str(im[0].id), "label": str(dog.id), "kind": "suspects"}, follow=True
    )
    assert f"Image #{im[0].id} is now labelled dog." in done.content.decode()
    assert Image.objects.get(pk=im[0].id).reviewed_label == dog
    reviewed = client.get(f"{url}?kind=reviewed").content.decode()
    assert 'decided: <strong class="decided">dog</strong> by erin-engineer' in reviewed
    assert "A model that never saw this label says <strong>dog</strong>" in reviewed  # why it was doubted
    client.post(f"{url}action", {"image": str(im[0].id), "clear": "1", "kind": "reviewed"})
    assert Image.objects.get(pk=im[0].id).reviewed_label is None
    # Back to the votes: a possible mistake again, not lost until the next retrain.
    assert f'data-image="{im[0].id}"' in client.get(url).content.decode()
    refused = client.post(f"{url}action", {"image": "x", "label": str(dog.id)}, follow=True)
    assert "no such image in this project" in refused.content.decode()
    # Annotators label; they do not review.
    annotator = Client()
    annotator.force_login(users["annotator"])
    refused = annotator.get(url)
    assert refused.status_code == 403 and "needs the engineer role" in refused.content.decode()


def test_the_cycle_finds_planted_mistakes(users, project):
    """The worker's step, on embeddings with three planted clusters and four flipped labels."""
    from workers.jobs.training import _write_label_issues, pool_labels

    images = pool(project, 60)
    labels = list(project.label_classes.order_by("order"))
    rng = np.random.default_rng(0)
    truth = np.repeat(np.arange(3), 20)
    Z = (rng.normal(0, 5, (3, 16))[truth] + rng.normal(0, 1, (60, 16))).astype(np.float32)
    given = truth.copy()
    flipped = [3, 25, 44, 50]
    given[flipped] = (truth[flipped] + 1) % 3
    for image, k in zip(images, given, strict=True):
        Annotation.objects.create(image=image, annotator=users["annotator"], label=labels[k])
    # A person already looked at #50 and kept its (wrong) label: never a suspect again.
    Image.objects.filter(pk=images[50].pk).update(reviewed_label=labels[given[50]])
    ids = np.array([im.id for im in images])
    train, audit = pool_labels(project, ids)
    found = _write_label_issues(project, ids, Z, train, audit)
    suspects = list(
        Image.objects.filter(suspected_label__isnull=False, reviewed_label__isnull=True).order_by("id")
    )
    position = {im.id: i for i, im in enumerate(images)}
    # Only planted mistakes (not the reviewed one), most of them, each put in its true class.
    assert len(suspects) == found >= 2
    assert {position[s.id] for s in suspects} <= {3, 25, 44}
    assert all(s.suspected_label_id == labels[truth[position[s.id]]].id for s in suspects)
    assert Image.objects.filter(label_self_confidence__isnull=False).count() == 60
    # Each probability is of the label the image had: the one given (or decided, for #50).
    checked = dict(Image.objects.values_list("id", "checked_label_id"))
    assert all(checked[im.id] == labels[given[i]].id for i, im in enumerate(images))
    # The next cycle starts afresh: a mistake corrected by its annotator is no longer listed.
    corrected = suspects[0]
    Annotation.objects.filter(image=corrected).update(label=labels[truth[position[corrected.id]]])
    train, audit = pool_labels(project, ids)
    _write_label_issues(project, ids, Z, train, audit)
    assert not Image.objects.filter(pk=corrected.pk, suspected_label__isnull=False).exists()


@pytest.mark.browser
@pytest.mark.django_db(transaction=True)
def test_an_engineer_fixes_a_mistake_in_the_browser(live_server, settings, page, users, project):  # noqa: F811
    settings.SESSION_COOKIE_SECURE = settings.CSRF_COOKIE_SECURE = False
    images = pool(project, 3)
    cat, dog, _ = project.label_classes.order_by("order")
    for image in images:
        Annotation.objects.create(image=image, annotator=users["annotator"], label=cat)
    Image.objects.filter(pk=images[1].pk).update(suspected_label=dog, label_self_confidence=0.04)
    log_in(page, live_server, users["engineer"])
    page.goto(f"{live_server.url}/projects/{project.id}/")
    page.click("text=Review labels")
    card = f"article[data-image='{images[1].id}']"
    assert "says dog" in page.inner_text(f"{card} .doubt")
    assert page.get_attribute(f"{card} button.primary", "value") == str(dog.id)  # the suggestion stands out
    page.screenshot(path=str(ARTIFACTS / "review-browser.png"), full_page=True)
    Image.objects.filter(pk=images[2].pk).update(suspected_label=dog, label_self_confidence=0.3)
    page.reload()
    page.click(f"{card} button.primary")
    page.wait_for_selector(f"article[data-image='{images[2].id}']:first-of-type")
    assert f"Image #{images[1].id} is now labelled dog." in page.inner_text("main")
    assert Image.objects.get(pk=images[1].id).reviewed_label == dog
    # The next one by keyboard: dog's key (2) decides the first image on the page.
    assert page.inner_text(f"article[data-image='{images[2].id}'] button[data-hotkey='2'] kbd") == "2"
    page.keyboard.press("2")
    page.wait_for_selector("#review-empty")
    assert Image.objects.get(pk=images[2].id).reviewed_label == dog
    assert not page.errors


def test_an_audit_image_its_annotators_dispute_measures_nothing_until_decided(users, project):
    """A review: two annotators disagreed on 40 images, the careless one always first; the earlier
    label won the tie, 4 of 33 audit labels were wrong and the audit accuracy read 65 % for a model
    at 82 %. A tied audit image is left out until someone decides it; training keeps the earlier."""
    from tests.factories import UserFactory
    from workers.jobs.training import pool_labels

    cat, dog = project.label_classes.order_by("order")[:2]
    careless = UserFactory(username="careless")
    audit_tied, audit_clear, train_tied = pool(project, 3)
    Image.objects.filter(pk__in=[audit_tied.pk, audit_clear.pk]).update(is_audit=True)
    for image in (audit_tied, train_tied):
        Annotation.objects.create(image=image, annotator=careless, label=dog)  # first
        Annotation.objects.create(image=image, annotator=users["annotator"], label=cat)
    Annotation.objects.create(image=audit_clear, annotator=users["annotator"], label=cat)
    ids = np.array([audit_tied.id, audit_clear.id, train_tied.id])
    train, audit = pool_labels(project, ids)
    assert audit.tolist() == [-1, 0, -1] and train.tolist() == [-1, -1, 1]
    Image.objects.filter(pk=audit_tied.pk).update(reviewed_label=cat)  # decided: it measures again
    assert pool_labels(project, ids)[1].tolist() == [0, 0, -1]


def test_deciding_an_audit_image_queues_the_retrain_that_measures_with_it(
    users, project, client_for, django_capture_on_commit_callbacks, monkeypatch
):
    """A review: decisions on tied audit images changed nothing on the dashboard until a retrain
    someone started by hand (none comes by itself with the budget spent)."""
    from labelling.models import EncoderVersion, Job, ModelVersion
    from workers.celery import app

    sent = []
    monkeypatch.setattr(app, "send_task", lambda name, args=None, **kw: sent.append(name))

    encoder = EncoderVersion.objects.create(project=project, artifact_key="e", embeddings={"shards": ["s"]})
    project.current_encoder = encoder
    project.current_model = ModelVersion.objects.create(
        project=project, encoder_version=encoder, mode="probe", artifact_key="m"
    )
    project.save()
    cat, dog = project.label_classes.order_by("order")[:2]
    audit, plain = pool(project, 2)
    Image.objects.filter(pk=audit.pk).update(is_audit=True)
    for image in (audit, plain):
        Annotation.objects.create(image=image, annotator=users["annotator"], label=cat)
    eng = client_for(users["engineer"])
    with django_capture_on_commit_callbacks(execute=True):
        assert eng.post(f"/api/images/{plain.id}/review", {"label": dog.id}, format="json").status_code == 200
    assert not Job.objects.exists()  # a training image waits for the next retrain, as labels do
    for _ in range(2):  # a run of decisions asks once
        with django_capture_on_commit_callbacks(execute=True):
            assert (
                eng.post(f"/api/images/{audit.id}/review", {"label": dog.id}, format="json").status_code
                == 200
            )
    job = Job.objects.get()
    assert job.kind == "cycle" and job.params == {"trigger": "review"} and sent == ["workers.cycle"]
