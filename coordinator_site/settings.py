"""Settings, read from the environment (and `.env`) through django-environ.

Every variable is documented, with its default, in `.env.example`. Sections follow the
data flow: core, database, contract, feeds, predict, score, checkpoints, reports.
"""

import os
import sys
from pathlib import Path

import environ

from coordinator_site.logging import stdout_logging

BASE_DIR = Path(__file__).resolve().parent.parent

env = environ.Env()
# Under pytest (which exports PYTEST_VERSION to the suite and its subprocesses) the developer's
# `.env` is never read, so tests see only the defaults and what they set themselves.
RUNNING_TESTS = bool(os.environ.get("PYTEST_VERSION"))
if RUNNING_TESTS:
    os.environ.setdefault("SECRET_KEY", "test-secret-key-not-for-production")
    os.environ.setdefault("EXTRA_INSTALLED_APPS", "tests.workerapp")
else:
    # `.env` is optional; real environment variables always win over it.
    environ.Env.read_env(os.environ.get("ENV_FILE", BASE_DIR / ".env"), overwrite=False)
# prometheus-client treats a variable that is set at all as on, so an empty
# PROMETHEUS_MULTIPROC_DIR (.env.example's default) would write counter_<pid>.db files into the
# working directory. Empty means unset here, as everywhere else in these settings.
if not os.environ.get("PROMETHEUS_MULTIPROC_DIR", "x"):
    del os.environ["PROMETHEUS_MULTIPROC_DIR"]

# --- Core -------------------------------------------------------------------------------
DEFAULT_SECRET_KEY = "dev-insecure-change-me"  # noqa: S105 - flagged by a system check
SECRET_KEY = env.str("SECRET_KEY", default="") or DEFAULT_SECRET_KEY
DEBUG = env.bool("DEBUG", default=False)
ALLOWED_HOSTS = env.list("ALLOWED_HOSTS", default=["localhost", "127.0.0.1", "[::1]"])
# Internal names other containers use (compose sets `web`, so Prometheus can scrape web:8000).
ALLOWED_HOSTS += env.list("EXTRA_ALLOWED_HOSTS", default=[])
CSRF_TRUSTED_ORIGINS = env.list("CSRF_TRUSTED_ORIGINS", default=[])
# Behind a TLS-terminating proxy set SECURE_SSL_REDIRECT etc. (see .env.example).
SECURE_SSL_REDIRECT = env.bool("SECURE_SSL_REDIRECT", default=False)
# Probes and Prometheus speak plain HTTP inside the deployment.
SECURE_REDIRECT_EXEMPT = [r"^healthz$", r"^metrics$"]
SESSION_COOKIE_SECURE = env.bool("SESSION_COOKIE_SECURE", default=False)
CSRF_COOKIE_SECURE = env.bool("CSRF_COOKIE_SECURE", default=False)
SECURE_HSTS_SECONDS = env.int("SECURE_HSTS_SECONDS", default=0)
SECURE_HSTS_INCLUDE_SUBDOMAINS = env.bool("SECURE_HSTS_INCLUDE_SUBDOMAINS", default=False)
SECURE_HSTS_PRELOAD = env.bool("SECURE_HSTS_PRELOAD", default=False)
if env.bool("USE_X_FORWARDED_PROTO", default=False):
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
SECURE_CONTENT_TYPE_NOSNIFF = True
X_FRAME_OPTIONS = "DENY"

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django.contrib.humanize",
    "rest_framework",
    "django_filters",
    "drf_spectacular",
    "drf_spectacular_sidecar",  # Swagger UI assets served from our static files, no CDN
    "corsheaders",
    "coordinator_site",
    "feeds",
    "predictions",
    "scoring",
    "tournament",
    "checkpoints",
    "monitoring",
    "replay",
    "reports",
    *env.list("EXTRA_INSTALLED_APPS", default=[]),  # e.g. the test suite's helper app
]

