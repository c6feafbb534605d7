"""Role x endpoint x own/other project: a matrix generated from the URLconf.

Every route and method the URLconf serves must have a rule in RULES (a new route without one fails
``test_every_route_has_a_rule``), and every rule is called as each role, on the project's own
objects and on another project's:

- non-members get 404 (the project does not exist for them) and never see it in lists;
- members whose role is too low get 403; everyone else gets past the permission check;
- an assignment answers only the annotator holding it (anyone else: 404);
- anonymous callers get 401 from the API and a redirect to the login page from the web UI;
- unsafe session-authenticated requests without a CSRF token get 403, on every unsafe route.

Each call runs in a savepoint that is rolled back, so destructive ones (project delete) leave the
world as it was for the next.
"""

from __future__ import annotations

import json
import re

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db import transaction
from django.test import Client
from django.urls import URLPattern, URLResolver, get_resolver

from labelling.models import Annotation, Image
from tests.factories import (
    UserFactory,
    api_world,
    image_bytes,
    project_with_members,
    queue_round,
    zip_bytes,
)

pytestmark = pytest.mark.django_db

RANK = {"annotator": 0, "engineer": 1, "admin": 2}
ROLES = ["admin", "engineer", "annotator", "outsider", "anonymous"]
MEMBER_ROLES = ["admin", "engineer", "annotator"]

