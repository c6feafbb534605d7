"""The annotator's loop: next item(s), submit, skip, flag, undo."""

from __future__ import annotations

from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import serializers, status
from rest_framework.response import Response
from rest_framework.views import APIView

from labelling.api.base import strict
from labelling.selectors.access import access_project
from labelling.selectors.queue import annotator_progress, assignment_view
from labelling.services.errors import InvalidInput
from labelling.services.queue import (
    FLAG_REASONS,
    annotation_undo_last,
    assignment_flag,
    assignment_skip,
    assignment_submit,
    assignments_reserve,
    queue_empty_reason,
)


class SuggestionOutput(serializers.Serializer):
    label = serializers.IntegerField()
    confidence = serializers.FloatField(allow_null=True)


class QueueImageOutput(serializers.Serializer):
    id = serializers.IntegerField()
    width = serializers.IntegerField()
    height = serializers.IntegerField()
    url = serializers.CharField()


class AssignmentOutput(serializers.Serializer):
    id = serializers.IntegerField()
    expires_at = serializers.DateTimeField()
    image = QueueImageOutput()
    suggestion = SuggestionOutput(allow_null=True)


class ProgressOutput(serializers.Serializer):
    labelled_today = serializers.IntegerField(help_text="my labels in this project since midnight UTC")
    labelled_total = serializers.IntegerField(help_text="my labels in this project")
    left_in_queue = serializers.IntegerField(help_text="open items in the queue, counted up to 1,000")
    left_in_queue_more = serializers.BooleanField(help_text="more than left_in_queue items are open")


class NextOutput(serializers.Serializer):
    assignment = AssignmentOutput(allow_null=True)
    upcoming = AssignmentOutput(allow_null=True)
    empty_reason = serializers.ChoiceField(
        choices=[
            "paused",
            "budget_exhausted",
            "preparing",
            "waiting_for_model",
            "pool_labelled",
            "not_started",
            "training_failed",
            "queue_empty",
        ],  # fmt: skip
        allow_null=True,
        help_text="why assignment is null: preparing, the first pretraining runs; waiting_for_model, a "
        "retrain runs (or was just asked for: the queue ran dry for everyone); pool_labelled, no unlabelled image is left; not_started, nobody asked for pretraining "
        "yet; training_failed, the queue is empty for "
        "everyone and the latest training job failed or was cancelled; queue_empty, nothing is free for this annotator now",
    )
    progress = ProgressOutput()


def _next_body(project, user, lookahead: bool) -> dict:
    held = assignments_reserve(project=project, annotator=user, count=2 if lookahead else 1)
    return {
        "assignment": assignment_view(held[0]) if held else None,
        "upcoming": assignment_view(held[1]) if len(held) > 1 else None,
        "empty_reason": None if held else queue_empty_reason(project=project),
        "progress": annotator_progress(project=project, annotator=user),
    }


class QueueNextApi(APIView):
    """Reserve the next item (reloading returns the one I hold). ``lookahead=1`` also reserves the
    one after, so the UI can load its image ahead."""

    @extend_schema(
        parameters=[OpenApiParameter("lookahead", bool, required=False)],
        responses=NextOutput,
        operation_id="queue_next",
    )
    def get(self, request, project_id: int):
        project = access_project(request.user, project_id)
        raw = request.query_params.get("lookahead", "0").lower()
        if raw not in ("0", "1", "true", "false"):
            raise InvalidInput("lookahead must be 1, 0, true or false", code="invalid")
        lookahead = raw in ("1", "true")
        return Response(_next_body(project, request.user, lookahead))


class QueueUndoApi(APIView):
    @extend_schema(request=None, responses=AssignmentOutput, operation_id="queue_undo")
    def post(self, request, project_id: int):
        project = access_project(request.user, project_id)
        return Response(assignment_view(annotation_undo_last(project=project, annotator=request.user)))


class SubmitOutput(serializers.Serializer):
    annotation_id = serializers.IntegerField()
    created = serializers.BooleanField()


class AssignmentSubmitApi(APIView):
    class SubmitInput(serializers.Serializer):
        label = serializers.IntegerField(min_value=1)
        seconds_spent = serializers.FloatField(required=False, allow_null=True, min_value=0, max_value=86400)

    @extend_schema(
        request=SubmitInput,
        responses={201: SubmitOutput, 200: SubmitOutput},
        operation_id="assignment_submit",
    )
    def post(self, request, assignment_id: int):
        data = strict(self.SubmitInput, request.data)
        annotation, created = assignment_submit(
            assignment_id=assignment_id,
            annotator=request.user,
            label_id=data.validated_data["label"],
            seconds_spent=data.validated_data.get("seconds_spent"),
        )
        return Response(
            {"annotation_id": annotation.id, "created": created},
            status=status.HTTP_201_CREATED if created else status.HTTP_200_OK,
        )


class AssignmentSkipApi(APIView):
    class SkipInput(serializers.Serializer):
        reason = serializers.CharField(required=False, allow_blank=True, max_length=200)

    @extend_schema(request=SkipInput, responses={204: None}, operation_id="assignment_skip")
    def post(self, request, assignment_id: int):
        data = strict(self.SkipInput, request.data)
        assignment_skip(
            assignment_id=assignment_id, annotator=request.user, reason=data.validated_data.get("reason", "")
        )
        return Response(status=status.HTTP_204_NO_CONTENT)


class AssignmentFlagApi(APIView):
    class FlagInput(serializers.Serializer):
        reason = serializers.ChoiceField(choices=FLAG_REASONS)

    @extend_schema(request=FlagInput, responses={204: None}, operation_id="assignment_flag")
    def post(self, request, assignment_id: int):
        data = self.FlagInput(data=request.data)
        if not data.is_valid():
            raise InvalidInput(f"reason must be one of {', '.join(FLAG_REASONS)}", details=data.errors)
        assignment_flag(
            assignment_id=assignment_id, annotator=request.user, reason=data.validated_data["reason"]
        )
        return Response(status=status.HTTP_204_NO_CONTENT)
