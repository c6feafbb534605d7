"""Labels from annotators."""

from __future__ import annotations

from django.contrib.auth.models import AbstractBaseUser
from django.db import IntegrityError, transaction

from labelling.models import Annotation, Image, LabelClass
from labelling.models.image import ImageStatus
from labelling.services.errors import Conflict, InvalidInput


@transaction.atomic
def annotation_submit(
    *, image: Image, annotator: AbstractBaseUser, label_id: int, seconds_spent: float | None = None
) -> Annotation:
    """Store one label; an annotator labels an image at most once (a repeat answers 409)."""
    label = LabelClass.objects.filter(pk=label_id, project_id=image.project_id).first()
    if label is None:
        raise InvalidInput(f"label {label_id} is not in this project's label set", code="unknown_label")
    if seconds_spent is not None and not (0 <= seconds_spent <= 24 * 3600):
        raise InvalidInput("seconds_spent must be between 0 and 86400", code="invalid")
    try:
        with transaction.atomic():
            annotation = Annotation.objects.create(
                image=image, annotator=annotator, label=label, seconds_spent=seconds_spent
            )
    except IntegrityError:
        raise Conflict("you have already labelled this image", code="already_labelled") from None
    Image.objects.filter(pk=image.pk).update(status=ImageStatus.LABELLED)
    return annotation
