"""Exports: labels as CSV or JSON, a zip with one folder per class, predictions as CSV."""

from __future__ import annotations

import csv
import json
import re
import shutil
import tempfile
import zipfile
from collections import Counter, defaultdict

from django.core.files.storage import default_storage
from django.http import FileResponse, HttpResponse, StreamingHttpResponse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework.views import APIView

from labelling.models import Annotation, Image, QueueItem, Role
from labelling.models.image import ImageStatus
from labelling.selectors.access import access_project
from labelling.services.errors import NotFound
from labelling.services.image_checks import EXTENSIONS

EXPORTS = ("labels.csv", "labels.json", "labels.zip", "predictions.csv")


class _Echo:
    def write(self, value: str) -> str:
        return value


def _cell(value):
    """A CSV cell a spreadsheet will not run: text starting with = + - @ (or a tab or carriage
    return) gets a leading apostrophe (OWASP's advice against formula injection); numbers pass."""
    if isinstance(value, str) and value[:1] in ("=", "+", "-", "@", "\t", "\r"):
        return "'" + value
    return value


CSV_TYPE = "text/csv; charset=utf-8"


def consensus_labels(project) -> dict[int, tuple[str, int, int, bool, bool]]:
    """image id -> (label name, votes for it, all votes, is_audit, reviewed). The label is the
    majority's (ties: the earliest label, as training), or a reviewer's where one decided.
    Flagged images are left out, as training leaves them out: an annotator said the image is
    broken or ambiguous."""
    votes: dict[int, Counter] = defaultdict(Counter)
    audit: dict[int, bool] = {}
    rows = (
        Annotation.objects.filter(image__project=project)
        .exclude(image__status=ImageStatus.FLAGGED)
        .order_by("id")
        .values_list("image_id", "label__name", "image__is_audit")
    )
    for image_id, name, is_audit in rows.iterator():
        votes[image_id][name] += 1
        audit[image_id] = is_audit
    reviewed = dict(
        Image.objects.filter(project=project, reviewed_label__isnull=False).values_list(
            "id", "reviewed_label__name"
        )
    )
    out = {}
    for image_id, counter in votes.items():
        name = reviewed.get(image_id) or counter.most_common(1)[0][0]
        out[image_id] = (name, counter[name], sum(counter.values()), audit[image_id], image_id in reviewed)
    return out


def labels_needed(project) -> dict[int, int]:
    """image id -> the labels it was queued for (its newest queue item's ``annotations_needed``):
    ``annotations`` below it marks an image the budget ran out on before everyone labelled it."""
    rows = (
        QueueItem.objects.filter(project=project).order_by("id").values_list("image_id", "annotations_needed")
    )
    return dict(rows.iterator())  # the newest item last: it wins


def _fit(name: str, max_bytes: int) -> str:
    """``name`` cut to at most ``max_bytes`` of UTF-8 at a character boundary: a path segment of
    over 255 bytes cannot be created when the archive is unpacked (ENAMETOOLONG)."""
    return name.encode()[:max_bytes].decode(errors="ignore")


def class_folders(names: list[str]) -> dict[str, str]:
    """A folder name per label name for labels.zip: one path segment that no unzip tool reads as a
    way out of the archive or into another folder (no separators, controls or characters Windows
    refuses, not "." or ".."), and distinct for distinct labels ("a/b" and "a_b" would both read
    "a_b": the later one gets a suffix)."""
    out: dict[str, str] = {}
    taken: set[str] = set()
    for name in names:
        folder = _fit(re.sub(r'[\\/:*?"<>|\x00-\x1f\x7f]', "_", name), 200).strip().rstrip(".") or "_"
        base, n = folder, 2
        while folder.casefold() in taken:
            folder, n = f"{base} ({n})", n + 1
        taken.add(folder.casefold())
        out[name] = folder
    return out


def zip_member_name(image_id: int, original_name: str, extension: str) -> str:
    """labels.zip's file name for an image: its id (unique) and the base name it was uploaded
    with, made safe like the class folders (no folders, separators or controls), with the
    extension of what the file really is: "17-cat 1.png"; "17.png" without an original name."""
    base = re.split(r"[\\/]", original_name)[-1]
    base = re.sub(r'[:*?"<>|\x00-\x1f\x7f]', "_", base).strip().strip(".")
    stem = _fit(base.rsplit(".", 1)[0] if "." in base else base, 200).strip()
    return f"{image_id}-{stem}.{extension}" if stem else f"{image_id}.{extension}"


