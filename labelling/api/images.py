"""Images: upload, zip import, list, detail, the bytes themselves and thumbnails."""

from __future__ import annotations

import uuid

from django.conf import settings
from django.core.files.storage import default_storage
from django.db import transaction
from django.http import FileResponse, HttpResponse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import serializers, status
from rest_framework.response import Response
from rest_framework.views import APIView

from labelling.api.base import ListApi, guard_request_size, paginated, strict_query
from labelling.api.jobs import JobOutput
from labelling.models import Image, Role
from labelling.models.image import ImageStatus
from labelling.models.job import JobKind
from labelling.selectors.access import access_image, access_project
from labelling.services.errors import InvalidInput, PayloadTooLarge
from labelling.services.image_checks import CONTENT_TYPES
from labelling.services.images import display_copy_needed, image_thumbnail, uploaded_files_ingest
from labelling.services.jobs import job_create
from labelling.services.queue import image_unflag
from labelling.services.zips import zip_archive_check


class ImageOutput(serializers.ModelSerializer):
    reference_label = serializers.IntegerField(source="reference_label_id", allow_null=True)
    predicted_label = serializers.IntegerField(source="predicted_label_id", allow_null=True)
    predicted_by = serializers.IntegerField(source="predicted_by_id", allow_null=True)

    class Meta:
        model = Image
        fields = [
            "id", "project", "sha256", "width", "height", "format", "size_bytes", "original_name", "status",
            "is_audit", "reference_label", "predicted_label", "confidence", "uncertainty", "predicted_by",
            "created_at",
        ]  # fmt: skip


MAX_ID = 2**63 - 1  # the largest id a database column holds; SQLite overflows on a larger one


class ImageFilter(serializers.Serializer):
    status = serializers.ListField(
        child=serializers.ChoiceField(choices=ImageStatus.values),
        required=False,
        help_text="one status, or several: repeated (status=unlabelled&status=flagged) or comma-separated",
    )
    predicted_label = serializers.IntegerField(required=False, min_value=1, max_value=MAX_ID)
    min_confidence = serializers.FloatField(required=False, min_value=0, max_value=1)
    max_confidence = serializers.FloatField(required=False, min_value=0, max_value=1)
    round = serializers.IntegerField(
        required=False, min_value=1, max_value=MAX_ID, help_text="selected in this round"
    )
    page = serializers.IntegerField(required=False, min_value=1)
    page_size = serializers.IntegerField(required=False, min_value=1, max_value=500)


class IngestResultOutput(serializers.Serializer):
    name = serializers.CharField()
    status = serializers.ChoiceField(choices=["stored", "duplicate", "rejected"])
    image_id = serializers.IntegerField(allow_null=True)
    code = serializers.CharField(allow_blank=True)
    reason = serializers.CharField(
        allow_blank=True,
        help_text="why it was refused or is a duplicate; for a stored file, what to know of it if anything "
        "(an animation or a multi-page TIFF: its frame count, the first being the image)",
    )


class UploadOutput(serializers.Serializer):
    stored = serializers.IntegerField()
    duplicates = serializers.IntegerField()
    rejected = serializers.IntegerField()
    results = IngestResultOutput(many=True)


class ImageListApi(ListApi):
    """Upload one or many images (multipart field ``files``), or list the pool."""

    class ImageUploadInput(serializers.Serializer):
        files = serializers.ListField(child=serializers.FileField(allow_empty_file=True), min_length=1)

    @extend_schema(parameters=[ImageFilter], responses=ImageOutput(many=True), operation_id="images_list")
    def get(self, request, project_id: int):
        project = access_project(request.user, project_id, min_role=Role.ENGINEER)
        filters = strict_query(ImageFilter, request, lists=("status",)).validated_data
        qs = project.images.all().order_by("id")
        if filters.get("status"):
            qs = qs.filter(status__in=filters["status"])
        if "predicted_label" in filters:
            qs = qs.filter(predicted_label_id=filters["predicted_label"])
        if "min_confidence" in filters:
            qs = qs.filter(confidence__gte=filters["min_confidence"])
        if "max_confidence" in filters:
            qs = qs.filter(confidence__lte=filters["max_confidence"])
        if "round" in filters:
            qs = qs.filter(queue_items__round__number=filters["round"]).distinct()
        return paginated(request=request, view=self, queryset=qs, serializer_class=ImageOutput)

    @extend_schema(
        request={"multipart/form-data": ImageUploadInput},
        responses={201: UploadOutput, 400: UploadOutput, 409: UploadOutput},
        operation_id="images_upload",
    )
    def post(self, request, project_id: int):
        project = access_project(request.user, project_id, min_role=Role.ENGINEER)
        guard_request_size(request, settings.UPLOAD_MAX_IMAGE_BYTES * settings.DATA_UPLOAD_MAX_NUMBER_FILES)
        files = request.FILES.getlist("files") or request.FILES.getlist("file")
        if not files:
            raise InvalidInput("send one or more files in the multipart field 'files'", code="no_files")
        results = uploaded_files_ingest(project=project, files=files)
        body = {
            "stored": sum(r.status == "stored" for r in results),
            "duplicates": sum(r.status == "duplicate" for r in results),
            "rejected": sum(r.status == "rejected" for r in results),
            "results": [r.as_dict() for r in results],
        }
        if body["stored"]:
            return Response(body, status=status.HTTP_201_CREATED)
        only_duplicates = body["duplicates"] == len(results)
        # The first refused file says why (a duplicate before it is no reason to refuse).
        first = results[0] if only_duplicates else next(r for r in results if r.status == "rejected")
        body["error"] = {
            "code": "duplicate" if only_duplicates else first.code,
            "message": f"no image stored: {first.name or 'file'}: {first.reason}"
            + (f" (and {len(results) - 1} more)" if len(results) > 1 else ""),
        }
        return Response(
            body, status=status.HTTP_409_CONFLICT if only_duplicates else status.HTTP_400_BAD_REQUEST
        )