# Prometheus request metrics (latency by route); METRICS_ENABLED=false drops the middleware.
METRICS_ENABLED = env.bool("METRICS_ENABLED", default=True)
MIDDLEWARE = [
    *(["coordinator_site.metrics.RequestMetricsMiddleware"] if METRICS_ENABLED else []),
    "django.middleware.security.SecurityMiddleware",
    "coordinator_site.middleware.RejectNullBytesMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "corsheaders.middleware.CorsMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "coordinator_site.urls"
WSGI_APPLICATION = "coordinator_site.wsgi.application"
APPEND_SLASH = False  # API paths have no trailing slash and never redirect

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

# --- Database ---------------------------------------------------------------------------
# DATABASE_URL unset -> the embedded default: a SQLite file shared by several worker
# processes (WAL journal, busy timeout, BEGIN IMMEDIATE so writers queue instead of failing).
SQLITE_PATH = env.str("SQLITE_PATH", default=str(BASE_DIR / "db.sqlite3"))
# An empty DATABASE_URL (as in a fresh copy of .env.example) means "unset", not "no engine".
DATABASES = {"default": env.db_url_config(env.str("DATABASE_URL", default="") or f"sqlite:///{SQLITE_PATH}")}
_db = DATABASES["default"]
_process_name = Path(sys.argv[0]).name
if _process_name in ("manage.py", "django-admin") and len(sys.argv) > 1:
    _process_name = sys.argv[1]
if _db["ENGINE"] == "django.db.backends.sqlite3":
    _db.setdefault("OPTIONS", {}).update(
        {
            "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
            "transaction_mode": "IMMEDIATE",
            "timeout": env.float("SQLITE_BUSY_TIMEOUT_SECONDS", default=30.0),
        }
    )
    # A file (not :memory:) test database, so subprocess tests can share it.
    _db["TEST"] = {"NAME": env.str("SQLITE_TEST_PATH", default=str(BASE_DIR / ".test-db.sqlite3"))}
else:
    _db.setdefault("OPTIONS", {})["application_name"] = f"coordinator:{_process_name}"[:63]
    _db["CONN_MAX_AGE"] = env.int("CONN_MAX_AGE", default=60)
    _db["CONN_HEALTH_CHECKS"] = True
# Postgres only: the heaviest report reads (/reports/predictions) are prepared once per
# connection. Set false behind a transaction-pooling proxy without prepared-statement support.
DB_PREPARED_STATEMENTS = env.bool("DB_PREPARED_STATEMENTS", default=True)
# `manage.py replay` runs in a child process whose default database is a scratch store; it
# reads the live rows through this second alias, opened read-only (docs/replay.md).
if env.str("REPLAY_SOURCE_DATABASE_URL", default=""):
    DATABASES["replay_source"] = env.db_url_config(env.str("REPLAY_SOURCE_DATABASE_URL"))
    if DATABASES["replay_source"]["ENGINE"] == "django.db.backends.sqlite3":
        DATABASES["replay_source"]["NAME"] = f"file:{DATABASES['replay_source']['NAME']}?mode=ro"
        DATABASES["replay_source"]["OPTIONS"] = {"uri": True, "timeout": 30.0}
    else:
        DATABASES["replay_source"]["OPTIONS"] = {"options": "-c default_transaction_read_only=on"}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# --- i18n / time ------------------------------------------------------------------------
LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
# ISO-ordered UTC dates in the admin too (coordinator_site/formats/en/formats.py).
FORMAT_MODULE_PATH = ["coordinator_site.formats"]
USE_I18N = False
USE_TZ = True

# --- Static files -----------------------------------------------------------------------
STATIC_URL = "static/"
STATIC_ROOT = env.str("STATIC_ROOT", default=str(BASE_DIR / "staticfiles"))
STATICFILES_DIRS = [BASE_DIR / "static"] if (BASE_DIR / "static").is_dir() else []
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedStaticFilesStorage"},
}

