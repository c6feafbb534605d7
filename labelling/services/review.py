"""A person's final say on an image's label (the Review page): it overrides the annotators' votes
for training and the exports; the annotations themselves stay as they were given."""

from __future__ import annotations

from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction
from django.utils import timezone

from labelling.models import Image
from labelling.services.errors import Conflict, InvalidInput


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
    return image


@transaction.atomic
def image_review_clear(*, image: Image) -> Image:
    """Back to the annotators' majority."""
    image = Image.objects.select_for_update().get(pk=image.pk)
    image.reviewed_label = image.reviewed_by = image.reviewed_at = None
    image.save(update_fields=["reviewed_label", "reviewed_by", "reviewed_at"])
    return image
