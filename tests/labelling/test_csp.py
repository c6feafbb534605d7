"""Every HTML page carries a Content-Security-Policy without 'unsafe-inline' scripts, and none of
our pages has an inline script or an on* handler that policy would block. (The browser tests
record anything the policy blocks as a page error: test_annotate_browser.py's ``page`` fixture.)"""

from __future__ import annotations

import re

import pytest
from django.test import Client

from labelling.services.invites import invite_create
from labelling.web.middleware import CSP
from tests.labelling.test_dashboard import demo_state

pytestmark = pytest.mark.django_db


def test_every_page_has_the_policy_and_no_inline_script(users, project):
    demo_state(project, users)
    _, token = invite_create(project=project, role="annotator", created_by=users["admin"])
    anonymous, admin = Client(), Client()
    admin.force_login(users["admin"])
    pages = [
        (anonymous, "/accounts/login/"),
        (anonymous, f"/invite/{token}"),
        (admin, "/api/docs/"),
        (admin, "/"),
        (admin, "/overview/"),
        (admin, f"/projects/{project.id}/"),
        (admin, f"/projects/{project.id}/dashboard/"),
        (admin, f"/projects/{project.id}/label/"),
        (admin, f"/projects/{project.id}/review/"),
        (admin, "/projects/999999/"),  # the 404 page
    ]
    assert "script-src 'self';" in CSP and "unsafe-inline" not in CSP.split("script-src")[1].split(";")[0]
    for client, url in pages:
        response = client.get(url)
        assert response["Content-Type"].startswith("text/html"), url
        assert response["Content-Security-Policy"] == CSP, url
        html = response.content.decode()
        inline = [
            s for s in re.findall(r"<script(?![^>]*\bsrc=)([^>]*)>", html) if "application/json" not in s
        ]
        assert not inline, (url, inline)
        assert not re.search(r"<[^>]+\son[a-z]+\s*=", html), url
    # Images keep their own, stricter policy.
    image = project.images.first()
    assert (
        admin.get(f"/api/images/{image.id}/file")["Content-Security-Policy"] == "default-src 'none'; sandbox"
    )


def test_the_api_docs_script_comes_from_the_split_view(users):
    client = Client()
    client.force_login(users["engineer"])
    response = client.get("/api/docs/?script=")
    assert response.status_code == 200 and response["Content-Type"].startswith("application/javascript")
    assert "SwaggerUIBundle" in response.content.decode()


def test_the_api_schema_and_docs_are_for_logged_in_users(users, client_for):
    # A security review: anyone could read the whole API surface. A browser is sent to log in first.
    assert Client().get("/api/docs/").url == "/accounts/login/?next=/api/docs/"
    response = Client().get("/api/schema/")
    assert response.status_code == 401 and response.json()["error"]["code"] == "not_authenticated"
    assert client_for(users["annotator"]).get("/api/schema/").status_code == 200
