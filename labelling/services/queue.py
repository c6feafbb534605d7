"""The annotation queue: filling it from a selection round, reserving, submitting, skipping, undoing.

Concurrency: every write runs in one transaction. On SQLite those transactions start IMMEDIATE
(settings), so writers are serialised; on PostgreSQL candidate items are locked with
``FOR UPDATE SKIP LOCKED`` and re-checked once locked (``_reserve_items``), and the project row is
locked only while a label budget is checked (shared while far from it, exclusively near it: see
``_budget_lock``), so two annotators never hold the same item, the budget is never exceeded, and
reservations run in parallel until the last few hundred labels of a budget. The labels a budget
has spent are counted in AnnotationCount (a row per annotator), kept by submit and undo in the
transactions that add and remove the labels, so a check sums a few rows instead of counting labels.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC, timedelta

import numpy as np
from django.contrib.auth.models import AbstractBaseUser
from django.db import IntegrityError, connection, transaction
from django.db.models import Count, Q
from django.utils import timezone

from labelling.models import (
    Annotation,
    AnnotationCount,
    Assignment,
    Image,
    LabelClass,
    Membership,
    Project,
    QueueItem,
    SelectionRound,
)
from labelling.models.image import ImageStatus
from labelling.models.job import TRAINING_KINDS, JobState
from labelling.models.queue import AssignmentState, QueueState
from labelling.selectors.metrics import labelled_training_images
from labelling.selectors.rows import Columns
from labelling.services.errors import Conflict, InvalidInput, NotFound

logger = logging.getLogger(__name__)

FINISHED = (AssignmentState.SUBMITTED, AssignmentState.SKIPPED, AssignmentState.FLAGGED)
UNDO_WINDOW = timedelta(minutes=30)


@dataclass
class Pick:
    image_id: int
    score: float
    reason: str


# --- filling ---------------------------------------------------------------------------------------


def queue_fill(*, project: Project, round: SelectionRound, picks: list[Pick], seed: int = 0) -> int:
    """Replace the untouched open items with this round's picks, interleaving audit images.

    The audit slice is a uniform random sample of the pool, drawn at the project's audit fraction
    and spread evenly through the batch, so accuracy is measured on images no strategy chose.
    Returns the number of items queued. Call inside a transaction.
    """
    now = timezone.now()
    untouched = QueueItem.objects.filter(project=project, state=QueueState.OPEN, annotations_done=0)
    # Lock those items first, then look for their reservations in a statement of its own: whoever
    # reserves an item holds its row lock until commit (see _reserve_items), so under READ COMMITTED
    # a reservation committed while we waited is seen. Judged inside the UPDATE, by the snapshot it
    # started with, such an item would be removed under its annotator and queued anew for another.
    len(untouched.select_for_update().values_list("pk", flat=True))
    touched = Assignment.objects.filter(
        Q(state__in=FINISHED) | Q(state=AssignmentState.ACTIVE, expires_at__gt=now), project=project
    ).values("item_id")  # this project's assignments only: an item's are always its project's
    untouched = untouched.exclude(pk__in=touched)
    untouched.filter(is_audit=False).update(state=QueueState.REMOVED)
    # Audit images stay audit images: the untouched ones of earlier rounds count towards this round's
    # share and move into its order, and only the shortfall is drawn anew (drawn afresh each round,
    # the ones not reached piled up below every newer round, never labelled).
    carried = list(untouched.filter(is_audit=True).order_by("-priority", "id").values_list("pk", flat=True))
    queued = set(
        QueueItem.objects.filter(project=project, state=QueueState.OPEN).values_list("image_id", flat=True)
    )
    # The picks were ranked from a snapshot taken when the job started: an image labelled (or
    # flagged) while it ran is not queued again (it was: an annotator was offered an image they had
    # labelled, and another one labelled it a second time, spending budget twice). An image being
    # labelled now has a live reservation on an open item, so it is in ``queued``.
    still_unlabelled = set(
        Image.objects.filter(pk__in=[p.image_id for p in picks], status=ImageStatus.UNLABELLED).values_list(
            "id", flat=True
        )
    )
    picks = [p for p in picks if p.image_id not in queued and p.image_id in still_unlabelled]

    n_audit = int(round_half_up(len(picks) * project.audit_fraction / max(1e-9, 1 - project.audit_fraction)))
    n_audit = max(0, n_audit - len(carried))
    audit_ids: list[int] = []
    if n_audit and project.audit_fraction > 0:
        pick_ids = {p.image_id for p in picks}
        candidates = np.array(
            Image.objects.filter(project=project, status=ImageStatus.UNLABELLED, is_audit=False)
            .exclude(pk__in=queued)
            .values_list("id", flat=True)
        )
        candidates = candidates[~np.isin(candidates, list(pick_ids))] if candidates.size else candidates
        rng = np.random.default_rng(seed + round.number * 7919)
        audit_ids = [
            int(i) for i in rng.choice(candidates, size=min(n_audit, candidates.size), replace=False)
        ]
        Image.objects.filter(pk__in=audit_ids).update(is_audit=True)

    total = len(picks) + len(carried) + len(audit_ids)
    items = []
    # Priorities count down from the newest round's top, so new rounds come first and order holds.
    base = float(round.number) * 1_000_000
    for rank, pick in enumerate(picks):
        items.append(
            QueueItem(
                project=project, image_id=pick.image_id, round=round, priority=base + total - rank,
                score=float(pick.score), reason=pick.reason[:200], annotations_needed=project.annotations_per_image,
            )
        )  # fmt: skip
    audits: list[int | None] = [*carried, *[None] * len(audit_ids)]  # carried items, then new images
    step = len(picks) / max(len(audits), 1)
    new_audit = iter(audit_ids)
    for j, pk in enumerate(audits):
        # Audit item j goes just before pick (j + 0.5) * step: evenly spread through the batch.
        priority = base + total - (j + 0.5) * step + 0.5
        if pk is not None:
            QueueItem.objects.filter(pk=pk).update(priority=priority, round=round)
            continue
        items.append(
            QueueItem(
                project=project, image_id=next(new_audit), round=round, priority=priority,
                score=0.0, reason="audit sample (random, measures accuracy)", is_audit=True,
                annotations_needed=project.annotations_per_image,
            )
        )  # fmt: skip
    QueueItem.objects.bulk_create(items)
    return len(items) + len(carried)


def round_half_up(x: float) -> int:
    return int(np.floor(x + 0.5))


# --- reading the state of the queue ---------------------------------------------------------------


# One transaction adds at most this many labels or reservations to what the budget counts.
MAX_ADDED_PER_TRANSACTION = 2


class _NearBudget(Exception):
    """A shared budget lock was not enough: the caller retries holding the project row exclusively."""


def _max_transactions() -> int:
    """An upper bound on transactions open at once: the database's connection limit."""
    global _MAX_TRANSACTIONS
    if _MAX_TRANSACTIONS is None:
        with connection.cursor() as cursor:
            cursor.execute("SHOW max_connections")
            _MAX_TRANSACTIONS = int(cursor.fetchone()[0])
    return _MAX_TRANSACTIONS


