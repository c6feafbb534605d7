"""`manage.py rundemo` (what `make run` calls): the whole service on one machine, with a demo project.

Migrates, creates demo users, starts the embedded Redis (unless REDIS_URL is set), one Celery
worker and the web server on 127.0.0.1:8000, and has the worker import the demo pool: 10,000
Fashion-MNIST images with reference labels when Debian's dataset-fashion-mnist is installed,
scikit-learn's digits otherwise. Ctrl-C (or SIGTERM, as a process manager sends) stops everything
it started.
"""

from __future__ import annotations

import json
import os
import secrets
import signal
import subprocess
import sys
import time
from pathlib import Path

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.core.management.base import BaseCommand

from labelling.models import Project, Role
from labelling.models.job import JobKind
from labelling.services.jobs import job_create
from labelling.services.projects import membership_set, project_create
from workers import embedded_redis
from workers.jobs import imports

DEMO_USERS = [("admin", Role.ADMIN), ("engineer", Role.ENGINEER), ("annotator", Role.ANNOTATOR)]


def demo_logins(path: Path) -> dict[str, str]:
    """Random passwords made once per machine and kept in VAR_DIR (dev only, printed at start)."""
    if path.exists():
        return json.loads(path.read_text())
    logins = {name: secrets.token_urlsafe(9) for name, _ in DEMO_USERS}
    path.write_text(json.dumps(logins, indent=2))
    path.chmod(0o600)
    return logins


def _interrupt(signum, frame) -> None:
    raise KeyboardInterrupt


class Command(BaseCommand):
    help = "Run the service with a demo project: embedded Redis, a worker and the web server."

    def add_arguments(self, parser):
        parser.add_argument("--addr", default="127.0.0.1:8000", help="where the web server listens")
        parser.add_argument("--limit", type=int, default=10_000, help="demo pool size")
        parser.add_argument(
            "--pretrain-minutes",
            type=float,
            default=float(os.environ.get("PRETRAIN_MINUTES", 2.0)),  # the demo's own default: 2
            help="demo pretraining budget (default: PRETRAIN_MINUTES if set, else 2)",
        )

    def handle(self, *args, addr: str, limit: int, pretrain_minutes: float, **options):
        self.pretrain_minutes = pretrain_minutes
        # SIGTERM stops the service like Ctrl-C; by default it would end this process alone and
        # leave the worker, the web server and Redis running.
        signal.signal(signal.SIGTERM, _interrupt)
        var = Path(settings.VAR_DIR)
        var.mkdir(parents=True, exist_ok=True)
        call_command("migrate", interactive=False, verbosity=0)
        self.stdout.write("Database migrated.")
        logins = self._users(var)
        children: list[subprocess.Popen] = []
        redis_proc = None
        # A local dev server: plain HTTP cookies and static files straight from the apps, but DEBUG
        # stays off unless asked for (tracebacks are for developers; it also costs throughput).
        env = {**os.environ, "DEV_SERVER": "1", "PYTHONUNBUFFERED": "1"}
        try:
            if not settings.REDIS_URL:
                redis_proc = embedded_redis.start(settings.REDIS_SOCKET)
                self.stdout.write(f"Embedded Redis on {settings.REDIS_SOCKET}.")
            # Two workers: one for every job, one for the quick ones alone (retrains annotators wait
            # on), so that a long pretraining or import never holds a project's next round.
            for name, queues in (("demo", []), ("quick", ["-Q", "quick"])):
                children.append(
                    subprocess.Popen(
                        [
                            sys.executable,
                            "-m",
                            "celery",
                            "-A",
                            "workers",
                            "worker",
                            "--loglevel",
                            "INFO",
                            "--concurrency",
                            "1",
                            "--hostname",
                            f"{name}@%h",
                            *queues,
                        ],
                        env=env,
                    )  # fmt: skip
                )
            project, created = self._project(limit)
            children.append(
                subprocess.Popen([sys.executable, "manage.py", "runserver", addr, "--noreload"], env=env)
            )
            self._banner(addr, logins, project, created)
            while all(child.poll() is None for child in children):
                time.sleep(0.5)
            self.stderr.write("A process of the service stopped; shutting the rest down.")
        except KeyboardInterrupt:
            self.stdout.write("\nStopping...")
        finally:
            for child in children:
                if child.poll() is None:
                    child.send_signal(signal.SIGTERM)
            for child in children:
                try:
                    child.wait(15)
                except subprocess.TimeoutExpired:
                    child.kill()
            embedded_redis.stop(redis_proc)
            self.stdout.write("Stopped.")

    def _users(self, var: Path) -> dict[str, str]:
        logins = demo_logins(var / "demo-logins.json")
        User = get_user_model()
        for name, _role in DEMO_USERS:
            user, _ = User.objects.get_or_create(username=name)
            user.set_password(logins[name])
            user.is_staff = user.is_superuser = name == "admin"
            user.save()
        return logins

    def _project(self, limit: int) -> tuple[Project, bool]:
        dataset = "fashion-mnist" if imports.FASHION_MNIST_DIR.exists() else "digits"
        name = f"Demo: {'Fashion-MNIST' if dataset == 'fashion-mnist' else 'digits'}"
        project = Project.objects.filter(name=name).first()
        if project is not None:
            return project, False
        User = get_user_model()
        project = project_create(
            name=name,
            labels=imports.DATASETS[dataset],
            created_by=User.objects.get(username="admin"),
            description=f"{dataset} images, imported by the Celery worker, with hidden reference labels.",
            instructions="Pick the class that best describes the garment or digit. Skip if unsure.",
            label_budget=2000,
            target_accuracy=0.85,
        )
        for name_, role in DEMO_USERS[1:]:
            membership_set(project=project, user=User.objects.get(username=name_), role=role)
        job_create(
            project=project,
            kind=JobKind.IMPORT_DATASET,
            params={
                "dataset": dataset,
                "limit": limit,
                "with_reference_labels": True,
                # Then a short self-supervised pretraining, embedding and the first batch to label.
                "then": {"kind": "pretrain", "params": {"max_minutes": self.pretrain_minutes}},
            },
        )
        return project, True

    def _banner(self, addr: str, logins: dict[str, str], project: Project, created: bool) -> None:
        lines = [
            "",
            "=" * 64,
            f"  Labelling service: http://{addr}/",
            f"  API docs:          http://{addr}/api/docs/",
            f"  Demo project:      {project.name} (id {project.id})"
            + ("  — the worker imports its images, then pretrains (a few minutes)" if created else ""),
            "  Logins (dev only):",
            *[f"    {name:<10} {logins[name]}   ({role})" for name, role in DEMO_USERS],
            "  Ctrl-C stops everything.",
            "=" * 64,
            "",
        ]
        self.stdout.write("\n".join(lines))
