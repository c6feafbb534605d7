"""`manage.py check --deploy` with production settings reports nothing."""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def check_deploy(var_dir: Path, secret_key: str | None) -> subprocess.CompletedProcess:
    """`manage.py check --deploy` (warnings fail) with production settings from the environment;
    ``secret_key`` None leaves SECRET_KEY unset."""
    env = {
        **{k: v for k, v in os.environ.items() if k != "SECRET_KEY"},
        "DJANGO_SETTINGS_MODULE": "labelling.settings",
        "DEBUG": "0",
        "ALLOWED_HOSTS": "labelling.example.org",
        "SECURE_SSL_REDIRECT": "1",
        "SECURE_HSTS_SECONDS": "31536000",
        "SECURE_HSTS_INCLUDE_SUBDOMAINS": "1",
        "SECURE_HSTS_PRELOAD": "1",
        "VAR_DIR": str(var_dir),
    }
    if secret_key is not None:
        env["SECRET_KEY"] = secret_key
    return subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
        cwd=ROOT, env=env, capture_output=True, text=True,
    )  # fmt: skip


def test_check_deploy_is_clean_with_production_settings(tmp_path):
    done = check_deploy(tmp_path, secrets.token_urlsafe(50))
    assert done.returncode == 0, done.stdout + done.stderr
    assert "no issues" in done.stdout


def test_an_empty_secret_key_stops_the_service_from_starting(tmp_path):
    """docker-compose passes SECRET_KEY="" when none is exported: every command refuses to run
    (Django alone would start and answer each request with a 500)."""
    done = check_deploy(tmp_path, "")
    assert done.returncode != 0
    assert "SECRET_KEY is set but empty" in done.stderr