# --- Logging ----------------------------------------------------------------------------
LOG_LEVEL = env.str("LOG_LEVEL", default="INFO").upper()
LOG_FORMAT = env.str("LOG_FORMAT", default="text")  # text | json
LOGGING = stdout_logging(level=LOG_LEVEL, fmt=LOG_FORMAT, loggers={"django.db.backends": {"level": "WARNING"}})

# --- Contract (DESIGN.md §2) ------------------------------------------------------------
CRUNCH_CONTRACT = env.str("CRUNCH_CONTRACT", default="coordinator_site.contract:STARTER_CONTRACT")
# Per-slot overrides (`module:attr`); empty means "use the contract's default".
CALLABLE_SLOTS = (
    "RAW_INPUT_PROVIDER",
    "INFERENCE_INPUT_BUILDER",
    "INFERENCE_OUTPUT_VALIDATOR",
    "PREDICTION_SCOPE_BUILDER",
    "PREDICT_CALL_BUILDER",
    "GROUND_TRUTH_RESOLVER",
    "SCORING_FUNCTION",
    "MODEL_SCORE_AGGREGATOR",
    "LEADERBOARD_RANKER",
    "EMISSION_BUILDER",
    "REPORT_SCHEMA_PROVIDER",
)
CALLABLE_OVERRIDES = {slot: env.str(slot, default="") for slot in CALLABLE_SLOTS}
CRUNCH_ID = env.str("CRUNCH_ID", default="starter")
CRUNCH_NAME = env.str("CRUNCH_NAME", default="")  # display name; empty -> the contract's name
SOLANA_NETWORK = env.str("SOLANA_NETWORK", default="devnet")
# Chains checkpoints settle on: which transaction hashes confirm accepts (solana, evm).
SETTLEMENT_CHAINS = env.list("SETTLEMENT_CHAINS", default=["solana"])

# --- Workers (DESIGN.md §5) -------------------------------------------------------------
WORKER_HEARTBEAT_SECONDS = env.float("WORKER_HEARTBEAT_SECONDS", default=5.0)
WORKER_ERROR_BACKOFF_MAX_SECONDS = env.float("WORKER_ERROR_BACKOFF_MAX_SECONDS", default=60.0)
# One INFO summary line per worker per interval; each unit is logged at DEBUG.
WORKER_LOG_SUMMARY_SECONDS = env.float("WORKER_LOG_SUMMARY_SECONDS", default=60.0)

# --- Health and metrics (docs/operations.md) ------------------------------------------------
# Node health is computed at most this often per web process; /healthz, the badge, the health
# page and /reports/health read the same computed value in between.
HEALTH_CACHE_SECONDS = env.float("HEALTH_CACHE_SECONDS", default=2.0)
# Model-level metric labels: at most this many models get their own label, the rest "other".
METRICS_MODEL_LABEL_CAP = env.int("METRICS_MODEL_LABEL_CAP", default=50)
# Empty: /metrics is open (keep it off the public proxy); set: Prometheus sends it as a bearer token.
METRICS_BEARER_TOKEN = env.str("METRICS_BEARER_TOKEN", default="")

