"""Two guards for every page: NUL characters refused in form fields and query values, and a
Content-Security-Policy on every HTML answer.

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


# No inline script anywhere (the pages load theirs from /static/, the API docs use the split Swagger
# view), so an injected <script> or on* attribute would not run. Inline style attributes stay (the
# progress bars' widths); images only from here or data: URIs (Swagger UI's icons).
CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; "
    "object-src 'none'; base-uri 'self'; form-action 'self'; frame-ancestors 'none'"
)


class ContentSecurityPolicyMiddleware:
    """Sets ``CSP`` on HTML answers that carry no policy of their own."""

    def __init__(self, get_response) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        response = self.get_response(request)
        if response.get("Content-Type", "").startswith("text/html"):
            response.setdefault("Content-Security-Policy", CSP)
        return response
