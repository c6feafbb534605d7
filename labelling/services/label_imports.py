"""Labels made elsewhere, brought into a project: the seed a team already has (a spreadsheet, another
tool's export, this service's own labels.csv / labels.json from another project).

Each row names an image of the pool (by ``sha256``, ``image`` id or ``original_name``, in that order
of preference: a content hash also matches the same file uploaded to another project) and a label
(its name, in another case where only one label reads so, or its id); other tools' column and key
names are read as these (``COLUMN_ALIASES``). The rows are checked first, all of them: any bad row
refuses the whole import with every problem listed, and nothing is stored. Then, in one
transaction, each image gets an annotation by the importing engineer marked ``imported``: it
trains, exports and is checked by the label review like any label, but spends none of the budget
and counts in no annotator's rate or agreement. An image queued for annotators leaves the queue and
its reservations go back. A project with an encoder queues a retrain at once, or gets one right
after the retrain that is running (``retrain_for_changes_during``).
"""

from __future__ import annotations

import csv
import io
import json
import logging
import unicodedata
from dataclasses import dataclass

from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction
from django.db.models import F
from django.utils import timezone

from labelling.models import Annotation, Assignment, Image, Project, QueueItem
from labelling.models.image import ImageStatus
from labelling.models.queue import AssignmentState, QueueState
from labelling.services.errors import InvalidInput
from labelling.services.text import nfc

logger = logging.getLogger(__name__)

MAX_ROWS = 50_000
MAX_PROBLEMS_LISTED = 50
KEYS = ("sha256", "image", "original_name")  # how a row names its image, preferred first
IMPORT_FILE_MAX_BYTES = 20 * 1024 * 1024
# Column names other tools and spreadsheets use, read as ours (labels.csv's own are KEYS + label).
COLUMN_ALIASES = {"image_id": "image", "id": "image", "filename": "original_name", "file_name": "original_name",
                  "file": "original_name", "class": "label", "label_name": "label"}  # fmt: skip
# Ids per IN (...) list: SQLite refuses a statement with more than 32,766 parameters.
CHUNK = 5_000


def _chunks(values: list) -> list[list]:
    return [values[i : i + CHUNK] for i in range(0, len(values), CHUNK)]


def _shown(value: str) -> str:
    """A value quoted in a message, cut short (a row's cell can be 100 KB)."""
    return repr(value if len(value) <= 60 else value[:60] + "…")


@dataclass
class ImportResult:
    rows: int
    labelled: int  # images that got an imported label
    updated: int  # an earlier imported label of this engineer, changed
    unchanged: int  # the same label again (an import run twice), or one this engineer gave in the queue
    retrain_job_id: int | None

    def as_dict(self) -> dict:
        return {
            "rows": self.rows,
            "labelled": self.labelled,
            "updated": self.updated,
            "unchanged": self.unchanged,
            "retrain_job": self.retrain_job_id,
        }


def _text(value) -> str:
    """A cell as text; the apostrophe this service's CSV export puts before = + - @ (against
    spreadsheet formulas) comes off again, so its labels.csv imports as it was exported."""
    text = "" if value is None else nfc(str(value).strip())
    if len(text) > 1 and text[0] == "'" and text[1] in "=+-@\t\r":
        return text[1:]
    return text


def _image_ref(row) -> tuple[str, str] | None:
    """(key, value) naming the row's image: the first of KEYS it fills; a hash in lower case."""
    if not isinstance(row, dict):
        return None
    for key in KEYS:
        value = _text(row.get(key))
        if value:
            return key, value.lower() if key == "sha256" else value
    return None


def _keys(row):
    """A row's keys as ours: trimmed, lower case, other tools' names read as ours (JSON rows too)."""
    if not isinstance(row, dict):
        return row
    return {COLUMN_ALIASES.get(str(k).strip().lower(), str(k).strip().lower()): v for k, v in row.items()}