# --- Feeds (DESIGN.md §6) ---------------------------------------------------------------
FEED_SOURCE = env.str("FEED_SOURCE", default="pyth")
FEED_SUBJECTS = env.list("FEED_SUBJECTS", default=["BTC"])
FEED_KIND = env.str("FEED_KIND", default="tick")
FEED_GRANULARITY = env.str("FEED_GRANULARITY", default="1s")
FEED_POLL_SECONDS = env.float("FEED_POLL_SECONDS", default=5.0)
FEED_BACKFILL_MINUTES = env.int("FEED_BACKFILL_MINUTES", default=180)
FEED_PAGE_SIZE = env.int("FEED_PAGE_SIZE", default=500)
FEED_RECORD_TTL_DAYS = env.int("FEED_RECORD_TTL_DAYS", default=90)
FEED_WINDOW_SIZE = env.int("FEED_WINDOW_SIZE", default=120)
FEED_HTTP_TIMEOUT_SECONDS = env.float("FEED_HTTP_TIMEOUT_SECONDS", default=8.0)
FEED_CSV_PATH = env.str("FEED_CSV_PATH", default="")
FEED_BACKFILL_LEASE_SECONDS = env.int("FEED_BACKFILL_LEASE_SECONDS", default=120)
SYNTHETIC_SEED = env.int("SYNTHETIC_SEED", default=42)
SYNTHETIC_START_PRICE = env.float("SYNTHETIC_START_PRICE", default=60000.0)
SYNTHETIC_VOLATILITY = env.float("SYNTHETIC_VOLATILITY", default=0.0005)
PYTH_HERMES_URL = env.str("PYTH_HERMES_URL", default="https://hermes.pyth.network")
PYTH_API_KEY = env.str("PYTH_API_KEY", default="")
PYTH_HISTORY_URL = env.str("PYTH_HISTORY_URL", default="")
PYTH_HISTORY_TOKEN = env.str("PYTH_HISTORY_TOKEN", default="")
PYTH_FEED_IDS = env.dict("PYTH_FEED_IDS", default={})  # SUBJECT=hexid,... overrides
BINANCE_API_KEY = env.str("BINANCE_API_KEY", default="")
BINANCE_API_SECRET = env.str("BINANCE_API_SECRET", default="")
BINANCE_API_URL = env.str("BINANCE_API_URL", default="")  # empty -> python-binance default
# Stream mode (docs/feeds.md "Stream mode"): push connections where the provider has one, else polling.
FEED_MODE = env.str("FEED_MODE", default="stream")  # stream | poll
FEED_STREAM_IDLE_SECONDS = env.float("FEED_STREAM_IDLE_SECONDS", default=15.0)  # silent this long -> reconnect
FEED_STREAM_RECONNECT_MAX_SECONDS = env.float("FEED_STREAM_RECONNECT_MAX_SECONDS", default=30.0)  # backoff cap
FEED_STREAM_BATCH_MS = env.int("FEED_STREAM_BATCH_MS", default=50)  # a record waits at most this long
FEED_STREAM_BATCH_RECORDS = env.int("FEED_STREAM_BATCH_RECORDS", default=500)  # ... or until this many
FEED_STREAM_LINGER_MS = env.int("FEED_STREAM_LINGER_MS", default=5)  # ... or until none came for this long
BINANCE_STREAM_URL = env.str("BINANCE_STREAM_URL", default="")  # empty -> python-binance default (wss)

# --- Predict (DESIGN.md §7) -------------------------------------------------------------
PREDICTION_CONFIGS_PATH = env.str(
    "PREDICTION_CONFIGS_PATH", default=str(BASE_DIR / "scheduled_prediction_configs.json")
)
MODEL_GATEWAY = env.str("MODEL_GATEWAY", default="local")  # local | remote
MODELS_DIR = env.str("MODELS_DIR", default=str(BASE_DIR / "examples" / "models"))
MODEL_BASE_CLASSNAME = env.str("MODEL_BASE_CLASSNAME", default="cruncher.ModelBaseClass")
MODEL_CALL_TIMEOUT_SECONDS = env.float("MODEL_CALL_TIMEOUT_SECONDS", default=5.0)
# Local gateway: a model whose calls end in SystemExit/KeyboardInterrupt this many times in a row
# is quarantined (leaves until its code changes), like the remote client's failure limits.
LOCAL_MODEL_MAX_CONSECUTIVE_KILLS = env.int("LOCAL_MODEL_MAX_CONSECUTIVE_KILLS", default=3)
MODEL_RUNNER_NODE_HOST = env.str("MODEL_RUNNER_NODE_HOST", default="127.0.0.1")
MODEL_RUNNER_NODE_PORT = env.int("MODEL_RUNNER_NODE_PORT", default=9091)
MODEL_RUNNER_REPORT_FAILURE = env.bool("MODEL_RUNNER_REPORT_FAILURE", default=False)
MODEL_RUNNER_MAX_CONSECUTIVE_FAILURES = env.int("MODEL_RUNNER_MAX_CONSECUTIVE_FAILURES", default=100)
MODEL_RUNNER_MAX_CONSECUTIVE_TIMEOUTS = env.int("MODEL_RUNNER_MAX_CONSECUTIVE_TIMEOUTS", default=100)
SECURE_CERT_DIR = env.str("SECURE_CERT_DIR", default="")
GATEWAY_CERT_DIR = env.str("GATEWAY_CERT_DIR", default="")
PREDICT_LEASE_SECONDS = env.int("PREDICT_LEASE_SECONDS", default=60)
# Ticks as data arrives (docs/predict.md "Event ticks"): auto (on for the local gateway, off for
# remote) | on | off. A contract with `event_ticks=False` turns them off whatever this says.
EVENT_TICKS = env.str("EVENT_TICKS", default="auto")

