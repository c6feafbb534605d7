"""Background jobs: state and progress, cancel."""

from __future__ import annotations

from drf_spectacular.utils import extend_schema
from rest_framework import serializers
from rest_framework.response import Response
from rest_framework.views import APIView

from labelling.api.base import ListApi, paginated
from labelling.models import Job, Role
from labelling.selectors.access import access_job, access_project
from labelling.services.jobs import job_cancel


class JobOutput(serializers.ModelSerializer):
    class Meta:
        model = Job
        fields = [
            "id", "kind", "project", "state", "progress", "message", "error", "params", "result",
            "created_at", "started_at", "finished_at", "deliveries",
        ]  # fmt: skip


class ProjectJobListApi(ListApi):
    @extend_schema(responses=JobOutput(many=True), operation_id="jobs_list")
    def get(self, request, project_id: int):
        project = access_project(request.user, project_id, min_role=Role.ENGINEER)
        return paginated(
            request=request, view=self, queryset=project.jobs.order_by("-id"), serializer_class=JobOutput
        )


class JobDetailApi(APIView):
    @extend_schema(responses=JobOutput, operation_id="jobs_retrieve")
    def get(self, request, job_id: int):
        return Response(JobOutput(access_job(request.user, job_id)).data)


class JobCancelApi(APIView):
    @extend_schema(request=None, responses=JobOutput, operation_id="jobs_cancel")
    def post(self, request, job_id: int):
        job = access_job(request.user, job_id)
        return Response(JobOutput(job_cancel(job=job)).data)
