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
    assert 890 <= int(locked["Retry-After"]) <= 900
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
        assert 'value="ALICE-admin"' in page.content.decode()  # no retyping the name
    page = client.post("/accounts/login/", {"username": "alice-admin", "password": "pw-for-tests"})
    assert page.status_code == 429 and "Too many failed logins" in page.content.decode()
    assert int(page["Retry-After"]) > 0 and "ask an administrator" in page.content.decode()
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


def test_the_admin_login_is_guarded_too(users, settings):
    """Django's admin has its own login view; the check is in the authentication backend, so a
    superuser's password cannot be guessed there without limit either."""
    settings.SESSION_COOKIE_SECURE = settings.CSRF_COOKIE_SECURE = False
    settings.LOGIN_FAILURES_MAX = 3
    boss = users["admin"]
    boss.is_staff = boss.is_superuser = True
    boss.save()
    client = Client()
    for _ in range(3):
        assert client.post("/admin/login/", {"username": "alice-admin", "password": "no"}).status_code == 200
    refused = client.post(
        "/admin/login/?next=/admin/", {"username": "alice-admin", "password": "pw-for-tests"}
    )
    assert refused.status_code == 200 and "_auth_user_id" not in client.session  # the form again
    assert _token(client, "pw-for-tests").status_code == 429  # one count for every way in
    other = Client(REMOTE_ADDR="10.0.0.9")
    assert (
        other.post(
            "/admin/login/?next=/admin/", {"username": "alice-admin", "password": "pw-for-tests"}
        ).status_code
        == 302
    )


def test_behind_a_proxy_the_forwarded_address_counts(users, settings):
    settings.LOGIN_FAILURES_MAX = 2
    settings.LOGIN_CLIENT_IP_HEADER = "HTTP_X_FORWARDED_FOR"
    client = Client()  # every request comes from the proxy's REMOTE_ADDR, 127.0.0.1
    for _ in range(2):
        _token(client, "wrong", HTTP_X_FORWARDED_FOR="spoofed, 203.0.113.5")
    assert _token(client, "pw-for-tests", HTTP_X_FORWARDED_FOR="203.0.113.5").status_code == 429
    # Another client behind the same proxy is not locked out by it.
    assert _token(client, "pw-for-tests", HTTP_X_FORWARDED_FOR="198.51.100.7").status_code == 200


def test_password_reset_is_not_offered_without_mail(users):
    assert Client().get("/accounts/password_reset/").status_code == 404
    client = Client()
    client.force_login(users["annotator"])
    assert client.get("/accounts/password_change/").status_code == 200


def test_a_token_ends_with_delete_and_with_a_new_password(users):
    # A security review: a token kept working for ever, through a password change and a logout.
    from rest_framework.authtoken.models import Token

    def me(token):
        return Client().get("/api/me", HTTP_AUTHORIZATION=f"Token {token}").status_code

    first = _token(Client(), "pw-for-tests").json()["token"]
    assert me(first) == 200
    # A stale token header does not stand in the way of asking for a token.
    assert _token(Client(), "pw-for-tests", HTTP_AUTHORIZATION="Token stale").status_code == 200
    gone = Client().delete("/api/auth/token", HTTP_AUTHORIZATION=f"Token {first}")
    assert gone.status_code == 204 and me(first) == 401
    assert Client().delete("/api/auth/token").status_code == 401
    second = _token(Client(), "pw-for-tests").json()["token"]
    assert second != first and me(second) == 200
    # The password page's change ends it; so does any other way of setting a password.
    web = Client()
    web.force_login(users["admin"])
    changed = web.post("/accounts/password_change/", {"old_password": "pw-for-tests",
                       "new_password1": "a-new-long-pass-7", "new_password2": "a-new-long-pass-7"})  # fmt: skip
    assert changed.status_code == 302 and me(second) == 401
    third = Token.objects.create(user=users["admin"]).key
    admin = get_user_model().objects.get(pk=users["admin"].pk)
    admin.save(update_fields=["last_login"])  # every login saves the user: the token stays
    admin.first_name = "Alice"
    admin.save()
    assert me(third) == 200
    admin.set_password("another-long-pass-8")
    admin.save()
    assert me(third) == 401


def test_an_address_guessing_at_many_usernames_is_refused(users, settings):
    # A security review: 27 wrong passwords over three usernames from one address, no 429.
    settings.LOGIN_FAILURES_MAX, settings.LOGIN_ADDRESS_FAILURES_MAX = 10, 6
    client = Client()
    for name in ["alice-admin", "erin-engineer", "ann-annotator"] * 2:
        r = client.post(
            "/api/auth/token", {"username": name, "password": "x"}, content_type="application/json"
        )
        assert r.status_code == 400
    spray = client.post(
        "/api/auth/token",
        {"username": "oscar-outsider", "password": "pw-for-tests"},
        content_type="application/json",
    )
    assert spray.status_code == 429 and int(spray["Retry-After"]) > 800
    # Another address is not held back by it.
    assert _token(client, "pw-for-tests", REMOTE_ADDR="10.9.9.9").status_code == 200
