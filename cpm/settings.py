"""Settings for cpm, read from the environment (django-environ).

With no environment set, cpm runs on the embedded default: a SQLite file under ``var/`` and Celery tasks executed
eagerly in-process. Set ``DATABASE_URL`` (PostgreSQL) and ``CELERY_BROKER_URL`` (Redis) for the real stack.
"""

from pathlib import Path

import environ

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = BASE_DIR / "var"
VAR_DIR.mkdir(exist_ok=True)

env = environ.Env()
environ.Env.read_env(BASE_DIR / ".env", overwrite=False) if (BASE_DIR / ".env").exists() else None

DEBUG = env.bool("DEBUG", default=False)
# Production = a real secret key from the environment and DEBUG off: HTTPS-only cookies, redirects and HSTS then
# default on. The embedded default (no environment) serves plain http on localhost.
PRODUCTION = env.bool("PRODUCTION", default=("SECRET_KEY" in env.ENVIRON and not DEBUG))
DEVELOPMENT_SECRET_KEY = "cpm-insecure-development-key-change-me-in-production-0123456789"
SECRET_KEY = env.str("SECRET_KEY", default=DEVELOPMENT_SECRET_KEY)
LOCAL_HOSTS = {"localhost", "127.0.0.1", "[::1]", "::1", "testserver"}
ALLOWED_HOSTS = env.list("ALLOWED_HOSTS", default=["localhost", "127.0.0.1", "testserver"])
# A deployment (PRODUCTION on, or served under any host name other than this machine's) must bring its own secret
# key: the development key is public (it is in this file), so sessions, password resets and signed links would be
# forgeable. Refuse to start instead.
if (PRODUCTION or set(ALLOWED_HOSTS) - LOCAL_HOSTS) and not DEBUG and (
        SECRET_KEY == DEVELOPMENT_SECRET_KEY or len(SECRET_KEY) < 50):
    from django.core.exceptions import ImproperlyConfigured

    raise ImproperlyConfigured(
        "SECRET_KEY must be set to a long random value of your own (at least 50 characters) when cpm is deployed "
        f"(PRODUCTION={PRODUCTION}, ALLOWED_HOSTS={','.join(ALLOWED_HOSTS)}); e.g. python -c 'import secrets; "
        "print(secrets.token_urlsafe(64))'.")
CSRF_TRUSTED_ORIGINS = env.list("CSRF_TRUSTED_ORIGINS", default=[])

INSTALLED_APPS = [
    "cpm.base.adminsite.CpmAdminConfig",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "rest_framework.authtoken",
    "django_filters",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "import_export",
    "axes",
    "cpm",
    "programs",
    "devices",
    "enrollments",
    "events",
    "settlement",
    "oauth2_provider",
    "cpm.openadr3",

    "cpm.notifications.apps.NotificationsConfig",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.middleware.csp.ContentSecurityPolicyMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "axes.middleware.AxesMiddleware",
]

ROOT_URLCONF = "cpm.urls"
WSGI_APPLICATION = "cpm.wsgi.application"

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
                "django.template.context_processors.csp",
            ],
        },
    },
]

DATABASES = {"default": env.db("DATABASE_URL", default=f"sqlite:///{VAR_DIR / 'cpm.sqlite3'}")}
# A read replica of the primary (cpm/base/replica.py): the reads of selectors marked @replica_reads go there.
if env.str("DATABASE_REPLICA_URL", default=""):
    DATABASES["replica"] = env.db("DATABASE_REPLICA_URL")
    DATABASES["replica"]["TEST"] = {"MIRROR": "default"}  # tests: the replica is the test database itself
