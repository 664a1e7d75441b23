"""Settings, read once from the environment (see README "Configuration")."""

import logging
import os
from pathlib import Path

import dj_database_url
from dotenv import load_dotenv

from config.logs import configure_structlog, logging_config

BASE_DIR = Path(__file__).resolve().parent.parent

# `make run` writes the demo's variables to .env (git-ignored), so every manage.py command in this
# checkout behaves like the running app. Real environment variables win over the file; DOTENV_FILE
# names another file ("" reads none). Tests never read it: pytest exports PYTEST_VERSION, inherited by
# the processes a test starts, so a developer's .env cannot change what a test sees.
dotenv_file = os.environ.get("DOTENV_FILE", str(BASE_DIR / ".env"))
if dotenv_file and "PYTEST_VERSION" not in os.environ:
    load_dotenv(dotenv_file, override=False)


def env_bool(name: str, default: bool) -> bool:
    value = os.environ.get(name)
    if value is None or value == "":
        return default
    return value.strip().lower() in {"1", "true", "yes", "on"}


def env_int(name: str, default: int) -> int:
    value = os.environ.get(name)
    return int(value) if value not in (None, "") else default


def env_float(name: str, default: float) -> float:
    value = os.environ.get(name)
    return float(value) if value not in (None, "") else default


def env_list(name: str, default: list[str]) -> list[str]:
    value = os.environ.get(name)
    if value is None:
        return default
    return [item.strip() for item in value.split(",") if item.strip()]


DEBUG = env_bool("DEBUG", False)
# The development default starts with "django-insecure-" so that `manage.py check --deploy` flags a
# production left on it (security.W009).
SECRET_KEY = os.environ.get("SECRET_KEY") or "django-insecure-dev-key-change-me-in-production-0123456789"
ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", ["127.0.0.1", "localhost", "testserver", "[::1]"])
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS", [])

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "drf_spectacular_sidecar",  # Swagger UI and ReDoc as pinned static files (API docs offline)
    "rest_framework",
    "rest_framework.authtoken",
    "django_filters",
    "drf_spectacular",
    "anymail",
    "django_structlog",
    "workspaces",
    "records",
    "automations",
]

MIDDLEWARE = [
    # /health/live, /health/ready and /metrics, answered before host checks, HTTPS redirects and request
    # logging: probes come by IP address over plain HTTP every few seconds.
    "config.middleware.OperationsEndpointsMiddleware",
    "config.middleware.RequestIdMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "django_structlog.middlewares.RequestMiddleware",
    "config.middleware.LogContextMiddleware",
]

ROOT_URLCONF = "config.urls"
WSGI_APPLICATION = "config.wsgi.application"
ASGI_APPLICATION = "config.asgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

DATABASES = {
    "default": dj_database_url.parse(
        os.environ.get("DATABASE_URL") or f"sqlite:///{BASE_DIR / 'db.sqlite3'}",
        conn_max_age=env_int("DB_CONN_MAX_AGE", 60),
        conn_health_checks=True,
    )
}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # WAL + a busy timeout let the web server and the worker share the file.
    DATABASES["default"]["OPTIONS"] = {
        "timeout": 20,
        "transaction_mode": "IMMEDIATE",
        "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
    }
    DATABASES["default"]["CONN_MAX_AGE"] = 0
# PostgreSQL: parameters bound by the server (no quoting in Python), and the hot fixed statements
# (``config.sql.Statement``) prepared, parsed and planned once per connection: a third less PostgreSQL CPU per
# record. ORM queries are never prepared (a generic plan, made without the values, can miss a partial index).
# Turn off behind a pooler in transaction mode that cannot keep prepared statements (PgBouncer before 1.21).
DB_PREPARED_STATEMENTS = DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql" and env_bool(
    "DB_PREPARED_STATEMENTS", True
)
if DB_PREPARED_STATEMENTS:
    DATABASES["default"].setdefault("OPTIONS", {})["server_side_binding"] = True

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = BASE_DIR / "staticfiles"

