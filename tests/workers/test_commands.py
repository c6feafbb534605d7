"""The import commands a user runs by hand."""

from __future__ import annotations

import pytest
from django.core.management import CommandError, call_command

from labelling.models import Image, Project
from tests.factories import image_bytes

pytestmark = pytest.mark.django_db


def test_import_dataset_creates_the_project_and_imports_digits_with_reference_labels(capsys):
    call_command("import_dataset", "Digits demo", "digits", "--limit", "25", "--with-reference-labels")
    project = Project.objects.get(name="Digits demo")
    assert [lc.name for lc in project.label_classes.all()] == [str(i) for i in range(10)]
    assert project.images.count() == 25
    assert project.images.filter(reference_label__isnull=True).count() == 0
    assert "25 images of digits stored" in capsys.readouterr().out
    # Running it again stores nothing twice.
    call_command("import_dataset", str(project.id), "digits", "--limit", "25")
    assert project.images.count() == 25
    assert project.jobs.filter(state="succeeded").count() == 2


def test_import_dataset_refuses_a_bad_limit():
    with pytest.raises(CommandError, match="--limit"):
        call_command("import_dataset", "x", "digits", "--limit", "0")


def test_import_images_walks_a_folder_tree(tmp_path, users, project, capsys):
    (tmp_path / "cat").mkdir()
    (tmp_path / "dog" / "deep").mkdir(parents=True)
    (tmp_path / "cat" / "1.png").write_bytes(image_bytes(seed=1))
    (tmp_path / "dog" / "deep" / "2.jpg").write_bytes(image_bytes("JPEG", seed=2))
    (tmp_path / "notes.txt").write_text("not an image")
    call_command("import_images", str(project.id), str(tmp_path), "--reference-labels-from-folders")
    out = capsys.readouterr()
    assert "2 stored, 0 duplicates, 1 rejected" in out.out
    assert "notes.txt" in out.err
    refs = dict(Image.objects.values_list("original_name", "reference_label__name"))
    assert refs == {"cat/1.png": "cat", "dog/deep/2.jpg": "dog"}


def test_import_images_needs_an_existing_project(tmp_path):
    with pytest.raises(CommandError, match="no project"):
        call_command("import_images", "nope", str(tmp_path))


def test_a_project_import_dataset_creates_has_an_admin(users, capsys):
    # A scale review: the project it created had no member at all, so nobody could open it.
    from django.contrib.auth import get_user_model

    from labelling.selectors.access import role_in

    call_command("import_dataset", "Nobody's", "digits", "--limit", "3")
    assert "Nobody is a member yet: run this again with --admin USERNAME" in capsys.readouterr().out
    call_command("import_dataset", "Nobody's", "digits", "--limit", "3", "--admin", "erin-engineer")
    assert role_in(users["engineer"], Project.objects.get(name="Nobody's")) == "admin"
    root = get_user_model().objects.create_superuser("root", password="pw-for-tests")
    call_command("import_dataset", "Supers", "digits", "--limit", "3")
    assert "Admins: root (every superuser)" in capsys.readouterr().out
    assert role_in(root, Project.objects.get(name="Supers")) == "admin"
    call_command("import_dataset", "Mine", "digits", "--limit", "3", "--admin", "ann-annotator")
    mine = Project.objects.get(name="Mine")
    assert role_in(users["annotator"], mine) == "admin" and role_in(root, mine) is None
    with pytest.raises(CommandError, match="no user named 'ghost'"):
        call_command("import_dataset", "x", "digits", "--admin", "ghost")


def test_import_images_matches_a_macs_folder_names_and_says_which_folders_name_no_label(
    tmp_path, users, project, capsys
):
    """A folder copied from a Mac names "carré" in NFD (e + combining accent): it matched no label
    in NFC, and its images silently got no reference label."""
    import unicodedata

    from labelling.services.projects import label_add

    label_add(project=project, name="carré")
    (tmp_path / unicodedata.normalize("NFD", "carré")).mkdir()
    (tmp_path / "zz").mkdir()
    (tmp_path / unicodedata.normalize("NFD", "carré") / "1.png").write_bytes(image_bytes(seed=1))
    (tmp_path / "zz" / "2.png").write_bytes(image_bytes(seed=2))
    call_command("import_images", str(project.id), str(tmp_path), "--reference-labels-from-folders")
    err = capsys.readouterr().err
    refs = dict(Image.objects.values_list("original_name", "reference_label__name"))
    assert refs == {"carré/1.png": "carré", "zz/2.png": None}  # stored in NFC
    assert "folder 'zz' names no label of the project: its 1 images have no reference label" in err
