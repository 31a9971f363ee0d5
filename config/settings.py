"""Archway settings: the only settings module, everything read from the environment.

The defaults are the *embedded* profile: SQLite and filesystem blob storage under
``var/``, Celery tasks executed in-process. A checkout therefore runs with no servers
installed; production sets ``DATABASE_URL``, ``ARCHWAY_STORAGE=s3`` and
``CELERY_BROKER_URL``. Every variable is listed in the README's configuration table.
"""

from __future__ import annotations

import os
from pathlib import Path

import dj_database_url
from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parent.parent


def env(name: str, default: str = "") -> str:
    """A string setting; ``NAME_FILE`` (a path) wins so Docker/K8s secrets work."""
    file_path = os.environ.get(f"{name}_FILE")
    if file_path:
        return Path(file_path).read_text().strip()
    return os.environ.get(name, default)


def env_bool(name: str, default: bool) -> bool:
    """A boolean setting; anything but true/false/1/0/yes/no is a configuration error."""
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    value = raw.strip().lower()
    if value in {"1", "true", "yes", "on"}:
        return True
    if value in {"0", "false", "no", "off"}:
        return False
    raise ImproperlyConfigured(f"{name} must be true or false, not {raw!r}")


def env_int(name: str, default: int) -> int:
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    try:
        return int(raw)
    except ValueError as exc:
        raise ImproperlyConfigured(f"{name} must be an integer, not {raw!r}") from exc


def env_float(name: str, default: float) -> float:
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    try:
        return float(raw)
    except ValueError:
        raise ImproperlyConfigured(f"{name} must be a number, not {raw!r}") from None


def env_list(name: str, default: str = "") -> list[str]:
    return [item.strip() for item in env(name, default).split(",") if item.strip()]


VAR_DIR = Path(env("ARCHWAY_VAR_DIR", str(BASE_DIR / "var")))

# --- core -----------------------------------------------------------------------------
DEBUG = env_bool("DEBUG", False)
SECRET_KEY = env("SECRET_KEY")
if not SECRET_KEY:
    # Embedded profile: a per-checkout key kept under var/ (created by `make run`).
    key_file = VAR_DIR / "secret_key"
    if key_file.exists():
        SECRET_KEY = key_file.read_text().strip()
    else:
        SECRET_KEY = "archway-insecure-development-key-set-SECRET_KEY-in-production"
ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", "127.0.0.1,localhost,[::1]")
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS")

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "corsheaders",
    "rest_framework",
    "rest_framework.authtoken",
    "archive",
    "dicomweb",
    "rendering",
    "workitems",
    "channels",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "corsheaders.middleware.CorsMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
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

# --- database -------------------------------------------------------------------------
DATABASE_URL = env("DATABASE_URL", f"sqlite:///{VAR_DIR / 'archway.sqlite3'}")
DATABASES = {"default": dj_database_url.parse(DATABASE_URL)}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # WAL lets readers run beside the single writer; IMMEDIATE transactions make a
    # writer wait for the lock (busy timeout) instead of failing mid-transaction.
    # Connections persist per thread (requests run in a pool of reused threads,
    # config.handler): opening one costs ~1 ms of Python per request (Django registers
    # its SQL functions on each), more than most queries.
    DATABASES["default"]["CONN_MAX_AGE"] = None
    DATABASES["default"]["OPTIONS"] = {
        "transaction_mode": "IMMEDIATE",
        "timeout": 30,
        "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
    }
    # Tests use a file too: in-memory shared-cache SQLite fails lock waits at once
    # instead of honouring the busy timeout, unlike the real (WAL file) deployment.
    DATABASES["default"]["TEST"] = {"NAME": str(VAR_DIR / "test-archway.sqlite3")}
if DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql":
    # Django's persistent connections are per thread; psycopg's pool is shared by all
    # threads of the process (request threads, the audit writer), and a connection goes
    # back to it at the end of each request (Django requires CONN_MAX_AGE = 0 with it).
    DATABASES["default"]["CONN_MAX_AGE"] = 0
    DATABASES["default"].setdefault("OPTIONS", {})["pool"] = {
        "min_size": env_int("DATABASE_POOL_MIN_SIZE", 2),
        "max_size": env_int("DATABASE_POOL_MAX_SIZE", 20),
        "timeout": 10,
    }
