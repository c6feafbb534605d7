"""API token authentication: DRF's, with the token and its user read in one hand-written statement.

It runs on every request an annotator makes; DRF's ``select_related("user").get(key=...)`` spent
more CPU building the query than the database spent answering it (bench/label_cpu.py).
"""

from __future__ import annotations

from functools import cache

from django.contrib.auth import get_user_model
from django.db import connection
from django.utils.translation import gettext_lazy as _
from rest_framework import authentication, exceptions
from rest_framework.authtoken.models import Token

from labelling.selectors.rows import Columns


@cache
def _columns() -> tuple[Columns, Columns]:
    return Columns(Token, "t"), Columns(get_user_model(), "u")


class TokenAuthentication(authentication.TokenAuthentication):
    """``Authorization: Token <key>``; the same answers as DRF's for a bad or inactive token."""

    def authenticate_credentials(self, key):
        token_columns, user_columns = _columns()
        with connection.cursor() as cursor:
            cursor.execute(
                f"SELECT {token_columns.sql}, {user_columns.sql} FROM {Token._meta.db_table} t"
                f" JOIN {get_user_model()._meta.db_table} u ON u.id = t.user_id WHERE t.key = %s",
                [key],
            )
            row = cursor.fetchone()
        if row is None:
            raise exceptions.AuthenticationFailed(_("Invalid token."))
        token, end = token_columns.take(row)
        token.user, _end = user_columns.take(row, end)
        if not token.user.is_active:
            raise exceptions.AuthenticationFailed(_("User inactive or deleted."))
        return token.user, token