# Requests: huge payloads are refused before they reach a view.
DATA_UPLOAD_MAX_MEMORY_SIZE = env_int("DATA_UPLOAD_MAX_MEMORY_SIZE", 5 * 1024 * 1024)

SIGNUP_ENABLED = env_bool("SIGNUP_ENABLED", True)

# manage.py seed_demo: the demo owner's password (default: generated once into .demo-password).
DEMO_PASSWORD = os.environ.get("DEMO_PASSWORD", "")
# Where `make run` serves (recorded in .env): seed_demo's default --base-url.
DEMO_BASE_URL = os.environ.get("DEMO_BASE_URL", "http://127.0.0.1:8000").rstrip("/")
# /demo/webhook-inbox/: a local receiver for the demo call_webhook rule (make run turns it on).
DEMO_WEBHOOK_INBOX = env_bool("DEMO_WEBHOOK_INBOX", False)

# Session login for the browsable API (/api-auth/login/) lands on the API root.
LOGIN_URL = "rest_framework:login"
LOGIN_REDIRECT_URL = "/api/v1/"

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "config.authentication.TokenOrBearerAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_RENDERER_CLASSES": [
        "config.renderers.EnvelopeJSONRenderer",
        "rest_framework.renderers.BrowsableAPIRenderer",
    ],
    "DEFAULT_PARSER_CLASSES": [
        "config.parsers.JSONParser",
        "config.parsers.FormParser",
        "config.parsers.MultiPartParser",
    ],
    "EXCEPTION_HANDLER": "config.api.envelope_exception_handler",
    "DEFAULT_SCHEMA_CLASS": "config.api.EnvelopeAutoSchema",
    "DEFAULT_THROTTLE_CLASSES": [
        "config.throttling.AnonThrottle",
        "config.throttling.UserThrottle",
        "config.throttling.WriteRateThrottle",
    ],
    # Generous defaults (a 2,000-record import at 16 concurrent clients stays well inside them).
    "DEFAULT_THROTTLE_RATES": {
        "anon": os.environ.get("API_THROTTLE_ANON", "120/min"),
        "user": os.environ.get("API_THROTTLE_USER", "100000/hour"),
        "write": os.environ.get("API_THROTTLE_WRITE", "6000/min"),
    },
    "UNAUTHENTICATED_USER": "django.contrib.auth.models.AnonymousUser",
}

SPECTACULAR_SETTINGS = {
    "TITLE": "Workspace automations API",
    "DESCRIPTION": "Workspaces, entities, records, tasks and the automations that run on them. "
    'Every response is wrapped in the envelope {"success", "message", "data"} '
    '(errors: {"success": false, "message", "errors"}).',
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    # From drf-spectacular-sidecar's static files (pinned in requirements.txt), not a CDN at @latest.
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "COMPONENT_SPLIT_REQUEST": True,
    "SCHEMA_PATH_PREFIX": r"/api/v1",
    "POSTPROCESSING_HOOKS": [
        "drf_spectacular.hooks.postprocess_schema_enums",
        "config.api.envelope_schema_hook",
    ],
}

# CACHE_URL=redis://host:6379/1 shares the API throttle counters between web processes and nodes
# (Django's built-in Redis cache); without it each process counts for itself.
CACHE_URL = os.environ.get("CACHE_URL", "")
if CACHE_URL:
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": CACHE_URL}}
else:
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}