class ZipImportApi(APIView):
    """Upload a zip of images; a worker unpacks and validates it, reporting on the returned job."""

    class ZipImportInput(serializers.Serializer):
        file = serializers.FileField()

    @extend_schema(
        request={"multipart/form-data": ZipImportInput},
        responses={202: JobOutput},
        operation_id="imports_create",
    )
    def post(self, request, project_id: int):
        project = access_project(request.user, project_id, min_role=Role.ENGINEER)
        guard_request_size(request, settings.UPLOAD_MAX_ZIP_BYTES + 1024 * 1024)
        upload = request.FILES.get("file")
        if upload is None:
            raise InvalidInput("send the zip in the multipart field 'file'", code="no_files")
        if upload.size > settings.UPLOAD_MAX_ZIP_BYTES:
            raise PayloadTooLarge(
                f"the zip is {upload.size:,} bytes, over the limit of {settings.UPLOAD_MAX_ZIP_BYTES:,}"
            )
        members = zip_archive_check(upload)
        key = f"imports/{project.id}/{uuid.uuid4().hex}.zip"
        upload.seek(0)
        key = default_storage.save(key, upload)
        try:
            with transaction.atomic():
                job = job_create(
                    project=project,
                    kind=JobKind.IMPORT_ZIP,
                    params={"storage_key": key, "original_name": upload.name, "members": len(members)},
                    created_by=request.user,
                )
        except BaseException:
            default_storage.delete(key)
            raise
        return Response(JobOutput(job).data, status=status.HTTP_202_ACCEPTED)


class ImageDetailApi(APIView):
    @extend_schema(responses=ImageOutput, operation_id="images_retrieve")
    def get(self, request, image_id: int):
        image = access_image(request.user, image_id, min_role=Role.ENGINEER)
        return Response(ImageOutput(image).data)


class ImageUnflagApi(APIView):
    """A flagged image checked and found fine: labelled again if it has labels, else unlabelled and
    selectable by the next round (409 ``not_flagged`` if it is not flagged)."""

    @extend_schema(request=None, responses=ImageOutput, operation_id="images_unflag")
    def post(self, request, image_id: int):
        image = access_image(request.user, image_id, min_role=Role.ENGINEER)
        return Response(ImageOutput(image_unflag(image=image)).data)


def _image_headers(response: HttpResponse) -> HttpResponse:
    response["X-Content-Type-Options"] = "nosniff"
    # Even if a browser were tricked into rendering it as a document, nothing in it may run.
    response["Content-Security-Policy"] = "default-src 'none'; sandbox"
    response["Cache-Control"] = "private, max-age=3600"
    return response


# A TIFF shown to annotators is made no larger than a screen shows it (a 6000 x 4000 one was a 27 MB
# PNG made in the request, 11 s).
DISPLAY_MAX_SIDE = 2048


class ImageFileApi(APIView):
    """The image bytes, to project members only, with their real content type."""

    @extend_schema(
        responses={(200, "image/*"): OpenApiTypes.BINARY},
        operation_id="images_file",
        parameters=[
            OpenApiParameter(
                "display",
                bool,
                description="true: a PNG of the image as thumbnails and training see it when browsers "
                "cannot show its format (TIFF) or would show it otherwise (16-bit greyscale PNG, stretched), "
                f"at most {DISPLAY_MAX_SIDE} px on its longer side; otherwise the bytes as stored, "
                "whatever this says",
            )
        ],
    )
    def get(self, request, image_id: int):
        image = access_image(request.user, image_id)
        display = request.query_params.get("display", "").lower() in ("1", "true")
        if display and display_copy_needed(image):
            png = image_thumbnail(image=image, size=min(max(image.width, image.height), DISPLAY_MAX_SIDE))
            return _image_headers(HttpResponse(png, content_type="image/png"))
        response = FileResponse(
            default_storage.open(image.storage_key, "rb"), content_type=CONTENT_TYPES[image.format]
        )
        return _image_headers(response)


class ImageThumbnailApi(APIView):
    @extend_schema(responses={(200, "image/png"): OpenApiTypes.BINARY}, operation_id="images_thumbnail")
    def get(self, request, image_id: int):
        image = access_image(request.user, image_id)
        return _image_headers(HttpResponse(image_thumbnail(image=image), content_type="image/png"))
