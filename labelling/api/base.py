"""Shared bits of the API views: pagination for plain APIViews, the upload size guard."""

from __future__ import annotations

from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from labelling.api.pagination import Pagination
from labelling.services.errors import InvalidInput, PayloadTooLarge


class ListApi(APIView):
    """An APIView whose GET answers one page through ``paginated``. Naming the pagination class
    lets drf-spectacular document the page envelope (count, next, previous, results) and the
    ``page``/``page_size`` parameters instead of a bare array."""

    pagination_class = Pagination


def paginated(*, request: Request, view: APIView, queryset, serializer_class) -> Response:
    paginator = Pagination()
    page = paginator.paginate_queryset(queryset, request, view=view)
    return paginator.get_paginated_response(serializer_class(page, many=True).data)


def strict(serializer_class, data, **kwargs):
    """Validate ``data``; unknown fields are an error (a typo must not be silently ignored)."""
    if not isinstance(data, dict):
        raise InvalidInput("the body must be a JSON object")
    serializer = serializer_class(data=data, **kwargs)
    unknown = set(data) - set(serializer.fields)
    if unknown:
        raise InvalidInput(f"unknown fields: {', '.join(sorted(unknown))}", code="unknown_field")
    serializer.is_valid(raise_exception=True)
    return serializer


def strict_query(serializer_class, request, *, lists: tuple[str, ...] = ()):
    """Validate the query string like a body (:func:`strict`). A parameter given twice is an error
    (only its last value counted before), except those named in ``lists``: each of these arrives as
    a list of every value given, repeated or comma-separated (``status=a&status=b``, ``status=a,b``)."""
    data = {}
    for name, values in request.query_params.lists():
        if name in lists:
            data[name] = [part for value in values for part in value.split(",") if part]
        elif len(values) > 1:
            raise InvalidInput(
                f"the parameter {name} is given {len(values)} times; give it once", code="invalid"
            )
        else:
            data[name] = values[0]
    return strict(serializer_class, data)


def guard_request_size(request, limit: int) -> None:
    """413 before reading a body its Content-Length says is over ``limit`` bytes."""
    try:
        length = int(request.META.get("CONTENT_LENGTH") or 0)
    except ValueError:
        length = 0
    if length > limit:
        raise PayloadTooLarge(f"the request is {length:,} bytes, over the limit of {limit:,}")
