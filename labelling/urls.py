"""URLconf. Importing it must never import torch, scikit-learn or faiss (a test checks)."""

from django.contrib import admin
from django.urls import include, path

from labelling.web.views import LoginView

urlpatterns = [
    path("api/", include("labelling.api.urls")),
    path("admin/", admin.site.urls),
    path("accounts/login/", LoginView.as_view(), name="login"),  # counts failures; before Django's
    path("accounts/", include("django.contrib.auth.urls")),
    path("", include("labelling.web.urls")),
]

handler400 = "labelling.web.views.bad_request"
handler403 = "labelling.web.views.forbidden"
handler404 = "labelling.web.views.not_found"
handler500 = "labelling.web.views.server_error"
