"""URLconf. Importing it must never import torch, scikit-learn or faiss (a test checks)."""

from django.contrib import admin
from django.urls import include, path

urlpatterns = [
    path("api/", include("labelling.api.urls")),
    path("admin/", admin.site.urls),
    path("accounts/", include("django.contrib.auth.urls")),
    path("", include("labelling.web.urls")),
]

handler400 = "labelling.web.views.bad_request"
handler403 = "labelling.web.views.forbidden"
handler404 = "labelling.web.views.not_found"
handler500 = "labelling.web.views.server_error"
