"""The page an invite link opens: join the project, with one's account or a new one."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth import login
from django.contrib.auth.forms import UserCreationForm
from django.db import transaction
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render

from labelling.models import Membership
from labelling.services.errors import NotFound
from labelling.services.invites import invite_accept, invite_any_for_token, invite_for_token
from labelling.web.context import ROLE_PHRASES


def _invalid(request: HttpRequest, exc: NotFound) -> HttpResponse:
    return render(request, "web/error.html", {"status": 404, "message": exc.message}, status=404)


def _page(request: HttpRequest, invite, token: str, form=None, status: int = 200) -> HttpResponse:
    member = None
    if request.user.is_authenticated:
        member = Membership.objects.filter(project=invite.project, user=request.user).first()
    context = {
        "invite": invite,
        "token": token,
        "member": member,
        "role_phrase": ROLE_PHRASES[invite.role],
        "member_phrase": ROLE_PHRASES[member.role] if member else "",
        "form": form or (None if request.user.is_authenticated else UserCreationForm()),
    }
    return render(request, "web/invite.html", context, status=status)


def invite_page(request: HttpRequest, token: str) -> HttpResponse:
    """Who the link is from and what it gives; a sign-up form for someone not logged in. A member
    of the project is told so, even on a link that no longer works."""
    try:
        invite = invite_for_token(token)
    except NotFound as exc:
        old = invite_any_for_token(token) if request.user.is_authenticated else None
        if old is not None and Membership.objects.filter(project=old.project, user=request.user).exists():
            return _page(request, old, token)
        return _invalid(request, exc)
    return _page(request, invite, token)


def invite_action(request: HttpRequest, token: str) -> HttpResponse:
    """Join (POST): logged in, as oneself; otherwise with the new account the form creates (and then
    logged in). The account and the membership are made together or not at all. A GET (the address
    typed or reloaded) goes back to the invite's page."""
    if request.method != "POST":
        return redirect("invite", token=token)
    try:
        invite = invite_for_token(token)
        if request.user.is_authenticated:
            membership, joined = invite_accept(token=token, user=request.user)
        else:
            form = UserCreationForm(request.POST)
            if not form.is_valid():
                return _page(request, invite, token, form=form, status=400)
            with transaction.atomic():
                user = form.save()
                membership, joined = invite_accept(token=token, user=user)
            login(request, user, backend="labelling.services.login_guard.GuardedModelBackend")
    except NotFound as exc:
        return _invalid(request, exc)
    project = invite.project
    if joined:
        messages.success(request, f"You joined {project.name} as {ROLE_PHRASES[membership.role]}.")
    else:
        messages.info(request, f"You are already {ROLE_PHRASES[membership.role]} of {project.name}.")
    return redirect("project", project_id=project.id)
