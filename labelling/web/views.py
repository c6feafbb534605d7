"""Pages. They read through the same selectors as the API, so page and API never disagree."""

from __future__ import annotations

from django.conf import settings
from django.contrib import messages
from django.contrib.auth import views as auth_views
from django.contrib.auth.decorators import login_required
from django.core.exceptions import RequestDataTooBig
from django.core.paginator import Paginator
from django.db import transaction
from django.db.models import Count, Q
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import redirect, render
from django.template.loader import render_to_string
from django.views.decorators.http import require_POST

from labelling.api.errors import error_body
from labelling.models import Role
from labelling.selectors.access import access_project, projects_for_user, role_in, with_image_counts
from labelling.selectors.queue import annotator_progress
from labelling.services.errors import InvalidInput, NotFound, ServiceError
from labelling.services.login_guard import TooManyAttempts, login_allowed
from labelling.services.projects import project_create, project_update
from labelling.web.context import ROLE_PHRASES
from labelling.web.fields import budget_from_form


@login_required
def home(request: HttpRequest) -> HttpResponse:
    projects = with_image_counts(projects_for_user(request.user)).order_by("id")
    rows = [
        {
            "project": p,
            "role": role_in(request.user, p),
            "progress": annotator_progress(project=p, annotator=request.user),
        }
        for p in projects
    ]
    return render(request, "web/home.html", {"rows": rows})


@login_required
@require_POST
def project_new_action(request: HttpRequest) -> HttpResponse:
    """The home page's New project form: a name, labels one per line, an optional budget and a
    target accuracy in percent; the creator becomes its admin and lands on its dashboard."""
    labels = [line.strip() for line in request.POST.get("labels", "").splitlines() if line.strip()]
    try:
        fields: dict = {}
        budget = budget_from_form(request.POST.get("label_budget", ""))
        if budget is not None:
            fields["label_budget"] = budget
        raw_target = request.POST.get("target_percent", "").strip()
        if raw_target:
            try:
                target = float(raw_target)
            except ValueError:
                raise InvalidInput(
                    f"the target accuracy must be a percentage, not {raw_target[:20]!r}"
                ) from None
            if not 1 <= target <= 100:
                raise InvalidInput("the target accuracy must be between 1 and 100 %")
            fields["target_accuracy"] = target / 100
        name = request.POST.get("name", "").strip()
        if not name or len(name) > 200:
            raise InvalidInput("a project needs a name of at most 200 characters")
        with transaction.atomic():
            project = project_create(name=name, labels=labels, created_by=request.user, **fields)
            project_update(project=project)  # the model's own checks, as the API's
    except ServiceError as exc:
        messages.error(request, exc.message)
        return redirect("home")
    messages.success(
        request, f"Project {project.name!r} created: add images, then pretrain, on its dashboard."
    )
    return redirect("dashboard", project_id=project.id)


@login_required
def project_page(request: HttpRequest, project_id: int) -> HttpResponse:
    try:
        project = access_project(request.user, project_id)
    except NotFound:
        raise Http404("project not found") from None
    role = role_in(request.user, project)
    can_see_pool = role in (Role.ENGINEER, Role.ADMIN)
    page = None
    if can_see_pool:
        page = Paginator(project.images.order_by("id"), 60).get_page(request.GET.get("page"))
    counts = project.images.aggregate(total=Count("id"), labelled=Count("id", filter=Q(status="labelled")))
    jobs = project.jobs.order_by("-id")[:10] if can_see_pool else []
    return render(
        request,
        "web/project.html",
        {
            "project": project,
            "role": role,
            "role_phrase": ROLE_PHRASES[role],
            "page": page,
            "counts": counts,
            "jobs": jobs,
            "can_see_pool": can_see_pool,
        },
    )


def _error(request: HttpRequest, status: int, code: str, message: str) -> HttpResponse:
    if request.path.startswith("/api/"):
        return JsonResponse(error_body(code, message), status=status)
    return render(request, "web/error.html", {"status": status, "message": message}, status=status)


def bad_request(request: HttpRequest, exception: Exception | None = None) -> HttpResponse:
    if isinstance(exception, RequestDataTooBig):  # a body past DATA_UPLOAD_MAX_MEMORY_SIZE
        limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
        return _error(
            request,
            413,
            "too_large",
            f"the request body is over {limit // 2**20} MB; send large data as a file (multipart upload)",
        )
    return _error(request, 400, "bad_request", "the request could not be understood")


def forbidden(request: HttpRequest, exception: Exception | None = None) -> HttpResponse:
    # A page's own reason ("this needs the engineer role in the project; you are annotator") says
    # more than a generic line; a CSRF failure has none worth showing.
    reason = str(exception) if exception is not None and exception.args else ""
    return _error(request, 403, "forbidden", reason or "you may not do this")


def not_found(request: HttpRequest, exception: Exception | None = None) -> HttpResponse:
    return _error(request, 404, "not_found", "not found")


def server_error(request: HttpRequest) -> HttpResponse:
    """The 500 page touches nothing that may be what failed: no session, user or database lookup
    (with the database down, the page's own user menu failed and gunicorn's bare page showed)."""
    message = "something went wrong on our side; it has been logged"
    if request.path.startswith("/api/"):
        return JsonResponse(error_body("server_error", message), status=500)
    try:
        html = render_to_string("web/error.html", {"status": 500, "message": message})  # no request
    except Exception:
        html = f"<!doctype html><title>500</title><h1>500</h1><p>{message}</p>"
    return HttpResponse(html, status=500)


class LoginView(auth_views.LoginView):
    """Django's login page; a name locked out by failed logins (``services.login_guard``, which
    counts them for every way in) gets the time left and 429, whatever the password."""

    def post(self, request, *args, **kwargs):
        try:
            login_allowed(request, request.POST.get("username", ""))
        except TooManyAttempts as exc:
            context = self.get_context_data(form=self.get_form(), locked=exc.message)
            response = self.render_to_response(context, status=429)
            response["Retry-After"] = str(exc.retry_after)
            return response
        return super().post(request, *args, **kwargs)