# (METHOD, route as the URLconf writes it) -> (who may, payload factory or None, payload format).
# Who may: a project role (and the roles above it), "holder" (the annotator holding the
# assignment), "user" (any logged-in user, no project involved) or "public".
_png = lambda: SimpleUploadedFile("n.png", image_bytes(seed=99))  # noqa: E731
RULES = {
    ("GET", "api/schema/"): ("user", None, None),
    ("GET", "api/docs/"): ("user", None, None),
    ("POST", "api/auth/token"): ("public", lambda w: {"username": "x", "password": "y"}, "json"),
    ("DELETE", "api/auth/token"): ("user", None, None),
    ("GET", "api/me"): ("user", None, None),
    ("GET", "api/projects"): ("user", None, None),
    ("POST", "api/projects"): ("user", lambda w: {"name": "n", "labels": [{"name": "a"}, {"name": "b"}]}, "json"),
    ("GET", "api/projects/<id:project_id>"): ("annotator", None, None),
    ("PATCH", "api/projects/<id:project_id>"): ("admin", lambda w: {"description": "x"}, "json"),
    ("DELETE", "api/projects/<id:project_id>"): ("admin", None, None),
    ("POST", "api/projects/<id:project_id>/labels"): ("admin", lambda w: {"name": "new label"}, "json"),
    ("PATCH", "api/projects/<id:project_id>/labels/<id:label_id>"): ("admin", lambda w: {"name": "renamed"}, "json"),
    ("DELETE", "api/projects/<id:project_id>/labels/<id:label_id>"): ("admin", None, None),
    ("GET", "api/projects/<id:project_id>/members"): ("admin", None, None),
    ("POST", "api/projects/<id:project_id>/members"): (
        "admin", lambda w: {"username": "ann-annotator", "role": "annotator"}, "json"),  # a member already
    ("DELETE", "api/projects/<id:project_id>/members/<id:user_id>"): ("admin", None, None),
    ("GET", "api/projects/<id:project_id>/invites"): ("admin", None, None),
    ("POST", "api/projects/<id:project_id>/invites"): ("admin", lambda w: {"role": "annotator"}, "json"),
    ("DELETE", "api/projects/<id:project_id>/invites/<id:invite_id>"): ("admin", None, None),
    ("GET", "api/projects/<id:project_id>/images"): ("engineer", None, None),
    ("POST", "api/projects/<id:project_id>/images"): ("engineer", lambda w: {"files": [_png()]}, "multipart"),
    ("POST", "api/projects/<id:project_id>/imports"): (
        "engineer", lambda w: {"file": SimpleUploadedFile("z.zip", zip_bytes({"a.png": image_bytes(seed=98)}))},
        "multipart"),
    ("GET", "api/projects/<id:project_id>/jobs"): ("engineer", None, None),
    ("POST", "api/projects/<id:project_id>/jobs"): ("engineer", lambda w: {"kind": "cycle"}, "json"),
    ("GET", "api/projects/<id:project_id>/encoders"): ("engineer", None, None),
    ("POST", "api/projects/<id:project_id>/encoders/upload"): (
        "engineer", lambda w: {"file": SimpleUploadedFile("e.pt", b"PK\x03\x04x")}, "multipart"),
    ("GET", "api/projects/<id:project_id>/models"): ("engineer", None, None),
    ("GET", "api/projects/<id:project_id>/dashboard"): ("admin", None, None),
    ("GET", "api/projects/<id:project_id>/metrics"): ("engineer", None, None),
    ("GET", "api/projects/<id:project_id>/rounds"): ("engineer", None, None),
    ("GET", "api/projects/<id:project_id>/rounds/<id:number>/items"): ("engineer", None, None),
    ("GET", "api/projects/<id:project_id>/export/<str:what>"): ("engineer", None, None),
    ("GET", "api/encoders/<id:encoder_id>"): ("engineer", None, None),
    ("POST", "api/encoders/<id:encoder_id>/activate"): ("engineer", None, None),
    ("GET", "api/models/<id:model_id>"): ("engineer", None, None),
    ("POST", "api/models/<id:model_id>/activate"): ("engineer", None, None),
    ("GET", "api/models/<id:model_id>/download"): ("engineer", None, None),
    ("GET", "api/projects/<id:project_id>/annotations"): ("engineer", None, None),
    ("POST", "api/projects/<id:project_id>/annotations/import"): (
        "engineer", lambda w: {"labels": [{"image": w["image_id"], "label": w["label_id"]}]}, "json"),
    ("GET", "api/projects/<id:project_id>/queue/next"): ("annotator", None, None),
    ("POST", "api/projects/<id:project_id>/queue/undo"): ("annotator", None, None),
    ("POST", "api/assignments/<id:assignment_id>/submit"): ("holder", lambda w: {"label": w["label_id"]}, "json"),
    ("POST", "api/assignments/<id:assignment_id>/skip"): ("holder", lambda w: {}, "json"),
    ("POST", "api/assignments/<id:assignment_id>/flag"): ("holder", lambda w: {"reason": "ambiguous"}, "json"),
    ("GET", "api/images/<id:image_id>"): ("engineer", None, None),
    ("GET", "api/images/<id:image_id>/file"): ("annotator", None, None),
    ("POST", "api/images/<id:image_id>/unflag"): ("engineer", None, None),
    ("GET", "api/images/<id:image_id>/thumbnail"): ("annotator", None, None),
    ("GET", "api/projects/<id:project_id>/review"): ("engineer", None, None),
    ("POST", "api/images/<id:image_id>/review"): ("engineer", lambda w: {"label": w["label_id"]}, "json"),
    ("DELETE", "api/images/<id:image_id>/review"): ("engineer", None, None),
    ("GET", "api/jobs/<id:job_id>"): ("engineer", None, None),
    ("POST", "api/jobs/<id:job_id>/cancel"): ("engineer", None, None),
    ("GET", ""): ("user", None, None),
    ("POST", "projects/new"): ("user", lambda w: {"name": "n", "labels": "a\nb"}, "form"),
    ("GET", "overview/"): ("user", None, None),
    ("GET", "projects/<id:project_id>/"): ("annotator", None, None),
    ("GET", "projects/<id:project_id>/dashboard/"): ("admin", None, None),
    ("POST", "projects/<id:project_id>/dashboard/action"): ("admin", lambda w: {"action": "pause"}, "form"),
    ("GET", "projects/<id:project_id>/label/"): ("annotator", None, None),
    ("GET", "projects/<id:project_id>/review/"): ("engineer", None, None),
    ("POST", "projects/<id:project_id>/review/action"): (
        "engineer", lambda w: {"image": w["image_id"], "label": w["label_id"]}, "form"),
    # The link is the permission: anyone holding it may open it and join (its own tests).
    ("GET", "favicon.ico"): ("public", None, None),  # an empty 204
    ("GET", "invite/<str:token>"): ("public", None, None),
    ("POST", "invite/<str:token>/join"): ("public", lambda w: {}, "form"),
}  # fmt: skip
# Served by Django itself, with their own permission systems, and tested there (the login page is
# Django's, with failed logins counted: test_login_guard.py).
NOT_OURS = ("admin/", "accounts/")


def _routes(resolver=None, prefix: str = ""):
    """(route, view) for every pattern of the URLconf, nested includes flattened."""
    for pattern in (resolver or get_resolver()).url_patterns:
        route = prefix + str(pattern.pattern)
        if isinstance(pattern, URLResolver):
            if not route.startswith(NOT_OURS):
                yield from _routes(pattern, route)
        elif isinstance(pattern, URLPattern) and not route.startswith(NOT_OURS):
            yield route, pattern.callback


def _methods(view) -> list[str]:
    cls = getattr(view, "cls", None) or getattr(view, "view_class", None)
    if cls is not None:  # DRF APIView / Django class-based view
        return [m.upper() for m in ("get", "post", "put", "patch", "delete") if hasattr(cls, m)]
    # A function view of the web UI: its POST-only handlers (require_POST) are named *_action.
    return ["POST"] if view.__name__.endswith("_action") else ["GET"]


def served() -> set[tuple[str, str]]:
    return {(method, route) for route, view in _routes() for method in _methods(view)}


def test_every_route_has_a_rule():
    routes = served()
    assert len(routes) >= 45
    missing = routes - set(RULES)
    assert not missing, f"routes without a permission rule in RULES: {sorted(missing)}"
    assert not set(RULES) - routes, f"rules for routes that no longer exist: {sorted(set(RULES) - routes)}"


