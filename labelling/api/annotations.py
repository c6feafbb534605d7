"""Labels: annotators submit, engineers list."""

from __future__ import annotations

from drf_spectacular.utils import extend_schema
from rest_framework import serializers, status
from rest_framework.response import Response
from rest_framework.views import APIView

from labelling.api.base import paginated
from labelling.models import Annotation, Role
from labelling.selectors.access import access_image, access_project
from labelling.services.annotations import annotation_submit
from labelling.services.errors import NotFound


class AnnotationOutput(serializers.ModelSerializer):
    annotator = serializers.CharField(source="annotator.username")
    label_name = serializers.CharField(source="label.name")

    class Meta:
        model = Annotation
        fields = ["id", "image", "annotator", "label", "label_name", "created_at", "seconds_spent"]


class AnnotationListApi(APIView):
    class AnnotationSubmitInput(serializers.Serializer):
        image = serializers.IntegerField(min_value=1)
        label = serializers.IntegerField(min_value=1)
        seconds_spent = serializers.FloatField(required=False, allow_null=True, min_value=0, max_value=86400)

    @extend_schema(responses=AnnotationOutput(many=True), operation_id="annotations_list")
    def get(self, request, project_id: int):
        access_project(request.user, project_id, min_role=Role.ENGINEER)
        qs = (
            Annotation.objects.filter(image__project_id=project_id)
            .select_related("annotator", "label")
            .order_by("id")
        )
        return paginated(request=request, view=self, queryset=qs, serializer_class=AnnotationOutput)

    @extend_schema(
        request=AnnotationSubmitInput, responses={201: AnnotationOutput}, operation_id="annotations_create"
    )
    def post(self, request, project_id: int):
        access_project(request.user, project_id)
        data = self.AnnotationSubmitInput(data=request.data)
        data.is_valid(raise_exception=True)
        image = access_image(request.user, data.validated_data["image"])
        if image.project_id != project_id:
            raise NotFound("image not found in this project")
        annotation = annotation_submit(
            image=image,
            annotator=request.user,
            label_id=data.validated_data["label"],
            seconds_spent=data.validated_data.get("seconds_spent"),
        )
        return Response(AnnotationOutput(annotation).data, status=status.HTTP_201_CREATED)
