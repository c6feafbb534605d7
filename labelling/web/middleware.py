"""Refuse form fields and query values holding a NUL character on the web pages, in one place.

PostgreSQL cannot store or even compare text with NUL in it (psycopg raises DataError: a 500).
Django's form fields refuse it, but the pages read plain ``request.POST`` values; the API's
serializers refuse it themselves, so /api/ is left to them."""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse
from django.shortcuts import render


def _has_nul(query_dict) -> bool:
    return any("\x00" in key or any("\x00" in v for v in values) for key, values in query_dict.lists())


class RefuseNulMiddleware:
    def __init__(self, get_response) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if not request.path.startswith("/api/") and (
            _has_nul(request.GET) or (request.method == "POST" and _has_nul(request.POST))
        ):
            message = "text with a NUL character (\\x00) is not accepted; nothing was saved"
            return render(request, "web/error.html", {"status": 400, "message": message}, status=400)
        return self.get_response(request)
