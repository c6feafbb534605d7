"""`manage.py import_images PROJECT PATH`: every image file below a folder, with a progress bar."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from labelling.models import LabelClass
from labelling.services.images import IngestItem, pool_image_ingest
from labelling.services.text import nfc
from labelling.services.training import images_added
from workers.management.commands._shared import TqdmProgress, project_lookup


class Command(BaseCommand):
    help = "Import every file below PATH into a project's pool; each file is validated by its content."

    def add_arguments(self, parser):
        parser.add_argument("project", help="project id or name")
        parser.add_argument("path", type=Path)
        parser.add_argument(
            "--reference-labels-from-folders",
            action="store_true",
            help="use each file's first sub-folder name as its hidden reference label (evaluation data)",
        )

    def handle(self, *args, project: str, path: Path, reference_labels_from_folders: bool, **options):
        target = project_lookup(project)
        if target is None:
            raise CommandError(f"no project {project!r}")
        if not path.is_dir():
            raise CommandError(f"{path} is not a folder")
        files = sorted(p for p in path.rglob("*") if p.is_file() and not p.name.startswith("."))
        classes = {nfc(lc.name): lc for lc in LabelClass.objects.filter(project=target)}
        unmatched: Counter[str] = Counter()  # folders named like no label: their images get none
        counts: Counter[str] = Counter()
        bar = TqdmProgress(total=len(files))
        problems = []
        try:
            for i, file in enumerate(files):
                rel = file.relative_to(path)
                reference = None
                if reference_labels_from_folders and len(rel.parts) > 1:
                    reference = classes.get(nfc(rel.parts[0]))  # a Mac's folder names are in NFD
                    if reference is None:
                        unmatched[rel.parts[0]] += 1
                result = pool_image_ingest(
                    project=target,
                    item=IngestItem(name=str(rel), data=file.read_bytes(), reference_label=reference),
                )
                counts[result.status] += 1
                if result.status == "rejected":
                    problems.append(f"  {rel}: {result.reason}")
                bar((i + 1) / max(len(files), 1))
        finally:
            bar.close()
        if counts["stored"]:
            images_added(target)  # a project with an encoder embeds them in its next retrain
        for line in problems[:50]:
            self.stderr.write(line)
        for folder, count in sorted(unmatched.items()):
            self.stderr.write(
                f"  folder {folder!r} names no label of the project: its {count} images have no reference label"
            )
        self.stdout.write(
            self.style.SUCCESS(
                f"{counts['stored']} stored, {counts['duplicate']} duplicates, {counts['rejected']} rejected "
                f"into project {target.name!r} (id {target.id})."
            )
        )
