"""Invite links: an admin makes one (API or dashboard); whoever opens it joins in its role, signing
up there if they have no account; the link is single-use by default, expires, can be withdrawn,
and only its hash is stored."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.contrib.auth import get_user_model
from django.test import Client
from django.utils import timezone

from labelling.models import Annotation, Invite, Membership, QueueItem
from labelling.services.invites import invite_create
from tests.conftest import wait_until
from tests.factories import UserFactory, pool, queue_round
from tests.labelling.test_annotate_browser import ARTIFACTS, log_in, page, shown  # noqa: F401  (the fixture)

pytestmark = pytest.mark.django_db
User = get_user_model()
NEW = {"username": "nina-new", "password1": "a long pass phrase", "password2": "a long pass phrase"}


def _link(client, project, **body) -> dict:
    response = client.post(
        f"/api/projects/{project.id}/invites", {"role": "annotator", **body}, format="json"
    )
    assert response.status_code == 201, response.content
    return response.json()


def test_admin_makes_a_link_shown_once_and_listed_without_its_token(users, project, client_for):
    admin = client_for(users["admin"])
    made = _link(admin, project, max_uses=3, days=2)
    assert made["url"].endswith(f"/invite/{made['token']}") and made["url"].startswith("http")
    assert made["role"] == "annotator" and made["max_uses"] == 3 and made["used_count"] == 0
    assert made["created_by"] == "alice-admin"
    assert (
        timedelta(days=1, hours=23)
        < (timezone.datetime.fromisoformat(made["expires_at"]) - timezone.now())
        <= timedelta(days=2)
    )
    # Only the hash is stored: the token is nowhere in the database.
    invite = Invite.objects.get(pk=made["id"])
    assert made["token"] not in invite.token_hash and len(invite.token_hash) == 64
    listed = admin.get(f"/api/projects/{project.id}/invites").json()["results"]
    assert [i["id"] for i in listed] == [made["id"]] and "token" not in listed[0]


@pytest.mark.parametrize(
    ("body", "code"),
    [
        ({"role": "boss"}, "invalid"),
        ({"days": 0}, "invalid"),
        ({"days": 91}, "invalid"),
        ({"max_uses": 0}, "invalid"),
        ({"max_uses": 501}, "invalid"),
        ({"max_uses": "many"}, "invalid"),
        ({"uses": 2}, "unknown_field"),
        ({"note": "x" * 101}, "invalid"),
        ({"note": "two\nlines"}, "invalid"),
    ],
)
def test_bad_invites_are_400_and_store_nothing(users, project, client_for, body, code):
    response = client_for(users["admin"]).post(
        f"/api/projects/{project.id}/invites", {"role": "annotator", **body}, format="json"
    )
    assert response.status_code == 400 and response.json()["error"]["code"].startswith(code)
    assert response.json()["error"]["message"]
    assert not Invite.objects.exists()


def test_someone_without_an_account_signs_up_and_joins_as_the_links_role(users, project, client_for):
    made = _link(client_for(users["admin"]), project, role="engineer")
    browser = Client()
    page_ = browser.get(f"/invite/{made['token']}")
    assert page_.status_code == 200
    text = page_.content.decode()
    assert (
        "Join Birds" in text
        and "alice-admin invites you" in text
        and "<strong>an ML engineer</strong>" in text
    )
    assert 'name="password1"' in text

    done = browser.post(f"/invite/{made['token']}/join", NEW)
    assert done.status_code == 302 and done["Location"] == f"/projects/{project.id}/"
    nina = User.objects.get(username="nina-new")
    assert nina.check_password(NEW["password1"]) and not nina.is_staff
    assert Membership.objects.get(project=project, user=nina).role == "engineer"
    assert Invite.objects.get(pk=made["id"]).used_count == 1
    # Logged in as the new account, on the project's page, told what happened.
    landed = browser.get(done["Location"])
    assert landed.status_code == 200 and "You joined Birds as an ML engineer." in landed.content.decode()
    # A single-use link is spent: the next person is told it no longer works, and nothing is made.
    again = Client().post(f"/invite/{made['token']}/join", {**NEW, "username": "second"})
    assert again.status_code == 404 and "not valid" in again.content.decode()
    assert not User.objects.filter(username="second").exists()
    assert made["id"] not in [
        i["id"]
        for i in client_for(users["admin"]).get(f"/api/projects/{project.id}/invites").json()["results"]
    ]


@pytest.mark.parametrize(
    ("form", "message"),
    [
        ({**NEW, "password2": "something else"}, "didn"),  # Django: "The two password fields didn’t match."
        ({**NEW, "password1": "kurz", "password2": "kurz"}, "too short"),
        ({**NEW, "username": "ALICE-ADMIN"}, "already exists"),  # usernames are case-insensitive here
        ({**NEW, "username": "bad name!"}, "valid username"),
    ],
)
def test_a_bad_sign_up_is_400_with_the_reason_and_uses_nothing(users, project, client_for, form, message):
    made = _link(client_for(users["admin"]), project)
    users_before = User.objects.count()
    response = Client().post(f"/invite/{made['token']}/join", form)
    assert response.status_code == 400 and message in response.content.decode()
    assert User.objects.count() == users_before
    assert Invite.objects.get(pk=made["id"]).used_count == 0
    assert project.memberships.count() == 3
    # The username typed is kept in the form; the passwords are not.
    assert f'value="{form["username"]}"' in response.content.decode()
    assert form["password1"] not in response.content.decode()


def test_someone_logged_in_joins_with_their_account(users, project, client_for):
    made = _link(client_for(users["admin"]), project)
    oscar = Client()
    oscar.force_login(users["outsider"])
    assert "You join as oscar-outsider" in oscar.get(f"/invite/{made['token']}").content.decode()
    assert oscar.post(f"/invite/{made['token']}/join").status_code == 302
    assert Membership.objects.get(project=project, user=users["outsider"]).role == "annotator"
    # ... and can label at once: the project is theirs now.
    queue_round(project, pool(project, 2))
    item = oscar.get(f"/api/projects/{project.id}/queue/next")
    assert item.status_code == 200 and item.json()["assignment"]


def test_a_member_keeps_their_role_and_uses_nothing(users, project, client_for):
    made = _link(client_for(users["admin"]), project)  # an annotator link, opened by the admin
    admin = Client()
    admin.force_login(users["admin"])
    text = admin.get(f"/invite/{made['token']}").content.decode()
    assert "You are already an admin of this project" in text and "does not change your role" in text
    assert "Not alice-admin?" in text  # and a way to log out and open it as someone else
    assert admin.post(f"/invite/{made['token']}/join").status_code == 302
    assert Membership.objects.get(project=project, user=users["admin"]).role == "admin"
    assert Invite.objects.get(pk=made["id"]).used_count == 0
    # A member opening a link that no longer works is told they are in already, not "not valid".
    Invite.objects.filter(pk=made["id"]).update(used_count=1)
    text = admin.get(f"/invite/{made['token']}").content.decode()
    assert "You are already an admin of this project" in text
    assert Client().get(f"/invite/{made['token']}").status_code == 404  # anyone else: not valid


def test_opening_the_join_address_goes_back_to_the_invite(users, project, client_for):
    made = _link(client_for(users["admin"]), project)
    response = Client().get(f"/invite/{made['token']}/join")
    assert response.status_code == 302 and response["Location"] == f"/invite/{made['token']}"


def test_a_link_works_for_as_many_people_as_it_says(users, project, client_for):
    made = _link(client_for(users["admin"]), project, max_uses=2)
    for name in ("p1", "p2"):
        user = UserFactory(username=name)
        client = Client()
        client.force_login(user)
        assert client.post(f"/invite/{made['token']}/join").status_code == 302
    late = Client()
    late.force_login(UserFactory(username="p3"))
    assert late.post(f"/invite/{made['token']}/join").status_code == 404
    assert sorted(project.memberships.filter(role="annotator").values_list("user__username", flat=True)) == [
        "ann-annotator",
        "p1",
        "p2",
    ]


def test_expired_withdrawn_and_made_up_links_do_not_work(users, project, client_for):
    admin = client_for(users["admin"])
    expired = _link(admin, project)
    Invite.objects.filter(pk=expired["id"]).update(expires_at=timezone.now() - timedelta(seconds=1))
    withdrawn = _link(admin, project)
    assert admin.delete(f"/api/projects/{project.id}/invites/{withdrawn['id']}").status_code == 204
    assert admin.delete(f"/api/projects/{project.id}/invites/{withdrawn['id']}").status_code == 404
    for token in (expired["token"], withdrawn["token"], "x" * 32, "short", "x" * 500):
        for method in ("get", "post"):
            response = getattr(Client(), method)(
                f"/invite/{token}" + ("/join" if method == "post" else ""), NEW
            )
            assert response.status_code == 404, (token, method)
            assert "ask the project&#x27;s admin for a new one" in response.content.decode()
    assert not User.objects.filter(username="nina-new").exists()
    assert [i["id"] for i in admin.get(f"/api/projects/{project.id}/invites").json()["results"]] == []


def test_another_projects_invite_cannot_be_withdrawn(users, project, client_for):
    from tests.factories import project_with_members

    other = project_with_members(admin=users["outsider"], name="Other")
    invite, _ = invite_create(project=other, role="annotator", created_by=users["outsider"])
    response = client_for(users["admin"]).delete(f"/api/projects/{project.id}/invites/{invite.id}")
    assert response.status_code == 404 and Invite.objects.filter(pk=invite.id).exists()


def test_joining_needs_the_csrf_token(users, project, client_for):
    made = _link(client_for(users["admin"]), project)
    client = Client(enforce_csrf_checks=True)
    assert client.post(f"/invite/{made['token']}/join", NEW).status_code == 403
    assert not User.objects.filter(username="nina-new").exists()


def test_dashboard_makes_lists_and_withdraws_links(users, project):
    admin = Client()
    admin.force_login(users["admin"])
    action = f"/projects/{project.id}/dashboard/action"
    page_ = admin.post(
        action,
        {
            "action": "invite_create",
            "role": "annotator",
            "max_uses": "5",
            "days": "3",
            "note": "Tuesday group",
        },
        follow=True,
    )
    assert page_.redirect_chain[-1][0].endswith("/dashboard/#team")  # back at the Team panel
    text = page_.content.decode()
    invite = Invite.objects.get()
    assert invite.max_uses == 5 and invite.role == "annotator" and invite.created_by == users["admin"]
    assert invite.note == "Tuesday group"
    assert 'id="invite-link"' in text and "/invite/" in text and 'data-copy="invite-link-value"' in text
    assert f'data-invite="{invite.id}"' in text and "0 of 5" in text and "<td>Tuesday group</td>" in text
    # The link on the page opens the invite.
    url = text.split('aria-label="invite link"')[0].rsplit('value="', 1)[1].split('"')[0]
    assert Client().get(url.split("testserver", 1)[1]).status_code == 200
    # A reload does not show the link again (it was shown once).
    assert 'id="invite-link"' not in admin.get(f"/projects/{project.id}/dashboard/").content.decode()

    for bad, message in (
        ({"days": "soon"}, "whole number"),
        ({"days": "0"}, "1 to 90 days"),
        ({"role": "x"}, "role must be"),
    ):
        shown = admin.post(action, {"action": "invite_create", "role": "annotator", **bad}, follow=True)
        assert message in shown.content.decode()
    assert Invite.objects.count() == 1

    admin.post(action, {"action": "invite_withdraw", "invite": str(invite.id)})
    assert not Invite.objects.exists()
    assert (
        "no such invite"
        in admin.post(action, {"action": "invite_withdraw", "invite": "x"}, follow=True).content.decode()
    )


def test_an_annotator_cannot_make_links_on_the_dashboard(users, project):
    annotator = Client()
    annotator.force_login(users["annotator"])
    response = annotator.post(
        f"/projects/{project.id}/dashboard/action", {"action": "invite_create", "role": "admin"}
    )
    assert response.status_code == 403 and not Invite.objects.exists()


@pytest.mark.browser
@pytest.mark.django_db(transaction=True)
def test_a_new_annotator_joins_through_a_link_and_labels(live_server, settings, page, users, project):  # noqa: F811
    """End to end in a browser: the admin makes a link on the dashboard; a person with no account
    opens it in another browser, signs up, lands on the project and labels an image."""
    settings.SESSION_COOKIE_SECURE = settings.CSRF_COOKIE_SECURE = False
    project.audit_fraction = 0.0
    project.save()
    queue_round(project, pool(project, 3))
    log_in(page, live_server, users["admin"])
    page.goto(f"{live_server.url}/projects/{project.id}/dashboard/")
    page.select_option("#invite-create select[name=role]", "annotator")
    page.click("#invite-create button")
    link = page.input_value("#invite-link input")
    assert link.startswith(live_server.url + "/invite/")
    page.click("#invite-link button[data-copy]")
    page.wait_for_function(
        "() => document.querySelector('#invite-link button[data-copy]').textContent !== 'Copy'"
    )
    assert page.inner_text("#invite-link button[data-copy]") == "Copied"
    page.set_viewport_size({"width": 390, "height": 844})  # the link's box fits a phone
    assert page.evaluate("document.documentElement.scrollWidth") <= 390
    assert page.is_visible("#invites tr[data-invite]")

    newcomer = page.context.browser.new_context().new_page()  # no cookies: another person
    newcomer.goto(link)
    newcomer.screenshot(path=str(ARTIFACTS / "invite-browser.png"), full_page=True)
    newcomer.fill("input[name=username]", "nina-new")
    newcomer.fill("input[name=password1]", NEW["password1"])
    newcomer.fill("input[name=password2]", NEW["password1"])
    newcomer.click("#invite button[type=submit]")
    newcomer.wait_for_url(f"{live_server.url}/projects/{project.id}/")
    assert "You joined Birds as an annotator." in newcomer.inner_text("main")
    newcomer.click("text=Start labelling")
    shown(newcomer)
    newcomer.keyboard.press("1")
    nina = User.objects.get(username="nina-new")
    wait_until(
        lambda: Annotation.objects.filter(annotator=nina).exists(), timeout=15, what="the newcomer's label"
    )
    assert QueueItem.objects.filter(project=project, annotations_done=1).count() == 1
