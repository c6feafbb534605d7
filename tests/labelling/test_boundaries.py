"""The web path never loads the ML stack, and the API schema matches the code."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def test_importing_the_urlconf_and_views_loads_no_ml_library():
    code = (
        "import django, sys; django.setup();"
        "import labelling.urls, labelling.api.urls, labelling.web.views;"
        "from django.urls import resolve; resolve('/api/projects');"
        "print(json.dumps(sorted(m for m in ('torch', 'sklearn', 'faiss') if m in sys.modules)))"
    )
    out = subprocess.run(
        [sys.executable, "-c", "import json;" + code],
        cwd=ROOT,
        env={**os.environ, "DJANGO_SETTINGS_MODULE": "tests.settings"},
        capture_output=True,
        text=True,
        check=True,
    )
    assert json.loads(out.stdout.strip().splitlines()[-1]) == []


def test_schema_generates_without_warnings_and_validates():
    out = subprocess.run(
        [sys.executable, "manage.py", "spectacular", "--validate", "--fail-on-warn", "--file", os.devnull],
        cwd=ROOT,
        env={**os.environ, "DJANGO_SETTINGS_MODULE": "tests.settings"},
        capture_output=True,
        text=True,
    )
    assert out.returncode == 0, out.stderr[-3000:]


@pytest.mark.django_db
def test_schema_is_served_and_lists_every_api_route(client_for, users):
    from django.urls import get_resolver

    response = client_for(users["admin"]).get("/api/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json")
    assert response.status_code == 200
    schema = json.loads(response.content)
    paths = set(schema["paths"])
    api_routes = {
        "/api/" + re.sub(r"<\w+:(\w+)>", r"{\1}", str(p.pattern))
        for p in get_resolver().url_patterns[0].url_patterns
        if not str(p.pattern).startswith(("schema", "docs"))
    }
    assert api_routes <= paths, api_routes - paths
    # A job's body is one shape per kind, each with its own params (one untyped object before).
    schemas = schema["components"]["schemas"]
    body = schemas["JobCreateInputRequest"]
    assert body["discriminator"]["propertyName"] == "kind" and len(body["oneOf"]) == 7
    assert {"max_minutes", "method", "from_encoder"} <= set(schemas["PretrainParamsRequest"]["properties"])
    assert "consistency_steps" in schemas["CycleParamsRequest"]["properties"]

    # Each kind lists what it takes: a select no bald (it has no MC samples), a finetune no strategy,
    # a predict nothing (a review found them advertised and silently ignored).
    def enum(prop: dict) -> list[str]:
        return schemas[prop["$ref"].rsplit("/", 1)[1]]["enum"] if "$ref" in prop else prop["enum"]

    assert "bald" not in enum(schemas["SelectParamsRequest"]["properties"]["strategy"])
    assert "bald" in enum(schemas["CycleParamsRequest"]["properties"]["strategy"])
    assert set(schemas["FinetuneParamsRequest"]["properties"]) == {"seed", "consistency_steps"}
    assert "params" not in schemas["PredictJobInputRequest"]["properties"]  # it takes none
    assert "params" not in schemas["ForecastJobInputRequest"]["properties"]
    # Every list says what page_size it takes (the server answers 400 past 500).
    for path, ops in schema["paths"].items():
        for name, op in ops.items():
            for parameter in op.get("parameters", []) if isinstance(op, dict) else []:
                if parameter["name"] == "page_size":
                    assert parameter["schema"].get("maximum") == 500, (path, name)
    # A new project's labels: names or objects.
    labels = schemas["ProjectCreateInputRequest"]["properties"]["labels"]["items"]
    assert [v["type"] for v in labels["oneOf"]] == ["string", "object"]


def test_compose_file_is_valid():
    from tests.conftest import require

    exe = "/usr/bin/docker-compose"
    require(Path(exe).exists(), "Debian's docker-compose validates docker-compose.yml")
    out = subprocess.run(
        [exe, "-f", str(ROOT / "docker-compose.yml"), "config", "-q"], capture_output=True, text=True
    )
    assert out.returncode == 0, out.stderr


def test_the_compose_files_gunicorn_settings_load():
    """The web service's command points gunicorn at labelling/gunicorn_conf.py: gunicorn accepts it."""
    import os
    import sys

    assert "-c python:labelling.gunicorn_conf" in (ROOT / "docker-compose.yml").read_text()
    out = subprocess.run(
        [sys.executable, "-m", "gunicorn", "--check-config", "-c", "python:labelling.gunicorn_conf", "labelling.wsgi"],
        capture_output=True, text=True, cwd=ROOT, env={**os.environ, "GUNICORN_THREADS": "3"},
    )  # fmt: skip
    assert out.returncode == 0, out.stdout + out.stderr
