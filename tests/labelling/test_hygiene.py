"""Hygiene: secrets come only from the environment, and user files are served with nosniff."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.factories import api_world
from tests.labelling.test_deploy_check import check_deploy

ROOT = Path(__file__).resolve().parents[2]


def _django(code: str, **env: str) -> subprocess.CompletedProcess:
    full = {**os.environ, "DJANGO_SETTINGS_MODULE": "labelling.settings", **env}
    for name in ("SECRET_KEY", "DATABASE_URL", "REDIS_URL", "AWS_STORAGE_BUCKET_NAME"):
        if name not in env:
            full.pop(name, None)
    return subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=full, capture_output=True, text=True)


def test_secrets_are_read_from_the_environment(tmp_path):
    done = _django(
        "from django.conf import settings as s; print(s.SECRET_KEY, s.DATABASES['default']['HOST'],"
        " s.CELERY_BROKER_URL)",
        SECRET_KEY="from-the-env-" + "x" * 50,
        DATABASE_URL="postgres://u:p@db.example:5432/n",
        REDIS_URL="redis://:pw@redis.example:6379/0",
        VAR_DIR=str(tmp_path),
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == [
        "from-the-env-" + "x" * 50,
        "db.example",
        "redis://:pw@redis.example:6379/0",
    ]


def test_without_secret_key_check_deploy_objects(tmp_path):
    """The dev fallback key is marked insecure, so a production check cannot pass with it."""
    done = check_deploy(tmp_path, secret_key=None)
    assert done.returncode != 0
    assert "security.W009" in done.stdout + done.stderr


def test_no_secret_is_written_into_the_code():
    """No key, password or token literal in settings, compose file or Dockerfile, only variables."""
    pattern = re.compile(
        r"(AKIA[0-9A-Z]{16}|-----BEGIN [A-Z ]*PRIVATE KEY-----|postgres(ql)?://[^:\s/]+:[^@\s$]+@"
        r"|(PASSWORD|SECRET|TOKEN)\w*\s*[:=]\s*['\"][^'\"$]{8,})"
    )
    files = [ROOT / "labelling" / "settings.py", ROOT / "docker-compose.yml", ROOT / "Dockerfile"]
    found = [
        f"{f.name}: {m.group(0)}"
        for f in files
        if f.exists()
        for line in f.read_text().splitlines()
        if not line.lstrip().startswith("#")
        for m in pattern.finditer(line.split(" #")[0])
    ]
    assert found == []


@pytest.mark.django_db
def test_user_files_are_served_with_nosniff(users, project, client_for):
    world = api_world(users=users, project=project)
    engineer = client_for(users["engineer"])
    urls = [
        f"/api/images/{world['image_id']}/file",
        f"/api/images/{world['image_id']}/thumbnail",
        f"/api/models/{world['model_id']}/download",
        *(f"/api/projects/{project.id}/export/{what}" for what in ("labels.csv", "labels.json", "labels.zip",
                                                                     "predictions.csv")),
    ]  # fmt: skip
    for url in urls:
        response = engineer.get(url)
        assert response.status_code == 200, url
        assert response["X-Content-Type-Options"] == "nosniff", url
    image = engineer.get(urls[0])
    assert image["Content-Type"] == "image/png"
    assert "sandbox" in image["Content-Security-Policy"]


def test_the_image_leaves_out_local_data_and_does_not_run_as_root():
    # A deployment review: `COPY . .` took a developer's .venv and var/ (the SQLite file, media,
    # demo logins with passwords) into the image, and the services ran as root.
    ignored = (ROOT / ".dockerignore").read_text().split()
    assert {".venv", "var/", ".env", ".git", "*.sqlite3"} <= set(ignored)
    users = [
        line.split()[1] for line in (ROOT / "Dockerfile").read_text().splitlines() if line.startswith("USER ")
    ]
    assert users and users[-1] not in ("root", "0")
