"""``access_*``: fetch something for a user, with the permission check built in.

A non-member is told the project does not exist (404), never that it is forbidden; a member whose
role is too low gets 403.
"""

from __future__ import annotations

from django.contrib.auth.models import AbstractBaseUser
from django.db.models import QuerySet

from labelling.models import Image, Job, Membership, Project, Role
from labelling.services.errors import Forbidden, NotFound

# Each role can do what the roles below it can.
_RANK = {Role.ANNOTATOR: 0, Role.ENGINEER: 1, Role.ADMIN: 2}


def projects_for_user(user: AbstractBaseUser) -> QuerySet[Project]:
    return Project.objects.filter(memberships__user=user).distinct()


def role_in(user: AbstractBaseUser, project: Project) -> str | None:
    return Membership.objects.filter(project=project, user=user).values_list("role", flat=True).first()


def access_project(user: AbstractBaseUser, project_id: int, *, min_role: str = Role.ANNOTATOR) -> Project:
    membership = (
        Membership.objects.select_related("project").filter(project_id=project_id, user_id=user.pk).first()
        if user.is_authenticated
        else None
    )
    if membership is None:
        raise NotFound("project not found")
    if _RANK[Role(membership.role)] < _RANK[Role(min_role)]:
        raise Forbidden(f"this needs the {min_role} role in the project; you are {membership.role}")
    return membership.project


def _access_in_project(user: AbstractBaseUser, model, pk: int, what: str, min_role: str):
    """A row of ``model`` that belongs to a project, for a member with ``min_role``; a row of a
    project the user is not in is reported missing, like the project itself."""
    project_id = model.objects.filter(pk=pk).values_list("project_id", flat=True).first()
    if project_id is None:
        raise NotFound(f"{what} not found")
    try:
        access_project(user, project_id, min_role=min_role)
    except NotFound:
        raise NotFound(f"{what} not found") from None
    return model.objects.get(pk=pk)


def access_image(user: AbstractBaseUser, image_id: int, *, min_role: str = Role.ANNOTATOR) -> Image:
    return _access_in_project(user, Image, image_id, "image", min_role)


def access_job(user: AbstractBaseUser, job_id: int, *, min_role: str = Role.ENGINEER) -> Job:
    return _access_in_project(user, Job, job_id, "job", min_role)
