"""Server-rendered pages: login, my projects, a project page."""

from __future__ import annotations

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client

from labelling.services.images import IngestItem, pool_image_ingest
from tests.factories import image_bytes

pytestmark = pytest.mark.django_db


def test_login_then_see_my_projects_only(users, project):
    from tests.factories import project_with_members

    project_with_members(admin=users["outsider"], name="Secret")
    client = Client()
    assert client.get("/").status_code == 302
    response = client.post("/accounts/login/", {"username": "ann-annotator", "password": "pw-for-tests"})
    assert response.status_code == 302
    page = client.get("/").content.decode()
    assert "Birds" in page and "Secret" not in page


def test_project_page_shows_pool_and_jobs_to_engineers(users, project):
    pool_image_ingest(project=project, item=IngestItem(name="a.png", data=image_bytes()))
    client = Client()
    client.force_login(users["engineer"])
    page = client.get(f"/projects/{project.id}/").content.decode()
    assert "1 images in the pool" in page and "/thumbnail" in page
    client.force_login(users["annotator"])
    assert "/thumbnail" not in client.get(f"/projects/{project.id}/").content.decode()
    client.force_login(users["outsider"])
    assert client.get(f"/projects/{project.id}/").status_code == 404


def test_api_404_is_json(users, client_for):
    response = client_for(users["admin"]).get("/api/nothing-here")
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "not_found"


def test_project_page_has_start_labelling_for_every_member(users, project):
    client = Client()
    for role in ("annotator", "engineer", "admin"):
        client.force_login(users[role])
        page = client.get(f"/projects/{project.id}/").content.decode()
        assert f'<a class="button" href="/projects/{project.id}/label/">Start labelling</a>' in page, role


def test_overview_link_only_for_admins_of_a_project(users, project):
    client = Client()
    client.force_login(users["admin"])
    assert 'href="/overview/"' in client.get("/").content.decode()
    for role in ("annotator", "engineer"):  # admin of no project: the overview would be empty
        client.force_login(users[role])
        for url in ("/", f"/projects/{project.id}/", f"/projects/{project.id}/label/"):
            assert 'href="/overview/"' not in client.get(url).content.decode(), (role, url)
        # Typed in anyway, it says where their projects are.
        page = client.get("/overview/").content.decode()
        assert "You are admin of no project" in page and 'under <a href="/">My projects</a>' in page


def test_home_and_project_pages_say_when_labelling_is_paused_and_show_the_instructions(users, project):
    client = Client()
    client.force_login(users["annotator"])
    project.instructions = "Label the bird, not the branch."
    project.save()
    page = client.get(f"/projects/{project.id}/").content.decode()
    assert "Label the bird, not the branch." in page and 'id="paused-note"' not in page
    project.labelling_paused = True
    project.save()
    assert 'id="paused-note"' in client.get(f"/projects/{project.id}/").content.decode()
    assert '<span class="pill warn"' in client.get("/").content.decode()


def test_a_project_is_created_on_the_home_page_and_images_added_on_its_dashboard(users, _media):
    from labelling.models import Image, Membership, Project

    client = Client()
    user = users["outsider"]
    client.force_login(user)
    page = client.get("/").content.decode()
    assert 'id="new-project"' in page
    bad = [
        ({"name": "Birds", "labels": "only one"}, "at least two labels"),
        ({"name": "Birds", "labels": "a\nb", "label_budget": "-5"}, "at least 1 label"),
        ({"name": "Birds", "labels": "a\nb", "label_budget": "5.5"}, "whole number"),
        ({"name": "Birds", "labels": "a\nb", "target_percent": "150"}, "between 1 and 100"),
        ({"name": "", "labels": "a\nb"}, "needs a name"),
    ]
    for data, says in bad:
        page = client.post("/projects/new", data, follow=True).content.decode()
        assert says in page, data
    assert not Project.objects.filter(name="Birds").exists()
    response = client.post(
        "/projects/new",
        {"name": "Birds", "labels": "sparrow\n\nrobin\n", "label_budget": "300", "target_percent": "92.5"},
    )
    project = Project.objects.get(name="Birds")
    assert response.status_code == 302 and response["Location"] == f"/projects/{project.id}/dashboard/"
    assert [lc.name for lc in project.label_classes.order_by("order")] == ["sparrow", "robin"]
    assert project.label_budget == 300 and project.target_accuracy == 0.925
    assert Membership.objects.get(project=project, user=user).role == "admin"
    # Images from the dashboard: stored, a duplicate counted, a non-image refused with its reason.
    files = [
        SimpleUploadedFile("a.png", image_bytes(seed=1)),
        SimpleUploadedFile("a-again.png", image_bytes(seed=1)),
        SimpleUploadedFile("notes.txt", b"hello"),
    ]
    page = client.post(
        f"/projects/{project.id}/dashboard/action", {"action": "upload", "files": files}, follow=True
    ).content.decode()
    assert "1 stored, 1 already in the pool, 1 refused." in page and "notes.txt" in page
    assert Image.objects.filter(project=project).count() == 1


def test_the_account_pages_are_the_services_and_exports_download_as_files(users, project, client_for):
    # A deployment review: the password change used Django admin's page ("Django site admin"),
    # /favicon.ico was a 404 on the admin's pages, and labels.json alone had no file name.
    client = Client()
    client.force_login(users["annotator"])
    page = client.get("/accounts/password_change/").content.decode()
    assert "Change my password" in page and "Django site admin" not in page
    short = client.post(
        "/accounts/password_change/",
        {"old_password": "pw-for-tests", "new_password1": "x", "new_password2": "x"},
    )
    assert short.status_code == 200 and "too short" in short.content.decode()
    done = client.post(
        "/accounts/password_change/",
        {
            "old_password": "pw-for-tests",
            "new_password1": "a-long-new-pass-9",
            "new_password2": "a-long-new-pass-9",
        },
        follow=True,
    )
    assert "Password changed" in done.content.decode() and "Django site admin" not in done.content.decode()
    assert Client().login(username="ann-annotator", password="a-long-new-pass-9")
    assert Client().get("/favicon.ico").status_code == 204
    response = client_for(users["engineer"]).get(f"/api/projects/{project.id}/export/labels.json")
    assert response["Content-Disposition"] == f'attachment; filename="project-{project.id}-labels.json"'