DATABASE_ROUTERS = ["cpm.base.replica.ReplicaRouter"]
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    DATABASES["default"].setdefault("OPTIONS", {}).update({"timeout": 30})
else:
    DATABASES["default"]["CONN_MAX_AGE"] = env.int("CONN_MAX_AGE", default=0)
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTHENTICATION_BACKENDS = [
    "axes.backends.AxesStandaloneBackend",
    "django.contrib.auth.backends.ModelBackend",
]
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
LOGIN_URL = "/accounts/login/"
LOGIN_REDIRECT_URL = "/"  # cpm.urls.home: each role to the page it works in

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
# Where a person reads a time that belongs to no program (devices, customers, jobs, the audit trail): the utility's
# own zone, labelled. A program's times are shown and typed in the program's zone (``cpm.base.admintime``).
CPM_DISPLAY_TIME_ZONE = env.str("CPM_DISPLAY_TIME_ZONE", default="America/Los_Angeles")
# Every datetime Django renders carries its zone's abbreviation ("2026-07-15 15:00 PDT"), never a bare wall clock.
FORMAT_MODULE_PATH = ["cpm.formats"]
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = VAR_DIR / "static"
MEDIA_ROOT = VAR_DIR / "media"

# Uploads: bounded in memory; larger bodies are refused by Django.
DATA_UPLOAD_MAX_MEMORY_SIZE = env.int("DATA_UPLOAD_MAX_MEMORY_SIZE", default=50 * 1024 * 1024)
FILE_UPLOAD_MAX_MEMORY_SIZE = 5 * 1024 * 1024
CPM_MAX_UPLOAD_BYTES = env.int("CPM_MAX_UPLOAD_BYTES", default=200 * 1024 * 1024)
# Plausibility bounds of imported and entered data (devices.services.validate_device_fields, devices.imports):
# a residential bring-your-own-device program sees batteries, EV chargers and thermostats of a few to tens of kW;
# 1,000 kW and 10,000 kWh leave room for small commercial sites while refusing typos and overflow (1e308).
CPM_MAX_DEVICE_KW = env.int("CPM_MAX_DEVICE_KW", default=1000)
CPM_MAX_DEVICE_KWH = env.int("CPM_MAX_DEVICE_KWH", default=10000)
# Dates in CIS extracts and device lists outside these years are refused as implausible (0001, 9999).
CPM_IMPORT_MIN_YEAR = env.int("CPM_IMPORT_MIN_YEAR", default=1900)
CPM_IMPORT_MAX_YEAR = env.int("CPM_IMPORT_MAX_YEAR", default=2100)
# Meter data (settlement.meterdata.checks): the most kWh one interval may hold per hour of interval, for residential
# and small commercial service points and for commercial & industrial ones; readings outside are rejected rows.
CPM_MAX_KWH_PER_HOUR = env.float("CPM_MAX_KWH_PER_HOUR", default=200.0)
CPM_MAX_KWH_PER_HOUR_CI = env.float("CPM_MAX_KWH_PER_HOUR_CI", default=100_000.0)

# Security: secure by default when DEBUG is off.
SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
SECURE_SSL_REDIRECT = env.bool("SECURE_SSL_REDIRECT", default=PRODUCTION)
SESSION_COOKIE_SECURE = env.bool("SESSION_COOKIE_SECURE", default=PRODUCTION)
CSRF_COOKIE_SECURE = env.bool("CSRF_COOKIE_SECURE", default=PRODUCTION)
SECURE_HSTS_SECONDS = env.int("SECURE_HSTS_SECONDS", default=31536000 if PRODUCTION else 0)
SECURE_HSTS_INCLUDE_SUBDOMAINS = PRODUCTION
SECURE_HSTS_PRELOAD = PRODUCTION
SECURE_CONTENT_TYPE_NOSNIFF = True
X_FRAME_OPTIONS = "DENY"
SESSION_COOKIE_HTTPONLY = True
from django.utils.csp import CSP  # noqa: E402

SECURE_CSP = {
    "default-src": [CSP.SELF],
    "img-src": [CSP.SELF, "data:"],
    "style-src": [CSP.SELF, CSP.UNSAFE_INLINE],
    "script-src": [CSP.SELF, CSP.NONCE],
}

