"""Regressions for the 5xx and wrong answers found by the schema fuzzer (test_api_fuzz.py) and the
bad-input corpus (test_bad_input.py)."""

from __future__ import annotations

import pytest

from tests.factories import api_world

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize(
    "url",
    [
        "/api/projects/1976743603277172359984041437429760",
        "/api/projects/354337968411630632960/members",
        "/api/projects/39388149104435224576/export/labels.json",
        "/api/images/9223372036854775808",  # 2**63: one past the largest 64-bit key
        "/api/jobs/99999999999999999999/cancel",
        "/projects/9223372036854775808/",
    ],
)
def test_an_id_past_64_bits_is_a_404_not_a_500(users, project, client_for, url):
    client = client_for(users["admin"])
    response = client.post(url) if url.endswith("cancel") else client.get(url)
    assert response.status_code == 404
    if url.startswith("/api/"):
        assert response.json()["error"]["code"] == "not_found"


def test_a_project_with_model_versions_can_be_deleted(users, project, client_for):
    from labelling.models import EncoderVersion, ModelVersion, Project

    api_world(users=users, project=project)
    assert ModelVersion.objects.filter(project=project).exists()
    # "True", as Python's requests writes a boolean parameter (it was a 409 "needs confirm").
    response = client_for(users["admin"]).delete(f"/api/projects/{project.id}?confirm=True")
    assert response.status_code == 204, response.content
    assert not Project.objects.filter(pk=project.pk).exists()
    assert not EncoderVersion.objects.exists() and not ModelVersion.objects.exists()


def test_model_download_is_octet_stream(users, project, client_for):
    world = api_world(users=users, project=project)
    response = client_for(users["engineer"]).get(f"/api/models/{world['model_id']}/download")
    assert response.status_code == 200
    assert response["Content-Type"] == "application/octet-stream"
    assert response["X-Content-Type-Options"] == "nosniff"


def test_json_nested_past_the_recursion_limit_is_a_400(users, project, client_for):
    response = client_for(users["admin"]).post(
        "/api/projects", b"[" * 100_000 + b"]" * 100_000, content_type="application/json"
    )
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "parse_error"
