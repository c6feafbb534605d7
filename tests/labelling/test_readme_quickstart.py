"""The README's ML engineer quick start runs as written, against a live server."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

from labelling.models import Annotation, Image, Job, Project
from tests.factories import image_bytes, zip_bytes

ROOT = Path(__file__).resolve().parents[2]


def quickstart_script() -> str:
    readme = (ROOT / "README.md").read_text()
    section = readme.split("## ML engineer quick start", 1)[1]
    return re.search(r"```sh\n(.*?)```", section, re.S).group(1)


@pytest.mark.django_db(transaction=True)
def test_quickstart_commands_work(live_server, redis_server, users, tmp_path):
    assert shutil.which("curl"), "curl is needed"
    (tmp_path / "shoe1.png").write_bytes(image_bytes("PNG", seed=1))
    (tmp_path / "shoe2.jpg").write_bytes(image_bytes("JPEG", seed=2))
    (tmp_path / "shoes.zip").write_bytes(zip_bytes({"a.png": image_bytes(seed=3)}))
    script = quickstart_script()
    script = re.sub(
        r"^BASE=.*$",
        f"BASE={live_server.url}; USER=erin-engineer; PASSWORD=pw-for-tests",
        script,
        count=1,
        flags=re.M,
    )
    done = subprocess.run(
        ["bash", "-euo", "pipefail", "-c", script], cwd=tmp_path, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr[-3000:] + done.stdout[-2000:]
    project = Project.objects.get(name="Shoes")
    assert project.label_budget == 500 and project.cycle_every == 20
    assert Image.objects.filter(project=project).count() == 2
    assert set(Job.objects.filter(project=project).values_list("kind", flat=True)) == {
        "import_zip",
        "pretrain",
    }
    assert (tmp_path / "labels.csv").read_text().startswith("image,")
    seeded = Annotation.objects.get(image__project=project)  # the seed label, imported
    assert seeded.imported and seeded.label.name == "boot" and seeded.image.original_name == "shoe1.png"
    assert "shoe1.png,boot" in (tmp_path / "labels.csv").read_text()
