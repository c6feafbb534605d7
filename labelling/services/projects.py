"""Projects, their label sets and memberships."""

from __future__ import annotations

import re
from decimal import Decimal
from typing import Any

from django.contrib.auth.models import AbstractBaseUser
from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone

from labelling.models import (
    Annotation,
    Assignment,
    Image,
    LabelClass,
    Membership,
    ModelVersion,
    Project,
    QueueItem,
    Role,
)
from labelling.models.queue import AssignmentState, QueueState
from labelling.services.errors import Conflict, InvalidInput, NotFound
from labelling.services.text import nfc
from labelling.services.training import forecast_if_stale

_HOTKEYS = "1234567890" + "abcdefghijklmnopqrstuvwxyz"  # what a label may be given
# Handed out in this order to labels without one: never the labelling page's command letters (skip,
# undo, flag, instructions), which a label would shadow; a label may still be given one explicitly.
COMMAND_KEYS = "sufi"  # skip, undo, flag, instructions (annotate.js's COMMANDS)
_DEFAULT_HOTKEYS = "".join(k for k in _HOTKEYS if k not in COMMAND_KEYS)
LABEL_NAME_MAX = LabelClass._meta.get_field("name").max_length
# NUL and the other C0 controls: PostgreSQL refuses NUL in text (a 500 if it reached the database),
# and none belongs in a label's name.
CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def _label_rows(labels: list[Any]) -> list[tuple[str, str]]:
    """Normalise a label set given as names or {name, hotkey} objects; give free hotkeys in order."""
    rows: list[tuple[str, str]] = []
    for entry in labels:
        if isinstance(entry, str):
            name, hotkey = entry, ""
        elif isinstance(entry, dict):
            name, hotkey = entry.get("name", ""), entry.get("hotkey") or ""
            hotkey = hotkey.lower() if isinstance(hotkey, str) else hotkey  # "A" is the a key
        else:
            raise InvalidInput("each label is a name or an object {name, hotkey}", code="invalid_labels")
        if not isinstance(name, str) or not name.strip():
            raise InvalidInput("a label needs a non-empty name", code="invalid_labels")
        if len(name.strip()) > LABEL_NAME_MAX or CONTROL.search(name):
            raise InvalidInput(
                f"a label name is at most {LABEL_NAME_MAX} characters, without control characters: "
                f"{name.strip()[:40]!r}",
                code="invalid_labels",
            )
        if not isinstance(hotkey, str) or len(hotkey) > 1 or (hotkey and hotkey not in _HOTKEYS):
            raise InvalidInput(
                f"hotkey {hotkey!r} of {name!r} must be one of 0-9 or a-z", code="invalid_labels"
            )
        rows.append((nfc(name.strip()), hotkey))
    names = [n for n, _ in rows]
    if len(set(names)) != len(names):
        raise InvalidInput("label names must be unique", code="invalid_labels")
    used = {h for _, h in rows if h}
    if len(used) != sum(1 for _, h in rows if h):
        raise InvalidInput("hotkeys must be unique", code="invalid_labels")
    own: dict[str, str] = {}  # a one-character name gets its own key: label "0" is on 0, not on 1
    for n, h in rows:
        if not h and _own_key(n) and _own_key(n) not in used | set(own.values()):
            own[n] = _own_key(n)
    used |= set(own.values())
    free = iter(k for k in _DEFAULT_HOTKEYS if k not in used)
    return [(n, h or own.get(n) or next(free, "")) for n, h in rows]


def _own_key(name: str) -> str:
    """The key a label named by one character would be expected on ("7", "b"), or ""."""
    key = name.lower()
    return key if len(key) == 1 and key in _DEFAULT_HOTKEYS else ""


def _clean(project: Project) -> None:
    """The model's own checks (lengths, ranges) and no NUL in its text, before anything is saved: an
    ``InvalidInput`` naming each field, never a database error."""
    problems: dict[str, list[str]] = {}
    try:
        project.full_clean(exclude=["created_by"])
    except ValidationError as exc:
        problems = dict(exc.message_dict)
    for field in ("name", "description", "instructions", "currency"):
        if "\x00" in (getattr(project, field) or ""):
            problems.setdefault(field, []).append("NUL characters are not allowed.")
    if problems:
        text = "; ".join(f"{field}: {' '.join(msgs)}" for field, msgs in problems.items())
        raise InvalidInput(text, code="invalid_project")


