"""OpenAPI: every operation documents the error body that labelling.api.errors produces.

A drf-spectacular postprocessing hook, so no view has to repeat it: each operation gains the shared
``Error`` body for the 4xx statuses it can answer. Where a view already documents a body for one of
them (an upload answers 400 with its per-file report *and* the error), the two are ``anyOf``.
"""

from __future__ import annotations

from typing import Any

ERROR_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "error": {
            "type": "object",
            "properties": {
                "code": {"type": "string", "description": "machine-readable, e.g. 'not_found'"},
                "message": {"type": "string", "description": "for a person"},
                "details": {"description": "per-field errors or context, when there are any"},
            },
            "required": ["code", "message"],
        }
    },
    "required": ["error"],
}
ERROR_REF = {"$ref": "#/components/schemas/Error"}

# Which statuses an operation can answer with the error body, and when.
_ALWAYS = {
    "400": "invalid input (query, body or file)",
    "401": "not authenticated",
    "403": "authenticated, but the role in the project is too low (or a missing CSRF token)",
    "405": "method not allowed",
    "406": "the Accept header asks for a format the API does not produce",
}
_WITH_PATH_ID = {"404": "no such object, or not a member of its project"}
_UNSAFE = {"409": "conflicts with the current state (a running job, labels that would be lost)"}
_UPLOAD = {"413": "the upload is over a size limit", "415": "unsupported media type"}
_WITH_BODY = {"415": "unsupported media type"}


def _statuses(path: str, method: str, operation: dict) -> dict[str, str]:
    statuses = dict(_ALWAYS)
    if "{" in path:
        statuses.update(_WITH_PATH_ID)
    if any(p.get("name") == "page" for p in operation.get("parameters", [])):
        statuses["404"] = "no such object, or a page past the last one"
    if method in ("post", "put", "patch", "delete"):
        statuses.update(_UNSAFE)
    if operation.get("operationId") == "token_create":
        statuses["429"] = "too many failed logins for this username from this address; wait, then retry"
    content = operation.get("requestBody", {}).get("content", {})
    if "multipart/form-data" in content:
        statuses.update(_UPLOAD)
    if content:
        statuses.update(_WITH_BODY)
    return statuses


def error_responses_hook(result: dict, generator, request, public) -> dict:  # noqa: ARG001
    result.setdefault("components", {}).setdefault("schemas", {})["Error"] = ERROR_SCHEMA
    for path, operations in result.get("paths", {}).items():
        for method, operation in operations.items():
            if not isinstance(operation, dict) or "responses" not in operation:
                continue
            responses = operation["responses"]
            for status, description in _statuses(path, method, operation).items():
                existing = responses.get(status)
                if existing is None:
                    responses[status] = {
                        "description": description,
                        "content": {"application/json": {"schema": ERROR_REF}},
                    }
                    continue
                for media in existing.get("content", {}).values():
                    schema = media.get("schema")
                    if schema and schema != ERROR_REF:
                        media["schema"] = {"anyOf": [schema, ERROR_REF]}
    return result
