"""Role x endpoint x own/other project: a generated matrix.

Non-members get 404 (the project does not exist for them) and never see it in lists; members whose
role is too low get 403; everyone else gets past the permission check.
"""

from __future__ import annotations

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from labelling.models import Annotation, Image, Job
from labelling.services.images import IngestItem, pool_image_ingest
from tests.factories import image_bytes, project_with_members, queue_round

pytestmark = pytest.mark.django_db

RANK = {"annotator": 0, "engineer": 1, "admin": 2}


@pytest.fixture
def world(users, project):
    image = pool_image_ingest(project=project, item=IngestItem(name="a.png", data=image_bytes(seed=1)))
    job = Job.objects.create(project=project, kind="import_zip")
    # The outsider has a project of their own: membership elsewhere must not leak into this one.
    project_with_members(admin=users["outsider"], name="Elsewhere")
    return {"project": project, "image": Image.objects.get(pk=image.image_id), "job": job}


def _endpoints(w):
    p, i, j = w["project"].id, w["image"].id, w["job"].id
    return [
        # (name, method, url, minimum role, payload factory)
        ("project detail", "get", f"/api/projects/{p}", "annotator", None),
        ("project update", "patch", f"/api/projects/{p}", "admin", lambda: {"description": "x"}),
        ("members list", "get", f"/api/projects/{p}/members", "admin", None),
        ("members add", "post", f"/api/projects/{p}/members", "admin",
         lambda: {"username": "oscar-outsider", "role": "annotator"}),
        ("images list", "get", f"/api/projects/{p}/images", "engineer", None),
        ("images upload", "post", f"/api/projects/{p}/images", "engineer",
         lambda: {"files": [SimpleUploadedFile("n.png", image_bytes(seed=99))]}),
        ("zip import", "post", f"/api/projects/{p}/imports", "engineer",
         lambda: {"file": SimpleUploadedFile("z.zip", b"not a zip")}),
        ("jobs list", "get", f"/api/projects/{p}/jobs", "engineer", None),
        ("job detail", "get", f"/api/jobs/{j}", "engineer", None),
        ("annotations list", "get", f"/api/projects/{p}/annotations", "engineer", None),
        ("queue next", "get", f"/api/projects/{p}/queue/next", "annotator", None),
        ("queue undo", "post", f"/api/projects/{p}/queue/undo", "annotator", lambda: {}),
        ("image detail", "get", f"/api/images/{i}", "engineer", None),
        ("image file", "get", f"/api/images/{i}/file", "annotator", None),
        ("image thumbnail", "get", f"/api/images/{i}/thumbnail", "annotator", None),
        ("project delete", "delete", f"/api/projects/{p}", "admin", None),
    ]  # fmt: skip


@pytest.mark.parametrize("role", ["admin", "engineer", "annotator", "outsider", "anonymous"])
def test_permission_matrix(role, users, world, client_for):
    client = client_for(None if role == "anonymous" else users[role])
    for name, method, url, min_role, payload in _endpoints(world):
        kwargs = {"format": "multipart"} if method == "post" and "upload" in name or "import" in name else {}
        data = payload() if payload else None
        response = (
            getattr(client, method)(url, data, **kwargs) if data is not None else getattr(client, method)(url)
        )
        code = response.status_code
        if role == "anonymous":
            expected = {401, 403}
        elif role == "outsider":
            expected = {404}
        elif RANK[role] < RANK[min_role]:
            expected = {403}
        else:
            expected = None
        if expected is not None:
            assert code in expected, f"{role} {name}: {code} {getattr(response, 'content', b'')[:200]}"
            assert "error" in response.json(), f"{role} {name}: error body missing"
        else:
            assert code not in (401, 403, 404) and code < 500, (
                f"{role} {name}: {code} {response.content[:300]}"
            )


def test_outsider_never_sees_the_project_in_lists(users, world, client_for):
    body = client_for(users["outsider"]).get("/api/projects").json()
    assert [p["name"] for p in body["results"]] == ["Elsewhere"]


def test_session_requests_without_csrf_are_refused(users, world):
    from django.test import Client

    client = Client(enforce_csrf_checks=True)
    client.force_login(users["admin"])
    response = client.patch(
        f"/api/projects/{world['project'].id}", {"description": "x"}, content_type="application/json"
    )
    assert response.status_code == 403


def test_project_with_labels_is_deleted_only_with_confirmation(users, world, client_for):
    client = client_for(users["admin"])
    label = world["project"].label_classes.first().id
    queue_round(world["project"], [world["image"]])
    annotator = client_for(users["annotator"])
    assignment = annotator.get(f"/api/projects/{world['project'].id}/queue/next").json()["assignment"]
    assert annotator.post(f"/api/assignments/{assignment['id']}/submit", {"label": label}).status_code == 201
    refused = client.delete(f"/api/projects/{world['project'].id}")
    assert refused.status_code == 409 and refused.json()["error"]["code"] == "project_has_labels"
    assert Annotation.objects.count() == 1
    assert client.delete(f"/api/projects/{world['project'].id}?confirm=true").status_code == 204
    assert Annotation.objects.count() == 0 and Image.objects.count() == 0
