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


def guard_request_size(request, limit: int) -> None:
    """413 before reading a body its Content-Length says is over ``limit`` bytes."""
    try:
        length = int(request.META.get("CONTENT_LENGTH") or 0)
    except ValueError:
        length = 0
    if length > limit:
        raise PayloadTooLarge(f"the request is {length:,} bytes, over the limit of {limit:,}")
