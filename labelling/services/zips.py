"""Zip archives of images: checked in the request (cheap, from the central directory), unpacked
by a worker with limits enforced on the bytes actually read, not on what the archive claims."""

from __future__ import annotations

import posixpath
import stat
import struct
import zipfile
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from typing import BinaryIO

from django.conf import settings

from labelling.services.errors import InvalidInput
from labelling.services.text import nfc

# Files that archivers add and nobody means to label.
_IGNORED_PARTS = ("__MACOSX/",)
_IGNORED_NAMES = (".DS_Store", "Thumbs.db", "desktop.ini")


class ZipRejected(InvalidInput):
    """The archive as a whole is refused; nothing is stored."""


@dataclass(frozen=True)
class ZipMember:
    name: str
    folder: str  # the first folder in the path, "" at the top level (a class name for some datasets)


def member_name(info: zipfile.ZipInfo) -> str:
    """A member's name as its archiver meant it, in NFC. Zip names are UTF-8 only when flag bit 11
    says so; Info-ZIP on Linux and the macOS Finder write UTF-8 without it, and Python then reads
    the bytes as cp437 ("été" came out "├⌐t├⌐"). Such a name is read again as UTF-8 when its bytes
    are valid UTF-8, after an Info-ZIP Unicode Path field (0x7075) that matches the name, if any."""
    name = info.filename
    if not info.flag_bits & 0x800:
        raw = name.encode("cp437")
        name = _unicode_path(info, raw) or _utf8_or_none(raw) or name
    return nfc(name)


def _utf8_or_none(raw: bytes) -> str | None:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return None


def _unicode_path(info: zipfile.ZipInfo, raw: bytes) -> str | None:
    """The UTF-8 name of an Info-ZIP Unicode Path extra field (0x7075: version 1, the CRC-32 of
    the header's name, the name), when its CRC matches the name it stands for."""
    extra = info.extra
    while len(extra) >= 4:
        tag, size = struct.unpack("<HH", extra[:4])
        body, extra = extra[4 : 4 + size], extra[4 + size :]
        if (
            tag == 0x7075
            and len(body) > 5
            and body[0] == 1
            and struct.unpack("<I", body[1:5])[0] == zlib.crc32(raw)
        ):
            return _utf8_or_none(body[5:])
    return None


def _member_problem(info: zipfile.ZipInfo) -> str | None:
    for name in dict.fromkeys((info.filename, member_name(info))):  # as read, and as it will be stored
        problem = _name_problem(name)
        if problem:
            return problem
    mode = info.external_attr >> 16
    if stat.S_ISLNK(mode):
        return f"member {info.filename!r} is a symbolic link"
    if info.flag_bits & 0x1:
        return f"member {info.filename!r} is encrypted"
    return None


def _name_problem(name: str) -> str | None:
    if name.startswith(("/", "\\")) or (len(name) > 1 and name[1] == ":"):
        return f"member {name!r} has an absolute path"
    parts = name.replace("\\", "/").split("/")
    if ".." in parts:
        return f"member {name!r} climbs out of the archive with '..'"
    return None


def _is_ignored(info: zipfile.ZipInfo) -> bool:
    name = member_name(info)
    return info.is_dir() or name.startswith(_IGNORED_PARTS) or posixpath.basename(name) in _IGNORED_NAMES


def zip_archive_check(fileobj: BinaryIO) -> list[ZipMember]:
    """Refuse an archive that is not a zip, or whose members break a rule; return the image members.

    Rules: no absolute paths, no '..', no links, no encryption, at most ZIP_MAX_MEMBERS members,
    declared uncompressed total at most ZIP_MAX_TOTAL_BYTES, and no member inflating more than
    ZIP_MAX_RATIO times (zip bombs).
    """
    fileobj.seek(0)
    if fileobj.read(4) not in (b"PK\x03\x04", b"PK\x05\x06"):
        raise ZipRejected("the file is not a zip archive", code="not_a_zip")
    fileobj.seek(0)
    try:
        archive = zipfile.ZipFile(fileobj)
    except (zipfile.BadZipFile, OSError, ValueError) as exc:
        raise ZipRejected(f"the zip archive is corrupt ({exc})", code="corrupt_zip") from None
    with archive:
        infos = archive.infolist()
        max_members = settings.ZIP_MAX_MEMBERS
        if len(infos) > max_members:
            raise ZipRejected(
                f"the archive has {len(infos):,} members, over the limit of {max_members:,}",
                code="zip_too_many_members",
            )
        total = 0
        members: list[ZipMember] = []
        for info in infos:
            problem = _member_problem(info)
            if problem:
                raise ZipRejected(problem, code="zip_unsafe_member")
            if _is_ignored(info):
                continue
            total += info.file_size
            ratio = info.file_size / max(info.compress_size, 1)
            if info.file_size > 1024 * 1024 and ratio > settings.ZIP_MAX_RATIO:
                raise ZipRejected(
                    f"member {info.filename!r} inflates {ratio:,.0f} times (limit {settings.ZIP_MAX_RATIO}): zip bomb",
                    code="zip_bomb",
                )
            if info.file_size > settings.UPLOAD_MAX_IMAGE_BYTES * 2:
                raise ZipRejected(
                    f"member {info.filename!r} is {info.file_size:,} bytes uncompressed, far over the image "
                    f"limit of {settings.UPLOAD_MAX_IMAGE_BYTES:,}",
                    code="zip_bomb",
                )
            name = member_name(info)
            parts = name.split("/")
            members.append(ZipMember(name=name, folder=parts[0] if len(parts) > 1 else ""))
        if total > settings.ZIP_MAX_TOTAL_BYTES:
            raise ZipRejected(
                f"the archive unpacks to {total:,} bytes, over the limit of {settings.ZIP_MAX_TOTAL_BYTES:,}",
                code="zip_bomb",
            )
        if not members:
            raise ZipRejected("the archive holds no files", code="empty_zip")
    return members


def zip_members_read(fileobj: BinaryIO) -> Iterator[tuple[str, bytes | None, str]]:
    """Yield (name, data, problem) per image member, reading at most the image limit + 1 byte of
    each, so a member that lies about its size cannot inflate past the limit."""
    limit = settings.UPLOAD_MAX_IMAGE_BYTES
    fileobj.seek(0)
    with zipfile.ZipFile(fileobj) as archive:
        for info in archive.infolist():
            if _member_problem(info) or _is_ignored(info):
                continue
            try:
                with archive.open(info) as fh:
                    data = fh.read(limit + 1)
            except (zipfile.BadZipFile, OSError, ValueError, NotImplementedError) as exc:
                yield member_name(info), None, f"cannot be unpacked ({exc})"
                continue
            yield member_name(info), data, ""