_MAX_TRANSACTIONS: int | None = None
# The columns of each model in the hand-written statements below, under the alias they use there.
_PROJECT, _ASSIGNMENT, _ITEM, _IMAGE = (
    Columns(Project, "p"),
    Columns(Assignment, "a"),
    Columns(QueueItem, "q"),
    Columns(Image, "i"),
)


def _project_and_spent(project_id: int, *, now, held: bool) -> tuple[Project, int]:
    """The project row and what its budget has spent: the labels given (AnnotationCount) and, with
    ``held``, the live reservations. One statement: on every reservation and submit, three ORM
    queries cost more CPU to build than the database spent running them."""
    counts, assignment = AnnotationCount._meta.db_table, Assignment._meta.db_table
    sql = (
        f"SELECT {_PROJECT.sql},"
        f" (SELECT COALESCE(SUM(c.annotations), 0) FROM {counts} c WHERE c.project_id = p.id)"
    )
    params: list = []
    if held:
        sql += (
            f" + (SELECT COUNT(*) FROM {assignment} h WHERE h.project_id = p.id AND h.state = %s"
            " AND h.expires_at > %s)"
        )
        params += [AssignmentState.ACTIVE, connection.ops.adapt_datetimefield_value(now)]
    sql += f" FROM {Project._meta.db_table} p WHERE p.id = %s"
    with connection.cursor() as cursor:
        cursor.execute(sql, [*params, project_id])
        row = cursor.fetchone()
    if row is None:
        raise NotFound("project not found")
    project, end = _PROJECT.take(row)
    return project, int(row[end])


def _budget_lock(project_id: int, *, exclusive: bool, held: bool, now) -> tuple[Project, int | None]:
    """Lock the project row for a budget check; return it freshly read, with the room left in its
    budget (labels given and, with ``held``, live reservations subtracted; None without a budget).
    Call in a transaction.

    Exclusive (FOR UPDATE) near the budget: every check is exact and serialised. Far from it, a
    shared lock (FOR SHARE): checks run in parallel, and each cannot see the others in flight. At
    most ``_max_transactions()`` are in flight, each adding at most MAX_ADDED_PER_TRANSACTION, so a
    shared check that leaves that much room can never let the total past the budget; the exclusive
    lock waits for every shared holder to commit, so near the budget nothing is unseen. Serialising
    every reservation on the row (and its commit's fsync) capped a 200-annotator team at about 20
    labels/s (bench/load.py). Raises _NearBudget when a shared lock finds too little room. On
    SQLite, whose writers are serialised, nothing is locked and every check is exact.
    """
    if connection.features.has_select_for_update:
        with connection.cursor() as cursor:
            cursor.execute(
                f"SELECT 1 FROM {Project._meta.db_table} WHERE id = %s FOR {'UPDATE' if exclusive else 'SHARE'}",
                [project_id],
            )
    # Read in a statement after the lock's: under READ COMMITTED it sees what the holders committed.
    project, spent = _project_and_spent(project_id, now=now, held=held)
    if project.label_budget is None:
        return project, None
    room = project.label_budget - spent
    if not exclusive and room < MAX_ADDED_PER_TRANSACTION * _max_transactions():
        raise _NearBudget()
    return project, room


