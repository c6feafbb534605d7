"""Names as people see them: one Unicode form for what looks the same."""

from __future__ import annotations

import unicodedata


def nfc(text: str) -> str:
    """``text`` in Unicode normal form C. "é" typed on a keyboard is one code point; in a file name
    copied from a Mac it is "e" and a combining accent (form D): the same name to a person, two
    strings to a computer. Names (labels, uploaded file names, zip members, imported rows) are
    stored and matched in form C, so they match as they look."""
    return unicodedata.normalize("NFC", text)
