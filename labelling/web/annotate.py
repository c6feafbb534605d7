"""The labelling screen: one page, driven by annotate.js through the annotator API.

The page itself only hands the script what does not change while labelling (the label set, the
instructions, the API addresses); everything about the queue comes from ``queue/next``, so the page
and a script using the API see exactly the same assignments.
"""

from __future__ import annotations

from django.conf import settings
from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import render
from django.urls import reverse
from django.views.decorators.csrf import ensure_csrf_cookie

from labelling.selectors.access import access_project
from labelling.services.errors import NotFound
from labelling.services.projects import COMMAND_KEYS


@login_required
@ensure_csrf_cookie  # the script reads the csrftoken cookie for its POSTs
def annotate_page(request: HttpRequest, project_id: int) -> HttpResponse:
    try:
        project = access_project(request.user, project_id)
    except NotFound:
        raise Http404("project not found") from None
    labels = [
        {"id": lc.id, "name": lc.name, "hotkey": lc.hotkey}
        for lc in project.label_classes.order_by("order", "id")
    ]
    config = {
        "project": project.id,
        "labels": labels,
        # How often the page checks that the images it holds are still its own (a lowered budget or
        # an import takes reservations back).
        "checkSeconds": settings.ANNOTATE_CHECK_SECONDS,
        "urls": {
            "next": reverse("api-queue-next", args=[project.id]) + "?lookahead=1",
            "undo": reverse("api-queue-undo", args=[project.id]),
            "assignment": "/api/assignments/",
            "login": reverse("login") + "?next=" + reverse("logged-in"),  # a tab that says go back
        },
    }
    # A command whose letter a label took (given explicitly) is Shift+letter: its hint says so.
    taken = {label["hotkey"].lower() for label in labels if label["hotkey"]}
    keys = {c: ("Shift+" if c in taken else "") + c.upper() for c in COMMAND_KEYS}
    return render(
        request,
        "web/annotate.html",
        {"project": project, "labels": labels, "config": config, "keys": keys},
    )