def _locking_budget(fn):
    """Run ``fn(exclusive=...)`` with a shared budget lock first, exclusively if that was not enough
    (on SQLite, whose writers are serialised anyway, it runs once)."""
    if not connection.features.has_select_for_update:
        return fn(exclusive=True)
    try:
        return fn(exclusive=False)
    except _NearBudget:
        return fn(exclusive=True)


def queue_empty_reason(*, project: Project) -> str:
    """Why there is nothing to label: paused, budget_exhausted, preparing (the first pretraining runs),
    waiting_for_model (a retrain runs, or was asked for here: the queue ran dry), pool_labelled (no
    unlabelled image is left), not_started (no pretraining was ever asked for, so no image is
    coming), training_failed
    (the queue is empty for everyone and the project's latest training job failed or was cancelled,
    so no round comes by itself) or queue_empty (for this annotator: the items left are held by others or were
    skipped by them, or the next round is yet to be selected)."""
    if project.labelling_paused:
        return "paused"
    if project.label_budget is not None:
        _, spent = _project_and_spent(project.pk, now=timezone.now(), held=True)
        if spent >= project.label_budget:
            return "budget_exhausted"  # spent, or the rest is held by others right now
    training = project.jobs.filter(kind__in=TRAINING_KINDS)
    if training.filter(state__in=(JobState.QUEUED, JobState.RUNNING)).exists():
        # The first images come after pretraining, embedding and the first selection (minutes);
        # later ones after a retrain.
        first_round_queued = project.current_encoder_id and project.selection_rounds.exists()
        return "waiting_for_model" if first_round_queued else "preparing"
    items = _open_items(project)
    if items == "takeable":
        return "queue_empty"  # others hold the rest, or this annotator skipped it: labels still come
    if items == "none":
        if project.images.exists() and not project.images.filter(status=ImageStatus.UNLABELLED).exists():
            return "pool_labelled"
        if project.current_encoder_id is None and not training.exists():
            return "not_started"  # nothing comes until someone starts pretraining
    if training.order_by("-id").values_list("state", flat=True).first() in (
        JobState.FAILED,
        JobState.CANCELLED,
    ):
        # Or cancelled: either way no round comes by itself (items everyone skipped stay queued).
        return "training_failed" if items == "none" else "queue_empty"
    if project.current_encoder_id is not None and _next_round_request(project) is not None:
        return "waiting_for_model"
    return "queue_empty"


def _open_items(project: Project) -> str:
    """The queue's open items: "none"; "takeable" when one may still be labelled (someone holds it
    now, or someone who labels in this project has not passed it: skipped or labelled it); "passed"
    when everyone who labels here passed every one. Items that everyone skipped kept the queue "not
    empty" for ever, and no round came."""
    open_items = project.queue_items.filter(state=QueueState.OPEN)
    if not open_items.exists():
        return "none"
    now = timezone.now()
    if Assignment.objects.filter(
        item__in=open_items, state=AssignmentState.ACTIVE, expires_at__gt=now
    ).exists():
        return "takeable"
    labellers = Assignment.objects.filter(project=project).values("annotator_id").distinct().count()
    passed = Count(
        "assignments__annotator",
        filter=Q(assignments__state__in=(AssignmentState.SKIPPED, AssignmentState.SUBMITTED)),
        distinct=True,
    )
    takeable = open_items.annotate(passed=passed).filter(passed__lt=max(labellers, 1)).exists()
    return "takeable" if takeable else "passed"


def _next_round_request(project: Project):
    """The queue is empty for everyone, images are left and no training job is on its way: nothing
    would queue the next round (a round that ended below ``cycle_every`` labels: a budget left
    smaller, raised later, or a ``cycle_every`` over the round's size; items skipped by all). A
    retrain then (a selection alone without new training labels), so labelling never stalls."""
    from labelling.services.training import training_job_request_quietly  # training -> queue

    last = project.jobs.filter(kind__in=TRAINING_KINDS).order_by("-id").first()
    if (
        last is not None
        and last.params.get("trigger") == "queue_drained"
        and last.state == JobState.SUCCEEDED
        and "selection_round" not in (last.result or {})
        and not Annotation.objects.filter(image__project=project, created_at__gte=last.created_at).exists()
        and not project.images.filter(status=ImageStatus.UNLABELLED, is_audit=False)
        .exclude(queue_items__state=QueueState.OPEN)
        .exists()
    ):
        return None  # the last one found nothing to select, and nothing changed since: not again
    kind = "cycle" if labelled_training_images(project) > project.labels_at_last_cycle else "select"
    return training_job_request_quietly(project=project, kind=kind, trigger="queue_drained")


# --- reserving -------------------------------------------------------------------------------------


def assignments_reserve(*, project: Project, annotator: AbstractBaseUser, count: int = 1) -> list[Assignment]:
    """The items this annotator holds, topped up with fresh reservations of the best free items
    until ``count`` are held (1 for the current image, 2 to also fetch the next one ahead).
    ``project`` should be freshly read (as access_project does per request): its pause flag and
    budget are taken from it, re-read under a lock where a budget must be checked.

    An empty list means there is nothing to label: queue_empty_reason() says why.
    """
    now = timezone.now()

    if project.labelling_paused:
        return []  # paused: not even the items already held (they stay reserved until they expire)

    def reserve(*, exclusive: bool) -> list[Assignment]:
        with transaction.atomic():
            held = _held(project=project, annotator=annotator, now=now, count=count)
            if len(held) < count:
                held += _reserve_more(
                    project=project,
                    annotator=annotator,
                    wanted=count - len(held),
                    now=now,
                    exclusive=exclusive,
                )
        return held

    return _locking_budget(reserve) if project.label_budget is not None else reserve(exclusive=True)


