"""Failed logins are counted per username and address: past LOGIN_FAILURES_MAX the pair is refused
with 429 on the token exchange and the login page, even with the right password; another address
is not affected; a successful login clears the count. Sign-up passwords are checked against
Django's common-password list and must not be all digits."""

from __future__ import annotations

import pytest
from django.contrib.auth import get_user_model
from django.test import Client

from labelling.services.invites import invite_create

pytestmark = pytest.mark.django_db


def _token(client, password, **extra):
    return client.post(
        "/api/auth/token",
        {"username": "alice-admin", "password": password},
        content_type="application/json",
        **extra,
    )


def test_token_exchange_is_refused_after_too_many_failures(users, settings):
    settings.LOGIN_FAILURES_MAX = 5
    client = Client()
    for _ in range(5):
        assert _token(client, "wrong").json()["error"]["code"] == "bad_credentials"
    locked = _token(client, "pw-for-tests")  # the right password, too late
    assert locked.status_code == 429 and locked.json()["error"]["code"] == "too_many_attempts"
    assert "try again in 15 minutes" in locked.json()["error"]["message"]
    # Someone else, from another address, is not locked out by it.
    assert _token(client, "pw-for-tests", REMOTE_ADDR="10.1.2.3").status_code == 200
    # Nor are other usernames from the same address.
    other = client.post(
        "/api/auth/token",
        {"username": "erin-engineer", "password": "pw-for-tests"},
        content_type="application/json",
    )
    assert other.status_code == 200


def test_a_success_clears_the_count(users, settings):
    settings.LOGIN_FAILURES_MAX = 3
    client = Client()
    for _ in range(2):
        assert _token(client, "wrong").status_code == 400
    assert _token(client, "pw-for-tests").status_code == 200
    for _ in range(2):
        assert _token(client, "wrong").status_code == 400  # 4 failures in all, never 3 in a row
    assert _token(client, "pw-for-tests").status_code == 200


def test_the_login_page_is_refused_after_too_many_failures(users, settings):
    settings.SESSION_COOKIE_SECURE = settings.CSRF_COOKIE_SECURE = False
    settings.LOGIN_FAILURES_MAX = 4
    client = Client()
    for _ in range(4):
        page = client.post("/accounts/login/", {"username": "ALICE-admin", "password": "nope"})
        assert page.status_code == 200 and "Wrong username or password" in page.content.decode()
    page = client.post("/accounts/login/", {"username": "alice-admin", "password": "pw-for-tests"})
    assert page.status_code == 429 and "Too many failed logins" in page.content.decode()
    assert "_auth_user_id" not in client.session
    # The token exchange shares the count.
    assert _token(client, "pw-for-tests").status_code == 429
    ok = Client(REMOTE_ADDR="10.9.9.9").post(
        "/accounts/login/", {"username": "alice-admin", "password": "pw-for-tests"}
    )
    assert ok.status_code == 302


@pytest.mark.parametrize(
    ("password", "says"), [("password123", "too common"), ("83920571634", "entirely numeric")]
)
def test_sign_up_refuses_common_and_numeric_passwords(users, project, password, says):
    _, token = invite_create(project=project, role="annotator", created_by=users["admin"])
    response = Client().post(
        f"/invite/{token}/join", {"username": "nina-new", "password1": password, "password2": password}
    )
    assert response.status_code == 400 and says in response.content.decode()
    assert not get_user_model().objects.filter(username="nina-new").exists()
