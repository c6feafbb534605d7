from django.contrib.auth.decorators import login_required
from django.urls import path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerSplitView
from rest_framework.renderers import JSONRenderer

import labelling.converters  # noqa: F401  (registers <id:...>)
from labelling.api import annotations, auth, exports, images, jobs, projects, queue, review, training


class SchemaView(SpectacularAPIView):
    """The schema (logged-in users only, SPECTACULAR_SETTINGS' SERVE_PERMISSIONS); its errors in this
    API's JSON body, not rendered by the schema's YAML renderer the request negotiated."""

    def handle_exception(self, exc):
        response = super().handle_exception(exc)
        self.request.accepted_renderer, self.request.accepted_media_type = JSONRenderer(), "application/json"
        return response


urlpatterns = [
    path("schema/", SchemaView.as_view(), name="schema"),
    # Split: the page's own script is a separate request (?script), so the pages' CSP needs no
    # inline script.
    # Logged-in users only (SPECTACULAR_SETTINGS' SERVE_PERMISSIONS); a browser is sent to log in.
    path("docs/", login_required(SpectacularSwaggerSplitView.as_view(url_name="schema")), name="swagger-ui"),
    path("auth/token", auth.TokenApi.as_view(), name="api-token"),
    path("me", auth.MeApi.as_view(), name="api-me"),
    path("projects", projects.ProjectListApi.as_view(), name="api-projects"),
    path("projects/<id:project_id>", projects.ProjectDetailApi.as_view(), name="api-project"),
    path("projects/<id:project_id>/labels", projects.LabelListApi.as_view(), name="api-labels"),
    path(
        "projects/<id:project_id>/labels/<id:label_id>",
        projects.LabelDetailApi.as_view(),
        name="api-label",
    ),
    path("projects/<id:project_id>/members", projects.MemberListApi.as_view(), name="api-members"),
    path(
        "projects/<id:project_id>/members/<id:user_id>",
        projects.MemberDetailApi.as_view(),
        name="api-member",
    ),
    path("projects/<id:project_id>/invites", projects.InviteListApi.as_view(), name="api-invites"),
    path(
        "projects/<id:project_id>/invites/<id:invite_id>",
        projects.InviteDetailApi.as_view(),
        name="api-invite",
    ),
    path("projects/<id:project_id>/review", review.ReviewListApi.as_view(), name="api-review"),
    path("images/<id:image_id>/review", review.ImageReviewApi.as_view(), name="api-image-review"),
    path("projects/<id:project_id>/images", images.ImageListApi.as_view(), name="api-images"),
    path("projects/<id:project_id>/imports", images.ZipImportApi.as_view(), name="api-imports"),
    path("projects/<id:project_id>/jobs", training.ProjectJobsApi.as_view(), name="api-project-jobs"),
    path("projects/<id:project_id>/encoders", training.EncoderListApi.as_view(), name="api-encoders"),
    path(
        "projects/<id:project_id>/encoders/upload",
        training.EncoderUploadApi.as_view(),
        name="api-encoder-upload",
    ),
    path("projects/<id:project_id>/models", training.ModelListApi.as_view(), name="api-models"),
    path("projects/<id:project_id>/dashboard", training.DashboardApi.as_view(), name="api-dashboard"),
    path("projects/<id:project_id>/metrics", training.MetricsApi.as_view(), name="api-metrics"),
    path("projects/<id:project_id>/rounds", training.RoundListApi.as_view(), name="api-rounds"),
    path(
        "projects/<id:project_id>/rounds/<id:number>/items",
        training.RoundItemsApi.as_view(),
        name="api-round-items",
    ),
    path("projects/<id:project_id>/export/<str:what>", exports.ExportApi.as_view(), name="api-export"),
    path("encoders/<id:encoder_id>", training.EncoderDetailApi.as_view(), name="api-encoder"),
    path(
        "encoders/<id:encoder_id>/activate",
        training.EncoderActivateApi.as_view(),
        name="api-encoder-activate",
    ),
    path("models/<id:model_id>", training.ModelDetailApi.as_view(), name="api-model"),
    path("models/<id:model_id>/activate", training.ModelActivateApi.as_view(), name="api-model-activate"),
    path("models/<id:model_id>/download", training.ModelDownloadApi.as_view(), name="api-model-download"),
    path(
        "projects/<id:project_id>/annotations",
        annotations.AnnotationListApi.as_view(),
        name="api-annotations",
    ),
    path(
        "projects/<id:project_id>/annotations/import",
        annotations.AnnotationImportApi.as_view(),
        name="api-annotations-import",
    ),
    path("projects/<id:project_id>/queue/next", queue.QueueNextApi.as_view(), name="api-queue-next"),
    path("projects/<id:project_id>/queue/undo", queue.QueueUndoApi.as_view(), name="api-queue-undo"),
    path(
        "assignments/<id:assignment_id>/submit",
        queue.AssignmentSubmitApi.as_view(),
        name="api-assignment-submit",
    ),
    path(
        "assignments/<id:assignment_id>/skip", queue.AssignmentSkipApi.as_view(), name="api-assignment-skip"
    ),
    path(
        "assignments/<id:assignment_id>/flag", queue.AssignmentFlagApi.as_view(), name="api-assignment-flag"
    ),
    path("images/<id:image_id>", images.ImageDetailApi.as_view(), name="api-image"),
    path("images/<id:image_id>/file", images.ImageFileApi.as_view(), name="api-image-file"),
    path("images/<id:image_id>/unflag", images.ImageUnflagApi.as_view(), name="api-image-unflag"),
    path("images/<id:image_id>/thumbnail", images.ImageThumbnailApi.as_view(), name="api-image-thumbnail"),
    path("jobs/<id:job_id>", jobs.JobDetailApi.as_view(), name="api-job"),
    path("jobs/<id:job_id>/cancel", jobs.JobCancelApi.as_view(), name="api-job-cancel"),
]
