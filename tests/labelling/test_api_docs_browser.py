"""Swagger UI at /api/docs/ renders from our own static files, with every request off this server
blocked (the service may run where no CDN is reachable), under the pages' Content-Security-Policy
(no inline script: the split view loads its own script from ?script)."""

from __future__ import annotations

import pytest

from tests.labelling.test_annotate_browser import log_in, page  # noqa: F401  (page: the fixture)


@pytest.mark.browser
@pytest.mark.django_db(transaction=True)
def test_swagger_ui_renders_offline(live_server, settings, page, users):  # noqa: F811
    outside = []

    def only_this_server(route):
        if route.request.url.startswith(live_server.url):
            route.continue_()
        else:
            outside.append(route.request.url)
            route.abort()

    page.route("**/*", only_this_server)
    settings.SESSION_COOKIE_SECURE = settings.CSRF_COOKIE_SECURE = False  # plain-HTTP live server
    log_in(page, live_server, users["engineer"])  # the docs are for logged-in users
    page.goto(live_server.url + "/api/docs/")
    page.wait_for_selector(".swagger-ui .opblock", timeout=30_000)  # the schema's operations drawn
    assert page.locator(".swagger-ui .opblock").count() >= 30
    assert outside == []
    assert page.evaluate("() => document.querySelectorAll('script:not([src])').length") == 0
    assert not page.errors  # nothing the page's Content-Security-Policy blocked
