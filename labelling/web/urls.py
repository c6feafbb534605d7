from django.urls import path

from labelling.web import annotate, views

urlpatterns = [
    path("", views.home, name="home"),
    path("projects/<int:project_id>/", views.project_page, name="project"),
    path("projects/<int:project_id>/label/", annotate.annotate_page, name="annotate"),
]