@transaction.atomic
def project_create(
    *, name: str, labels: list[Any], created_by: AbstractBaseUser | None, **fields: Any
) -> Project:
    """Create a project with its ordered label set; the creator becomes its admin."""
    if not labels or len(labels) < 2:
        raise InvalidInput("a project needs at least two labels", code="invalid_labels")
    if len(labels) > 1000:
        raise InvalidInput("a project has at most 1000 labels", code="invalid_labels")
    rows = _label_rows(labels)
    if "cost_per_label" in fields and fields["cost_per_label"] is not None:
        fields["cost_per_label"] = Decimal(str(fields["cost_per_label"]))
    project = Project(name=name, created_by=created_by, **fields)
    _clean(project)
    project.save()
    LabelClass.objects.bulk_create(
        [LabelClass(project=project, name=n, hotkey=h, order=i) for i, (n, h) in enumerate(rows)]
    )
    if created_by is not None:
        Membership.objects.create(project=project, user=created_by, role=Role.ADMIN)
    return project


@transaction.atomic
def project_update(*, project: Project, **fields: Any) -> Project:
    """Set ``fields`` and save; a value the model rejects (out of range for the database, say) is
    an ``InvalidInput`` naming the field, and nothing is saved.

    A new ``annotations_per_image`` applies at once to the images still in the queue (those that
    now have enough labels are done); images already finished keep the labels they have. A new
    ``audit_fraction`` applies from the next selection round (it decides which images are audit
    images when they are queued)."""
    before = project.annotations_per_image
    budget_before = project.label_budget
    for key, value in fields.items():
        setattr(project, key, value)
    _clean(project)
    # Only these fields: the row's others (the current model, the retrain trigger's counts) may have
    # moved since this instance was read, and a full save would put the old values back.
    project.save(update_fields=list(fields))
    if project.label_budget is not None and (budget_before is None or project.label_budget < budget_before):
        _reservations_trim_to_budget(project)
    if project.annotations_per_image != before:
        k = project.annotations_per_image
        open_items = QueueItem.objects.filter(project=project, state=QueueState.OPEN)
        open_items.filter(annotations_done__gte=k).update(annotations_needed=k, state=QueueState.DONE)
        open_items.update(annotations_needed=k)
    # The forecast answers for a target and budget: refitted now for new ones (a job on the quick
    # queue, a second), rather than gone from the dashboard until the next retrain.
    forecast_if_stale(project)
    return project


def _check_label(
    project: Project, name: Any, hotkey: Any, *, other_than: int | None = None
) -> tuple[str, str]:
    """A label's (name, hotkey) by the rules of a new project's labels, checked against the
    project's other labels. ``hotkey`` None: a free one is given; "": none."""
    ((name, key),) = _label_rows([{"name": name, "hotkey": hotkey or ""}])
    others = project.label_classes.exclude(pk=other_than)
    if any(nfc(other) == name for other in others.values_list("name", flat=True)):  # stored before NFC
        raise InvalidInput(f"the project already has a label {name!r}", code="invalid_labels")
    if not hotkey:
        used = set(others.values_list("hotkey", flat=True))
        preferred = [_own_key(name)] if _own_key(name) else []
        key = "" if hotkey == "" else next((k for k in [*preferred, *_DEFAULT_HOTKEYS] if k not in used), "")
    elif others.filter(hotkey=key).exists():
        raise InvalidInput(f"hotkey {key!r} is taken by another label", code="invalid_labels")
    return name, key


@transaction.atomic
def label_add(*, project: Project, name: Any, hotkey: Any = None) -> LabelClass:
    """Add a label at the end of the set (the classes' order, and so a model's class indices, stay
    as they are; the next retrain learns the new class)."""
    Project.objects.select_for_update().get(pk=project.pk)
    if project.label_classes.count() >= 1000:
        raise InvalidInput("a project has at most 1000 labels", code="invalid_labels")
    name, key = _check_label(project, name, hotkey)
    last = project.label_classes.order_by("-order").values_list("order", flat=True).first()
    return LabelClass.objects.create(project=project, name=name, hotkey=key, order=(last or 0) + 1)


@transaction.atomic
def label_update(*, label: LabelClass, name: Any = None, hotkey: Any = None) -> LabelClass:
    """Rename a label or change its hotkey; its labels and the models' predictions follow (they
    refer to it, not to its name)."""
    Project.objects.select_for_update().get(pk=label.project_id)
    new_name, key = _check_label(
        label.project,
        label.name if name is None else name,
        label.hotkey if hotkey is None else hotkey,
        other_than=label.pk,
    )
    label.name, label.hotkey = new_name, key
    label.save(update_fields=["name", "hotkey"])
    return label