def _held(*, project: Project, annotator: AbstractBaseUser, now, count: int) -> list[Assignment]:
    """My live reservations in the project, oldest first, with their items and images loaded."""
    a, q, i = Assignment._meta.db_table, QueueItem._meta.db_table, Image._meta.db_table
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT {_ASSIGNMENT.sql}, {_ITEM.sql}, {_IMAGE.sql}"
            f" FROM {a} a JOIN {q} q ON q.id = a.item_id JOIN {i} i ON i.id = q.image_id"
            " WHERE a.project_id = %s AND a.annotator_id = %s AND a.state = %s AND a.expires_at > %s"
            " AND q.state = %s"  # not an item a co-annotator's flag took out of the queue
            " ORDER BY a.reserved_at, a.id LIMIT %s",
            [
                project.pk,
                annotator.pk,
                AssignmentState.ACTIVE,
                connection.ops.adapt_datetimefield_value(now),
                QueueState.OPEN,
                count,
            ],
        )
        rows = cursor.fetchall()
    held = []
    for row in rows:
        assignment, end = _ASSIGNMENT.take(row)
        assignment.item, end = _ITEM.take(row, end)
        assignment.item.image, _ = _IMAGE.take(row, end)
        held.append(assignment)
    return held


def _reserve_more(
    *, project: Project, annotator: AbstractBaseUser, wanted: int, now, exclusive: bool = True
) -> list[Assignment]:
    locked, room = project, None
    if project.label_budget is not None:
        # The budget is one number for the whole project: reservations lock its row (shared while
        # far from the budget, exclusively near it) so two annotators cannot both take the last
        # label. Without a budget nothing project-wide is checked, and annotators only meet on the
        # queue items themselves.
        locked, room = _budget_lock(project.pk, exclusive=exclusive, held=True, now=now)
    if locked.labelling_paused:
        return []
    if room is not None:
        wanted = min(wanted, room)
    if wanted <= 0:
        return []
    expires = now + timedelta(minutes=locked.reservation_minutes)
    reserved: list[Assignment] = []
    seen: list[int] = []
    for attempt in range(RESERVE_ATTEMPTS):
        # The first look asks for exactly what is missing (the common, uncontended case); later ones
        # look further down the queue, past the items that concurrent annotators just took.
        missing = wanted - len(reserved)
        limit = missing if attempt == 0 else min(missing * 4 * attempt, 64)
        batch = _candidates(project=project, annotator=annotator, now=now, limit=limit, seen=seen)
        if not batch:
            break
        seen += [item.pk for item in batch]
        reserved += _reserve_items(
            batch, project=project, annotator=annotator, now=now, expires=expires, limit=missing
        )
        if len(reserved) >= wanted:
            break
    return reserved


# Looks down the queue before a reservation gives up. With three, a crowd of annotators asking at the
# same moment could all find their few candidates just taken and be told the queue was empty while
# thousands of items waited (bench-load: 200 annotators starting together).
RESERVE_ATTEMPTS = 8


def _candidates(
    *, project: Project, annotator: AbstractBaseUser, now, limit: int, seen: list[int]
) -> list[QueueItem]:
    """The best open items this annotator may take, best first: not finished or held by them, and
    still short of labels counting the live reservations of others, with their images loaded. On
    PostgreSQL they come locked, skipping items another transaction is reserving right now.

    Written in SQL because it runs on every reservation and the ORM took ten times longer to build
    it than the database to run it (2.8 ms against 0.26 ms on the benchmark machine).
    """
    q, a, i = QueueItem._meta.db_table, Assignment._meta.db_table, Image._meta.db_table
    n = Annotation._meta.db_table
    at = connection.ops.adapt_datetimefield_value(now)
    active = AssignmentState.ACTIVE
    sql = (
        f"SELECT {_ITEM.sql}, {_IMAGE.sql} FROM {q} q JOIN {i} i ON i.id = q.image_id"
        " WHERE q.project_id = %s AND q.state = %s"
        f" AND q.id NOT IN (SELECT m.item_id FROM {a} m WHERE m.project_id = %s AND m.annotator_id = %s"
        "  AND (m.state IN (%s, %s, %s) OR (m.state = %s AND m.expires_at > %s)))"
        # Never an image this annotator labelled already, through whichever item (its submit could
        # only answer already_labelled, and the same reservation came back on every request).
        f" AND NOT EXISTS (SELECT 1 FROM {n} d WHERE d.image_id = q.image_id AND d.annotator_id = %s)"
        " AND q.annotations_done < q.annotations_needed"
        # Items whose live reservations already make up what they still need: one uncorrelated
        # subquery over the project's live reservations (the partial index assignment_live_idx),
        # which the database hashes once. A per-item COUNT here ran once for every item skipped, and
        # a crowd's reservations sit at the top of the queue: with 200 annotators holding two items
        # each it cost 12-15 ms of database CPU per reservation (bench.label_cpu --holding 200).
        # Each held item's own row is read by its key: a join let the planner merge-join along the
        # queue's primary key from its first row, a cost that grew with every item labelled.
        f" AND q.id NOT IN (SELECT h.item_id FROM (SELECT l.item_id, COUNT(*) AS n FROM {a} l"
        "  WHERE l.project_id = %s AND l.state = %s AND l.expires_at > %s GROUP BY l.item_id) h"
        f"  WHERE h.n >= (SELECT f.annotations_needed - f.annotations_done FROM {q} f WHERE f.id = h.item_id))"
    )
    params: list = [
        *(project.pk, QueueState.OPEN),
        *(project.pk, annotator.pk, *FINISHED, active, at),
        annotator.pk,
        *(project.pk, active, at),
    ]
    if seen:
        sql += f" AND q.id NOT IN ({', '.join(['%s'] * len(seen))})"
        params += seen
    sql += " ORDER BY q.priority DESC, q.id LIMIT %s"
    params.append(limit)
    if connection.features.has_select_for_update_skip_locked:
        sql += " FOR UPDATE OF q SKIP LOCKED"
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        rows = cursor.fetchall()
    items = []
    for row in rows:
        item, end = _ITEM.take(row)
        item.image, _ = _IMAGE.take(row, end)
        items.append(item)
    return items