# Login throttling (django-axes).
AXES_FAILURE_LIMIT = env.int("AXES_FAILURE_LIMIT", default=5)
AXES_COOLOFF_TIME = 1  # hours
# Locked per (user name, IP address) pair: one person failing at one account locks that account from that address
# only, not every user behind the same proxy, nor the account from everywhere. Behind a proxy set AXES_PROXY_COUNT
# to the number of proxies in front of cpm so the client address is read from X-Forwarded-For.
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]
AXES_IPWARE_PROXY_COUNT = env.int("AXES_PROXY_COUNT", default=0)
AXES_ENABLED = env.bool("AXES_ENABLED", default=True)

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        # Token first: a request without credentials gets 401 with ``WWW-Authenticate: Token`` (session-only
        # authentication would answer 403 to a client that has not signed in).
        "rest_framework.authentication.TokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["cpm.base.api.ModelPermissions"],
    "DEFAULT_PARSER_CLASSES": [
        "cpm.base.api.BoundedJSONParser",  # a body nested too deep is a 400, not a RecursionError (HTTP 500)
        "rest_framework.parsers.FormParser",
        "rest_framework.parsers.MultiPartParser",
    ],
    "DEFAULT_FILTER_BACKENDS": [
        "cpm.base.filters.FilterBackend",
        "cpm.base.filters.OrderingFilter",
        "cpm.base.filters.SearchFilter",
    ],
    "DEFAULT_PAGINATION_CLASS": "cpm.base.api.Pagination",
    "PAGE_SIZE": 50,
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "EXCEPTION_HANDLER": "cpm.base.api.exception_handler",
    "DEFAULT_THROTTLE_CLASSES": ["cpm.base.api.WriteThrottle"],
    "DEFAULT_THROTTLE_RATES": {"writes": env.str("API_WRITE_RATE", default="600/minute")},
}
SPECTACULAR_SETTINGS = {
    "TITLE": "cpm API",
    "DESCRIPTION": "Customer Program Management for demand response and DER programs.",
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "COMPONENT_SPLIT_REQUEST": True,
    "PREPROCESSING_HOOKS": ["cpm.base.schema.exclude_openadr3"],
    "POSTPROCESSING_HOOKS": ["drf_spectacular.hooks.postprocess_schema_enums", "cpm.base.schema.add_error_responses"],
    "ENUM_NAME_OVERRIDES": {
        "DeviceStatusEnum": "devices.choices.DeviceStatus",
        "AccountStatusEnum": "enrollments.choices.AccountStatus",
        "EnrollmentStatusEnum": "enrollments.choices.EnrollmentStatus",
        "ReasonCodeEnum": "enrollments.choices.ReasonCode",
        "ProgramStatusEnum": "programs.choices.ProgramStatus",
        "ProgramTypeEnum": "programs.choices.ProgramType",
        "IncentiveKindEnum": "programs.choices.IncentiveKind",
        "IncentiveBasisEnum": "programs.choices.IncentiveBasis",
        "DeviceTypeEnum": "programs.choices.DeviceType",
        "CustomerClassEnum": "programs.choices.CustomerClass",
        "OptOutConsequenceEnum": "programs.choices.OptOutConsequence",
        "DeviceOwnershipEnum": "programs.choices.DeviceOwnership",
        "EnrollmentSourceEnum": "enrollments.choices.EnrollmentSource",
        "MeterDataSourceEnum": "settlement.meterdata.models.MeterDataLoad.Source",
        "MeterDataLoadStatusEnum": "settlement.meterdata.models.MeterDataLoad.Status",
        "SettlementBatchStatusEnum": "settlement.choices.BatchStatus",
        "EventSettlementStatusEnum": "settlement.choices.EventSettlementStatus",
        "CustomerSettlementStatusEnum": "settlement.choices.CustomerSettlementStatus",
        "BillCreditExportStatusEnum": "settlement.choices.ExportStatus",
    },
}

