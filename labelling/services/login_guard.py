"""Failed logins, counted per username and client address: after ``LOGIN_FAILURES_MAX`` in
``LOGIN_WINDOW_S`` that pair is refused (429) until the window ends, whether the password is right
or not, on the login page and the API's token exchange alike. A successful login clears the count.

Counts live in Django's cache: by default each web process's own memory (so with N gunicorn
workers a pair gets up to N x the limit); a shared cache (``CACHES`` on Redis) makes it one count.
Keyed by address as well as name, so someone elsewhere cannot lock a user out."""

from __future__ import annotations

import hashlib

from django.conf import settings
from django.core.cache import cache
from django.http import HttpRequest

from labelling.services.errors import ServiceError


class TooManyAttempts(ServiceError):
    status = 429
    code = "too_many_attempts"


def _key(request: HttpRequest, username: str) -> str:
    who = f"{username.strip().casefold()}|{request.META.get('REMOTE_ADDR', '')}"
    return "login-failures:" + hashlib.sha256(who.encode()).hexdigest()


def login_allowed(request: HttpRequest, username: str) -> None:
    """Raise ``TooManyAttempts`` if this name has failed too often from this address lately."""
    if (cache.get(_key(request, username)) or 0) >= settings.LOGIN_FAILURES_MAX:
        minutes = max(1, settings.LOGIN_WINDOW_S // 60)
        raise TooManyAttempts(
            f"too many failed logins for this username from your address; try again in {minutes} minutes"
        )


def login_failed(request: HttpRequest, username: str) -> None:
    key = _key(request, username)
    cache.add(key, 0, timeout=settings.LOGIN_WINDOW_S)  # the window starts at the first failure
    try:
        cache.incr(key)
    except ValueError:  # expired between add and incr
        cache.set(key, 1, timeout=settings.LOGIN_WINDOW_S)


def login_succeeded(request: HttpRequest, username: str) -> None:
    cache.delete(_key(request, username))