@pytest.fixture
def worlds(users, project):
    """The project's world, and another project's (nobody of ``users`` is a member there)."""
    own = api_world(users=users, project=project)
    olga = {"admin": UserFactory(username="olga-other"), "annotator": UserFactory(username="otto-other")}
    other = project_with_members(admin=olga["admin"], annotator=olga["annotator"], name="Other")
    # The outsider belongs to a project of their own: membership elsewhere must not leak.
    project_with_members(admin=users["outsider"], name="Elsewhere")
    return {"own": own, "other": api_world(users=olga, project=other)}


def _url(route: str, world: dict) -> str:
    def value(match: re.Match) -> str:
        name = match.group(2)
        return "labels.csv" if name == "what" else str(world[name])

    return "/" + re.sub(r"<(\w+):(\w+)>", value, route)


def _call(client, method: str, url: str, payload, fmt):
    data = payload() if payload else None
    kwargs = {}
    if fmt == "json":
        kwargs = {"data": data, "content_type": "application/json"}
    elif fmt in ("multipart", "form"):
        kwargs = {"data": data}
    call = getattr(client, method.lower())
    with transaction.atomic():
        sid = transaction.savepoint()
        response = call(url, **kwargs) if kwargs else call(url)
        transaction.savepoint_rollback(sid)
    return response


def _expected(role: str, who: str, target: str, is_api: bool) -> set[int] | None:
    """The statuses a call must answer, or None for "past the permission check"."""
    if who == "public":
        return None
    if role == "anonymous":
        return {401} if is_api else {302}  # 401 with WWW-Authenticate: Token
    if who == "user":
        return None
    if target == "other" or role == "outsider":
        return {404}
    if who == "holder":
        return None if role == "annotator" else {404}
    return {403} if RANK[role] < RANK[who] else None


@pytest.mark.parametrize("target", ["own", "other"])
@pytest.mark.parametrize("role", ROLES)
def test_permission_matrix(role, target, users, worlds):
    client = Client()
    if role != "anonymous":
        client.force_login(users[role])
    world = worlds[target]
    wrong = []
    for (method, route), (who, payload, fmt) in sorted(RULES.items()):
        is_api = route.startswith("api/") and route != "api/docs/"  # the docs: a page, sent to log in
        if fmt == "json" and payload:
            payload_for = lambda p=payload: json.dumps(p(world))  # noqa: E731
        elif payload:
            payload_for = lambda p=payload: p(world)  # noqa: E731
        else:
            payload_for = None
        # Session auth without CSRF enforcement here (Client's default); CSRF has its own test.
        response = _call(client, method, _url(route, world), payload_for, fmt)
        code = response.status_code
        expected = _expected(role, who, target, is_api)
        if expected is not None:
            ok = code in expected
            if ok and is_api and code != 302:
                ok = "error" in response.json() and response.json()["error"]["code"]
            if ok and code == 302:
                ok = response["Location"].startswith("/accounts/login/")
        else:
            ok = code not in (401, 403, 404) and code < 500
        if not ok:
            wrong.append(f"{method} /{route} as {role} on {target}: {code} (want {expected or 'allowed'})")
    assert not wrong, "\n".join(wrong)


@pytest.mark.parametrize("role", MEMBER_ROLES + ["outsider"])
def test_lists_show_only_the_users_projects(role, users, worlds):
    client = Client()
    client.force_login(users[role])
    names = [p["name"] for p in client.get("/api/projects").json()["results"]]
    assert names == (["Elsewhere"] if role == "outsider" else ["Birds"])
    assert "Other" not in client.get("/").content.decode()


def test_unsafe_session_requests_without_csrf_are_refused(users, worlds):
    client = Client(enforce_csrf_checks=True)
    client.force_login(users["admin"])
    world = worlds["own"]
    unsafe = [(m, r) for m, r in RULES if m in ("POST", "PUT", "PATCH", "DELETE")]
    assert len(unsafe) >= 18
    wrong = []
    for method, route in sorted(unsafe):
        who, payload, fmt = RULES[(method, route)]
        if who == "public":
            continue  # the token exchange takes no session, so there is nothing to forge
        response = _call(client, method, _url(route, world), None, None)
        if response.status_code != 403:
            wrong.append(f"{method} /{route}: {response.status_code}")
    assert not wrong, "\n".join(wrong)


def test_token_requests_need_no_csrf(users, worlds):
    from rest_framework.authtoken.models import Token

    token = Token.objects.create(user=users["admin"]).key
    client = Client(enforce_csrf_checks=True, HTTP_AUTHORIZATION=f"Token {token}")
    response = client.patch(
        f"/api/projects/{worlds['own']['project_id']}", {"description": "x"}, content_type="application/json"
    )
    assert response.status_code == 200


def test_project_with_labels_is_deleted_only_with_confirmation(users, project, client_for):
    from tests.factories import pool

    world = {"project": project, "image": pool(project, 1)[0]}
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