# Celery: unset broker -> tasks run eagerly in-process (embedded default).
CELERY_BROKER_URL = env.str("CELERY_BROKER_URL", default="")
CELERY_RESULT_BACKEND = env.str("CELERY_RESULT_BACKEND", default=CELERY_BROKER_URL or "cache+memory://")
CELERY_TASK_ALWAYS_EAGER = not CELERY_BROKER_URL
CELERY_TASK_EAGER_PROPAGATES = True
CELERY_TIMEZONE = "UTC"
CELERY_ENABLE_UTC = True
CELERY_TASK_ACKS_LATE = True
# A worker that dies (kill -9, out of memory) returns its message to the broker: every task is idempotent.
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_SERIALIZER = "json"
CELERY_RESULT_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
# Chunk size for batches split across workers (service points or devices per task).
CPM_CHUNK_SIZE = env.int("CPM_CHUNK_SIZE", default=5000)
# With no broker (tasks run eagerly, in the calling process) on PostgreSQL: a job's chunks run on this many threads
# of that process, each with its own database connection (cpm.base.jobs.job_enqueue); 1 = one after the other.
CPM_LOCAL_WORKERS = env.int("CPM_LOCAL_WORKERS", default=1)

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"}},
    "filters": {"client_errors": {"()": "cpm.base.logfilters.ClientErrorsWithoutTraceback"}},
    # A refused request (403, 404) is logged as one line, without the traceback Django attaches (cpm.base.logfilters).
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain", "filters": ["client_errors"]}},
    "root": {"handlers": ["console"], "level": env.str("LOG_LEVEL", default="INFO")},
    "loggers": {"axes": {"level": "WARNING"}},
}

# Jobs (cpm.base.jobs): a chunk with no progress for this long is sent again (its worker died), at most this often.
CPM_JOB_STALL_SECONDS = env.int("CPM_JOB_STALL_SECONDS", default=600)
CPM_JOB_MAX_ATTEMPTS = env.int("CPM_JOB_MAX_ATTEMPTS", default=3)

# Interval data retention (settlement.services.retention): months kept before the current UTC month by the daily
# retention task (0 = keep everything: the task does nothing); where each removed month's gzip CSV archive goes.
CPM_INTERVAL_RETENTION_MONTHS = env.int("CPM_INTERVAL_RETENTION_MONTHS", default=0)
CPM_INTERVAL_ARCHIVE_DIR = env.str("CPM_INTERVAL_ARCHIVE_DIR", default=str(VAR_DIR / "interval-archive"))

# OpenADR 3 VTN (``cpm.openadr3``): OAuth 2 client credentials (django-oauth-toolkit) issue bearer tokens whose
# scopes are the spec's; which scopes a client may ask for depends on who it is (``cpm.openadr3.scopes``).
OAUTH2_PROVIDER = {
    "SCOPES": {
        "read_all": "Read every object (business logic)",
        "read_targets": "Read programs and the events targeted at this VEN",
        "read_ven_objects": "Read this VEN's own objects",
        "write_programs": "Create, change and delete programs",
        "write_events": "Create, change and cancel events",
        "write_reports": "Create and change this VEN's reports",
        "write_subscriptions": "Create, change and delete subscriptions",
        "write_vens": "Register and change VENs and resources",
    },
    "DEFAULT_SCOPES": ["__all__"],
    "SCOPES_BACKEND_CLASS": "cpm.openadr3.scopes.OpenADRScopes",
    "ACCESS_TOKEN_EXPIRE_SECONDS": env.int("OPENADR3_TOKEN_SECONDS", default=3600),
    # The OAuth 2.0 Security BCP (RFC 9700) throughout: no implicit or password grant, S256 PKCE only, tokens only
    # in the Authorization header, hashed token storage, refresh-token replay detection, https redirect URIs.
    "COMPLIANT_BCP_RFC9700_IMPLICIT_GRANT": True,
    "COMPLIANT_BCP_RFC9700_PASSWORD_GRANT": True,
    "COMPLIANT_BCP_RFC9700_PKCE_METHOD": True,
    "COMPLIANT_BCP_RFC9700_ACCESS_TOKEN_TRANSPORT": True,
    "COMPLIANT_BCP_RFC9700_AUTHZ_RESPONSE_ISS": True,
    "COMPLIANT_BCP_RFC9700_TOKEN_STORAGE": True,
    "COMPLIANT_BCP_RFC9700_REFRESH_TOKEN": True,
    "COMPLIANT_BCP_RFC9700_REDIRECT_URI_SCHEME": True,
    "REFRESH_TOKEN_REUSE_PROTECTION": True,
    "ALLOWED_REDIRECT_URI_SCHEMES": ["https"],
}
# The IANA zone of a program created through OpenADR 3 (the spec's program has no zone).
OPENADR3_PROGRAM_TIME_ZONE = env.str("OPENADR3_PROGRAM_TIME_ZONE", default="America/Los_Angeles")
# Webhook deliveries of OpenADR 3 notifications: attempts before a notification is FAILED, seconds between them.
OPENADR3_NOTIFY_ATTEMPTS = env.int("OPENADR3_NOTIFY_ATTEMPTS", default=5)
OPENADR3_NOTIFY_RETRY_SECONDS = env.int("OPENADR3_NOTIFY_RETRY_SECONDS", default=30)

