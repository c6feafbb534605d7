from django.urls import path

import labelling.converters  # noqa: F401  (registers <id:...>)
from labelling.web import annotate, dashboard, invites, review, views

urlpatterns = [
    path("", views.home, name="home"),
    path("projects/new", views.project_new_action, name="project-new"),
    path("projects/<id:project_id>/", views.project_page, name="project"),
    path("overview/", dashboard.overview, name="overview"),
    path("projects/<id:project_id>/dashboard/", dashboard.dashboard, name="dashboard"),
    path("projects/<id:project_id>/dashboard/action", dashboard.dashboard_action, name="dashboard-action"),
    path("projects/<id:project_id>/label/", annotate.annotate_page, name="annotate"),
    path("projects/<id:project_id>/review/", review.review_page, name="review"),
    path("projects/<id:project_id>/review/action", review.review_action, name="review-action"),
    path("invite/<str:token>", invites.invite_page, name="invite"),
    path("invite/<str:token>/join", invites.invite_action, name="invite-join"),
]
