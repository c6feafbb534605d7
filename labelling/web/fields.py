"""Values the pages' forms post, read by one rule wherever the same field appears, and the project
a page is about, with the API's access rule."""

from __future__ import annotations

import re
from decimal import Decimal

from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpRequest

from labelling.converters import IdConverter
from labelling.models import Project
from labelling.models.project import LABEL_BUDGET_MAX
from labelling.selectors.access import access_project
from labelling.services.errors import InvalidInput, ServiceError


def page_project(request: HttpRequest, project_id: int, *, min_role: str) -> Project:
    """The project, for a member with at least ``min_role``: 403 for a lower role, 404 for anyone
    else (the project does not exist for them), as the API."""
    try:
        return access_project(request.user, project_id, min_role=min_role)
    except ServiceError as exc:
        if exc.status == 403:
            raise PermissionDenied(exc.message) from None
        raise Http404("project not found") from None


def posted_id(request: HttpRequest, field: str, missing: str) -> int:
    """The id a form posted in ``field`` (the API's id rule); ValueError(missing) if none."""
    raw = request.POST.get(field, "")
    if not re.fullmatch(IdConverter.regex, raw):
        raise ValueError(missing)
    return int(raw)


def posted_number(request: HttpRequest, field: str, default: int, unit: str) -> int:
    """A whole number a form posted in ``field``; ``default`` if left empty."""
    raw = request.POST.get(field, "").strip()
    if not raw:
        return default
    if not re.fullmatch(r"[0-9]{1,9}", raw):
        raise ValueError(f"the number of {unit} must be a whole number, not {raw[:20]!r}")
    return int(raw)


def budget_from_form(raw: str) -> int | None:
    """A label budget typed in a form: empty is none; otherwise a whole number of labels within
    the API's range (past it, the database's integer column would overflow)."""
    raw = raw.strip()
    if not raw:
        return None
    if not re.fullmatch(r"-?[0-9]+", raw):
        raise InvalidInput(f"the budget must be a whole number of labels, not {raw[:20]!r}")
    budget = int(raw)
    if not 1 <= budget <= LABEL_BUDGET_MAX:
        raise InvalidInput(f"the budget must be at least 1 label and at most {LABEL_BUDGET_MAX:,}")
    return budget


def settings_from_form(post) -> dict:
    """The dashboard's project settings, as ``project_update`` takes them: target and audit share
    typed in percent, the stop rule's kappa as a number, the rest whole numbers; a field left empty
    is left as it is. A value that is not a number is a ValueError naming it; the model's ranges are
    checked by ``project_update`` (nothing is saved when one is out)."""
    fields: dict = {}
    for name, key, kind in (
        ("target_percent", "target_accuracy", "percent"),
        ("audit_percent", "audit_fraction", "percent"),
        ("stop_kappa", "stop_kappa", "number"),
        ("annotations_per_image", "annotations_per_image", "whole"),
        ("cycle_every", "cycle_every", "whole"),
        ("batch_size", "batch_size", "whole"),
    ):
        raw = post.get(name, "").strip().replace(",", ".")
        if not raw:
            continue
        if kind == "whole":
            if not re.fullmatch(r"[0-9]{1,9}", raw):
                raise ValueError(f"{key.replace('_', ' ')} must be a whole number, not {raw[:20]!r}")
            fields[key] = int(raw)
            continue
        if not re.fullmatch(r"[0-9]{1,3}(\.[0-9]{1,6})?", raw):
            raise ValueError(f"{key.replace('_', ' ')} must be a number, not {raw[:20]!r}")
        # A percent in decimal: float("56.7") / 100 is 0.5670000000000001, so saving the form unchanged
        # changed a target of 0.567 set by the API (and asked for a forecast refit; a review).
        fields[key] = float(Decimal(raw) / 100) if kind == "percent" else float(raw)
    return fields