def _reserve_items(
    items: list[QueueItem], *, project: Project, annotator: AbstractBaseUser, now, expires, limit: int
) -> list[Assignment]:
    """Reserve the first ``limit`` candidates still free for this annotator. Call while holding their
    row locks (the others are released at commit).

    Under READ COMMITTED the candidate query judged the items free by its snapshot and only then
    locked them (SKIP LOCKED skips rows locked at that moment): an annotator who reserved one and
    committed after the snapshot but before our lock is invisible to it, and its reservation would
    be duplicated. Whoever reserves an item holds the item's row lock until commit, so this new
    statement, run while we hold the locks, sees every such reservation (the PostgreSQL test without
    a budget fails without it). On SQLite writers are serialised and the check costs one query.
    """
    others: dict[int, int] = {}
    mine: dict[int, Assignment] = {}
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT {_ASSIGNMENT.sql} FROM {Assignment._meta.db_table} a"
            f" WHERE a.item_id IN ({', '.join(['%s'] * len(items))})",
            [item.pk for item in items],
        )
        rows = cursor.fetchall()
    for row in rows:
        assignment, _ = _ASSIGNMENT.take(row)
        if assignment.annotator_id == annotator.pk:
            mine[assignment.item_id] = assignment
        elif assignment.state == AssignmentState.ACTIVE and assignment.expires_at > now:
            others[assignment.item_id] = others.get(assignment.item_id, 0) + 1
    reserved, fresh, renewed = [], [], []
    for item in items:
        if len(reserved) >= limit:
            break
        if item.annotations_done + others.get(item.pk, 0) >= item.annotations_needed:
            continue
        earlier = mine.get(item.pk)
        if earlier is None:
            assignment = Assignment(
                item=item, project=project, annotator=annotator, reserved_at=now, expires_at=expires
            )
            fresh.append(assignment)
        elif earlier.state in FINISHED or (
            earlier.state == AssignmentState.ACTIVE and earlier.expires_at > now
        ):
            continue  # finished by me, or reserved by another request of mine meanwhile
        else:
            # One row per item and annotator: a reservation of mine that lapsed is renewed.
            assignment = earlier
            assignment.state, assignment.item = AssignmentState.ACTIVE, item
            assignment.reserved_at, assignment.expires_at = now, expires
            renewed.append(assignment)
        reserved.append(assignment)
    if fresh:
        _assignments_insert(fresh)
    if renewed:
        Assignment.objects.bulk_update(renewed, ["state", "reserved_at", "expires_at"])
    return reserved


_ASSIGNMENT_INSERTED = (
    "item_id",
    "project_id",
    "annotator_id",
    "state",
    "reserved_at",
    "expires_at",
    "skip_reason",
)


def _assignments_insert(assignments: list[Assignment]) -> None:
    """``bulk_create`` in one hand-written INSERT (it runs on every reservation); sets their ids."""
    adapt = connection.ops.adapt_datetimefield_value
    row = f"({', '.join(['%s'] * len(_ASSIGNMENT_INSERTED))})"
    params: list = []
    for a in assignments:
        params += [
            a.item_id,
            a.project_id,
            a.annotator_id,
            a.state,
            adapt(a.reserved_at),
            adapt(a.expires_at),
            a.skip_reason,
        ]
    with connection.cursor() as cursor:
        cursor.execute(
            f"INSERT INTO {Assignment._meta.db_table} ({', '.join(_ASSIGNMENT_INSERTED)})"
            f" VALUES {', '.join([row] * len(assignments))} RETURNING id",
            params,
        )
        ids = [pk for (pk,) in cursor.fetchall()]
    for assignment, pk in zip(assignments, ids, strict=True):
        assignment.pk = pk
        assignment._state.adding, assignment._state.db = False, connection.alias


