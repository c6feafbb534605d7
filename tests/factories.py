"""factory_boy factories and small builders of valid and invalid files."""

from __future__ import annotations

import io
import zipfile

import factory
import numpy as np
from django.contrib.auth import get_user_model
from PIL import Image as PILImage

from labelling.models import Role
from labelling.services.projects import membership_set, project_create


class UserFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = get_user_model()
        django_get_or_create = ("username",)
        skip_postgeneration_save = True

    username = factory.Sequence(lambda n: f"user{n}")

    @factory.post_generation
    def password(self, create, extracted, **kwargs):
        self.set_password(extracted or "pw-for-tests")
        if create:
            self.save(update_fields=["password"])


def project_with_members(*, admin, engineer=None, annotator=None, name="Birds", labels=None, **fields):
    project = project_create(name=name, labels=labels or ["cat", "dog", "bird"], created_by=admin, **fields)
    if engineer is not None:
        membership_set(project=project, user=engineer, role=Role.ENGINEER)
    if annotator is not None:
        membership_set(project=project, user=annotator, role=Role.ANNOTATOR)
    return project


def image_bytes(
    fmt: str = "PNG", size: tuple[int, int] = (16, 12), seed: int = 0, mode: str = "RGB"
) -> bytes:
    rng = np.random.default_rng(seed)
    channels = {"RGB": 3, "L": 1}[mode]
    pixels = rng.integers(0, 256, size=(size[1], size[0], channels), dtype=np.uint8)
    img = PILImage.fromarray(pixels[..., 0] if channels == 1 else pixels, mode)
    buf = io.BytesIO()
    img.save(buf, format=fmt)
    return buf.getvalue()


def zip_bytes(members: dict[str, bytes], *, compression: int = zipfile.ZIP_DEFLATED) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=compression) as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return buf.getvalue()


def pool(project, n: int, *, seed: int = 0, reference: bool = False):
    """Store ``n`` distinct small PNG images in the project's pool; return their Image rows."""
    from labelling.models import Image
    from labelling.services.images import IngestItem, pool_image_ingest

    labels = list(project.label_classes.all())
    ids = []
    for i in range(n):
        ref = labels[i % len(labels)] if reference else None
        result = pool_image_ingest(
            project=project,
            item=IngestItem(name=f"{i}.png", data=image_bytes(seed=seed * 100_000 + i), reference_label=ref),
        )
        ids.append(result.image_id)
    return list(Image.objects.filter(pk__in=ids).order_by("id"))


def queue_round(project, images, *, strategy: str = "random"):
    """A selection round that queues ``images`` in the given order (as the select job would)."""
    from django.db import transaction

    from labelling.models import SelectionRound
    from labelling.services.queue import Pick, queue_fill

    with transaction.atomic():
        number = SelectionRound.objects.filter(project=project).count() + 1
        rnd = SelectionRound.objects.create(
            project=project,
            number=number,
            strategy=strategy,
            requested_strategy=strategy,
            batch_size=len(images),
        )
        queue_fill(
            project=project,
            round=rnd,
            picks=[Pick(im.id, 1.0 - i / 1000, "test pick") for i, im in enumerate(images)],
        )
    return rnd


def api_world(*, users, project) -> dict:
    """One of everything the API has an id for, in ``project``, so every route can be called for
    real: an image, a job, an encoder and a model version (with stored stand-in artifacts), a
    selection round, an assignment the annotator holds and one they labelled. Returns the ids."""
    from django.core.files.base import ContentFile
    from django.core.files.storage import default_storage

    from labelling.models import EncoderVersion, Job, ModelVersion
    from labelling.services.invites import invite_create
    from labelling.services.queue import assignment_submit, assignments_reserve

    images = pool(project, 3, seed=7)
    queue_round(project, images)
    held = assignments_reserve(project=project, annotator=users["annotator"], count=2)
    label = project.label_classes.order_by("id").first()
    annotation, _ = assignment_submit(
        assignment_id=held[0].id, annotator=users["annotator"], label_id=label.id
    )
    job = Job.objects.create(project=project, kind="import_zip", state="succeeded")
    for key in ("encoders/w/e.pt", "models/w/m.joblib", "models/w/m.torchscript.pt"):
        default_storage.save(key, ContentFile(b"PK\x03\x04 stand-in artifact"))
    encoder = EncoderVersion.objects.create(
        project=project, artifact_key="encoders/w/e.pt", embeddings={"shards": ["x"], "count": 3}
    )
    model = ModelVersion.objects.create(
        project=project, encoder_version=encoder, mode="probe", artifact_key="models/w/m.joblib"
    )
    invite, token = invite_create(project=project, role="annotator", created_by=None, max_uses=100)
    return {
        "project_id": project.id,
        "invite_id": invite.id,
        "token": token,
        "image_id": images[0].id,
        "job_id": job.id,
        "encoder_id": encoder.id,
        "model_id": model.id,
        "number": 1,
        "assignment_id": held[1].id,
        "submitted_assignment_id": held[0].id,
        "annotation_id": annotation.id,
        "user_id": users["annotator"].id,
        "label_id": label.id,
    }
