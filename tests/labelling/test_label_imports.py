"""Labels made elsewhere, imported: matched by hash, id or file name; all rows or none; they train
and export like labels but spend no budget, leave the queue and count in no annotator's figures."""

from __future__ import annotations

import csv
import io

import numpy as np
import pytest

from labelling.models import Annotation, AnnotationCount, EncoderVersion, Image, Job, QueueItem
from labelling.models.image import ImageStatus
from labelling.models.queue import QueueState
from labelling.selectors.dashboard import annotator_stats, budget_state
from tests.factories import image_bytes, pool, project_with_members, queue_round

pytestmark = pytest.mark.django_db


def _import(client, project, **kwargs):
    return client.post(f"/api/projects/{project.id}/annotations/import", **kwargs)


def _labels(project) -> dict[str, int]:
    return {lc.name: lc.id for lc in project.label_classes.all()}


def test_rows_match_by_hash_id_or_name_and_label_the_images(client_for, users, project):
    images = pool(project, 5)
    queue_round(project, images[3:])  # two of them are queued for annotators
    names = list(_labels(project))
    engineer = client_for(users["engineer"])
    rows = [
        {"sha256": images[0].sha256.upper(), "label": names[0]},  # a hash in any case
        {"image": images[1].id, "label": names[1]},
        {"original_name": images[2].original_name, "label": names[2]},
        {"image": str(images[3].id), "label": str(_labels(project)[names[0]])},  # a label's id
        {"image": images[3].id, "label": names[0]},  # the same again: once
    ]
    r = _import(engineer, project, data={"labels": rows}, format="json")
    assert r.status_code == 200, r.content
    assert r.json() == {"rows": 5, "labelled": 4, "updated": 0, "unchanged": 0, "retrain_job": None}
    stored = {a.image_id: a for a in Annotation.objects.all()}
    assert {i: stored[i].label.name for i in stored} == {
        images[0].id: names[0], images[1].id: names[1], images[2].id: names[2], images[3].id: names[0]
    }  # fmt: skip
    assert all(
        a.imported and a.annotator == users["engineer"] and a.assignment is None for a in stored.values()
    )
    assert Image.objects.filter(status=ImageStatus.LABELLED).count() == 4
    # The queued image that got a label left the queue; the other one is still there.
    assert QueueItem.objects.get(image=images[3]).state == QueueState.REMOVED
    assert QueueItem.objects.get(image=images[4]).state == QueueState.OPEN
    # No budget spent, no annotator figures; the annotations list says which labels were imported.
    project.refresh_from_db()
    assert budget_state(project)["labels_used"] == 0 and not AnnotationCount.objects.exists()
    assert annotator_stats(project) == [] and project.imported_labels == 4
    listed = engineer.get(f"/api/projects/{project.id}/annotations").json()["results"]
    assert len(listed) == 4 and all(a["imported"] for a in listed)
    # Training reads them as labels.
    from workers.jobs.training import pool_labels

    ids = np.array([im.id for im in images])
    train, _ = pool_labels(project, ids)
    assert (train >= 0).tolist() == [True, True, True, True, False]


def test_one_bad_row_refuses_the_import_with_every_problem_listed(client_for, users, project):
    images = pool(project, 3)
    other = project_with_members(admin=users["admin"])
    foreign = pool(other, 1, seed=7)[0]
    images[2].status = ImageStatus.FLAGGED
    images[2].save()
    names = list(_labels(project))
    rows = [
        {"image": images[0].id, "label": names[0]},  # fine
        {"image": images[1].id, "label": "no such label"},
        {"image": foreign.id, "label": names[0]},  # another project's image
        {"sha256": "0" * 64, "label": names[0]},
        {"label": names[0]},
        {"image": images[0].id},
        {"image": images[0].id, "label": names[1]},  # row 1 says otherwise
        {"image": images[2].id, "label": names[0]},  # flagged
        {"image": "9" * 40, "label": names[0]},  # past any id column
        "not a row",
    ]
    r = _import(client_for(users["engineer"]), project, data={"labels": rows}, format="json")
    assert r.status_code == 400, r.content
    error = r.json()["error"]
    assert error["code"] == "bad_rows" and "9 of 10 rows refused, nothing imported" in error["message"]
    codes = [(p["row"], p["code"]) for p in error["details"]["problems"]]
    assert codes == [
        (2, "unknown_label"), (3, "unknown_image"), (4, "unknown_image"), (5, "no_image"), (6, "no_label"),
        (7, "conflicting_rows"), (8, "image_flagged"), (9, "unknown_image"), (10, "invalid_row"),
    ]  # fmt: skip
    assert not Annotation.objects.exists() and Image.objects.filter(status=ImageStatus.LABELLED).count() == 0