def _mine(assignment_id: int, annotator: AbstractBaseUser, *, label_id: int | None = None) -> Assignment:
    """My assignment, in a project I am still a member of (else 404), locked with its queue item
    (not the project: annotators must not queue on it), with its item and project loaded.

    With ``label_id``, ``assignment.label_known`` says whether that label is in the project's label
    set. One statement: it opens every submit, skip and flag.
    """
    a, q, p = Assignment._meta.db_table, QueueItem._meta.db_table, Project._meta.db_table
    label = "0"  # FALSE on both databases; also for an id no row can have (out of BIGINT's range)
    params: list = []
    if label_id is not None and 0 < label_id < 2**63:
        label = f"EXISTS (SELECT 1 FROM {LabelClass._meta.db_table} l WHERE l.id = %s AND l.project_id = a.project_id)"
        params.append(label_id)
    sql = (
        f"SELECT {_ASSIGNMENT.sql}, {_ITEM.sql}, {_PROJECT.sql}, {label}"
        f" FROM {a} a JOIN {q} q ON q.id = a.item_id JOIN {p} p ON p.id = a.project_id"
        " WHERE a.id = %s AND a.annotator_id = %s"
        f" AND EXISTS (SELECT 1 FROM {Membership._meta.db_table} m WHERE m.project_id = a.project_id"
        " AND m.user_id = %s)"
    )
    params += [assignment_id, annotator.pk, annotator.pk]
    if connection.features.has_select_for_update:
        sql += " FOR UPDATE OF a, q"
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        row = cursor.fetchone()
    if row is None:
        raise NotFound("no such assignment of yours", code="not_found")
    assignment, end = _ASSIGNMENT.take(row)
    assignment.item, end = _ITEM.take(row, end)
    assignment.project, end = _PROJECT.take(row, end)
    assignment.label_known = bool(row[end])
    return assignment


def _execute(sql: str, params: list) -> None:
    with connection.cursor() as cursor:
        cursor.execute(sql, params)


# --- submitting ------------------------------------------------------------------------------------


def assignment_submit(
    *, assignment_id: int, annotator: AbstractBaseUser, label_id: int, seconds_spent: float | None = None
) -> tuple[Annotation, bool]:
    """Store the label for a reservation; returns (annotation, created).

    Idempotent: the same submit twice returns the first annotation (created False). A submit for a
    reservation that lapsed is still taken while nobody else holds the item and it needs a label;
    otherwise it is a 409 ``reservation_expired``.
    """

    def submit(*, exclusive: bool) -> tuple[Annotation, bool]:
        return _submit(assignment_id, annotator, label_id, seconds_spent, exclusive=exclusive)

    return _locking_budget(submit)


def _submit(
    assignment_id: int,
    annotator: AbstractBaseUser,
    label_id: int,
    seconds_spent: float | None,
    *,
    exclusive: bool,
) -> tuple[Annotation, bool]:
    now = timezone.now()
    with transaction.atomic():
        assignment = _mine(assignment_id, annotator, label_id=label_id)
        if assignment.state == AssignmentState.SUBMITTED:
            existing = Annotation.objects.filter(assignment=assignment).first()
            if existing is not None and existing.label_id == label_id:
                return existing, False
            raise Conflict(
                "you already labelled this item; undo it to change the label", code="already_submitted"
            )
        if assignment.state in (AssignmentState.SKIPPED, AssignmentState.FLAGGED):
            raise Conflict(f"this item was {assignment.state} by you", code="not_active")
        item = assignment.item  # locked by _mine
        if item.state == QueueState.REMOVED:  # flagged by a co-annotator (or taken out of the queue)
            raise Conflict(_REMOVED, code="item_removed")
        lapsed = assignment.state != AssignmentState.ACTIVE or assignment.expires_at <= now
        if lapsed:
            others = Assignment.objects.filter(
                item=item, state=AssignmentState.ACTIVE, expires_at__gt=now
            ).exclude(pk=assignment.pk)
            if (
                item.state != QueueState.OPEN
                or item.annotations_done + others.count() >= item.annotations_needed
            ):
                raise Conflict(
                    "your reservation of this item expired and it went to someone else; take the next one",
                    code="reservation_expired",
                )
        if not assignment.label_known:
            raise InvalidInput(f"label {label_id} is not in this project's label set", code="unknown_label")
        if seconds_spent is not None and not (0 <= seconds_spent <= 86400):
            raise InvalidInput("seconds_spent must be between 0 and 86400", code="invalid")
        project = assignment.project
        if project.label_budget is not None:
            # Checked under the project row lock, like reservations (see _budget_lock).
            project, room = _budget_lock(assignment.project_id, exclusive=exclusive, held=False, now=now)
            if room is not None and room <= 0:
                raise Conflict("the project's label budget is spent", code="budget_exhausted")
        annotation = _annotation_insert(
            image_id=item.image_id, annotator=annotator, label_id=label_id, seconds_spent=seconds_spent,
            assignment=assignment, now=now,
        )  # fmt: skip
        if annotation is None:
            raise Conflict("you have already labelled this image", code="already_labelled")
        assignment.state, assignment.finished_at = AssignmentState.SUBMITTED, now
        item.annotations_done += 1
        if item.annotations_done >= item.annotations_needed:
            item.state = QueueState.DONE
        at = connection.ops.adapt_datetimefield_value(now)
        _execute(
            f"UPDATE {Assignment._meta.db_table} SET state = %s, finished_at = %s WHERE id = %s",
            [assignment.state, at, assignment.pk],
        )
        _execute(
            f"UPDATE {QueueItem._meta.db_table} SET annotations_done = %s, state = %s WHERE id = %s",
            [item.annotations_done, item.state, item.pk],
        )
        _execute(
            f"UPDATE {Image._meta.db_table} SET status = %s WHERE id = %s",
            [ImageStatus.LABELLED, item.image_id],
        )
        _annotation_count_add(
            project_id=assignment.project_id, annotator=annotator, delta=1, now=now, today_delta=1
        )
        # After commit: requesting a retrain locks the project row exclusively, and this transaction
        # may hold it shared (the budget check); two submits upgrading at once would deadlock.
        transaction.on_commit(lambda: _retrain_if_due_safely(project))
    return annotation, True