def _resolve(project: Project, rows: list) -> tuple[list[tuple[int, int]], list[dict]]:
    """[(image id, label id)] for the rows, and the problems found (row numbers from 1)."""
    rows = [_keys(row) for row in rows]
    labels = list(project.label_classes.values_list("id", "name"))
    by_name = {nfc(name): pk for pk, name in labels}  # names stored before they were kept in NFC too
    by_id = {str(pk): pk for pk, _ in labels}
    folded: dict[str, list[int]] = {}
    for pk, name in labels:
        folded.setdefault(nfc(name).casefold(), []).append(pk)
    by_folded = {name: pks[0] for name, pks in folded.items() if len(pks) == 1}  # "pullover": Pullover
    refs = [_image_ref(row) for row in rows]
    wanted: dict[str, set[str]] = {key: set() for key in KEYS}
    for ref in refs:
        if ref:
            wanted[ref[0]].add(ref[1])
    images = Image.objects.filter(project=project)
    by_sha: dict[str, int] = {}
    for part in _chunks(sorted(wanted["sha256"])):
        by_sha.update(images.filter(sha256__in=part).values_list("sha256", "id"))
    ids = [int(v) for v in wanted["image"] if v.isdigit() and len(v) <= 18]  # a bigint at most
    by_pk: dict[str, int] = {}
    for part in _chunks(ids):
        by_pk.update((str(pk), pk) for pk in images.filter(pk__in=part).values_list("id", flat=True))
    by_file: dict[str, list[int]] = {}
    # Names stored before they were kept in NFC may be in form D (a Mac's file names): asked for too.
    names = wanted["original_name"] | {unicodedata.normalize("NFD", v) for v in wanted["original_name"]}
    for part in _chunks(sorted(names)):
        for pk, name in images.filter(original_name__in=part).values_list("id", "original_name"):
            by_file.setdefault(nfc(name), []).append(pk)
    flagged = set(images.filter(status=ImageStatus.FLAGGED).values_list("id", flat=True))

    pairs: list[tuple[int, int]] = []
    problems: list[dict] = []
    first_label: dict[int, tuple[int, int]] = {}  # image -> (label, row) of its first row

    def problem(n: int, code: str, message: str) -> None:
        problems.append({"row": n, "code": code, "message": message})

    for n, (row, ref) in enumerate(zip(rows, refs, strict=True), start=1):
        if not isinstance(row, dict):
            problem(n, "invalid_row", "each row is an object with a label and sha256, image or original_name")
            continue
        label_text = _text(row.get("label"))
        if ref is None:
            problem(n, "no_image", "name the image by sha256, image (its id) or original_name")
            continue
        if not label_text:
            problem(n, "no_label", "the row has no label")
            continue
        key, value = ref
        if key == "sha256":
            image_id = by_sha.get(value)
        elif key == "image":
            image_id = by_pk.get(value)
        else:
            found = by_file.get(value, [])
            if len(found) > 1:
                problem(
                    n,
                    "ambiguous_image",
                    f"{len(found)} images of the pool are named {_shown(value)}; use sha256",
                )
                continue
            image_id = found[0] if found else None
        if image_id is None:
            problem(n, "unknown_image", f"no image of this project has {key} {_shown(value)}")
            continue
        # The name, else the name in another case (when only one label reads so), else an id.
        label_id = by_name.get(label_text) or by_folded.get(label_text.casefold()) or by_id.get(label_text)
        if label_id is None:
            problem(n, "unknown_label", f"no label {_shown(label_text)} in this project's label set")
            continue
        if image_id in flagged:
            problem(n, "image_flagged", f"image {image_id} is flagged; unflag it first (dashboard or API)")
            continue
        if image_id in first_label:
            earlier_label, earlier_row = first_label[image_id]
            if earlier_label != label_id:
                problem(n, "conflicting_rows", f"row {earlier_row} gives image {image_id} another label")
            continue  # the same image twice with the same label: once
        first_label[image_id] = (label_id, n)
        pairs.append((image_id, label_id))
    return pairs, problems


def _csv_rows(data: bytes) -> list[dict]:
    """The rows of a CSV whose first line names its columns, as dicts keyed by our column names."""
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise InvalidInput("the CSV is not UTF-8 text", code="bad_file") from None
    first_line = text.split("\n", 1)[0]
    # Commas, or what the header row is separated by where it has none: semicolons (spreadsheets in
    # locales with a decimal comma write those) or tabs.
    delimiter = next((d for d in ",;\t" if d in first_line), ",")
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter)
    try:
        header = [c.strip().lower() for c in next(reader, [])]
        columns = [COLUMN_ALIASES.get(c, c) for c in header]
        if "label" not in columns or not any(k in columns for k in KEYS):
            raise InvalidInput(
                "the CSV's first row names its columns: label, and sha256, image or original_name "
                f"(found: {', '.join(header) or 'none'})",
                code="bad_file",
            )
        rows = []
        for values in reader:
            if any(v.strip() for v in values):  # blank lines are no rows
                rows.append(dict(zip(columns, values, strict=False)))
            if len(rows) > MAX_ROWS:
                break  # labels_import refuses it, without reading the rest
        return rows
    except csv.Error as exc:
        raise InvalidInput(f"the CSV cannot be read: {exc}", code="bad_file") from None


