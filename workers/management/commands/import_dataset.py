"""`manage.py import_dataset PROJECT fashion-mnist|digits [--limit N] [--with-reference-labels]
[--admin USERNAME]`."""

from __future__ import annotations

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError

from labelling.models import Job, Role
from labelling.models.job import JobKind
from labelling.services.jobs import job_create
from labelling.services.projects import membership_set, project_create
from workers.jobs import imports
from workers.jobs.base import run_job
from workers.management.commands._shared import TqdmProgress, project_lookup


class Command(BaseCommand):
    help = (
        "Import a built-in dataset into a project's pool: Fashion-MNIST (Debian's dataset-fashion-mnist) "
        "or scikit-learn's digits. A missing project is created with the dataset's classes."
    )

    def add_arguments(self, parser):
        parser.add_argument("project", help="project id or name")
        parser.add_argument("dataset", choices=sorted(imports.DATASETS))
        parser.add_argument("--limit", type=int, default=None, help="import only the first N images")
        parser.add_argument(
            "--with-reference-labels",
            action="store_true",
            help="store the ground truth as hidden reference labels (for evaluation; never shown to annotators)",
        )
        parser.add_argument("--via-worker", action="store_true", help="enqueue for a Celery worker instead")
        parser.add_argument(
            "--admin",
            metavar="USERNAME",
            help="make this user an admin of the project (a project created without it gets the superusers)",
        )

    def handle(
        self,
        *args,
        project: str,
        dataset: str,
        limit: int | None,
        with_reference_labels: bool,
        via_worker: bool,
        admin: str | None = None,
        **options,
    ):
        if limit is not None and limit < 1:
            raise CommandError("--limit must be at least 1")
        user = None
        if admin is not None:
            user = get_user_model().objects.filter(username=admin).first()
            if user is None:
                raise CommandError(f"no user named {admin!r} (create one: manage.py createsuperuser)")
        target = project_lookup(project)
        if target is None:
            if project.isdigit():
                raise CommandError(f"no project with id {project}")
            target = project_create(name=project, labels=imports.DATASETS[dataset], created_by=user)
            self.stdout.write(f"Created project {target.name!r} (id {target.id}) with the {dataset} classes.")
            if user is None:  # nobody could open it (it was made with no member at all)
                supers = list(get_user_model().objects.filter(is_superuser=True, is_active=True))
                for su in supers:
                    membership_set(project=target, user=su, role=Role.ADMIN)
                self.stdout.write(
                    f"Admins: {', '.join(su.username for su in supers)} (every superuser)."
                    if supers
                    else self.style.WARNING(
                        "Nobody is a member yet: run this again with --admin USERNAME to let someone in."
                    )
                )
        elif user is not None:
            membership_set(project=target, user=user, role=Role.ADMIN)
            self.stdout.write(f"{user.username} is an admin of project {target.id}.")
        params = {"dataset": dataset, "limit": limit, "with_reference_labels": with_reference_labels}
        if via_worker:
            job = job_create(project=target, kind=JobKind.IMPORT_DATASET, params=params)
            self.stdout.write(f"Enqueued job {job.id}; follow it at /api/jobs/{job.id}")
            return
        job = Job.objects.create(project=target, kind=JobKind.IMPORT_DATASET, params=params)
        bar = TqdmProgress(total=limit or (60_000 if dataset == "fashion-mnist" else 1797))
        try:
            run_job(job.id, lambda j, _progress: imports.import_dataset(j, bar))
        finally:
            bar.close()
        job.refresh_from_db()
        if job.state != "succeeded":
            raise CommandError(f"import failed: {job.error.splitlines()[0] if job.error else job.state}")
        self.stdout.write(self.style.SUCCESS(f"{job.message} into project {target.name!r} (id {target.id})."))