@transaction.atomic
def label_delete(*, label: LabelClass) -> None:
    """Remove a label nobody used, before any model was trained (a model's classes are the labels
    in order: removing one would shift them)."""
    project = Project.objects.select_for_update().get(pk=label.project_id)
    if Annotation.objects.filter(label=label).exists():
        raise Conflict(
            f"images are labelled {label.name!r}: rename it instead, or keep it", code="label_in_use"
        )
    if ModelVersion.objects.filter(project=project).exists():
        raise Conflict(
            "the project has trained models whose classes are these labels in order: rename the label "
            "instead of removing it",
            code="label_in_use",
        )
    if project.label_classes.count() <= 2:
        raise InvalidInput("a project needs at least two labels", code="invalid_labels")
    label.delete()


@transaction.atomic
def membership_set(*, project: Project, user: AbstractBaseUser, role: str) -> Membership:
    """Add a member or change their role; a project always keeps at least one admin."""
    if role not in Role.values:
        raise InvalidInput(f"role must be one of {', '.join(Role.values)}", code="invalid_role")
    _lock_team(project)
    membership, created = Membership.objects.select_for_update().get_or_create(
        project=project, user=user, defaults={"role": role}
    )
    if not created and membership.role != role:
        _keep_an_admin(project=project, leaving=membership)
        membership.role = role
        membership.save(update_fields=["role"])
    return membership


def _lock_team(project: Project) -> None:
    """Changes to a project's team run one at a time (the project row locked first, as everywhere):
    two admins removing or demoting each other at once each saw the other still admin, and both
    went, leaving the project with none (PostgreSQL, READ COMMITTED; a security review)."""
    Project.objects.select_for_update().filter(pk=project.pk).values_list("pk", flat=True).first()


def _keep_an_admin(*, project: Project, leaving: Membership) -> None:
    if (
        leaving.role == Role.ADMIN
        and not project.memberships.filter(role=Role.ADMIN).exclude(pk=leaving.pk).exists()
    ):
        raise Conflict("a project must keep at least one admin", code="last_admin")


@transaction.atomic
def membership_remove(*, project: Project, user_id: int) -> None:
    _lock_team(project)
    membership = Membership.objects.select_for_update().filter(project=project, user_id=user_id).first()
    if membership is None:
        raise NotFound("no such member")
    _keep_an_admin(project=project, leaving=membership)
    membership.delete()
    # The items they held go back to the queue at once, not when the reservations expire: until
    # then they would count against the budget and keep others from finishing those images.
    Assignment.objects.filter(project=project, annotator_id=user_id, state=AssignmentState.ACTIVE).update(
        state=AssignmentState.RELEASED, finished_at=timezone.now()
    )


def _reservations_trim_to_budget(project: Project) -> None:
    """After the budget was lowered: the live reservations past what it has left go back (the newest
    first), so nobody is shown an image whose label the budget would refuse; annotators then hear
    that the budget is spent. (A reservation counts against the budget from the moment it is made.)"""
    from labelling.services.queue import _project_and_spent

    now = timezone.now()
    Project.objects.select_for_update().get(pk=project.pk)
    _, given = _project_and_spent(project.pk, now=now, held=False)
    live = Assignment.objects.filter(project=project, state=AssignmentState.ACTIVE, expires_at__gt=now)
    room = max(0, project.label_budget - given)
    excess = list(
        live.order_by("-reserved_at", "-id").values_list("id", flat=True)[: max(0, live.count() - room)]
    )
    if excess:
        Assignment.objects.filter(pk__in=excess).update(state=AssignmentState.RELEASED, finished_at=now)


def project_delete(*, project: Project, confirm: bool) -> None:
    """Delete a project, its pool and its labels. Labels are the one thing money was spent on, so a
    project that has any is only deleted with ``confirm``. Its stored files go once the deletion
    commits: image bytes (and thumbnails) no other project uses, and every artifact its jobs wrote
    (a job still running stops at its next progress check)."""
    from labelling.services.storage import image_bytes_delete, project_files_delete

    labels = Annotation.objects.filter(image__project=project).count()
    if labels and not confirm:
        raise Conflict(
            f"the project holds {labels} labels; export them, then delete with ?confirm=true",
            code="project_has_labels",
        )
    keys = set(project.images.values_list("storage_key", flat=True))
    project_id = project.pk  # delete() sets it to None
    with transaction.atomic():
        Annotation.objects.filter(image__project=project).delete()
        # Model versions first: each PROTECTs its encoder version, which the project's cascade
        # would otherwise refuse to delete (ProtectedError, a 500).
        ModelVersion.objects.filter(project=project).delete()
        project.delete()

    def forget_files() -> None:
        still_used = set(Image.objects.filter(storage_key__in=keys).values_list("storage_key", flat=True))
        for key in keys - still_used:
            image_bytes_delete(key)
        project_files_delete(project_id)

    transaction.on_commit(forget_files)
