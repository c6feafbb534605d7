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


def _settings(var_dir: Path, **extra: str) -> dict:
    """A few production settings as a process started with this environment reads them."""
    import json

    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "labelling.settings",
        "DEBUG": "0",
        "SECRET_KEY": "x" * 60,
        "VAR_DIR": str(var_dir),
        **extra,
    }
    code = (
        "import json, django; django.setup(); from django.conf import settings as s;"
        "print(json.dumps({'static': str(s.STATIC_ROOT), 'proxy': getattr(s, 'SECURE_PROXY_SSL_HEADER', None),"
        "'health': s.DATABASES['default'].get('CONN_HEALTH_CHECKS')}))"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_production_settings_a_deployment_review_found_wrong(tmp_path):
    # Static files were collected under VAR_DIR: the image's build step put them in /app/var, the
    # compose file ran it with VAR_DIR=/data/var, and every CSS and JS file was a 404.
    assert _settings(tmp_path)["static"] == str(ROOT / "staticfiles")
    # X-Forwarded-Proto was trusted from any client, behind a proxy or not.
    assert _settings(tmp_path)["proxy"] is None
    assert _settings(tmp_path, BEHIND_TLS_PROXY="1")["proxy"] == ["HTTP_X_FORWARDED_PROTO", "https"]
    # PostgreSQL connections are kept for a minute and checked before reuse (a restart of the
    # database made each gunicorn thread's next request a 500).
    assert _settings(tmp_path, DATABASE_URL="postgres://u:p@localhost:5432/x")["health"] is True