def test_bad_bodies_and_files_are_400s(client_for, users, project):
    pool(project, 1)
    engineer = client_for(users["engineer"])
    cases = [
        dict(data={"labels": []}, format="json"),
        dict(data={"labels": "x"}, format="json"),
        dict(data={"rows": []}, format="json"),
        dict(data={"labels": [], "extra": 1}, format="json"),
        dict(data={"file": io.BytesIO(b"\xff\xfe\x00bad")}, format="multipart"),
        dict(data={"file": io.BytesIO(b"name,class_name\na.png,cat\n")}, format="multipart"),
        dict(data={"file": io.BytesIO(b'{"labels": [')}, format="multipart"),
        dict(data={"file": io.BytesIO(b"image,label\n1," + b"x" * 200_000 + b"\n")}, format="multipart"),
        dict(data={"file": io.BytesIO(b'image,label\n"1,cat\n')}, format="multipart"),  # unclosed quote
    ]
    for case in cases:
        r = _import(engineer, project, **case)
        assert r.status_code == 400, (case, r.content)
        assert r.json()["error"]["code"] in ("no_rows", "unknown_field", "bad_file", "bad_rows"), r.json()
    assert not Annotation.objects.exists()
    from labelling.services import label_imports

    too_many = [{"image": 1, "label": "x"}] * (label_imports.MAX_ROWS + 1)
    r = _import(engineer, project, data={"labels": too_many}, format="json")
    assert r.status_code == 400 and r.json()["error"]["code"] == "too_many_rows"


def test_annotators_cannot_import(client_for, users, project):
    image = pool(project, 1)[0]
    r = _import(
        client_for(users["annotator"]),
        project,
        data={"labels": [{"image": image.id, "label": "x"}]},
        format="json",
    )
    assert r.status_code == 403 and not Annotation.objects.exists()


def test_labels_csv_exported_from_one_project_imports_into_another(client_for, users, project):
    # Project A labelled by its annotator through the queue (one label starts with '=', which the
    # export quotes against spreadsheet formulas); the same files uploaded to project B; A's
    # labels.csv imported into B as it is: B's images get A's labels, matched by content hash.
    from labelling.services.projects import label_add

    weird = label_add(project=project, name="=sum")
    project.audit_fraction = 0.0
    project.save()
    images = pool(project, 4)
    queue_round(project, images)
    annotator = client_for(users["annotator"])
    chosen = list(_labels(project).values())[:3] + [weird.id]
    for label_id in chosen:
        nxt = annotator.get(f"/api/projects/{project.id}/queue/next").json()["assignment"]
        assert annotator.post(f"/api/assignments/{nxt['id']}/submit", {"label": label_id}).status_code == 201
    engineer = client_for(users["engineer"])
    exported = b"".join(engineer.get(f"/api/projects/{project.id}/export/labels.csv").streaming_content)
    assert b"'=sum" in exported

    b = project_with_members(admin=users["admin"], engineer=users["engineer"], labels=list(_labels(project)))
    for i in range(4):  # the same files, in another order, under other names
        from labelling.services.images import IngestItem, pool_image_ingest

        pool_image_ingest(project=b, item=IngestItem(name=f"copy-{i}.png", data=image_bytes(seed=3 - i)))
    r = _import(engineer, b, data={"file": io.BytesIO(exported)}, format="multipart")
    assert r.status_code == 200, r.content
    assert r.json()["labelled"] == 4
    want = {row["sha256"]: row["label"] for row in csv.DictReader(io.StringIO(exported.decode()))}
    got = dict(Annotation.objects.filter(image__project=b).values_list("image__sha256", "label__name"))
    assert got == {sha: (name[1:] if name.startswith("'=") else name) for sha, name in want.items()}
    assert "=sum" in got.values()


def test_importing_again_changes_only_what_changed_and_a_project_with_an_encoder_retrains(
    client_for, users, project
):
    images = pool(project, 3)
    names = list(_labels(project))
    engineer = client_for(users["engineer"])
    rows = [{"image": im.id, "label": names[0]} for im in images]
    assert _import(engineer, project, data={"labels": rows}, format="json").json()["labelled"] == 3
    # A change to the project through an instance read before the import does not undo its count.
    from labelling.services.projects import project_update

    assert project.imported_labels == 0  # read before
    project_update(project=project, cycle_every=7)
    project.refresh_from_db()
    assert project.imported_labels == 3 and project.cycle_every == 7
    project.current_encoder = EncoderVersion.objects.create(project=project, artifact_key="e")
    project.save()
    rows[0]["label"] = names[1]
    body = _import(engineer, project, data={"labels": rows}, format="json").json()
    assert body["labelled"] == 0 and body["updated"] == 1 and body["unchanged"] == 2
    job = Job.objects.get(pk=body["retrain_job"])
    assert job.kind == "cycle" and job.params["trigger"] == "import"
    assert Annotation.objects.get(image=images[0]).label.name == names[1]
    project.refresh_from_db()
    assert project.imported_labels == 3  # an update adds none


