"""Template context every page gets."""

from __future__ import annotations

from django.utils.functional import SimpleLazyObject

from labelling.models import Membership, Role

# A role as a sentence says it: "You joined Birds as an ML engineer", "You are an annotator".
ROLE_PHRASES = {Role.ADMIN: "an admin", Role.ENGINEER: "an ML engineer", Role.ANNOTATOR: "an annotator"}


def navigation(request) -> dict:
    """``administers_a_project``: whether the navigation shows Overview (the projects I administer).
    Lazy: one EXISTS query, only on pages that render the navigation."""
    user = getattr(request, "user", None)

    def administers() -> bool:
        if user is None or not user.is_authenticated:
            return False
        return Membership.objects.filter(user=user, role=Role.ADMIN).exists()

    return {"administers_a_project": SimpleLazyObject(administers)}