# --- Score (DESIGN.md §8) ---------------------------------------------------------------
GROUND_TRUTH_GRACE_SECONDS = env.int("GROUND_TRUTH_GRACE_SECONDS", default=3600)
SCORE_LEASE_SECONDS = env.int("SCORE_LEASE_SECONDS", default=120)
# Tape-first recovery (docs/scoring.md "Gap fetch"): when the tape lacks a price a ground truth needs,
# the resolver asks the stream's provider for that window: one fetch per stream per score batch, each
# time-boxed (0 turns the fetch off; a batch stops asking at half its lease in any case), a stream
# asked at most once per interval across all workers, and only for these sources (history that is a
# record of the market).
GROUND_TRUTH_FETCH_TIMEOUT_SECONDS = env.float("GROUND_TRUTH_FETCH_TIMEOUT_SECONDS", default=5.0)
GROUND_TRUTH_FETCH_INTERVAL_SECONDS = env.float("GROUND_TRUTH_FETCH_INTERVAL_SECONDS", default=60.0)
GROUND_TRUTH_FETCH_SOURCES = env.list("GROUND_TRUTH_FETCH_SOURCES", default=["pyth", "binance"])
# On PostgreSQL an idle worker sleeps until its next due time or a notification, but never longer
# than this (a lost notification, or work it cannot foresee, waits at most this long).
WAKEUP_FALLBACK_SECONDS = env.float("WAKEUP_FALLBACK_SECONDS", default=5.0)
# false: workers poll every --sleep on PostgreSQL too, as on SQLite (e.g. behind a transaction-pooling
# PgBouncer, which cannot LISTEN; bench/e2e_latency.py uses it to measure the polling node).
WAKEUP_ENABLED = env.bool("WAKEUP_ENABLED", default=True)
# An Input still unprocessable (resolver or write raising) after this many attempts is EXPIRED
# with reason POISONED; its predictions are not held against the models.
SCORE_MAX_ATTEMPTS = env.int("SCORE_MAX_ATTEMPTS", default=5)
SNAPSHOT_PERIOD_SECONDS = env.int("SNAPSHOT_PERIOD_SECONDS", default=3600)
LEADERBOARD_HISTORY = env.int("LEADERBOARD_HISTORY", default=200)
# worst | exclude | a number (fixed score). Empty -> the contract's policy.
MISSING_PREDICTION_POLICY = env.str("MISSING_PREDICTION_POLICY", default="")
# Score pass over each Input's scores (scoring/postprocess.py): none | cap | normalise, and the
# cap percentile (a number in (0, 100] or "none"). Empty -> the contract's score_pass.
SCORE_PASS = env.str("SCORE_PASS", default="")
SCORE_PASS_CAP_PERCENTILE = env.str("SCORE_PASS_CAP_PERCENTILE", default="")

