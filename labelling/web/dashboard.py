"""The admin dashboard: one page per project, and an overview of all projects."""

from __future__ import annotations

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_POST

from labelling.catalog import STRATEGIES
from labelling.models import Image, Role
from labelling.models.project import LABEL_BUDGET_MAX
from labelling.selectors.access import member_candidate, projects_for_user, role_in
from labelling.selectors.dashboard import (
    flagged_images,
    jobs_summary,
    model_version_label_counts,
    overview_row,
    project_dashboard,
    recent_rounds,
)
from labelling.selectors.metrics import given_labels
from labelling.services.errors import ServiceError
from labelling.services.images import uploaded_files_ingest
from labelling.services.invites import (
    INVITE_DAYS_DEFAULT,
    INVITE_DAYS_MAX,
    INVITE_USES_MAX,
    invite_create,
    invite_withdraw,
    open_invites,
)
from labelling.services.label_imports import IMPORT_FILE_MAX_BYTES, labels_import, rows_from_file
from labelling.services.projects import (
    label_add,
    label_delete,
    label_update,
    membership_remove,
    membership_set,
    project_update,
)
from labelling.services.queue import image_unflag
from labelling.services.training import pretraining_pool_check, training_job_request
from labelling.web.charts import class_bars_svg, confusion_svg, learning_curve_svg, stop_rule_svg
from labelling.web.fields import budget_from_form, page_project, posted_id, posted_number, settings_from_form


def _hours(hours: float | None) -> str:
    """0.1 -> '6 min', 2.336 -> '2.3 hours'."""
    if hours is None:
        return ""
    if hours < 1:
        return f"{max(1, round(hours * 60))} min"
    return f"{hours:,.1f} hours"


@login_required
def overview(request: HttpRequest) -> HttpResponse:
    projects = [
        p for p in projects_for_user(request.user).order_by("id") if role_in(request.user, p) == Role.ADMIN
    ]
    return render(request, "web/overview.html", {"rows": [overview_row(p) for p in projects]})


@login_required
def dashboard(request: HttpRequest, project_id: int) -> HttpResponse:
    project = page_project(request, project_id, min_role=Role.ADMIN)
    data = project_dashboard(project)
    context = {
        "project": project,
        "pretrain_minutes": settings.PRETRAIN_MINUTES,
        "members": project.memberships.select_related("user").order_by("user__username"),
        "roles": Role.choices,
        "invites": open_invites(project).select_related("created_by"),
        "new_invite_link": request.session.pop("new_invite_link", None),
        "invite_days_default": INVITE_DAYS_DEFAULT,
        "invite_days_max": INVITE_DAYS_MAX,
        "invite_uses_max": INVITE_USES_MAX,
        **data,
        "jobs": jobs_summary(project),
        "rounds": recent_rounds(project),
        "curve_svg": learning_curve_svg(
            data["learning_curve"],
            project.target_accuracy,
            data["forecast"],
            budget_images=data["forecast"]["budget_images"],
        ),
        "classes_svg": class_bars_svg(data["classes"]),
        "confusion_svg": confusion_svg(data["by_class"]),
        # the weakest class first; classes without audit images last
        "by_class_rows": sorted(
            data["by_class"]["classes"], key=lambda c: (c["recall"] is None, c["recall"] or 0.0)
        ),
        "stop_svg": stop_rule_svg(
            data["forecast"]["stop_rule"]["kappas"],
            data["forecast"]["stop_rule"]["labels"],
            threshold=data["forecast"]["stop_rule"]["threshold"],
            version_labels=model_version_label_counts(project),
            spacing=data["forecast"]["stop_rule"]["spacing"],
        ),
        "current": data["learning_curve"][-1] if data["learning_curve"] else None,
        "strategies": STRATEGIES,
        "flagged": flagged_images(project=project),
        "label_budget_max": LABEL_BUDGET_MAX,
        "active_text": _hours(data["budget"]["active_hours"]),
        "hours_left_text": _hours(data["budget"]["labelling_hours_left"]),
        "hours_to_target_text": _hours_to_target(data),
        "target_percent": f"{project.target_accuracy * 100:g}",
        "audit_percent": f"{project.audit_fraction * 100:g}",
        "audit_every": round(1 / project.audit_fraction) if project.audit_fraction else None,
    }
    return render(request, "web/dashboard.html", context)


def _hours_to_target(data: dict) -> str:
    """The labels to the target at the team's labelling rate (the budget card's, last 7 days), as
    labelling time: what an admin plans with ("" without a forecast or a rate)."""
    more = data["forecast"]["more_labels_to_target"]
    per_hour = data["budget"]["labels_per_hour"]
    if not more or not more[0] or not per_hour:
        return ""
    return _hours(more[0] / per_hour)


