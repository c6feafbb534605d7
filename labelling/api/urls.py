from django.urls import path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView

from labelling.api import annotations, auth, images, jobs, projects, queue

urlpatterns = [
    path("schema/", SpectacularAPIView.as_view(), name="schema"),
    path("docs/", SpectacularSwaggerView.as_view(url_name="schema"), name="swagger-ui"),
    path("auth/token", auth.TokenApi.as_view(), name="api-token"),
    path("me", auth.MeApi.as_view(), name="api-me"),
    path("projects", projects.ProjectListApi.as_view(), name="api-projects"),
    path("projects/<int:project_id>", projects.ProjectDetailApi.as_view(), name="api-project"),
    path("projects/<int:project_id>/members", projects.MemberListApi.as_view(), name="api-members"),
    path(
        "projects/<int:project_id>/members/<int:user_id>",
        projects.MemberDetailApi.as_view(),
        name="api-member",
    ),
    path("projects/<int:project_id>/images", images.ImageListApi.as_view(), name="api-images"),
    path("projects/<int:project_id>/imports", images.ZipImportApi.as_view(), name="api-imports"),
    path("projects/<int:project_id>/jobs", jobs.ProjectJobListApi.as_view(), name="api-project-jobs"),
    path(
        "projects/<int:project_id>/annotations",
        annotations.AnnotationListApi.as_view(),
        name="api-annotations",
    ),
    path("projects/<int:project_id>/queue/next", queue.QueueNextApi.as_view(), name="api-queue-next"),
    path("projects/<int:project_id>/queue/undo", queue.QueueUndoApi.as_view(), name="api-queue-undo"),
    path(
        "assignments/<int:assignment_id>/submit",
        queue.AssignmentSubmitApi.as_view(),
        name="api-assignment-submit",
    ),
    path(
        "assignments/<int:assignment_id>/skip", queue.AssignmentSkipApi.as_view(), name="api-assignment-skip"
    ),
    path(
        "assignments/<int:assignment_id>/flag", queue.AssignmentFlagApi.as_view(), name="api-assignment-flag"
    ),
    path("images/<int:image_id>", images.ImageDetailApi.as_view(), name="api-image"),
    path("images/<int:image_id>/file", images.ImageFileApi.as_view(), name="api-image-file"),
    path("images/<int:image_id>/thumbnail", images.ImageThumbnailApi.as_view(), name="api-image-thumbnail"),
    path("jobs/<int:job_id>", jobs.JobDetailApi.as_view(), name="api-job"),
    path("jobs/<int:job_id>/cancel", jobs.JobCancelApi.as_view(), name="api-job-cancel"),
]
