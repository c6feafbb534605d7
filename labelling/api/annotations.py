"""Labels, for engineers. Annotators submit through their assignments (labelling.api.queue)."""

from __future__ import annotations

from drf_spectacular.utils import extend_schema
from rest_framework import serializers

from labelling.api.base import ListApi, paginated
from labelling.models import Annotation, Role
from labelling.selectors.access import access_project


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