def test_imported_labels_count_towards_the_retrain_trigger(client_for, users, project):
    # cycle_every 3: two imported labels and one given in the queue make three training labels.
    from labelling.services.queue import retrain_if_due

    project.audit_fraction, project.cycle_every = 0.0, 3
    project.current_encoder = EncoderVersion.objects.create(project=project, artifact_key="e")
    project.save()
    images = pool(project, 4)
    names = list(_labels(project))
    rows = [{"image": im.id, "label": names[0]} for im in images[:2]]
    assert (
        _import(client_for(users["engineer"]), project, data={"labels": rows}, format="json").status_code
        == 200
    )
    Job.objects.all().delete()  # the import's own retrain
    queue_round(project, images[2:])
    annotator = client_for(users["annotator"])
    nxt = annotator.get(f"/api/projects/{project.id}/queue/next").json()["assignment"]
    assert (
        annotator.post(
            f"/api/assignments/{nxt['id']}/submit", {"label": _labels(project)[names[1]]}
        ).status_code
        == 201
    )
    retrain_if_due(project)
    assert Job.objects.filter(project=project, kind="cycle").count() == 1
    assert budget_state(project)["labels_used"] == 1


def test_the_dashboard_imports_a_csv_and_lists_a_refused_files_problems(users, project):
    from django.core.files.uploadedfile import SimpleUploadedFile
    from django.test import Client

    images = pool(project, 2)
    names = list(_labels(project))
    client = Client()
    client.force_login(users["admin"])
    url = f"/projects/{project.id}/dashboard/action"

    def send(text: str) -> str:
        upload = SimpleUploadedFile("seed.csv", text.encode(), content_type="text/csv")
        r = client.post(url, {"action": "import_labels", "file": upload}, follow=True)
        assert r.status_code == 200
        return r.content.decode()

    page = send(f"filename,class\n{images[0].original_name},{names[1]}\n{images[1].original_name},nope\n")
    assert "Row 2: no label &#x27;nope&#x27;" in page and "nothing imported" in page
    assert not Annotation.objects.exists()
    page = send(
        f"Filename;Class\r\n{images[0].original_name};{names[1]}\r\n"
    )  # other tools' names, ; and CRLF
    assert "1 images labelled from the file, 0 changed, 0 unchanged." in page
    assert Annotation.objects.get().label.name == names[1]
    assert 'id="import-labels"' in page and 'data-k="imported" data-n="1"' in page


def test_a_large_import_stays_within_the_databases_parameter_limits(client_for, users, project):
    # 40,000 rows by hash: more ids than SQLite's default build takes in one statement (32,766;
    # Debian's takes 250,000, so here this checks the chunked lookups and updates give the same).
    n = 40_000
    Image.objects.bulk_create(
        [Image(project=project, sha256=f"{i:064x}", storage_key=f"k/{i}", width=1, height=1, format="PNG")
         for i in range(n)],
        batch_size=5000,
    )  # fmt: skip
    names = list(_labels(project))
    rows = [{"sha256": f"{i:064x}", "label": names[i % 3]} for i in range(n)]
    r = _import(client_for(users["engineer"]), project, data={"labels": rows}, format="json")
    assert r.status_code == 200, r.content[:500]
    assert r.json()["labelled"] == n and Annotation.objects.filter(imported=True).count() == n
    assert Image.objects.filter(status=ImageStatus.LABELLED).count() == n


def test_a_json_body_past_the_request_limit_is_a_413_that_says_to_send_a_file(client_for, users, project):
    # 60,000 rows as a JSON body are over Django's 5 MB body limit: that was a 400 "the request could
    # not be understood".
    rows = [{"sha256": "a" * 64, "label": "cat" * 10}] * 60_000
    r = _import(client_for(users["engineer"]), project, data={"labels": rows}, format="json")
    assert r.status_code == 413, r.content[:300]
    assert r.json()["error"]["code"] == "too_large" and "as a file" in r.json()["error"]["message"]