# Background work. TASKS_BACKEND=database (the default): the engine's own tables are its queue (an event
# row commits with the record; runs wait in the run log with their due time), worked by
# `manage.py automations_worker`. TASKS_BACKEND=rq: the engine's tasks go through Django's tasks API to RQ
# on Redis (TASKS_BROKER_URL), for scale-out; the run log in the database still keeps every promise.
# Any other value is a `django.tasks` backend path, used as is.
AUTOMATIONS_QUEUE = os.environ.get("AUTOMATIONS_QUEUE", "automations")
TASKS_BACKEND = (os.environ.get("TASKS_BACKEND") or "database").strip()
TASKS_BROKER_URL = os.environ.get("TASKS_BROKER_URL", "redis://127.0.0.1:6379/0")
AUTOMATIONS_EMBEDDED_QUEUE = TASKS_BACKEND == "database"
if AUTOMATIONS_EMBEDDED_QUEUE:
    # The engine never enqueues here (its rows are the queue); tasks of other code run in-process.
    TASKS = {
        "default": {
            "BACKEND": "django.tasks.backends.immediate.ImmediateBackend",
            "QUEUES": ["default", AUTOMATIONS_QUEUE],
        }
    }
elif TASKS_BACKEND in ("rq", "django_tasks_rq.RQBackend"):
    INSTALLED_APPS.append("django_rq")
    RQ_QUEUES = {AUTOMATIONS_QUEUE: {"URL": TASKS_BROKER_URL, "DEFAULT_TIMEOUT": 600}}
    TASKS = {"default": {"BACKEND": "django_tasks_rq.RQBackend", "QUEUES": [AUTOMATIONS_QUEUE]}}
else:
    TASKS = {"default": {"BACKEND": TASKS_BACKEND, "QUEUES": ["default", AUTOMATIONS_QUEUE]}}

# Email: console by default; "smtp"; or any anymail provider by name.
FROM_EMAIL = os.environ.get("FROM_EMAIL", "automations@localhost")
DEFAULT_FROM_EMAIL = FROM_EMAIL
SERVER_EMAIL = FROM_EMAIL
EMAIL_PROVIDER = os.environ.get("EMAIL_PROVIDER", "console").strip().lower()
ANYMAIL: dict[str, str] = {}
if EMAIL_PROVIDER == "console":
    _mailer = {"BACKEND": "django.core.mail.backends.console.EmailBackend"}
elif EMAIL_PROVIDER == "smtp":
    _mailer = {
        "BACKEND": "django.core.mail.backends.smtp.EmailBackend",
        "OPTIONS": {
            "host": os.environ.get("EMAIL_HOST", "localhost"),
            "port": env_int("EMAIL_PORT", 25),
            "username": os.environ.get("EMAIL_HOST_USER", ""),
            "password": os.environ.get("EMAIL_HOST_PASSWORD", ""),
            "use_tls": env_bool("EMAIL_USE_TLS", False),
            "use_ssl": env_bool("EMAIL_USE_SSL", False),
            "timeout": env_int("EMAIL_TIMEOUT", 30),
        },
    }
elif EMAIL_PROVIDER == "test":
    _mailer = {"BACKEND": "anymail.backends.test.EmailBackend"}
else:
    # An anymail provider by its module name: sendgrid, mailgun, postmark, amazon_ses, brevo, resend,
    # sparkpost, ... Provider keys come from ANYMAIL_<NAME> variables, e.g. ANYMAIL_SENDGRID_API_KEY.
    _mailer = {"BACKEND": f"anymail.backends.{EMAIL_PROVIDER}.EmailBackend"}
    for key, value in os.environ.items():
        if key.startswith("ANYMAIL_") and value:
            ANYMAIL[key.removeprefix("ANYMAIL_")] = value
MAILERS = {"default": _mailer}

