"""Values the pages' forms post, read by one rule wherever the same field appears."""

from __future__ import annotations

import re

from labelling.models.project import LABEL_BUDGET_MAX
from labelling.services.errors import InvalidInput


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