# DRF's exception handler calls set_rollback() under ATOMIC_REQUESTS, which would undo a
# partially successful STOW; transactions are per instance instead.
DATABASES["default"]["ATOMIC_REQUESTS"] = False
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# Covering indexes (``INCLUDE``, e.g. archive_study_recent carrying the patient name) are
# a PostgreSQL optimization; SQLite builds the same indexes without the extra columns,
# which is all the embedded profile needs. Django warns about it (models.W040) on every
# ``migrate``, i.e. on every ``make run``: a warning about a deliberate choice that users
# cannot act on.
SILENCED_SYSTEM_CHECKS = ["models.W040"]

# --- blob storage ---------------------------------------------------------------------
ARCHWAY_STORAGE = env("ARCHWAY_STORAGE", "filesystem")  # "filesystem" | "s3"
ARCHWAY_STORAGE_ROOT = env("ARCHWAY_STORAGE_ROOT", str(VAR_DIR / "blobs"))
if ARCHWAY_STORAGE == "filesystem":
    _dicom_storage = {
        "BACKEND": "django.core.files.storage.FileSystemStorage",
        "OPTIONS": {"location": ARCHWAY_STORAGE_ROOT, "file_permissions_mode": 0o640},
    }
elif ARCHWAY_STORAGE == "s3":
    from botocore.config import Config as _BotoConfig

    _dicom_storage = {
        "BACKEND": "storages.backends.s3.S3Storage",
        "OPTIONS": {
            "bucket_name": env("ARCHWAY_S3_BUCKET"),
            "endpoint_url": env("ARCHWAY_S3_ENDPOINT_URL") or None,
            "region_name": env("ARCHWAY_S3_REGION") or None,
            "access_key": env("ARCHWAY_S3_ACCESS_KEY_ID") or None,
            "secret_key": env("ARCHWAY_S3_SECRET_ACCESS_KEY") or None,
            "location": env("ARCHWAY_S3_PREFIX"),
            # Keys are unique per version, so overwriting never loses data; with
            # file_overwrite=False django-storages renames UID-shaped keys.
            "file_overwrite": True,
            "default_acl": None,
            "querystring_auth": True,
            # S3File would otherwise buffer whole objects in RAM (default 0 = never spill).
            "max_memory_size": 16 * 2**20,
            # django-storages ignores addressing_style/signature_version when a
            # client_config is given, so they live inside the botocore Config.
            "client_config": _BotoConfig(
                s3={"addressing_style": "path" if env_bool("ARCHWAY_S3_PATH_STYLE", True) else "virtual"},
                signature_version="s3v4",
                retries={"max_attempts": 3, "mode": "standard"},
                # boto3 >= 1.36 sends CRC32 checksums by default, which some
                # S3-compatible servers reject: only when the operation requires it.
                request_checksum_calculation="when_required",
                response_checksum_validation="when_required",
                connect_timeout=5,
                read_timeout=60,
                max_pool_connections=32,
            ),
        },
    }
else:
    raise ImproperlyConfigured(f"ARCHWAY_STORAGE must be 'filesystem' or 's3', not {ARCHWAY_STORAGE!r}")

STORAGES = {
    "default": {
        "BACKEND": "django.core.files.storage.FileSystemStorage",
        "OPTIONS": {"location": str(VAR_DIR / "media")},
    },
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedStaticFilesStorage"},
    "dicom": _dicom_storage,
}

# fsync blob files and their directory before a store is acknowledged (filesystem backend).
ARCHWAY_FSYNC = env_bool("ARCHWAY_FSYNC", True)

