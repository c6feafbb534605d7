"""Invite links: an admin makes one for a role; whoever opens it joins the project in that role,
signing up on the spot if they have no account. Only the token's hash is stored."""

from __future__ import annotations

import hashlib
import secrets
from datetime import timedelta

from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction
from django.db.models import F
from django.utils import timezone

from labelling.models import Invite, Membership, Project, Role
from labelling.services.errors import InvalidInput, NotFound

INVITE_DAYS_DEFAULT = 7
INVITE_DAYS_MAX = 90
INVITE_USES_MAX = 500
# Not "no such invite": an expired, used-up or withdrawn link reads the same as a wrong one, so a
# guess learns nothing, and the person is told what to do.
INVALID = "this invite link is not valid: it expired, was used up or was withdrawn; ask the project's admin for a new one"


def _hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def invite_create(
    *,
    project: Project,
    role: str,
    created_by: AbstractBaseUser | None,
    days: int = INVITE_DAYS_DEFAULT,
    max_uses: int = 1,
    note: str = "",
) -> tuple[Invite, str]:
    """A new invite and its token (the only time the token exists in clear). ``note``: whom it is
    for, so that the admin can tell links apart (and withdraw the right one)."""
    if role not in Role.values:
        raise InvalidInput(f"role must be one of {', '.join(Role.values)}", code="invalid_role")
    if isinstance(days, bool) or not isinstance(days, int) or not 1 <= days <= INVITE_DAYS_MAX:
        raise InvalidInput(f"an invite lasts 1 to {INVITE_DAYS_MAX} days", code="invalid_invite")
    if isinstance(max_uses, bool) or not isinstance(max_uses, int) or not 1 <= max_uses <= INVITE_USES_MAX:
        raise InvalidInput(f"an invite is for 1 to {INVITE_USES_MAX} people", code="invalid_invite")
    note = note.strip() if isinstance(note, str) else note
    if not isinstance(note, str) or len(note) > 100 or any(ord(c) < 32 for c in note):
        raise InvalidInput("a note is at most 100 characters on one line", code="invalid_invite")
    token = secrets.token_urlsafe(24)
    invite = Invite.objects.create(
        project=project,
        role=role,
        token_hash=_hash(token),
        max_uses=max_uses,
        note=note,
        expires_at=timezone.now() + timedelta(days=days),
        created_by=created_by,
    )
    return invite, token


def open_invites(project: Project):
    """The project's invites that still work, oldest first."""
    return project.invites.filter(expires_at__gt=timezone.now(), used_count__lt=F("max_uses"))


def invite_any_for_token(token: str) -> Invite | None:
    """The invite a token belongs to, whether or not it still works (for telling a member who
    opens an old link that they are in already)."""
    if not isinstance(token, str) or not 20 <= len(token) <= 64:
        return None
    return Invite.objects.select_related("project").filter(token_hash=_hash(token)).first()


def invite_for_token(token: str) -> Invite:
    """The invite a link's token opens, if it still works; NotFound (``invite_invalid``) if not."""
    invite = invite_any_for_token(token)
    if invite is None or invite.expires_at <= timezone.now() or invite.used_count >= invite.max_uses:
        raise NotFound(INVALID, code="invite_invalid")
    return invite


@transaction.atomic
def invite_accept(*, token: str, user: AbstractBaseUser) -> tuple[Membership, bool]:
    """``user`` joins the invite's project in its role. Returns (membership, joined). A member
    already keeps the role they have (an invite never lowers or raises it) and uses nothing up."""
    invite = invite_for_token(token)
    invite = Invite.objects.select_for_update().get(pk=invite.pk)  # uses counted one at a time
    if invite.used_count >= invite.max_uses:
        raise NotFound(INVALID, code="invite_invalid")
    existing = Membership.objects.filter(project_id=invite.project_id, user=user).first()
    if existing is not None:
        return existing, False
    membership = Membership.objects.create(project_id=invite.project_id, user=user, role=invite.role)
    invite.used_count += 1
    invite.save(update_fields=["used_count"])
    return membership, True


def invite_withdraw(*, project: Project, invite_id: int) -> None:
    deleted, _ = Invite.objects.filter(project=project, pk=invite_id).delete()
    if not deleted:
        raise NotFound("no such invite", code="not_found")
