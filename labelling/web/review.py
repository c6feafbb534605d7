"""The Review page (engineers and admins): possible label mistakes, disagreements, and the labels a
person decided. Plain forms: one click sets an image's final label."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_POST

from labelling.models import Image, Role
from labelling.selectors.review import REVIEW_KINDS, image_label, image_votes, review_counts, review_queryset
from labelling.services.errors import ServiceError
from labelling.services.review import image_review, image_review_clear
from labelling.web.fields import page_project, posted_id

TITLES = {"suspects": "Possible mistakes", "disagreements": "Disagreements", "reviewed": "Reviewed"}


@login_required
def review_page(request: HttpRequest, project_id: int) -> HttpResponse:
    project = page_project(request, project_id, min_role=Role.ENGINEER)
    kind = request.GET.get("kind", "suspects")
    if kind not in REVIEW_KINDS:
        kind = "suspects"
    page = Paginator(review_queryset(project=project, kind=kind).select_related("reviewed_by"), 30).get_page(
        request.GET.get("page")
    )
    votes = image_votes([im.id for im in page])
    labels = list(project.label_classes.all())
    names = {lc.id: lc.name for lc in labels}
    cards = []
    for im in page:
        mine = votes.get(im.id, [])
        label = image_label(im, mine)
        cards.append(
            {
                "image": im,
                "votes": [(names[label_id], n) for label_id, n in mine],
                "label": label,
                "label_name": names.get(label),
                "suspected": im.suspected_label_id,
                "suspected_name": names.get(im.suspected_label_id),
                "checked_name": names.get(im.checked_label_id),
                "decided_name": names.get(im.reviewed_label_id),
            }
        )
    context = {
        "project": project,
        "kind": kind,
        "tabs": [(k, TITLES[k], n) for k, n in review_counts(project=project).items()],
        "page": page,
        "cards": cards,
        "labels": labels,
    }
    return render(request, "web/review.html", context)


@login_required
@require_POST
def review_action(request: HttpRequest, project_id: int) -> HttpResponse:
    """Set an image's final label (``label``), or give it back to the votes (``clear``)."""
    project = page_project(request, project_id, min_role=Role.ENGINEER)
    kind = request.POST.get("kind", "suspects")
    try:
        missing = "no such image in this project"
        image = Image.objects.filter(project=project, pk=posted_id(request, "image", missing)).first()
        if image is None:
            raise ValueError(missing)
        if request.POST.get("clear"):
            image_review_clear(image=image)
            messages.success(request, f"Image #{image.id} goes by its annotators' votes again.")
        else:
            label_id = posted_id(request, "label", "choose a label")
            image = image_review(image=image, label_id=label_id, reviewer=request.user)
            messages.success(request, f"Image #{image.id} is now labelled {image.reviewed_label.name}.")
    except (ValueError, ServiceError) as exc:
        messages.error(request, getattr(exc, "message", str(exc)))
    page = request.POST.get("page", "")
    suffix = f"?kind={kind if kind in REVIEW_KINDS else 'suspects'}" + (
        f"&page={page}" if page.isdigit() else ""
    )
    return redirect(f"/projects/{project.id}/review/{suffix}")
