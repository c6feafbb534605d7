"""Review: possible label mistakes and disagreements, and a person's final say on a label."""

from __future__ import annotations

from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import serializers, status
from rest_framework.response import Response
from rest_framework.views import APIView

from labelling.api.base import ListApi, strict
from labelling.api.pagination import Pagination
from labelling.models import Role
from labelling.selectors.access import access_image, access_project
from labelling.selectors.review import REVIEW_KINDS, image_label, image_votes, review_queryset
from labelling.services.errors import InvalidInput
from labelling.services.review import image_review, image_review_clear


class VoteOutput(serializers.Serializer):
    label = serializers.IntegerField()
    count = serializers.IntegerField()


class ReviewItemOutput(serializers.Serializer):
    image = serializers.IntegerField()
    original_name = serializers.CharField()
    is_audit = serializers.BooleanField()
    thumbnail = serializers.CharField(help_text="URL of a PNG thumbnail")
    votes = VoteOutput(many=True, help_text="the annotators' labels, the most votes first")
    label = serializers.IntegerField(
        allow_null=True, help_text="the image's label now: the reviewed one, else the majority"
    )
    suspected_label = serializers.IntegerField(
        allow_null=True, help_text="the class confident learning puts it in (a possible mistake)"
    )
    label_self_confidence = serializers.FloatField(
        allow_null=True, help_text="probability of checked_label from a probe that never saw that label"
    )
    checked_label = serializers.IntegerField(
        allow_null=True,
        help_text="the label the last check judged (its label then; a review may have changed it since)",
    )
    reviewed_label = serializers.IntegerField(allow_null=True)
    reviewed_by = serializers.CharField(allow_null=True)
    reviewed_at = serializers.DateTimeField(allow_null=True)


def review_item(image, votes: list[tuple[int, int]]) -> dict:
    return {
        "image": image.id,
        "original_name": image.original_name,
        "is_audit": image.is_audit,
        "thumbnail": f"/api/images/{image.id}/thumbnail",
        "votes": [{"label": label, "count": n} for label, n in votes],
        "label": image_label(image, votes),
        "suspected_label": image.suspected_label_id,
        "label_self_confidence": image.label_self_confidence,
        "checked_label": image.checked_label_id,
        "reviewed_label": image.reviewed_label_id,
        "reviewed_by": image.reviewed_by.username if image.reviewed_by_id else None,
        "reviewed_at": image.reviewed_at,
    }


class ReviewListApi(ListApi):
    @extend_schema(
        parameters=[
            OpenApiParameter(
                "kind",
                str,
                enum=list(REVIEW_KINDS),
                description="suspects (default): possible label mistakes, the least likely label first; "
                "disagreements: annotators gave different labels; reviewed: the latest reviews",
            )
        ],
        responses=ReviewItemOutput(many=True),
        operation_id="review_list",
        description="Possible label mistakes, disagreements or reviewed images, one page.",
    )
    def get(self, request, project_id: int):
        project = access_project(request.user, project_id, min_role=Role.ENGINEER)
        kind = request.query_params.get("kind", "suspects")
        if kind not in REVIEW_KINDS:
            raise InvalidInput(f"kind must be one of {', '.join(REVIEW_KINDS)}", code="invalid_kind")
        paginator = Pagination()
        page = paginator.paginate_queryset(
            review_queryset(project=project, kind=kind).select_related("reviewed_by"), request, view=self
        )
        votes = image_votes([im.id for im in page])
        return paginator.get_paginated_response([review_item(im, votes.get(im.id, [])) for im in page])


class ImageReviewApi(APIView):
    class ReviewInput(serializers.Serializer):
        label = serializers.IntegerField(min_value=1, help_text="one of the project's label ids")

    def _item(self, image) -> dict:
        return review_item(image, image_votes([image.id]).get(image.id, []))

    @extend_schema(
        request=ReviewInput,
        responses=ReviewItemOutput,
        operation_id="images_review",
        description="A person's final say on a labelled image's label: training and the exports use "
        "it over the annotators' votes (409 image_not_labelled for an image without labels).",
    )
    def post(self, request, image_id: int):
        image = access_image(request.user, image_id, min_role=Role.ENGINEER)
        data = strict(self.ReviewInput, request.data).validated_data
        return Response(self._item(image_review(image=image, label_id=data["label"], reviewer=request.user)))

    @extend_schema(responses={204: None}, operation_id="images_review_clear")
    def delete(self, request, image_id: int):
        image = access_image(request.user, image_id, min_role=Role.ENGINEER)
        image_review_clear(image=image)
        return Response(status=status.HTTP_204_NO_CONTENT)