# --- limits ---------------------------------------------------------------------------
# The largest STOW request body accepted (413 above it); the conformance target uses 4 GiB.
ARCHWAY_MAX_STOW_BYTES = env_int("ARCHWAY_MAX_STOW_BYTES", 4 * 2**30)
# Each multipart part is held in memory up to this size, then spilled to a temporary file.
ARCHWAY_SPOOL_MEMORY_BYTES = env_int("ARCHWAY_SPOOL_MEMORY_BYTES", 8 * 2**20)
# Orphan blobs younger than this are never removed: a store may still be in flight.
ARCHWAY_ORPHAN_GRACE_SECONDS = env_int("ARCHWAY_ORPHAN_GRACE_SECONDS", 3600)
FILE_UPLOAD_MAX_MEMORY_SIZE = env_int("FILE_UPLOAD_MAX_MEMORY_SIZE", 8 * 2**20)
FILE_UPLOAD_TEMP_DIR = env("FILE_UPLOAD_TEMP_DIR") or None

# --- authentication -------------------------------------------------------------------
# "token" (default): every DICOMweb request needs a token or an admin session.
# "anonymous": unauthenticated requests get every permission (local demos only).
ARCHWAY_AUTH_MODE = env("ARCHWAY_AUTH_MODE", "token")
# Seconds each server process keeps a token's user and a user's roles (dicomweb.
# authentication, dicomweb.permissions): a change made in another process (admin,
# manage.py) reaches this one within this time. 0 = look them up on every request.
ARCHWAY_AUTH_CACHE_SECONDS = env_int("ARCHWAY_AUTH_CACHE_SECONDS", 10)

# Seconds a server process may hold DICOMweb audit events before writing them as one batch
# (archive.audit); 0 writes each request's event before its response. Admin events are
# always written at once.
ARCHWAY_AUDIT_FLUSH_SECONDS = env_float("ARCHWAY_AUDIT_FLUSH_SECONDS", 0.5)

# --- server -----------------------------------------------------------------------------
# Threads per server process that run requests (config.handler): how many requests one
# process works on at once while others wait on fsync, locks, S3 or PostgreSQL. Keep it
# at or below DATABASE_POOL_MAX_SIZE on PostgreSQL.
ARCHWAY_REQUEST_THREADS = env_int("ARCHWAY_REQUEST_THREADS", 16)
if ARCHWAY_AUTH_MODE not in {"token", "anonymous"}:
    raise ImproperlyConfigured(f"ARCHWAY_AUTH_MODE must be 'token' or 'anonymous', not {ARCHWAY_AUTH_MODE!r}")
# Public base URL used in RetrieveURL / BulkDataURI when behind a proxy ("" = from the request).
ARCHWAY_BASE_URL = env("ARCHWAY_BASE_URL").rstrip("/")
USE_X_FORWARDED_HOST = env_bool("USE_X_FORWARDED_HOST", False)

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "dicomweb.authentication.BearerTokenAuthentication",
        "dicomweb.authentication.TokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["dicomweb.permissions.ArchwayPermission"],
    "DEFAULT_CONTENT_NEGOTIATION_CLASS": "dicomweb.negotiation.DicomContentNegotiation",
    "EXCEPTION_HANDLER": "dicomweb.exceptions.exception_handler",
    "UNAUTHENTICATED_USER": None,
}

# --- CORS (browser viewers on another origin) ---------------------------------------------
# Comma-separated origins, e.g. "https://viewer.example.org"; "*" allows any origin (bearer
# tokens only; cookies are never sent cross-origin with "*").
_cors_origins = env_list("ARCHWAY_CORS_ALLOWED_ORIGINS")
CORS_ALLOW_ALL_ORIGINS = _cors_origins == ["*"]
CORS_ALLOWED_ORIGINS = [] if CORS_ALLOW_ALL_ORIGINS else _cors_origins
CORS_URLS_REGEX = r"^/dicomweb/.*$"
CORS_EXPOSE_HEADERS = [
    "Content-Type",
    "Content-Length",
    "Content-Location",
    "Content-Range",
    "ETag",
    "Location",
    "Warning",
    "Accept-Ranges",
]
CORS_ALLOW_HEADERS = [
    "accept",
    "authorization",
    "content-type",
    "if-none-match",
    "msdicom-request-original",  # retrieve the original of a corrected instance
    "range",
    "x-requested-with",
]
CORS_PREFLIGHT_MAX_AGE = 86400

