"""Assignment rules: who gets which item, reservations, overlap, idempotent submits, the budget."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from labelling.models import Annotation, AnnotationCount, Assignment, Image, QueueItem
from tests.factories import UserFactory, pool, queue_round

pytestmark = pytest.mark.django_db


def nxt(client, project, **params):
    response = client.get(f"/api/projects/{project.id}/queue/next", params)
    assert response.status_code == 200, response.content
    return response.json()


def submit(client, assignment_id, label, **extra):
    return client.post(f"/api/assignments/{assignment_id}/submit", {"label": label, **extra})


@pytest.fixture
def label(project):
    return project.label_classes.first().id


@pytest.fixture
def queued(project):
    project.audit_fraction = 0.0
    project.save()
    images = pool(project, 6)
    queue_round(project, images)
    return images


def test_next_gives_the_top_item_and_a_reload_gives_the_same(client_for, users, project, queued):
    client = client_for(users["annotator"])
    first = nxt(client, project)
    assert first["assignment"]["image"]["id"] == queued[0].id
    assert (
        first["assignment"]["image"]["url"] == f"/api/images/{queued[0].id}/file?display=1"
    )  # a PNG: the file API decides (16-bit ones are stretched)
    assert nxt(client, project)["assignment"]["id"] == first["assignment"]["id"]
    assert first["progress"] == {
        "labelled_today": 0,
        "labelled_total": 0,
        "left_in_queue": 6,
        "left_in_queue_more": False,
    }


def test_left_in_queue_is_counted_up_to_a_cap(client_for, users, project, queued, monkeypatch):
    from labelling.selectors import queue as queue_selectors

    monkeypatch.setattr(queue_selectors, "LEFT_IN_QUEUE_CAP", 4)
    progress = nxt(client_for(users["annotator"]), project)["progress"]
    assert progress["left_in_queue"] == 4 and progress["left_in_queue_more"] is True
    monkeypatch.setattr(queue_selectors, "LEFT_IN_QUEUE_CAP", 6)
    progress = nxt(client_for(users["annotator"]), project)["progress"]
    assert progress["left_in_queue"] == 6 and progress["left_in_queue_more"] is False


def test_two_annotators_never_hold_the_same_item(client_for, users, project, queued):
    a = nxt(client_for(users["annotator"]), project)["assignment"]
    b = nxt(client_for(users["engineer"]), project)["assignment"]
    assert a["image"]["id"] != b["image"]["id"]


def test_lookahead_reserves_the_next_one_too(client_for, users, project, queued, label):
    client = client_for(users["annotator"])
    body = nxt(client, project, lookahead=1)
    assert [body["assignment"]["image"]["id"], body["upcoming"]["image"]["id"]] == [
        queued[0].id,
        queued[1].id,
    ]
    assert submit(client, body["assignment"]["id"], label).status_code == 201
    after = nxt(client, project, lookahead=1)
    assert after["assignment"]["id"] == body["upcoming"]["id"]
    assert after["upcoming"]["image"]["id"] == queued[2].id


def test_overlap_needs_distinct_annotators(client_for, users, project, label):
    project.annotations_per_image, project.audit_fraction = 2, 0.0
    project.save()
    images = pool(project, 2)
    queue_round(project, images)
    c1, c2, c3 = (client_for(users[r]) for r in ("annotator", "engineer", "admin"))
    a1 = nxt(c1, project)["assignment"]
    a2 = nxt(c2, project)["assignment"]
    assert a1["image"]["id"] == a2["image"]["id"] == images[0].id  # two people on the same image
    assert nxt(c3, project)["assignment"]["image"]["id"] == images[1].id  # a third goes on
    assert submit(c1, a1["id"], label).status_code == 201
    # The first annotator never gets the image again, even though it still needs a label.
    assert nxt(c1, project)["assignment"]["image"]["id"] == images[1].id
    assert submit(c2, a2["id"], label).status_code == 201
    item = QueueItem.objects.get(image=images[0])
    assert (item.state, item.annotations_done) == ("done", 2)


def test_a_lapsed_reservation_returns_to_the_queue(client_for, users, project, queued, label):
    mine = nxt(client_for(users["annotator"]), project)["assignment"]
    Assignment.objects.filter(pk=mine["id"]).update(expires_at=timezone.now() - timedelta(seconds=1))
    theirs = nxt(client_for(users["engineer"]), project)["assignment"]
    assert theirs["image"]["id"] == mine["image"]["id"]
    # The first annotator's late submit is refused clearly: the item is someone else's now.
    late = submit(client_for(users["annotator"]), mine["id"], label)
    assert late.status_code == 409 and late.json()["error"]["code"] == "reservation_expired"
    assert Annotation.objects.count() == 0


def test_a_late_submit_is_kept_when_nobody_else_took_the_item(client_for, users, project, queued, label):
    client = client_for(users["annotator"])
    mine = nxt(client, project)["assignment"]
    Assignment.objects.filter(pk=mine["id"]).update(expires_at=timezone.now() - timedelta(seconds=1))
    assert submit(client, mine["id"], label).status_code == 201


def test_double_submit_stores_one_annotation(client_for, users, project, queued, label):
    client = client_for(users["annotator"])
    mine = nxt(client, project)["assignment"]
    first = submit(client, mine["id"], label, seconds_spent=1.5)
    again = submit(client, mine["id"], label, seconds_spent=1.5)
    assert (first.status_code, again.status_code) == (201, 200)
    assert first.json()["annotation_id"] == again.json()["annotation_id"]
    assert Annotation.objects.count() == 1
    assert Annotation.objects.get().seconds_spent == 1.5
    other_label = project.label_classes.last().id
    changed = submit(client, mine["id"], other_label)
    assert changed.status_code == 409 and changed.json()["error"]["code"] == "already_submitted"


def test_someone_elses_assignment_is_a_404(client_for, users, project, queued, label):
    mine = nxt(client_for(users["annotator"]), project)["assignment"]
    response = submit(client_for(users["engineer"]), mine["id"], label)
    assert response.status_code == 404
    assert Annotation.objects.count() == 0


def test_unknown_label_is_a_400_and_nothing_stored(client_for, users, project, queued):
    from tests.factories import project_with_members

    foreign = project_with_members(admin=users["admin"], name="Other").label_classes.first().id
    mine = nxt(client_for(users["annotator"]), project)["assignment"]
    for bad in (foreign, 10**9, -1, "cat", None):
        response = submit(client_for(users["annotator"]), mine["id"], bad)
        assert response.status_code == 400, (bad, response.content)
    assert Annotation.objects.count() == 0


def test_budget_stops_handing_out_labels(client_for, users, project, queued, label):
    project.label_budget = 2
    project.save()
    c1, c2, c3 = (client_for(users[r]) for r in ("annotator", "engineer", "admin"))
    a1 = nxt(c1, project)["assignment"]
    a2 = nxt(c2, project)["assignment"]
    third = nxt(c3, project)
    assert third["assignment"] is None and third["empty_reason"] == "budget_exhausted"
    assert submit(c1, a1["id"], label).status_code == 201
    assert submit(c2, a2["id"], label).status_code == 201
    after = nxt(c1, project)
    assert after["assignment"] is None and after["empty_reason"] == "budget_exhausted"
    assert Annotation.objects.count() == 2


def test_a_budget_lowered_below_the_labels_given_takes_back_the_held_images(
    client_for, users, project, queued, label
):
    # Three labels given, two images held, one by each of two annotators.
    # Lowered to 4 labels: room for one more, so the oldest reservation stays and the rest go back.
    # Lowered to 3: none stays, and the page hears that the budget is spent, not an image whose label
    # would then be refused.
    from labelling.services.projects import project_update

    me, other = client_for(users["annotator"]), client_for(users["engineer"])
    for _ in range(3):
        assert submit(me, nxt(me, project)["assignment"]["id"], label).status_code == 201
    mine = nxt(me, project)["assignment"]["id"]
    nxt(other, project)
    live = Assignment.objects.filter(state="active")
    assert live.count() == 2
    project.refresh_from_db()
    project_update(project=project, label_budget=4)
    assert list(live.values_list("id", flat=True)) == [mine]
    assert nxt(me, project)["assignment"]["id"] == mine
    assert nxt(other, project)["empty_reason"] == "budget_exhausted"
    project_update(project=project, label_budget=3)
    assert not live.exists()
    body = nxt(me, project)
    assert body["assignment"] is None and body["empty_reason"] == "budget_exhausted"
    assert submit(me, mine, label).json()["error"]["code"] == "budget_exhausted"
    assert Annotation.objects.count() == 3


def counted(project) -> dict[int, int]:
    return dict(AnnotationCount.objects.filter(project=project).values_list("annotator_id", "annotations"))


def test_the_budget_counter_follows_submits_and_undos(client_for, users, project, queued, label):
    me, other = client_for(users["annotator"]), client_for(users["engineer"])
    for client in (me, me, other):
        assignment = nxt(client, project)["assignment"]
        assert submit(client, assignment["id"], label).status_code == 201
        assert submit(client, assignment["id"], label).status_code == 200  # a repeat counts nothing
    assert counted(project) == {users["annotator"].id: 2, users["engineer"].id: 1}
    assert me.post(f"/api/projects/{project.id}/queue/undo").status_code == 200
    assert counted(project) == {users["annotator"].id: 1, users["engineer"].id: 1}
    assert sum(counted(project).values()) == Annotation.objects.filter(image__project=project).count()


def test_undo_gives_the_budget_back(client_for, users, project, queued, label):
    project.label_budget = 1
    project.save()
    me = client_for(users["annotator"])
    first = nxt(me, project)["assignment"]
    assert submit(me, first["id"], label).status_code == 201
    assert nxt(me, project)["empty_reason"] == "budget_exhausted"
    again = me.post(f"/api/projects/{project.id}/queue/undo").json()
    assert again["id"] == first["id"]
    assert submit(me, first["id"], label).status_code == 201


def test_the_counter_migration_counts_the_labels_given_before_it(client_for, users, project, queued, label):
    import importlib

    from django.apps import apps

    me = client_for(users["annotator"])
    for _ in range(2):
        assert submit(me, nxt(me, project)["assignment"]["id"], label).status_code == 201
    AnnotationCount.objects.all().delete()
    migration = importlib.import_module("labelling.migrations.0003_annotation_count")
    migration.count_annotations(apps, None)
    assert counted(project) == {users["annotator"].id: 2}


def test_progress_counts_my_labels_today_and_in_all_through_a_new_day_and_an_undo(
    client_for, users, project, queued, label
):
    me = client_for(users["annotator"])

    def progress():
        p = nxt(me, project)["progress"]
        return p["labelled_today"], p["labelled_total"]

    for _ in range(2):
        assert submit(me, nxt(me, project)["assignment"]["id"], label).status_code == 201
    assert progress() == (2, 2)
    # The next day: today's count starts again from 0, the total stays.
    yesterday = timezone.now().date() - timedelta(days=1)
    AnnotationCount.objects.filter(project=project).update(day=yesterday)
    Annotation.objects.filter(image__project=project).update(created_at=timezone.now() - timedelta(days=1))
    assert progress() == (0, 2)
    assert submit(me, nxt(me, project)["assignment"]["id"], label).status_code == 201
    assert progress() == (1, 3)
    assert me.post(f"/api/projects/{project.id}/queue/undo").status_code == 200
    assert progress() == (0, 2)
    # Another annotator's labels are theirs.
    other = client_for(users["engineer"])
    assert submit(other, nxt(other, project)["assignment"]["id"], label).status_code == 201
    assert progress() == (0, 2)


def test_undoing_a_label_of_yesterday_leaves_today_alone(users, project):
    from labelling.services.queue import _annotation_count_add

    me = users["annotator"]
    now = timezone.now()
    _annotation_count_add(project_id=project.id, annotator=me, delta=1, now=now, today_delta=1)
    _annotation_count_add(project_id=project.id, annotator=me, delta=-1, now=now, today_delta=0)
    row = AnnotationCount.objects.get(project=project, annotator=me)
    assert (row.annotations, row.day, row.on_day) == (0, now.date(), 1)


def test_the_day_count_migration_counts_todays_labels(client_for, users, project, queued, label):
    import importlib

    from django.apps import apps

    me = client_for(users["annotator"])
    for _ in range(3):
        assert submit(me, nxt(me, project)["assignment"]["id"], label).status_code == 201
    first = Annotation.objects.filter(image__project=project).order_by("id").first()
    Annotation.objects.filter(pk=first.pk).update(created_at=timezone.now() - timedelta(days=2))
    AnnotationCount.objects.update(day=None, on_day=0)
    importlib.import_module("labelling.migrations.0005_annotation_count_per_day").count_today(apps, None)
    row = AnnotationCount.objects.get(project=project, annotator=users["annotator"])
    assert (row.annotations, row.day, row.on_day) == (3, timezone.now().date(), 2)


def test_skip_gives_the_item_to_others_not_me(client_for, users, project, queued):
    me, other = client_for(users["annotator"]), client_for(users["engineer"])
    mine = nxt(me, project)["assignment"]
    assert me.post(f"/api/assignments/{mine['id']}/skip", {"reason": "too blurry"}).status_code == 204
    assert nxt(me, project)["assignment"]["image"]["id"] == queued[1].id
    assert nxt(other, project)["assignment"]["image"]["id"] == queued[0].id


def test_flag_takes_the_image_out_of_the_queue(client_for, users, project, queued):
    me = client_for(users["annotator"])
    mine = nxt(me, project)["assignment"]
    bad = me.post(f"/api/assignments/{mine['id']}/flag", {"reason": "nonsense"})
    assert bad.status_code == 400
    assert me.post(f"/api/assignments/{mine['id']}/flag", {"reason": "broken"}).status_code == 204
    assert Image.objects.get(pk=mine["image"]["id"]).status == "flagged"
    assert nxt(client_for(users["engineer"]), project)["assignment"]["image"]["id"] == queued[1].id


def test_undo_takes_back_my_last_label_and_gives_me_the_item_again(client_for, users, project, queued, label):
    me = client_for(users["annotator"])
    first = nxt(me, project)["assignment"]
    submit(me, first["id"], label)
    second = nxt(me, project)["assignment"]
    undone = me.post(f"/api/projects/{project.id}/queue/undo")
    assert undone.status_code == 200 and undone.json()["image"]["id"] == first["image"]["id"]
    assert Annotation.objects.count() == 0
    assert Image.objects.get(pk=first["image"]["id"]).status == "unlabelled"
    assert me.post(f"/api/projects/{project.id}/queue/undo").json()["error"]["code"] == "nothing_to_undo"
    # Both items are mine now; the undone one comes first.
    assert {nxt(me, project)["assignment"]["id"]} <= {first["id"], second["id"]}


def test_audit_items_are_interleaved_and_hide_the_suggestion(client_for, users, project, label):
    project.audit_fraction = 0.2
    project.save()
    images = pool(project, 30)
    picks = images[:16]
    Image.objects.filter(pk__in=[i.id for i in images]).update(predicted_label_id=label, confidence=0.9)
    queue_round(project, picks)
    items = list(QueueItem.objects.filter(project=project).order_by("-priority"))
    audits = [i for i, item in enumerate(items) if item.is_audit]
    assert len(audits) == 4  # 16 picks at 20 % audit -> 4 audit items of 20
    assert audits[0] > 0 and audits[-1] < len(items) - 1  # spread through, not bunched at one end
    assert Image.objects.filter(is_audit=True).count() == 4
    client = client_for(users["annotator"])
    seen = []
    for _ in range(len(items)):
        body = nxt(client, project)["assignment"]
        is_audit = QueueItem.objects.get(assignments__id=body["id"]).is_audit
        seen.append((is_audit, body["suggestion"]))
        submit(client, body["id"], label)
    assert all(s is None for a, s in seen if a)
    assert all(s == {"label": label, "confidence": 0.9} for a, s in seen if not a)


def test_empty_queue_says_why(client_for, users, project):
    from labelling.models import EncoderVersion, Job

    client = client_for(users["annotator"])
    assert nxt(client, project)["empty_reason"] == "not_started"  # nobody asked for pretraining yet
    job = Job.objects.create(project=project, kind="pretrain", state="running")
    assert nxt(client, project)["empty_reason"] == "preparing"  # the first images come after it
    project.current_encoder = EncoderVersion.objects.create(project=project, artifact_key="e")
    project.save()
    Job.objects.filter(pk=job.pk).update(kind="select")  # the first selection: still getting ready
    assert nxt(client, project)["empty_reason"] == "preparing"
    from labelling.models import SelectionRound

    SelectionRound.objects.create(
        project=project, number=1, strategy="auto", requested_strategy="auto", batch_size=0
    )
    Job.objects.filter(pk=job.pk).update(kind="cycle")
    assert nxt(client, project)["empty_reason"] == "waiting_for_model"
    Job.objects.filter(pk=job.pk).update(state="failed")  # no round will come by itself
    assert nxt(client, project)["empty_reason"] == "training_failed"
    # Unless the queue still holds items for others (this annotator skipped them, another who labels
    # here has not): their labels bring the next retrain, so the failure is not why this annotator
    # has nothing.
    queue_round(project, pool(project, 3))
    bob = UserFactory(username="bob")
    from labelling.services.projects import membership_set

    membership_set(project=project, user=bob, role="annotator")
    other = client_for(bob)
    label_id = project.label_classes.first().id
    assert submit(other, nxt(other, project)["assignment"]["id"], label_id).status_code == 201
    for _ in range(2):
        body = nxt(client, project)["assignment"]
        assert (
            client.post(f"/api/assignments/{body['id']}/skip", {"reason": "x"}, format="json").status_code
            == 204
        )
    assert nxt(client, project)["empty_reason"] == "queue_empty"
    QueueItem.objects.filter(project=project).update(state="done")
    assert nxt(client, project)["empty_reason"] == "training_failed"
    Job.objects.create(project=project, kind="cycle", state="cancelled")  # no round comes either
    assert nxt(client, project)["empty_reason"] == "training_failed"
    Job.objects.create(project=project, kind="cycle", state="succeeded")
    # The queue ran dry for everyone with images left and no job on its way: nothing would queue the
    # next round (it stalled for good), so the next is asked for: a retrain on bob's label.
    assert nxt(client, project)["empty_reason"] == "waiting_for_model"
    drained = Job.objects.get(project=project, state="queued")
    assert drained.kind == "cycle" and drained.params == {"trigger": "queue_drained"}
    Job.objects.filter(pk=drained.pk).update(state="succeeded")
    Image.objects.filter(project=project).update(status="labelled")  # nothing left in the pool
    assert nxt(client, project)["empty_reason"] == "pool_labelled"
    project.labelling_paused = True
    project.save()
    assert nxt(client, project)["empty_reason"] == "paused"


def test_a_new_round_replaces_untouched_items_but_keeps_held_ones(client_for, users, project, queued):
    held = nxt(client_for(users["annotator"]), project)["assignment"]
    fresh = pool(project, 3, seed=9)
    queue_round(project, fresh)
    open_images = set(QueueItem.objects.filter(state="open").values_list("image_id", flat=True))
    assert open_images == {held["image"]["id"], *(i.id for i in fresh)}
    # The new round comes first for the next annotator.
    other = UserFactory(username="newcomer")
    from labelling.services.projects import membership_set

    membership_set(project=project, user=other, role="annotator")
    assert nxt(client_for(other), project)["assignment"]["image"]["id"] == fresh[0].id


def test_the_retrain_threshold_reads_the_cheap_counter_first(client_for, users, project, label):
    # Once a project has a model every submit checks whether cycle_every new training labels have
    # come in. Below the threshold by the labels given, or with a retrain already queued, the
    # labelled images are not counted, and no second retrain is queued.
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from labelling.models import EncoderVersion, Job
    from labelling.services.queue import retrain_if_due

    project.audit_fraction, project.cycle_every = 0.0, 3
    project.current_encoder = EncoderVersion.objects.create(project=project, artifact_key="encoders/x.pt")
    project.save()
    queue_round(project, pool(project, 6))
    me = client_for(users["annotator"])

    def check() -> list[str]:
        with CaptureQueriesContext(connection) as ctx:
            retrain_if_due(project)
        return [q["sql"] for q in ctx.captured_queries]

    def label_one():
        assert submit(me, nxt(me, project)["assignment"]["id"], label).status_code == 201

    for _ in range(2):
        label_one()
    below = check()
    assert len(below) == 1 and "labelling_annotationcount" in below[0] and "labelling_image" not in below[0]
    assert not Job.objects.filter(project=project, kind="cycle").exists()
    label_one()
    assert any("COUNT(*)" in sql and "labelling_image" in sql for sql in check())
    assert Job.objects.filter(project=project, kind="cycle").count() == 1
    label_one()  # the retrain is still queued: nothing counted, nothing more queued
    assert not any("labelling_image" in sql for sql in check())
    assert Job.objects.filter(project=project, kind="cycle").count() == 1


def test_audit_items_carry_into_the_next_round_instead_of_piling_up(client_for, users, project, label):
    # Eight rounds of 40 picks at a 5 % audit share, 20 labels between rounds (a retrain every 20
    # labels, as by default): the audit images a round queued but nobody reached move into the next
    # round's order and count towards its share. Drawn afresh each round, one per round piled up
    # below every newer round, never labelled (8 open after 8 rounds), while the images stayed
    # marked audit and out of selection.
    from django.db import transaction

    from labelling.models import SelectionRound
    from labelling.services.queue import Pick, queue_fill

    project.audit_fraction = 0.05
    project.save()
    images = pool(project, 400)
    me = client_for(users["annotator"])
    labelled: set[int] = set()
    for number in range(1, 9):
        queued = set(
            QueueItem.objects.filter(project=project, state="open").values_list("image_id", flat=True)
        )
        audit = set(Image.objects.filter(project=project, is_audit=True).values_list("id", flat=True))
        free = [im for im in images if im.id not in labelled | queued | audit][:40]
        with transaction.atomic():
            rnd = SelectionRound.objects.create(
                project=project, number=number, strategy="random", batch_size=40
            )
            queue_fill(project=project, round=rnd, picks=[Pick(im.id, 0.0, "x") for im in free], seed=0)
        for _ in range(20):
            body = nxt(me, project)["assignment"]
            assert submit(me, body["id"], label).status_code == 201
            labelled.add(body["image"]["id"])
    assert Annotation.objects.filter(image__is_audit=True).count() == 8  # 5 % of 160
    assert QueueItem.objects.filter(state="open", is_audit=True).count() <= 2
    assert Image.objects.filter(is_audit=True).count() <= 10


def test_a_round_never_queues_an_image_labelled_while_its_retrain_ran(
    client_for, users, project, queued, label
):
    # A scale review: a retrain ranked the pool, an annotator labelled one of its picks meanwhile,
    # and the round queued it again: the same annotator was handed it on every request (submit:
    # 409 already_labelled), and a second annotator labelled it again, spending the budget twice.
    ann = client_for(users["annotator"])
    done = nxt(ann, project)["assignment"]
    assert submit(ann, done["id"], label).status_code == 201
    flagged = Image.objects.filter(project=project, status="unlabelled").order_by("id").first()
    Image.objects.filter(pk=flagged.pk).update(status="flagged")
    fresh = pool(project, 2, seed=11)
    labelled = Image.objects.get(pk=done["image"]["id"])
    queue_round(project, [labelled, flagged, *fresh])  # ranked before the label and the flag
    open_images = set(
        QueueItem.objects.filter(state="open", round__number=2).values_list("image_id", flat=True)
    )
    assert open_images == {i.id for i in fresh}
    # Whatever queued it, an image an annotator labelled is never offered to them again.
    from labelling.models import SelectionRound

    QueueItem.objects.create(project=project, image=labelled, round=SelectionRound.objects.get(number=2),
                             priority=10**9, annotations_needed=1)  # fmt: skip
    seen = set()
    while (body := nxt(ann, project))["assignment"]:
        image_id = body["assignment"]["image"]["id"]
        assert image_id != labelled.id and image_id not in seen
        seen.add(image_id)
        assert ann.post(f"/api/assignments/{body['assignment']['id']}/skip").status_code in (200, 204)


def test_a_round_that_ends_below_cycle_every_brings_the_next_one(client_for, users, project, label):
    """A review: a round capped by the budget left (or a cycle_every over the round's size) was
    labelled to its end below cycle_every; the budget was lifted and the queue said queue_empty for
    good. The queue running dry asks for a retrain on the labels it got."""
    from labelling.models import EncoderVersion, Job

    project.audit_fraction, project.cycle_every = 0.0, 50
    project.current_encoder = EncoderVersion.objects.create(project=project, artifact_key="encoders/x.pt")
    project.save()
    images = pool(project, 6)
    queue_round(project, images[:3])
    me = client_for(users["annotator"])
    for _ in range(3):
        assert submit(me, nxt(me, project)["assignment"]["id"], label).status_code == 201
    assert not Job.objects.filter(project=project).exists()  # 3 labels, below cycle_every
    assert nxt(me, project)["empty_reason"] == "waiting_for_model"
    job = Job.objects.get(project=project)
    assert job.kind == "cycle" and job.params == {"trigger": "queue_drained"}


def test_the_budgets_last_labels_retrain_however_few(client_for, users, project, label):
    from labelling.models import EncoderVersion, Job
    from labelling.services.queue import retrain_if_due

    project.audit_fraction, project.cycle_every, project.label_budget = 0.0, 20, 3
    project.current_encoder = EncoderVersion.objects.create(project=project, artifact_key="encoders/x.pt")
    project.save()
    queue_round(project, pool(project, 6))
    me = client_for(users["annotator"])
    for _ in range(2):
        assert submit(me, nxt(me, project)["assignment"]["id"], label).status_code == 201
    retrain_if_due(project)  # as after each submit's commit
    assert not Job.objects.filter(project=project).exists()
    assert submit(me, nxt(me, project)["assignment"]["id"], label).status_code == 201  # the budget's last
    retrain_if_due(project)
    job = Job.objects.get(project=project)
    assert job.kind == "cycle" and job.params == {"trigger": "budget_spent"}
    assert nxt(me, project)["empty_reason"] == "budget_exhausted"


def test_items_everyone_skipped_do_not_keep_the_queue_waiting(client_for, users, project, label):
    """A review: every annotator skipped the last items of a round; queue/next answered queue_empty
    for good (they were open), and no round came. They are passed by everyone who labels here: the
    next round is asked for (a selection alone, no label being new)."""
    from labelling.models import EncoderVersion, Job

    project.audit_fraction = 0.0
    project.current_encoder = EncoderVersion.objects.create(project=project, artifact_key="encoders/x.pt")
    project.save()
    queue_round(project, pool(project, 4)[:2])
    me = client_for(users["annotator"])
    for _ in range(2):
        body = nxt(me, project)["assignment"]
        assert (
            me.post(f"/api/assignments/{body['id']}/skip", {"reason": "x"}, format="json").status_code == 204
        )
    assert nxt(me, project)["empty_reason"] == "waiting_for_model"
    job = Job.objects.get(project=project)
    assert job.kind == "select" and job.params == {"trigger": "queue_drained"}


def test_a_drained_queue_asks_once_when_there_is_nothing_to_select(client_for, users, project, label):
    """A review: one image left, unlabelled but out of every round (an unflagged audit image), and an
    annotator polling every 2 s: 160 select jobs, each finding nothing. Asked once; again only when
    something changed (a label, an image to select)."""
    from labelling.models import EncoderVersion, Job
    from labelling.services.queue import image_unflag

    project.audit_fraction = 0.0
    project.current_encoder = EncoderVersion.objects.create(project=project, artifact_key="encoders/x.pt")
    project.save()
    image = pool(project, 1)[0]
    Image.objects.filter(pk=image.pk).update(is_audit=True, status="flagged")
    image_unflag(image=Image.objects.get(pk=image.pk))
    assert Image.objects.get(pk=image.pk).is_audit is False  # back in the pool, selectable
    Image.objects.filter(pk=image.pk).update(is_audit=True)  # as it stayed before: in no round
    me = client_for(users["annotator"])
    assert nxt(me, project)["empty_reason"] == "waiting_for_model"
    job = Job.objects.get(project=project)
    Job.objects.filter(pk=job.pk).update(state="succeeded", result={"select": "skipped: every image ..."})
    for _ in range(3):
        assert nxt(me, project)["empty_reason"] == "queue_empty"
    assert Job.objects.filter(project=project).count() == 1
    pool(project, 1, seed=7)  # an image to select: asked again
    assert nxt(me, project)["empty_reason"] == "waiting_for_model"
    assert Job.objects.filter(project=project).count() == 2