# The automation engine (README "Configuration" lists each one).
AUTOMATIONS_RETRY_SCHEDULE = [
    int(x) for x in env_list("AUTOMATIONS_RETRY_SCHEDULE", ["5", "300", "1800", "7200", "18000", "36000", "36000"])
]
AUTOMATIONS_RETRY_JITTER = env_float("AUTOMATIONS_RETRY_JITTER", 0.1)
AUTOMATIONS_RETRY_AFTER_MAX = env_int("AUTOMATIONS_RETRY_AFTER_MAX", 36000)
AUTOMATIONS_MAX_CHAIN_DEPTH = env_int("AUTOMATIONS_MAX_CHAIN_DEPTH", 5)
AUTOMATIONS_MAX_CONSECUTIVE_FAILURES = env_int("AUTOMATIONS_MAX_CONSECUTIVE_FAILURES", 8)
AUTOMATIONS_WEBHOOK_ALLOW_PRIVATE = env_bool("AUTOMATIONS_WEBHOOK_ALLOW_PRIVATE", False)
AUTOMATIONS_WEBHOOK_ALLOWED_HOSTS = env_list("AUTOMATIONS_WEBHOOK_ALLOWED_HOSTS", [])
AUTOMATIONS_WEBHOOK_CONNECT_TIMEOUT = env_float("AUTOMATIONS_WEBHOOK_CONNECT_TIMEOUT", 5.0)
AUTOMATIONS_WEBHOOK_TOTAL_TIMEOUT = env_float("AUTOMATIONS_WEBHOOK_TOTAL_TIMEOUT", 30.0)
AUTOMATIONS_WEBHOOK_RESPONSE_MAX_BYTES = env_int("AUTOMATIONS_WEBHOOK_RESPONSE_MAX_BYTES", 4096)
AUTOMATIONS_TEMPLATE_MAX_OUTPUT = env_int("AUTOMATIONS_TEMPLATE_MAX_OUTPUT", 100_000)
AUTOMATIONS_RUN_LEASE_SECONDS = env_int("AUTOMATIONS_RUN_LEASE_SECONDS", 120)
AUTOMATIONS_RECOVERY_GRACE_SECONDS = env_int("AUTOMATIONS_RECOVERY_GRACE_SECONDS", 60)
AUTOMATIONS_RECOVERY_INTERVAL = env_float("AUTOMATIONS_RECOVERY_INTERVAL", 15.0)
AUTOMATIONS_WORKER_POLL_INTERVAL = env_float("AUTOMATIONS_WORKER_POLL_INTERVAL", 0.5)
# PostgreSQL: the worker's own commits are asynchronous unless true (see automations/worker.py: what it
# writes can be derived again, so a database crash re-runs a run with the same id instead of losing it).
AUTOMATIONS_WORKER_SYNCHRONOUS_COMMIT = env_bool("AUTOMATIONS_WORKER_SYNCHRONOUS_COMMIT", False)
AUTOMATIONS_EVENTS_PER_TASK = env_int("AUTOMATIONS_EVENTS_PER_TASK", 25)
# Ready engine tasks a worker claims and runs together (one matching transaction, successes written in
# one UPDATE); 1 runs them one by one.
AUTOMATIONS_WORKER_BATCH_SIZE = max(1, env_int("AUTOMATIONS_WORKER_BATCH_SIZE", 50))
# A run slower than this hands the rest of its batch back to the queue (a slow receiver delays only itself).
AUTOMATIONS_WORKER_SLOW_RUN_SECONDS = env_float("AUTOMATIONS_WORKER_SLOW_RUN_SECONDS", 2.0)
# Processed events are deleted after this many days (each run keeps its own copy of the record).
AUTOMATIONS_RETENTION_DAYS = env_int("AUTOMATIONS_RETENTION_DAYS", 7)
# Workers heartbeat every few seconds; one silent for longer than DEAD_AFTER is dead and its runs are
# taken over at once (the run lease stays the guard against a live but stuck worker).
# Time-based triggers: records one occurrence of a scheduled rule may run for (more: the occurrence is logged
# skipped), and how late a missed occurrence or due time may still fire when a worker comes back.
AUTOMATIONS_SCHEDULE_MAX_RECORDS = env_int("AUTOMATIONS_SCHEDULE_MAX_RECORDS", 10_000)
AUTOMATIONS_SCHEDULE_CATCHUP_SECONDS = env_int("AUTOMATIONS_SCHEDULE_CATCHUP_SECONDS", 86_400)
AUTOMATIONS_WORKER_HEARTBEAT_SECONDS = env_float("AUTOMATIONS_WORKER_HEARTBEAT_SECONDS", 3.0)
AUTOMATIONS_WORKER_DEAD_AFTER_SECONDS = env_float("AUTOMATIONS_WORKER_DEAD_AFTER_SECONDS", 15.0)

