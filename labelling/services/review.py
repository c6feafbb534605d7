"""A person's final say on an image's label (the Review page): it overrides the annotators' votes
for training and the exports; the annotations themselves stay as they were given."""

from __future__ import annotations

from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction
from django.utils import timezone

from labelling.models import Image
from labelling.services.errors import Conflict, InvalidInput


def _measure_again(image: Image) -> None:
    """An audit image's label changed: the accuracy the models measured on it, the learning curve's
    earlier points with it, are scored again by a retrain, queued after the commit (coalesced: a run
    of decisions asks once). Without one, a corrected audit label changed nothing on the dashboard
    until labelling went on, and with the budget spent it never did (a review)."""
    if not image.is_audit or image.project.current_model_id is None:
        return

    from labelling.services.training import training_job_request_quietly  # training -> review

    transaction.on_commit(
        lambda: training_job_request_quietly(project=image.project, kind="cycle", trigger="review")
    )


@transaction.atomic
def image_review(*, image: Image, label_id: int, reviewer: AbstractBaseUser) -> Image:
    """Set the image's label to ``label_id`` (one of its project's labels). Only a labelled image
    is reviewed: an unlabelled one is labelled through the queue."""
    image = Image.objects.select_for_update().get(pk=image.pk)
    label = image.project.label_classes.filter(pk=label_id).first()
    if label is None:
        raise InvalidInput(f"no label {label_id} in this project", code="invalid_label")
    if not image.annotations.exists():
        raise Conflict("the image has no labels to review yet", code="image_not_labelled")
    # The suspicion stays on record (the Reviewed list shows why it was doubted); a reviewed image
    # is never listed as a suspect, and "back to the votes" lists it again.
    image.reviewed_label, image.reviewed_by, image.reviewed_at = label, reviewer, timezone.now()
    image.save(update_fields=["reviewed_label", "reviewed_by", "reviewed_at"])
    _measure_again(image)
    return image


@transaction.atomic
def image_review_clear(*, image: Image) -> Image:
    """Back to the annotators' majority."""
    image = Image.objects.select_for_update().get(pk=image.pk)
    image.reviewed_label = image.reviewed_by = image.reviewed_at = None
    image.save(update_fields=["reviewed_label", "reviewed_by", "reviewed_at"])
    _measure_again(image)
    return image
