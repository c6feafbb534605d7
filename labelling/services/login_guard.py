"""Failed logins, counted per username and client address: after ``LOGIN_FAILURES_MAX`` in
``LOGIN_WINDOW_S`` that pair is refused until the window ends, whether the password is right or
not, on every way in (the login page, the API's token exchange, Django's admin): the check is in
the authentication backend, and failures are counted from Django's ``user_login_failed`` signal.
A successful login clears the count. An address is also counted whatever the names it tries
(``LOGIN_ADDRESS_FAILURES_MAX``, 50 by default): a success does not clear that one.

Counts live in Django's cache: by default each web process's own memory (so with N gunicorn
workers a pair gets up to N x the limit); a shared cache (``CACHES`` on Redis) makes it one count.
Keyed by address as well as name, so someone elsewhere cannot lock a user out; behind a reverse
proxy set ``LOGIN_CLIENT_IP_HEADER`` (e.g. ``HTTP_X_FORWARDED_FOR``), or every client shares the
proxy's address and anyone could keep a user locked out."""

from __future__ import annotations

import hashlib
import math
import time

from django.conf import settings
from django.contrib.auth.backends import ModelBackend
from django.contrib.auth.signals import user_login_failed
from django.core.cache import cache
from django.core.exceptions import PermissionDenied
from django.dispatch import receiver
from django.http import HttpRequest

from labelling.services.errors import ServiceError


class TooManyAttempts(ServiceError):
    status = 429
    code = "too_many_attempts"

    def __init__(self, message: str, *, retry_after: int) -> None:
        super().__init__(message)
        self.retry_after = retry_after


def client_address(request: HttpRequest) -> str:
    """REMOTE_ADDR, or with ``LOGIN_CLIENT_IP_HEADER`` the last address in that header: the one the
    trusted proxy in front of us added (earlier ones the client can write itself)."""
    header = settings.LOGIN_CLIENT_IP_HEADER
    forwarded = request.META.get(header, "") if header else ""
    return forwarded.split(",")[-1].strip() if forwarded else request.META.get("REMOTE_ADDR", "")


def _key(request: HttpRequest, username: str) -> str:
    who = f"{(username or '').strip().casefold()}|{client_address(request)}"
    return "login-failures:" + hashlib.sha256(who.encode()).hexdigest()


def _address_key(request: HttpRequest) -> str:
    return "login-failures-address:" + hashlib.sha256(client_address(request).encode()).hexdigest()


def _left(key: str, limit: int) -> int:
    if (cache.get(key) or 0) < limit:
        return 0
    started = cache.get(key + ":start") or time.time()
    return max(1, math.ceil(settings.LOGIN_WINDOW_S - (time.time() - started)))


def seconds_locked(request: HttpRequest, username: str) -> int:
    """0 while this name may try from this address; else the seconds until its window ends. An
    address that failed ``LOGIN_ADDRESS_FAILURES_MAX`` times, whatever the names, waits too: a few
    guesses at every username (password spraying) passed the per-name count (a security review)."""
    return max(
        _left(_key(request, username), settings.LOGIN_FAILURES_MAX),
        _left(_address_key(request), settings.LOGIN_ADDRESS_FAILURES_MAX),
    )


def login_allowed(request: HttpRequest, username: str) -> None:
    """Raise ``TooManyAttempts`` (with the time left) if this name has failed too often from here,
    or this address has, whatever the names."""
    left = seconds_locked(request, username)
    if left:
        minutes = max(1, math.ceil(left / 60))
        raise TooManyAttempts(
            f"too many failed logins for this username from your address; try again in {minutes} "
            f"minute{'s' if minutes > 1 else ''}, or ask an administrator to reset your password",
            retry_after=left,
        )


def _count(key: str) -> None:
    cache.add(key + ":start", time.time(), timeout=settings.LOGIN_WINDOW_S)  # the window's start
    cache.add(key, 0, timeout=settings.LOGIN_WINDOW_S)
    try:
        cache.incr(key)
    except ValueError:  # expired between add and incr
        cache.set(key, 1, timeout=settings.LOGIN_WINDOW_S)


def login_failed(request: HttpRequest, username: str) -> None:
    _count(_key(request, username))
    _count(_address_key(request))


def login_succeeded(request: HttpRequest, username: str) -> None:
    key = _key(request, username)
    cache.delete_many([key, key + ":start"])


class GuardedModelBackend(ModelBackend):
    """Django's username and password check, refused while the name is locked out from this
    address (``PermissionDenied`` ends ``authenticate()`` there, as a failure)."""

    def authenticate(self, request, username=None, password=None, **kwargs):
        if request is not None and username is not None and seconds_locked(request, username):
            raise PermissionDenied("too many failed logins")
        user = super().authenticate(request, username=username, password=password, **kwargs)
        if user is not None and request is not None:
            login_succeeded(request, username)
        return user


@receiver(user_login_failed)
def _count_failure(sender, credentials: dict, request: HttpRequest | None = None, **kwargs) -> None:
    if request is not None:
        login_failed(request, credentials.get("username") or "")