# --- Checkpoints (DESIGN.md §9) ---------------------------------------------------------
CHECKPOINT_INTERVAL_SECONDS = env.int("CHECKPOINT_INTERVAL_SECONDS", default=604800)
CHECKPOINT_GRACE_SECONDS = env.int("CHECKPOINT_GRACE_SECONDS", default=3600)
CRUNCH_PUBKEY = env.str("CRUNCH_PUBKEY", default="")
COMPUTE_PROVIDER_PUBKEY = env.str("COMPUTE_PROVIDER_PUBKEY", default="")
DATA_PROVIDER_PUBKEY = env.str("DATA_PROVIDER_PUBKEY", default="")

# --- Reports (DESIGN.md §10) ------------------------------------------------------------
REPORTS_REQUIRE_AUTH = env.bool("REPORTS_REQUIRE_AUTH", default=False)
# How often each web process re-checks which leaderboard is the newest (0: on every request).
REPORTS_LEADERBOARD_RECHECK_SECONDS = env.float("REPORTS_LEADERBOARD_RECHECK_SECONDS", default=1.0)
# Predictions whose report JSON each web process keeps, checked against the row's version on
# every read (PostgreSQL; ~0.6 kB each; 0: off).
REPORTS_ROW_CACHE_ROWS = env.int("REPORTS_ROW_CACHE_ROWS", default=20000)
CORS_ALLOWED_ORIGINS = env.list("CORS_ALLOWED_ORIGINS", default=[])
# Seconds between in-place refreshes of the live pages (leaderboard, model, feeds, health); 0: off.
PAGES_REFRESH_SECONDS = env.float("PAGES_REFRESH_SECONDS", default=5.0)
REST_FRAMEWORK = {
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "DEFAULT_FILTER_BACKENDS": ["django_filters.rest_framework.DjangoFilterBackend"],
    "DEFAULT_RENDERER_CLASSES": [
        "rest_framework.renderers.JSONRenderer",
        "rest_framework.renderers.BrowsableAPIRenderer",
    ],
    "UNAUTHENTICATED_USER": "django.contrib.auth.models.AnonymousUser",
    "EXCEPTION_HANDLER": "rest_framework.views.exception_handler",
}
SPECTACULAR_SETTINGS = {
    "TITLE": "Coordinator node report API",
    "DESCRIPTION": "Leaderboard, models, predictions, feeds, snapshots and checkpoints.",
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "ENUM_NAME_OVERRIDES": {
        "CheckpointStatusEnum": "checkpoints.choices.CheckpointStatus",
        "PredictionStatusEnum": "predictions.choices.PredictionStatus",
        "ModelStatusEnum": "predictions.choices.ModelStatus",
        "FailureReasonEnum": "predictions.choices.FailureReason",
    },
}
# Browsers may read the pagination header of cross-origin responses.
CORS_EXPOSE_HEADERS = ["Link"]

# --- Tournament rounds (docs/tournament.md) -------------------------------------------------
# Weight of the out-of-sample part in a round's combined score (in-sample gets 1 - weight);
# a round opened without its own weight takes this one.
TOURNAMENT_OUT_OF_SAMPLE_WEIGHT = env.float("TOURNAMENT_OUT_OF_SAMPLE_WEIGHT", default=0.5)
# The model method called once per sample, with the sample's features as its one argument.
TOURNAMENT_PREDICT_METHOD = env.str("TOURNAMENT_PREDICT_METHOD", default="predict")
# Samples inferred per run_predict pass (live slots are served between chunks).
TOURNAMENT_INFERENCE_CHUNK = env.int("TOURNAMENT_INFERENCE_CHUNK", default=25)
# Lease on a round claimed for inference or scoring (a crashed worker's round is taken over).
TOURNAMENT_LEASE_SECONDS = env.int("TOURNAMENT_LEASE_SECONDS", default=300)
# Folder of round files (JSON: samples with sample_id, features, part) that `doctor` validates,
# with the models' round method; empty: no tournament checks (a workspace of the tournament pack sets it).
TOURNAMENT_ROUNDS_DIR = env.str("TOURNAMENT_ROUNDS_DIR", default="")
