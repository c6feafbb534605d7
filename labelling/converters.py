"""URL path converters.

``<id:...>``: a database id. Django's ``<int:...>`` matches any run of digits, and an id past the
64-bit range then fails inside the database driver (SQLite: OverflowError; PostgreSQL: "out of
range") as a 500. At most 18 digits always fits a signed 64-bit key; longer is simply no route (404).
"""

from django.urls import register_converter


class IdConverter:
    regex = "[0-9]{1,18}"

    def to_python(self, value: str) -> int:
        return int(value)

    def to_url(self, value: int) -> str:
        return str(value)


register_converter(IdConverter, "id")
