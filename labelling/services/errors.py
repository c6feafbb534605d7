"""Errors a user can cause, typed, each with a machine-readable code and an HTTP status.

The API maps them to JSON in one place (labelling.api.errors); services raise them and never
return error values.
"""

from __future__ import annotations

from typing import Any


class ServiceError(Exception):
    status = 400
    code = "invalid"

    def __init__(self, message: str, *, code: str | None = None, details: Any = None) -> None:
        super().__init__(message)
        self.message = message
        if code:
            self.code = code
        self.details = details


class InvalidInput(ServiceError):
    status = 400
    code = "invalid"


class NotFound(ServiceError):
    status = 404
    code = "not_found"


class Forbidden(ServiceError):
    status = 403
    code = "forbidden"


class Conflict(ServiceError):
    status = 409
    code = "conflict"


class PayloadTooLarge(ServiceError):
    status = 413
    code = "too_large"


class Unavailable(ServiceError):
    """A service the request needs (the job queue's broker) cannot be reached; retrying may work."""

    status = 503
    code = "unavailable"