@login_required
@require_POST
def dashboard_action(request: HttpRequest, project_id: int) -> HttpResponse:
    """Buttons of the dashboard: budget, pause/resume, retrain, re-select, strategy, unflag, labels,
    members, invite links, upload, label import, pretrain."""
    project = page_project(request, project_id, min_role=Role.ADMIN)
    action = request.POST.get("action", "")
    try:
        if action == "budget":
            project_update(
                project=project, label_budget=budget_from_form(request.POST.get("label_budget", ""))
            )
            used = given_labels(project).count()
            if project.label_budget is not None and used >= project.label_budget:
                messages.warning(
                    request,
                    f"Budget saved: {project.label_budget:,} labels, no more than the {used:,} already "
                    "given, so labelling stops; the images annotators held went back.",
                )
            else:
                messages.success(request, "Budget saved.")
        elif action == "settings":
            fields = settings_from_form(request.POST)
            project_update(project=project, **fields)
            messages.success(request, "Settings saved." if fields else "Nothing to change.")
        elif action in ("pause", "resume"):
            project_update(project=project, labelling_paused=action == "pause")
            messages.success(request, "Labelling paused." if action == "pause" else "Labelling resumed.")
        elif action == "strategy":
            strategy = request.POST.get("strategy", "")
            if strategy not in STRATEGIES:
                raise ValueError(f"unknown strategy {strategy!r}")
            project_update(project=project, selection_strategy=strategy)
            messages.success(request, f"Selection strategy set to {strategy}.")
        elif action == "unflag":
            missing = "no such image in this project"
            image = Image.objects.filter(project=project, pk=posted_id(request, "image", missing)).first()
            if image is None:
                raise ValueError(missing)
            image_unflag(image=image)
            messages.success(request, f"Image #{image.id} unflagged.")
        elif action in ("label_update", "label_delete"):
            missing = "no such label in this project"
            label = project.label_classes.filter(pk=posted_id(request, "label", missing)).first()
            if label is None:
                raise ValueError(missing)
            if action == "label_delete":
                label_delete(label=label)
                messages.success(request, f"Label {label.name!r} removed.")
            else:
                label_update(
                    label=label, name=request.POST.get("name", ""), hotkey=request.POST.get("hotkey", "")
                )
                messages.success(request, f"Label saved: {label.name!r} ({label.hotkey or 'no hotkey'}).")
        elif action == "label_add":
            label = label_add(
                project=project, name=request.POST.get("name", ""), hotkey=request.POST.get("hotkey") or None
            )
            messages.success(request, f"Label {label.name!r} added ({label.hotkey or 'no hotkey'}).")
        elif action == "member_set":
            username = request.POST.get("username", "").strip()
            user = member_candidate(request.user, username) if username else None
            if user is None:
                raise ValueError(
                    f"no one you work with in another project is named {username[:150]!r}: send them an"
                    " invite link (below)"
                )
            membership_set(project=project, user=user, role=request.POST.get("role", ""))
            messages.success(request, f"{user.username} is {request.POST.get('role')} of this project.")
        elif action == "member_remove":
            user_id = posted_id(request, "user_id", "no such member")
            membership_remove(project=project, user_id=user_id)
            messages.success(request, "Member removed; the images they held went back to the queue.")
            if user_id == request.user.pk:  # I left: the dashboard is no longer mine
                return redirect("home")
        elif action == "invite_create":
            days = posted_number(request, "days", INVITE_DAYS_DEFAULT, "days")
            uses = posted_number(request, "max_uses", 1, "people")
            _, token = invite_create(
                project=project,
                role=request.POST.get("role", ""),
                created_by=request.user,
                days=days,
                max_uses=uses,
                note=request.POST.get("note", ""),
            )
            # Shown once, in the Team panel where it was made (the session carries it to that page).
            request.session["new_invite_link"] = request.build_absolute_uri(
                reverse("invite", kwargs={"token": token})
            )
            return redirect(reverse("dashboard", kwargs={"project_id": project.id}) + "#team")
        elif action == "invite_withdraw":
            invite_withdraw(project=project, invite_id=posted_id(request, "invite", "no such invite"))
            messages.success(request, "Invite link withdrawn: it no longer works.")
            return redirect(reverse("dashboard", kwargs={"project_id": project.id}) + "#team")
        elif action == "upload":
            files = request.FILES.getlist("files")
            if not files:
                raise ValueError("choose one or more image files to upload")
            results = uploaded_files_ingest(project=project, files=files)
            stored = sum(r.status == "stored" for r in results)
            duplicates = sum(r.status == "duplicate" for r in results)
            rejected = [r for r in results if r.status == "rejected"]
            messages.success(
                request, f"{stored} stored, {duplicates} already in the pool, {len(rejected)} refused."
            )
            for r in rejected[:10]:
                messages.error(request, f"{r.name or 'file'}: {r.reason}")
        elif action == "import_labels":
            upload = request.FILES.get("file")
            if upload is None:
                raise ValueError("choose a CSV or JSON file of labels to import")
            if upload.size > IMPORT_FILE_MAX_BYTES:
                raise ValueError(f"the file is over {IMPORT_FILE_MAX_BYTES // 2**20} MB")
            try:
                result = labels_import(project=project, user=request.user, rows=rows_from_file(upload.read()))
            except ServiceError as exc:
                for problem in ((exc.details or {}).get("problems") or [])[:10]:
                    messages.error(request, f"Row {problem['row']}: {problem['message']}")
                raise
            messages.success(
                request,
                f"{result.labelled} images labelled from the file, {result.updated} changed, "
                f"{result.unchanged} unchanged"
                + (f"; retrain job #{result.retrain_job_id} queued." if result.retrain_job_id else "."),
            )
        elif action == "pretrain":
            # A new project's first step: the encoder learns the pool; embedding and the first
            # batch for annotators follow by themselves.
            pretraining_pool_check(project=project)
            job = training_job_request(project=project, kind="pretrain", created_by=request.user)
            messages.success(
                request, f"Job #{job.id} (pretrain) queued: the first images to label follow when it is done."
            )
        elif action in ("retrain", "reselect"):
            kind = "cycle" if action == "retrain" else "select"
            if project.current_encoder_id is None:
                raise ValueError("pretrain an encoder first: the Pretrain button below")
            job = training_job_request(project=project, kind=kind, created_by=request.user)
            messages.success(request, f"Job #{job.id} ({kind}) queued.")
        else:
            raise ValueError("unknown action")
    except (ValueError, ServiceError) as exc:
        messages.error(request, getattr(exc, "message", str(exc)))
    return redirect("dashboard", project_id=project.id)
