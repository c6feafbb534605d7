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
