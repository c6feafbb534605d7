"""Schemathesis over the whole OpenAPI schema, authenticated as the project's admin, in-process
(WSGI): no 5xx, and every answer matches the schema (status, content type, body, headers).

The schema is built by drf-spectacular's generator, exactly what ``/api/schema/`` serves. Path ids
are swapped, half the time, for real ones (``api_world``), so the fuzzer reaches past the 404s.
Each example runs in a savepoint that is rolled back: every call sees the same world, so even
``DELETE /projects/{id}`` is fuzzed without destroying what the next example needs.

Bounded: ``FUZZ_EXAMPLES`` examples per operation and mode (positive and negative data), about a
minute on two busy cores. ``FUZZ_EXAMPLES=200 pytest tests/labelling/test_api_fuzz.py`` digs deeper.
"""

from __future__ import annotations

import os

import pytest
import schemathesis
from django.core import signals
from django.core.wsgi import get_wsgi_application
from django.db import close_old_connections, transaction
from drf_spectacular.generators import SchemaGenerator
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.errors import Unsatisfiable
from rest_framework.authtoken.models import Token
from schemathesis.checks import not_a_server_error
from schemathesis.generation import GenerationMode
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from tests.factories import api_world

pytestmark = pytest.mark.django_db

EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "25"))
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
    response_headers_conformance,
]


class _Rollback(Exception):
    pass


@pytest.fixture
def wsgi_app():
    # Django's WSGI handler closes "old" connections around each request; inside the test's
    # transaction that would close the connection holding it. The test client disconnects the
    # same receivers for the same reason.
    signals.request_started.disconnect(close_old_connections)
    signals.request_finished.disconnect(close_old_connections)
    yield get_wsgi_application()
    signals.request_started.connect(close_old_connections)
    signals.request_finished.connect(close_old_connections)


def _describe(exc: BaseException) -> tuple[str, str]:
    text = str(exc)
    kinds = " ".join(line.strip("- ").split(" ", 1)[0] for line in text.splitlines() if line.startswith("- "))
    return kinds or type(exc).__name__, text[:1200]


def _openapi() -> dict:
    return SchemaGenerator().get_schema(request=None, public=True)


def _fuzz(operation, mode: GenerationMode, *, world: dict, token: str, failures: list) -> None:
    """Up to EXAMPLES cases of one operation in one mode; failures are collected, not raised."""
    where = f"{operation.label} [{mode.value}]"

    @settings(
        max_examples=EXAMPLES,
        deadline=None,
        database=None,
        derandomize=True,
        suppress_health_check=list(HealthCheck),
    )
    @given(case=operation.as_strategy(generation_mode=mode), real_ids=st.booleans())
    def run(case, real_ids):
        if real_ids and case.path_parameters:
            case.path_parameters = {
                k: world.get(k, v) if k != "what" else v for k, v in case.path_parameters.items()
            }
        try:
            with transaction.atomic():
                try:
                    case.call_and_validate(headers={"Authorization": f"Token {token}"}, checks=CHECKS)
                except (Exception, BaseExceptionGroup) as exc:  # collect all, report together
                    failures.append((where, _describe(exc)))
                raise _Rollback
        except _Rollback:
            pass

    run()


def test_fuzz_every_operation(users, project, wsgi_app):
    world = api_world(users=users, project=project)
    token = Token.objects.create(user=users["admin"]).key
    schema = schemathesis.openapi.from_dict(_openapi())
    schema.app = wsgi_app
    failures: list[tuple[str, tuple[str, str]]] = []
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 39  # every API route and method

    for operation in operations:
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
            try:
                _fuzz(operation, mode, world=world, token=token, failures=failures)
            except Unsatisfiable:
                # Nothing to make invalid (no parameters, no body): negative mode has no cases.
                assert mode == GenerationMode.NEGATIVE, operation.label
    # The first example of each distinct failure per operation; hypothesis does not shrink here.
    distinct = {(where, kinds): text for where, (kinds, text) in reversed(failures)}
    shown = "\n\n".join(f"{where}: {kinds}\n{text}" for (where, kinds), text in sorted(distinct.items()))
    assert not failures, f"{len(failures)} failing examples, {len(distinct)} distinct:\n\n{shown}"