_ANNOTATION_FIELDS = (
    "image_id", "annotator_id", "label_id", "created_at", "seconds_spent", "assignment_id", "imported"
)  # fmt: skip


def _annotation_insert(
    *, image_id: int, annotator: AbstractBaseUser, label_id: int, seconds_spent: float | None,
    assignment: Assignment, now,
) -> Annotation | None:  # fmt: skip
    """Store a label; None when the annotator already labelled the image (a unique constraint).

    ``ON CONFLICT DO NOTHING`` instead of a savepoint to catch the IntegrityError: two statements
    fewer on every submit.
    """
    values = [image_id, annotator.pk, label_id, now, seconds_spent, assignment.pk, False]
    with connection.cursor() as cursor:
        cursor.execute(
            f"INSERT INTO {Annotation._meta.db_table} ({', '.join(_ANNOTATION_FIELDS)})"
            " VALUES (%s, %s, %s, %s, %s, %s, %s) ON CONFLICT DO NOTHING RETURNING id",
            [*values[:3], connection.ops.adapt_datetimefield_value(now), *values[4:]],
        )
        row = cursor.fetchone()
    if row is None:
        return None
    return Annotation.from_db(connection.alias, ["id", *_ANNOTATION_FIELDS], [row[0], *values])


def _annotation_count_add(
    *, project_id: int, annotator: AbstractBaseUser, delta: int, now, today_delta: int
) -> None:
    """Count annotations added (or, negative, removed) in the budget's counter (AnnotationCount),
    ``today_delta`` of them in the count of the day of ``now`` (UTC; a new day starts from 0).

    Call in the transaction that adds or removes them, as its last statement: the row stays locked
    until commit, and only this annotator's other requests ever wait on it.
    """
    table = AnnotationCount._meta.db_table
    day = connection.ops.adapt_datefield_value(now.astimezone(UTC).date())
    fresh = max(today_delta, 0)
    with connection.cursor() as cursor:
        cursor.execute(
            f"INSERT INTO {table} (project_id, annotator_id, annotations, day, on_day) VALUES (%s, %s, %s, %s, %s)"
            f" ON CONFLICT (project_id, annotator_id) DO UPDATE SET annotations = {table}.annotations + %s,"
            f" on_day = CASE WHEN {table}.day = %s THEN {table}.on_day + %s ELSE %s END, day = %s",
            [project_id, annotator.pk, delta, day, fresh, delta, day, today_delta, fresh, day],
        )


def _retrain_if_due_safely(project: Project) -> None:
    """retrain_if_due after the label is committed: a failure here must not turn a stored label
    into an error response; the next submit checks the threshold again."""
    try:
        retrain_if_due(project)
    except Exception:
        logger.exception("could not queue a retrain for project %s after a label", project.pk)


def retrain_if_due(project: Project) -> None:
    """After every ``cycle_every`` new training labels, queue a retrain (coalesced: one at a time);
    once the budget is spent, after any: its last labels are the final model's.

    It runs after every submit once the project has a model, so the exact count of training labels
    (a COUNT over the labelled images, which grows with the project) comes last: first the labels
    given, from the budget's per-annotator counters, plus the imported ones (every training label is
    at least one of them, so too few of those settles it), then whether a retrain is already queued
    or running (requesting one would only lock the project row to find it).
    """
    from labelling.services.training import (  # cycle -> jobs -> queue
        running_training_job,
        training_job_request,
    )

    if project.current_encoder_id is None:
        return
    project, given = _project_and_spent(project.pk, now=timezone.now(), held=False)
    # The budget's last labels retrain too, however few: no more labels come to reach cycle_every.
    spent = project.label_budget is not None and given >= project.label_budget
    due = 1 if spent else project.cycle_every
    if given + project.imported_labels - project.labels_at_last_cycle < due:
        return
    if running_training_job(project) is not None:
        return
    training_labels = labelled_training_images(project)
    if training_labels - project.labels_at_last_cycle < due:
        return
    trigger = (
        "budget_spent"
        if spent and training_labels - project.labels_at_last_cycle < project.cycle_every
        else "labels"
    )
    training_job_request(project=project, kind="cycle", params={"trigger": trigger}, coalesce=True)


