"""Model instances from hand-written SQL, for the few statements on the annotator's hot path.

Building a queryset costs more CPU than PostgreSQL spends running it (a filtered, joined
``select_related`` query about 0.5 ms of compiling per request), and the annotator loop runs a
dozen of them per label. Where that mattered the statement is written in SQL; this turns its rows
back into instances exactly as the ORM would, with the same field converters (SQLite hands back
naive datetimes, and 0/1 for booleans, until they are applied).
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import cached_property

from django.db import connection
from django.db.models import Model


class Columns:
    """The concrete columns of ``model`` under a table alias: ``Columns(Image, "i").sql`` goes in the
    SELECT list; ``take(row, start)`` builds the instance from ``row[start:]`` and says where the
    next model's columns begin."""

    def __init__(self, model: type[Model], alias: str) -> None:
        self.model, self.alias = model, alias
        self._converters: dict[str, list] = {}

    # Lazy: modules that declare these at import time may load before the app registry is ready.
    @cached_property
    def fields(self) -> list:
        return list(self.model._meta.concrete_fields)

    @cached_property
    def attnames(self) -> list[str]:
        return [f.attname for f in self.fields]

    @cached_property
    def sql(self) -> str:
        quote = connection.ops.quote_name
        return ", ".join(f"{self.alias}.{quote(f.column)}" for f in self.fields)

    def _converters_for(self, vendor: str) -> list:
        if vendor not in self._converters:
            found = []
            for i, field in enumerate(self.fields):
                col = field.get_col(self.alias)
                funcs = connection.ops.get_db_converters(col) + field.get_db_converters(connection)
                if funcs:
                    found.append((i, funcs, col))
            self._converters[vendor] = found
        return self._converters[vendor]

    def take(self, row: Sequence, start: int = 0) -> tuple[Model, int]:
        end = start + len(self.fields)
        values = list(row[start:end])
        for i, funcs, col in self._converters_for(connection.vendor):
            for func in funcs:
                values[i] = func(values[i], col, connection)
        return self.model.from_db(connection.alias, self.attnames, values), end
