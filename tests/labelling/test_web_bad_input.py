"""Bad input through the web forms (New project, the dashboard's label and team forms), which read
plain POST values rather than the API's serializers: each is refused with a message and stores
nothing. On PostgreSQL these were 500s (NUL in text, a budget past the integer column, a label
name past its varchar(100)); on SQLite they were stored."""

from __future__ import annotations

import pytest
from django.test import Client

from labelling.api.exports import class_folders, zip_member_name
from labelling.models import LabelClass, Membership, Project

pytestmark = pytest.mark.django_db

LONG = "L" * 5000


def _state():
    return (
        list(Project.objects.values_list("id", "name", "label_budget")),
        list(LabelClass.objects.values_list("id", "name", "hotkey")),
        list(Membership.objects.values_list("id", "role")),
    )


@pytest.mark.parametrize(
    ("form", "message"),
    [
        ({"label_budget": "2147483648"}, "at most 100,000,000"),
        ({"label_budget": "9999999999"}, "at most 100,000,000"),
        ({"label_budget": "500000000"}, "at most 100,000,000"),
        ({"name": "n\x00x"}, "NUL character"),
        ({"labels": "a\x00\nb"}, "NUL character"),
        ({"labels": f"{LONG}\nb"}, "at most 100 characters"),
        ({"labels": "a\tb\nc"}, "control characters"),
        ({"name": "N" * 201}, "at most 200 characters"),
    ],
)
def test_new_project_form_refuses_bad_input_and_stores_nothing(users, form, message):
    client = Client()
    client.force_login(users["admin"])
    before = _state()
    response = client.post("/projects/new", {"name": "n", "labels": "a\nb", **form}, follow=True)
    assert response.status_code in (200, 400)
    assert message in response.content.decode(), response.content.decode()[-600:]
    assert _state() == before


@pytest.mark.parametrize(
    ("form", "message"),
    [
        ({"action": "label_add", "name": LONG}, "at most 100 characters"),
        ({"action": "label_add", "name": "z\x00"}, "NUL character"),
        ({"action": "label_update", "name": LONG}, "at most 100 characters"),
        ({"action": "label_update", "name": "q\x00"}, "NUL character"),
        ({"action": "member_set", "username": "bob\x00", "role": "engineer"}, "NUL character"),
        ({"action": "budget", "label_budget": "2147483648"}, "at most 100,000,000"),
    ],
)
def test_dashboard_forms_refuse_bad_input_and_store_nothing(users, project, form, message):
    client = Client()
    client.force_login(users["admin"])
    if form["action"] == "label_update":
        form = {**form, "label": str(project.label_classes.first().id)}
    before = _state()
    response = client.post(f"/projects/{project.id}/dashboard/action", form, follow=True)
    assert response.status_code in (200, 400)
    assert message in response.content.decode()
    assert _state() == before


def test_nul_in_a_page_query_is_a_400_page(users):
    client = Client()
    client.force_login(users["admin"])
    response = client.get("/?page=%00")
    assert response.status_code == 400 and "NUL character" in response.content.decode()


def test_zip_names_stay_under_the_file_system_limit():
    # 100 four-byte characters are 400 bytes: a folder of that name cannot be unpacked.
    emoji = "\N{GRINNING FACE}" * 100
    folder = class_folders([emoji, "cat"])[emoji]
    assert len(folder.encode()) <= 200 and folder and set(folder) == {"\N{GRINNING FACE}"}
    member = zip_member_name(123456789, emoji * 3 + ".png", "png")
    assert len(member.encode()) <= 255 and member.startswith("123456789-") and member.endswith(".png")
    assert zip_member_name(7, "a.b.tif", "png") == "7-a.b.png"


def test_the_500_page_needs_no_database(rf):
    # With the database down, the error page's user menu queried it again and gunicorn's bare
    # "Internal Server Error" showed instead of the service's page.
    from django.db import OperationalError
    from django.utils.functional import SimpleLazyObject

    from labelling.web.views import server_error

    def unreachable():
        raise OperationalError("the database is down")

    request = rf.get("/projects/1/dashboard/")
    request.user = SimpleLazyObject(unreachable)
    request.session = SimpleLazyObject(unreachable)
    response = server_error(request)
    assert response.status_code == 500 and b"something went wrong on our side" in response.content
    assert b"<h1>500</h1>" in response.content
    api = server_error(rf.get("/api/projects"))
    assert api.status_code == 500 and b'"server_error"' in api.content