def test_an_import_during_a_running_retrain_gets_the_next_one_when_it_finishes(client_for, users, project):
    # The running retrain may have read its labels before the import: the import's answer names it,
    # and when it finishes the next one is queued for the imported labels (they were never trained:
    # a review's finding). A retrain with no import during it queues none (below cycle_every).
    from datetime import timedelta

    from django.utils import timezone

    from labelling.services.training import retrain_for_changes_during

    project.current_encoder = EncoderVersion.objects.create(project=project, artifact_key="e")
    project.save()
    images = pool(project, 3)
    running = Job.objects.create(
        project=project, kind="cycle", state="running", started_at=timezone.now() - timedelta(minutes=1)
    )
    rows = [{"image": images[0].id, "label": list(_labels(project))[0]}]
    body = _import(client_for(users["engineer"]), project, data={"labels": rows}, format="json").json()
    assert body["retrain_job"] == running.id
    Job.objects.filter(pk=running.pk).update(state="succeeded", finished_at=timezone.now())
    running.refresh_from_db()
    follow = retrain_for_changes_during(running)
    assert follow is not None and follow.id != running.id and follow.kind == "cycle"
    assert follow.state == "queued" and follow.params["trigger"] == "import"
    Job.objects.filter(pk=follow.pk).update(state="succeeded", started_at=timezone.now())
    follow.refresh_from_db()
    assert retrain_for_changes_during(follow) is None
    assert Job.objects.filter(project=project, state="queued").count() == 0


def test_importing_a_held_image_takes_the_reservation_back(client_for, users, project):
    # The annotator holds an image; its label is imported: the reservation goes back at once (it
    # counted as held against the budget), and the annotator's label is refused as item_removed.
    from labelling.models import Assignment

    images = pool(project, 2)
    queue_round(project, images)
    annotator = client_for(users["annotator"])
    held = annotator.get(f"/api/projects/{project.id}/queue/next").json()["assignment"]
    rows = [{"image": held["image"]["id"], "label": list(_labels(project))[0]}]
    assert (
        _import(client_for(users["engineer"]), project, data={"labels": rows}, format="json").status_code
        == 200
    )
    assert Assignment.objects.get(pk=held["id"]).state == "released"
    r = annotator.post(
        f"/api/assignments/{held['id']}/submit", {"label": _labels(project)[list(_labels(project))[1]]}
    )
    assert r.status_code == 409 and r.json()["error"]["code"] == "item_removed"
    assert "imported its label" in r.json()["error"]["message"]
    assert Annotation.objects.filter(imported=False).count() == 0


def test_json_files_with_a_bom_other_tools_names_and_labels_in_another_case(client_for, users, project):
    # A JSON file as Notepad saves it (a UTF-8 byte-order mark), rows with other tools' key names,
    # and a label written in another case: all imported. In the export, an imported image asked
    # nobody for more labels (needed = its annotations), and says it was imported.
    import json

    project.annotations_per_image = 2
    project.save()
    images = pool(project, 2)
    rows = [{"Filename": images[0].original_name, "Class": "CAT"}, {"image_id": images[1].id, "label": "Dog"}]
    data = b"\xef\xbb\xbf" + json.dumps(rows).encode()
    engineer = client_for(users["engineer"])
    r = _import(engineer, project, data={"file": io.BytesIO(data)}, format="multipart")
    assert r.status_code == 200, r.content
    got = dict(Annotation.objects.values_list("image_id", "label__name"))
    assert got == {images[0].id: "cat", images[1].id: "dog"}
    exported = b"".join(engineer.get(f"/api/projects/{project.id}/export/labels.csv").streaming_content)
    rows = {int(r["image"]): r for r in csv.DictReader(io.StringIO(exported.decode()))}
    assert (
        rows[images[0].id]["annotations"],
        rows[images[0].id]["needed"],
        rows[images[0].id]["imported"],
    ) == ("1", "1", "1")
    listed = engineer.get(f"/api/projects/{project.id}/export/labels.json").json()
    assert all(r["imported"] is True and r["needed"] == 1 for r in listed)


def test_names_that_look_the_same_are_the_same_name(client_for, users, project):
    """NFC and NFD (a Mac's file names) spell "carré" two ways: a second label that looks like the
    first was accepted, and a row naming an image or a label one way missed the other."""
    import unicodedata

    from labelling.models import LabelClass
    from labelling.services.errors import InvalidInput
    from labelling.services.projects import label_add

    nfd = unicodedata.normalize("NFD", "carré")
    label = label_add(project=project, name=nfd)
    assert label.name == "carré"  # stored in NFC
    with pytest.raises(InvalidInput, match="already has a label"):
        label_add(project=project, name="carré")
    LabelClass.objects.filter(pk=label.pk).update(name=nfd)  # as stored before names were NFC
    with pytest.raises(InvalidInput, match="already has a label"):
        label_add(project=project, name="carré")
    image = pool(project, 1)[0]
    Image.objects.filter(pk=image.pk).update(original_name=unicodedata.normalize("NFD", "carré/1.png"))
    rows = [{"original_name": "carré/1.png", "label": "carré"}]
    body = _import(client_for(users["engineer"]), project, data={"labels": rows}, format="json")
    assert body.status_code == 200, body.content
    assert Annotation.objects.get(image=image).label_id == label.id