# Logs (README "Operations"): readable text by default, one JSON object per line with LOG_FORMAT=json,
# carrying the request id (also sent back as X-Request-ID), workspace, rule and run ids where they apply.
LOG_FORMAT = (os.environ.get("LOG_FORMAT") or "text").strip().lower()
LOG_LEVEL = (os.environ.get("LOG_LEVEL") or "INFO").upper()
configure_structlog()
LOGGING = logging_config(
    log_format=LOG_FORMAT, level=LOG_LEVEL, automations_level=os.environ.get("AUTOMATIONS_LOG_LEVEL", "INFO").upper()
)
# The request id comes from config.middleware.RequestIdMiddleware (an incoming X-Request-ID when it looks
# sane, else a new one), read by django-structlog from the request's header.
DJANGO_STRUCTLOG_TRUST_UPSTREAM_REQUEST_ID = True  # already checked (or made) by RequestIdMiddleware
DJANGO_STRUCTLOG_STATUS_START_LOG_LEVEL = logging.DEBUG  # one line per request (request_finished), not two
DJANGO_STRUCTLOG_IP_LOGGING_ENABLED = False  # the proxy's access log has addresses; ours need not

# Prometheus metrics at /metrics, only with METRICS_TOKEN (sent as "Authorization: Bearer <token>").
METRICS_TOKEN = os.environ.get("METRICS_TOKEN", "")
# prometheus-client reads PROMETHEUS_MULTIPROC_DIR itself: set, every process (gunicorn workers, engine
# workers) writes its samples there and /metrics adds them up. An empty value would make it write into
# the working directory, so it counts as unset.
if os.environ.get("PROMETHEUS_MULTIPROC_DIR", None) == "":
    del os.environ["PROMETHEUS_MULTIPROC_DIR"]
PROMETHEUS_MULTIPROC_DIR = os.environ.get("PROMETHEUS_MULTIPROC_DIR", "")

# Finished run logs (success, error, skipped) older than this many days are deleted by the workers, in
# small batches; 0 keeps them forever. Runs still pending, running or retrying are never deleted.
AUTOMATIONS_LOG_RETENTION_DAYS = env_int("AUTOMATIONS_LOG_RETENTION_DAYS", 90)

# HTTPS (README "Deploying"): off by default so `make run` and the tests work over plain HTTP; production
# turns them on (`manage.py check --deploy` lists what is missing). /health/* and /metrics are never
# redirected (config.middleware answers them first: probes come over plain HTTP inside the network).
# SECURE_PROXY_SSL_HEADER names the header a TLS-terminating proxy sets, e.g. X-Forwarded-Proto (its
# value must then be "https").
SECURE_SSL_REDIRECT = env_bool("SECURE_SSL_REDIRECT", False)
SESSION_COOKIE_SECURE = env_bool("SESSION_COOKIE_SECURE", False)
CSRF_COOKIE_SECURE = env_bool("CSRF_COOKIE_SECURE", False)
SECURE_HSTS_SECONDS = env_int("SECURE_HSTS_SECONDS", 0)
SECURE_HSTS_INCLUDE_SUBDOMAINS = env_bool("SECURE_HSTS_INCLUDE_SUBDOMAINS", False)
SECURE_HSTS_PRELOAD = env_bool("SECURE_HSTS_PRELOAD", False)
_proxy_header = os.environ.get("SECURE_PROXY_SSL_HEADER", "").strip()
SECURE_PROXY_SSL_HEADER = ("HTTP_" + _proxy_header.upper().replace("-", "_"), "https") if _proxy_header else None
