"""Queue races only PostgreSQL can show (row locks under READ COMMITTED; SQLite serialises writers).

Not collected on its own: test_concurrency_pg.py runs this file in a subprocess against a throwaway
PostgreSQL cluster. A second connection (psycopg) plays the other annotator's transaction, paused at
the point where the race happens.
"""

from __future__ import annotations

import contextlib
import threading
import time
from datetime import timedelta

import psycopg
import pytest
from django.db import connection, connections, transaction
from django.utils import timezone

from labelling.models import Annotation, Assignment, QueueItem, Role, SelectionRound
from labelling.services.projects import membership_set
from labelling.services.queue import Pick, queue_fill
from tests.factories import UserFactory, pool, queue_round

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def other_connection():
    assert connection.vendor == "postgresql", "run through test_concurrency_pg.py"
    s = connection.settings_dict
    conn = psycopg.connect(
        host=s["HOST"], port=s["PORT"], user=s["USER"], password=s["PASSWORD"], dbname=s["NAME"]
    )
    yield conn
    conn.close()


def _in_thread(fn) -> threading.Thread:
    def run():
        try:
            fn()
        finally:
            connections.close_all()

    t = threading.Thread(target=run)
    t.start()
    return t


def test_a_new_round_never_removes_an_item_being_reserved(users, project, other_connection):
    project.audit_fraction = 0.0
    project.save()
    images = pool(project, 3)
    queue_round(project, images)
    item = QueueItem.objects.filter(project=project, state="open").order_by("-priority").first()
    now = timezone.now()
    # The annotator's reservation, as _candidates + _reserve_items run it: lock the item, insert.
    other_connection.execute("SELECT id FROM labelling_queueitem WHERE id = %s FOR UPDATE", [item.id])
    other_connection.execute(
        "INSERT INTO labelling_assignment (item_id, project_id, annotator_id, state, reserved_at, expires_at,"
        " skip_reason) VALUES (%s, %s, %s, 'active', %s, %s, '')",
        [item.id, project.id, users["annotator"].id, now, now + timedelta(minutes=10)],
    )

    def fill():  # the select job's next round re-picks the same images meanwhile
        with transaction.atomic():
            rnd = SelectionRound.objects.create(
                project=project, number=2, strategy="random", requested_strategy="random", batch_size=3
            )
            queue_fill(project=project, round=rnd, picks=[Pick(im.id, 1.0, "again") for im in images])

    t = _in_thread(fill)
    time.sleep(1.0)  # queue_fill is now waiting on the item's row lock
    other_connection.commit()
    t.join(30)
    assert not t.is_alive()
    item.refresh_from_db()
    assert item.state == "open", "the held item was removed under its annotator"
    assert QueueItem.objects.filter(image_id=item.image_id, state="open").count() == 1
    assert Assignment.objects.get(item=item).state == "active"


def test_undo_and_a_coannotators_submit_do_not_deadlock(users, project, client_for, other_connection):
    project.audit_fraction, project.annotations_per_image = 0.0, 2
    project.save()
    bob = UserFactory(username="bob")
    membership_set(project=project, user=bob, role=Role.ANNOTATOR)
    queue_round(project, pool(project, 1))
    ca, cb = client_for(users["annotator"]), client_for(bob)
    na = ca.get(f"/api/projects/{project.id}/queue/next").json()["assignment"]
    nb = cb.get(f"/api/projects/{project.id}/queue/next").json()["assignment"]
    label = project.label_classes.first().id
    assert ca.post(f"/api/assignments/{na['id']}/submit", {"label": label}, format="json").status_code == 201
    # Bob's submit, as _submit runs it: lock his assignment and the item (FOR UPDATE OF a, q) ...
    other_connection.execute(
        "SELECT a.id FROM labelling_assignment a JOIN labelling_queueitem q ON q.id = a.item_id"
        " WHERE a.id = %s FOR UPDATE OF a, q",
        [nb["id"]],
    )
    out = {}

    def undo():
        client = client_for(users["annotator"])
        client.raise_request_exception = False
        out["undo"] = client.post(f"/api/projects/{project.id}/queue/undo")

    t = _in_thread(undo)
    time.sleep(1.0)  # the undo now waits for the item
    # ... then, in the same transaction, marks the image labelled: a deadlock if undo holds the image.
    other_connection.execute(
        "UPDATE labelling_image SET status = 'labelled' WHERE id = %s", [nb["image"]["id"]]
    )
    other_connection.commit()
    t.join(30)
    assert not t.is_alive()
    assert out["undo"].status_code == 200, out["undo"].content[:300]
    assert Annotation.objects.filter(image_id=nb["image"]["id"]).count() == 0


def test_two_admins_removing_each_other_at_once_leave_one(users, project, monkeypatch):
    # A security review: each removal checked that another admin remained, then deleted; under
    # READ COMMITTED both checks passed before either delete, and the project was left with none.
    from labelling.services import projects as svc
    from labelling.services.errors import Conflict

    bea = UserFactory(username="bea-admin")
    membership_set(project=project, user=bea, role=Role.ADMIN)
    barrier = threading.Barrier(2, timeout=3)  # holds the first past its check until the second checks
    real = svc._keep_an_admin

    def paused(**kwargs):
        real(**kwargs)
        with contextlib.suppress(threading.BrokenBarrierError):  # the other waits for the team lock
            barrier.wait()

    monkeypatch.setattr(svc, "_keep_an_admin", paused)
    outcomes = []

    def remove(user_id: int) -> None:
        try:
            svc.membership_remove(project=project, user_id=user_id)
            outcomes.append("removed")
        except Conflict as exc:
            outcomes.append(exc.code)

    threads = [_in_thread(lambda: remove(bea.id)), _in_thread(lambda: remove(users["admin"].id))]
    for t in threads:
        t.join(30)
    assert sorted(outcomes) == ["last_admin", "removed"]
    assert project.memberships.filter(role=Role.ADMIN).count() == 1