# --- skipping, flagging, undoing -------------------------------------------------------------------


def assignment_skip(*, assignment_id: int, annotator: AbstractBaseUser, reason: str = "") -> Assignment:
    """Give an item back with a reason; it stays in the queue for others, never again for me."""
    with transaction.atomic():
        assignment = _mine(assignment_id, annotator)
        if assignment.state != AssignmentState.ACTIVE:
            raise Conflict(f"this item is already {assignment.state}", code="not_active")
        assignment.state, assignment.finished_at = AssignmentState.SKIPPED, timezone.now()
        assignment.skip_reason = reason[:200]
        assignment.save(update_fields=["state", "finished_at", "skip_reason"])
    return assignment


FLAG_REASONS = ("broken", "ambiguous", "other")


_REMOVED = (
    "this image left the queue meanwhile (another annotator flagged it, or an engineer imported its"
    " label), so that label was not stored"
)


def assignment_flag(*, assignment_id: int, annotator: AbstractBaseUser, reason: str) -> Assignment:
    """Flag an image (broken, ambiguous): it leaves the queue for everyone, and training, even if a
    co-annotator labelled it already (several annotations per image); their labels stay stored."""
    if reason not in FLAG_REASONS:
        raise InvalidInput(f"reason must be one of {', '.join(FLAG_REASONS)}", code="invalid")
    with transaction.atomic():
        assignment = _mine(assignment_id, annotator)
        if assignment.state != AssignmentState.ACTIVE:
            raise Conflict(f"this item is already {assignment.state}", code="not_active")
        assignment.state, assignment.finished_at = AssignmentState.FLAGGED, timezone.now()
        assignment.skip_reason = reason
        assignment.save(update_fields=["state", "finished_at", "skip_reason"])
        QueueItem.objects.filter(pk=assignment.item_id, state=QueueState.OPEN).update(
            state=QueueState.REMOVED
        )
        Image.objects.filter(pk=assignment.item.image_id).update(status=ImageStatus.FLAGGED)
    return assignment


def image_unflag(*, image: Image) -> Image:
    """An engineer or admin looked at a flagged image and found it fine: it is labelled again if it
    has labels (a co-annotator's, given before the flag), else unlabelled and selectable by the
    next round. The flags stay on record with their assignments."""
    with transaction.atomic():
        image = Image.objects.select_for_update().get(pk=image.pk)
        if image.status != ImageStatus.FLAGGED:
            raise Conflict(f"image {image.pk} is not flagged (it is {image.status})", code="not_flagged")
        labelled = Annotation.objects.filter(image=image).exists()
        image.status = ImageStatus.LABELLED if labelled else ImageStatus.UNLABELLED
        if image.is_audit and not labelled:
            # Its audit item went when it was flagged, and rounds never select audit images: it would
            # stay unlabelled for good. Back in the pool; the audit share draws another in its place.
            image.is_audit = False
        image.save(update_fields=["status", "is_audit"])
    return image


def annotation_undo_last(*, project: Project, annotator: AbstractBaseUser) -> Assignment:
    """Take back my last label in this project (within 30 minutes); its item is mine again."""
    now = timezone.now()
    with transaction.atomic():
        annotation = (
            # Only the annotation's row: locking its image here too (the join) and the item after
            # would deadlock against a co-annotator's submit, which locks the item, then the image.
            Annotation.objects.select_for_update(of=("self",))
            .filter(image__project=project, annotator=annotator, assignment__isnull=False)
            .order_by("-id")
            .first()
        )
        if annotation is None or annotation.created_at < now - UNDO_WINDOW:
            raise Conflict("there is no recent label of yours to undo", code="nothing_to_undo")
        assignment = Assignment.objects.select_for_update().get(pk=annotation.assignment_id)
        item = QueueItem.objects.select_for_update().get(pk=assignment.item_id)
        if item.state == QueueState.REMOVED:  # a co-annotator flagged the image since
            raise Conflict("that image was flagged since; its label stays as it is", code="nothing_to_undo")
        annotation.delete()
        item.annotations_done = max(0, item.annotations_done - 1)
        if item.state == QueueState.DONE:
            item.state = QueueState.OPEN
        try:
            with transaction.atomic():
                item.save(update_fields=["annotations_done", "state"])
        except IntegrityError:
            raise Conflict(
                "this image is queued again elsewhere; cannot undo", code="nothing_to_undo"
            ) from None
        if not Annotation.objects.filter(image_id=item.image_id).exists():
            Image.objects.filter(pk=item.image_id, status=ImageStatus.LABELLED).update(
                status=ImageStatus.UNLABELLED
            )
        assignment.state, assignment.finished_at = AssignmentState.ACTIVE, None
        assignment.reserved_at, assignment.expires_at = (
            now,
            now + timedelta(minutes=project.reservation_minutes),
        )
        assignment.save(update_fields=["state", "finished_at", "reserved_at", "expires_at"])
        same_day = annotation.created_at.astimezone(UTC).date() == now.astimezone(UTC).date()
        _annotation_count_add(
            project_id=project.pk, annotator=annotator, delta=-1, now=now, today_delta=-1 if same_day else 0
        )
    return Assignment.objects.select_related("item__image").get(pk=assignment.pk)