# --- Celery ---------------------------------------------------------------------------
CELERY_BROKER_URL = env("CELERY_BROKER_URL")
# No broker configured = the embedded profile: tasks run in-process, synchronously.
CELERY_TASK_ALWAYS_EAGER = not CELERY_BROKER_URL
CELERY_TASK_EAGER_PROPAGATES = False
CELERY_RESULT_BACKEND = env("CELERY_RESULT_BACKEND") or None
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_IGNORE_RESULT = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
# Separate queues so slow transcodes never starve thumbnails (README "Operating workers").
CELERY_TASK_DEFAULT_QUEUE = "maintenance"
CELERY_TASK_ROUTES = {
    "rendering.make_thumbnails": {"queue": "thumbnails"},
    "rendering.transcode_instance": {"queue": "transcode"},
    "archive.delete_blobs": {"queue": "maintenance"},
}
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_BROKER_TRANSPORT_OPTIONS = {
    # Publishing gives up quickly when Redis is down (the store still succeeds and the
    # thumbnail is made on the first request; see rendering.receivers).
    "max_retries": 2,
    "interval_start": 0,
    "interval_step": 0.5,
    # Prefix of every Redis key and channel, so deployments (or test runs) can share a Redis.
    "global_keyprefix": env("ARCHWAY_CELERY_KEY_PREFIX"),
}
CELERY_WORKER_HIJACK_ROOT_LOGGER = False  # Django's LOGGING formats worker lines too

# --- rendering --------------------------------------------------------------------------
# Queue a thumbnail task for every stored instance with pixel data. Default: only with a
# broker; without one the task would run inside the STOW request, so the embedded profile
# makes each thumbnail on its first request instead.
ARCHWAY_THUMBNAILS_ON_STORE = env_bool("ARCHWAY_THUMBNAILS_ON_STORE", bool(CELERY_BROKER_URL))
# Transfer syntaxes to pre-transcode every stored image into (comma-separated UIDs).
ARCHWAY_PRETRANSCODE = env_list("ARCHWAY_PRETRANSCODE")

# --- worklist (UPS-RS) event channel ------------------------------------------------------
# Event reports reach WebSocket clients through a channel layer. In memory (the default)
# works within ONE server process only; with several processes (or machines) set
# ARCHWAY_CHANNEL_LAYER_URL=redis://… so an event raised in one reaches clients of all.
ARCHWAY_CHANNEL_LAYER_URL = env("ARCHWAY_CHANNEL_LAYER_URL")
ARCHWAY_CHANNEL_LAYER_PREFIX = env("ARCHWAY_CHANNEL_LAYER_PREFIX", "archway")
if ARCHWAY_CHANNEL_LAYER_URL:
    CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "channels_redis.core.RedisChannelLayer",
            "CONFIG": {"hosts": [ARCHWAY_CHANNEL_LAYER_URL], "prefix": ARCHWAY_CHANNEL_LAYER_PREFIX},
        }
    }
else:
    CHANNEL_LAYERS = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}
# COMPLETED/CANCELED workitems are deleted this long after they finish, unless a
# subscriber holds a deletion lock (then when the last lock is released and the time is up).
ARCHWAY_UPS_RETENTION_SECONDS = env_int("ARCHWAY_UPS_RETENTION_SECONDS", 3600)

# --- i18n / static --------------------------------------------------------------------
LANGUAGE_CODE = "en-us"
TIME_ZONE = env("TIME_ZONE", "UTC")
USE_I18N = True
USE_TZ = True
STATIC_URL = "static/"
STATIC_ROOT = VAR_DIR / "static"
STATICFILES_DIRS = [BASE_DIR / "static"]
# WhiteNoise also serves files found by the staticfiles finders (app and static/ folders),
# so the admin is styled even where collectstatic has not run (the test server).
WHITENOISE_USE_FINDERS = True

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": env("LOG_LEVEL", "INFO")},
    "loggers": {"django.request": {"level": "ERROR"}},
}