class ExportApi(APIView):
    @extend_schema(
        parameters=[OpenApiParameter("what", str, OpenApiParameter.PATH, enum=list(EXPORTS))],
        # One media type per export: labels.csv and predictions.csv, labels.json, labels.zip.
        responses={
            (200, "text/csv"): OpenApiTypes.BINARY,
            (200, "application/json"): {"type": "array", "items": {"type": "object"}},
            (200, "application/zip"): OpenApiTypes.BINARY,
        },
        operation_id="export",
    )
    def get(self, request, project_id: int, what: str):
        project = access_project(request.user, project_id, min_role=Role.ENGINEER)
        if what not in EXPORTS:
            raise NotFound(f"unknown export; one of {', '.join(EXPORTS)}")
        if what == "predictions.csv":
            return self._predictions(project)
        labels = consensus_labels(project)
        images = Image.objects.filter(pk__in=list(labels)).order_by("id")
        # The label check of the last retrain (the Review page's): the probability of the label from
        # a model that never saw it, and for a possible mistake the class it more likely is.
        names = dict(project.label_classes.values_list("id", "name"))
        needed = labels_needed(project)
        imported = set(
            Annotation.objects.filter(image__project=project, imported=True).values_list(
                "image_id", flat=True
            )
        )

        def asked(image_id: int) -> int:  # an image never queued (its label imported): what it has
            return needed.get(image_id, labels[image_id][2])

        if what == "labels.json":
            body = [
                {
                    "image": im.id, "sha256": im.sha256, "original_name": im.original_name,
                    "label": labels[im.id][0], "votes": labels[im.id][1], "annotations": labels[im.id][2],
                    "needed": asked(im.id), "imported": im.id in imported, "is_audit": labels[im.id][3],
                    "reviewed": labels[im.id][4], "label_self_confidence": im.label_self_confidence,
                    "checked_label": names.get(im.checked_label_id),
                    "suspected_label": names.get(im.suspected_label_id),
                }
                for im in images
            ]  # fmt: skip
            response = HttpResponse(json.dumps(body, indent=1), content_type="application/json")
            response["Content-Disposition"] = f'attachment; filename="project-{project.id}-labels.json"'
            return response
        if what == "labels.zip":
            # Written to a temporary file (in memory up to 16 MB, then on disk) and streamed from it,
            # an image at a time: a pool of gigabytes was held whole in the web process's memory,
            # once per request (a security review).
            buf = tempfile.SpooledTemporaryFile(max_size=16 * 2**20)  # noqa: SIM115 - FileResponse closes it
            folders = class_folders(sorted({name for name, *_ in labels.values()}))
            with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_STORED) as zf:
                for im in images.iterator():
                    folder = folders[labels[im.id][0]]
                    name = zip_member_name(im.id, im.original_name, EXTENSIONS[im.format])
                    with (
                        default_storage.open(im.storage_key, "rb") as fh,
                        zf.open(f"{folder}/{name}", "w") as out,
                    ):
                        shutil.copyfileobj(fh, out, 2**20)
            buf.seek(0)
            response = FileResponse(buf, content_type="application/zip")
            response["Content-Disposition"] = f'attachment; filename="project-{project.id}-labels.zip"'
            return response
        writer = csv.writer(_Echo())

        def rows():
            yield writer.writerow(
                ["image", "sha256", "original_name", "label", "votes", "annotations", "needed", "imported",
                 "is_audit", "reviewed", "label_self_confidence", "checked_label", "suspected_label"]
            )  # fmt: skip
            for im in images.iterator():
                name, n, total, is_audit, reviewed = labels[im.id]
                k = asked(im.id)
                doubt = "" if im.label_self_confidence is None else f"{im.label_self_confidence:.4f}"
                yield writer.writerow(
                    [im.id, im.sha256, _cell(im.original_name), _cell(name), n, total, k, int(im.id in imported),
                     int(is_audit), int(reviewed), doubt, _cell(names.get(im.checked_label_id, "")),
                     _cell(names.get(im.suspected_label_id, ""))]
                )  # fmt: skip

        response = StreamingHttpResponse(rows(), content_type=CSV_TYPE)
        response["Content-Disposition"] = f'attachment; filename="project-{project.id}-labels.csv"'
        return response

    def _predictions(self, project):
        writer = csv.writer(_Echo())
        qs = (
            Image.objects.filter(project=project, predicted_label__isnull=False)
            .order_by("id")
            .values_list(
                "id", "original_name", "predicted_label__name", "confidence", "uncertainty", "predicted_by"
            )
        )

        def rows():
            yield writer.writerow(
                ["image", "original_name", "predicted_label", "confidence", "uncertainty", "model_version"]
            )
            for row in qs.iterator():
                yield writer.writerow([_cell(v) for v in row])

        response = StreamingHttpResponse(rows(), content_type=CSV_TYPE)
        response["Content-Disposition"] = f'attachment; filename="project-{project.id}-predictions.csv"'
        return response