# E-mail (Django 6.1 MAILERS): "default" for Django's own mail, "notifications" for customer messages
# (cpm.notifications): SMTP in production, or a provider's anymail backend (CPM_NOTIFY_EMAIL_BACKEND).
_SMTP_OPTIONS = {"host": env.str("EMAIL_HOST", default="localhost"), "port": env.int("EMAIL_PORT", default=25),
                 "username": env.str("EMAIL_HOST_USER", default=""),
                 "password": env.str("EMAIL_HOST_PASSWORD", default=""),
                 "use_tls": env.bool("EMAIL_USE_TLS", default=False)}
_NOTIFY_BACKEND = env.str("CPM_NOTIFY_EMAIL_BACKEND", default="django.core.mail.backends.smtp.EmailBackend")
MAILERS = {
    "default": {"BACKEND": "django.core.mail.backends.smtp.EmailBackend", "OPTIONS": _SMTP_OPTIONS},
    "notifications": {"BACKEND": _NOTIFY_BACKEND,
                      "OPTIONS": _SMTP_OPTIONS if _NOTIFY_BACKEND.endswith("smtp.EmailBackend") else {}},
}
CPM_NOTIFY_FROM_EMAIL = env.str("CPM_NOTIFY_FROM_EMAIL", default="programs@utility.example")
CPM_NOTIFY_MESSAGE_ID_DOMAIN = env.str("CPM_NOTIFY_MESSAGE_ID_DOMAIN", default="cpm.utility.example")
# SMS: a backend class (cpm.notifications.channels): Locmem, File, Console, or Http (a JSON provider adapter).
CPM_SMS_BACKEND = env.str("CPM_SMS_BACKEND", default="cpm.notifications.channels.ConsoleSmsBackend")
CPM_SMS_HTTP_URL = env.str("CPM_SMS_HTTP_URL", default="")
CPM_SMS_HTTP_TOKEN = env.str("CPM_SMS_HTTP_TOKEN", default="")
CPM_SMS_HTTP_TIMEOUT = env.float("CPM_SMS_HTTP_TIMEOUT", default=10.0)
# Where the file backends write (one file per message key): the demo's var/demo/outbox.
CPM_NOTIFY_OUTBOX_DIR = env.str("CPM_NOTIFY_OUTBOX_DIR", default=str(BASE_DIR / "var" / "outbox"))
# Absolute base of links in messages (the opt-out link).
CPM_PUBLIC_BASE_URL = env.str("CPM_PUBLIC_BASE_URL", default="http://127.0.0.1:8000")
# The tick plans messages for changes (opt-outs, enrollment decisions, approved settlements) this far back.
CPM_NOTIFY_LOOKBACK_HOURS = env.int("CPM_NOTIFY_LOOKBACK_HOURS", default=72)
# Messages per sending chunk (one Celery task each).
CPM_NOTIFY_CHUNK_SIZE = env.int("CPM_NOTIFY_CHUNK_SIZE", default=2000)
# Messages claimed, handed to the channel and recorded together (cpm.notifications.services.messages_send): at most
# this many are "in doubt" when a worker is killed.
CPM_NOTIFY_SEND_BATCH = env.int("CPM_NOTIFY_SEND_BATCH", default=50)