def rows_from_file(data: bytes) -> list:
    """The rows of an uploaded file: JSON (``[...]`` or ``{"labels": [...]}``, labels.json as it is)
    or CSV with a header row (labels.csv as it is)."""
    data = data.removeprefix(b"\xef\xbb\xbf")  # a UTF-8 byte-order mark (Notepad, PowerShell)
    if data.lstrip()[:1] in (b"[", b"{"):
        try:
            body = json.loads(data)
        except (ValueError, RecursionError):
            raise InvalidInput("the file starts like JSON but is not valid JSON", code="bad_file") from None
        return body.get("labels") if isinstance(body, dict) else body
    return _csv_rows(data)


def labels_import(*, project: Project, user: AbstractBaseUser, rows: list) -> ImportResult:
    """Check every row, then store them all or none (see the module's docstring)."""
    if not isinstance(rows, list) or not rows:
        raise InvalidInput("send at least one row", code="no_rows")
    if len(rows) > MAX_ROWS:
        raise InvalidInput(f"over {MAX_ROWS:,} rows; at most {MAX_ROWS:,} per import", code="too_many_rows")
    pairs, problems = _resolve(project, rows)
    if problems:
        first = problems[0]
        raise InvalidInput(
            f"{len(problems):,} of {len(rows):,} rows refused, nothing imported; row {first['row']}: "
            f"{first['message']}",
            code="bad_rows",
            details={"problems": problems[:MAX_PROBLEMS_LISTED], "count": len(problems)},
        )
    labelled = updated = unchanged = 0
    with transaction.atomic():
        project = Project.objects.select_for_update().get(pk=project.pk)
        image_ids = [image_id for image_id, _ in pairs]
        mine = {
            a.image_id: a
            for part in _chunks(image_ids)
            for a in Annotation.objects.select_for_update().filter(image_id__in=part, annotator=user)
        }
        new = []
        for image_id, label_id in pairs:
            existing = mine.get(image_id)
            if existing is None:
                new.append(Annotation(image_id=image_id, annotator=user, label_id=label_id, imported=True))
            elif existing.label_id == label_id:
                unchanged += 1
            elif existing.imported:
                existing.label_id = label_id
                existing.save(update_fields=["label"])
                updated += 1
            else:  # a label this engineer gave in the queue stays theirs
                unchanged += 1
        Annotation.objects.bulk_create(new, batch_size=1000)
        labelled = len(new)
        for part in _chunks(image_ids):
            Image.objects.filter(pk__in=part, status=ImageStatus.UNLABELLED).update(
                status=ImageStatus.LABELLED
            )
            # Labelled now: nobody is asked for them; their reservations go back (they counted against
            # the budget), and a submit on one answers item_removed.
            items = QueueItem.objects.filter(image_id__in=part, state=QueueState.OPEN)
            Assignment.objects.filter(item__in=items, state=AssignmentState.ACTIVE).update(
                state=AssignmentState.RELEASED, finished_at=timezone.now()
            )
            items.update(state=QueueState.REMOVED)
        Project.objects.filter(pk=project.pk).update(imported_labels=F("imported_labels") + labelled)
    job_id = _queue_retrain(project) if labelled or updated else None
    return ImportResult(len(rows), labelled, updated, unchanged, job_id)


def _queue_retrain(project: Project) -> int | None:
    """A retrain on the imported labels when the project has an encoder (else pretraining comes
    first, and its first cycle uses them); a failure to queue it does not undo the import."""
    from labelling.services.training import training_job_request

    if project.current_encoder_id is None:
        return None
    try:
        job = training_job_request(project=project, kind="cycle", params={"trigger": "import"}, coalesce=True)
    except Exception:
        logger.exception("could not queue a retrain for project %s after an import", project.pk)
        return None
    return job.id
