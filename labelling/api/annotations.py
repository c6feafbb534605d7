"""Labels, for engineers: the list, and labels made elsewhere imported. Annotators submit through
their assignments (labelling.api.queue)."""

from __future__ import annotations

from drf_spectacular.utils import extend_schema
from rest_framework import serializers
from rest_framework.response import Response
from rest_framework.views import APIView

from labelling.api.base import ListApi, guard_request_size, paginated
from labelling.models import Annotation, Role
from labelling.selectors.access import access_project
from labelling.services.errors import InvalidInput, PayloadTooLarge
from labelling.services.label_imports import IMPORT_FILE_MAX_BYTES, labels_import, rows_from_file


class AnnotationOutput(serializers.ModelSerializer):
    annotator = serializers.CharField(source="annotator.username")
    label_name = serializers.CharField(source="label.name")
    is_audit = serializers.BooleanField(source="image.is_audit")

    class Meta:
        model = Annotation
        fields = [
            "id",
            "image",
            "annotator",
            "label",
            "label_name",
            "is_audit",
            "created_at",
            "seconds_spent",
            "imported",
        ]


class AnnotationListApi(ListApi):
    @extend_schema(responses=AnnotationOutput(many=True), operation_id="annotations_list")
    def get(self, request, project_id: int):
        access_project(request.user, project_id, min_role=Role.ENGINEER)
        qs = (
            Annotation.objects.filter(image__project_id=project_id)
            .select_related("annotator", "label", "image")
            .order_by("id")
        )
        return paginated(request=request, view=self, queryset=qs, serializer_class=AnnotationOutput)


class ImportRowInput(serializers.Serializer):
    sha256 = serializers.CharField(
        required=False, help_text="the image's SHA-256 (matches the same file in any project)"
    )
    image = serializers.IntegerField(required=False, help_text="the image's id in this project")
    original_name = serializers.CharField(required=False, help_text="the file name it was uploaded with")
    label = serializers.CharField(help_text="a label's name (or its id)")


class LabelImportInput(serializers.Serializer):
    labels = ImportRowInput(many=True)


class LabelImportFileInput(serializers.Serializer):
    file = serializers.FileField(
        help_text="CSV with a header row (label, and sha256, image or original_name), or JSON"
    )


class LabelImportOutput(serializers.Serializer):
    rows = serializers.IntegerField()
    labelled = serializers.IntegerField(help_text="images that got an imported label")
    updated = serializers.IntegerField(help_text="your earlier imported labels, changed")
    unchanged = serializers.IntegerField(
        help_text="images whose label stays as it was (the same label again, or one you gave in the queue)"
    )
    retrain_job = serializers.IntegerField(allow_null=True, help_text="the retrain queued on them, if any")


class AnnotationImportApi(APIView):
    """Labels made elsewhere, for images already in the pool: a JSON body ``{"labels": [{"sha256" |
    "image" | "original_name": ..., "label": ...}]}`` (this service's labels.json as it is, too), or
    a CSV or JSON file in the multipart field ``file`` (labels.csv as it is). All rows are checked
    first; one bad row refuses the import (400 ``bad_rows``, every problem in ``details``) and
    nothing is stored. Imported labels train, export and are reviewed like any label, spend no budget
    and leave the annotators' queue; a project with an encoder retrains on them at once."""

    @extend_schema(
        request={"application/json": LabelImportInput, "multipart/form-data": LabelImportFileInput},
        responses=LabelImportOutput,
        operation_id="annotations_import",
    )
    def post(self, request, project_id: int):
        project = access_project(request.user, project_id, min_role=Role.ENGINEER)
        guard_request_size(request, IMPORT_FILE_MAX_BYTES + 1024 * 1024)
        upload = request.FILES.get("file")
        if upload is not None:
            if upload.size > IMPORT_FILE_MAX_BYTES:
                raise PayloadTooLarge(
                    f"the file is {upload.size:,} bytes, over the limit of {IMPORT_FILE_MAX_BYTES:,}"
                )
            rows = rows_from_file(upload.read())
        else:
            body = request.data
            rows = body.get("labels") if hasattr(body, "get") else body
            if isinstance(body, dict) and set(body) - {"labels"}:
                raise InvalidInput(
                    f"unknown fields: {', '.join(sorted(set(body) - {'labels'}))}", code="unknown_field"
                )
        if not isinstance(rows, list):
            raise InvalidInput(
                'send {"labels": [...]} as JSON, or a CSV or JSON file in the multipart field "file"',
                code="no_rows",
            )
        result = labels_import(project=project, user=request.user, rows=rows)
        return Response(LabelImportOutput(result.as_dict()).data)
