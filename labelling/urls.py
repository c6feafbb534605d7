"""URLconf. Importing it must never import torch, scikit-learn or faiss (a test checks)."""

from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.contrib.auth.decorators import login_required
from django.http import HttpResponse
from django.urls import include, path
from django.views.generic import TemplateView

from labelling.web.views import LoginView

urlpatterns = [
    path("api/", include("labelling.api.urls")),
    path("admin/", admin.site.urls),
    # Django's account pages, less password reset (it mails a link, and no mail is set up).
    path("accounts/login/", LoginView.as_view(), name="login"),
    path("accounts/logout/", auth_views.LogoutView.as_view(), name="logout"),
    # Where the labelling page's "Log in again" tab lands: a second labelling tab there (the login's
    # usual next) would hold images of its own beside the first one's (a review).
    path(
        "accounts/logged-in/",
        login_required(TemplateView.as_view(template_name="web/logged_in.html")),
        name="logged-in",
    ),
    # The service's own pages (named: django.contrib.admin's registration templates come first).
    path(
        "accounts/password_change/",
        auth_views.PasswordChangeView.as_view(template_name="web/password_change_form.html"),
        name="password_change",
    ),
    path(
        "accounts/password_change/done/",
        auth_views.PasswordChangeDoneView.as_view(template_name="web/password_change_done.html"),
        name="password_change_done",
    ),
    # The pages name their icon inline; Django's admin pages make browsers ask for this one.
    path("favicon.ico", lambda request: HttpResponse(status=204)),
    path("", include("labelling.web.urls")),
]

handler400 = "labelling.web.views.bad_request"
handler403 = "labelling.web.views.forbidden"
handler404 = "labelling.web.views.not_found"
handler500 = "labelling.web.views.server_error"
