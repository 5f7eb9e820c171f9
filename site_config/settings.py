"""Settings for the jobs site, read from the environment (see .env.example and the README)."""
from datetime import timedelta
from pathlib import Path

import environ
from django.core.exceptions import ImproperlyConfigured

from jobs.queues import job_queues

BASE_DIR = Path(__file__).resolve().parent.parent

env = environ.Env()
# A local .env fills in what the real environment leaves unset; it never overrides it.
if (BASE_DIR / ".env").is_file():
    env.read_env(BASE_DIR / ".env")

DEBUG = env.bool("DJANGO_DEBUG", default=False)

SECRET_KEY = env.str("DJANGO_SECRET_KEY", default="")
if not SECRET_KEY:
    if not DEBUG:
        raise ImproperlyConfigured(
            "Set DJANGO_SECRET_KEY (any long random string) or DJANGO_DEBUG=true. "
            "`make env` writes a .env with a fresh key."
        )
    SECRET_KEY = "insecure-key-for-debug-only"

ALLOWED_HOSTS = env.list("DJANGO_ALLOWED_HOSTS", default=["localhost", "127.0.0.1"])
CSRF_TRUSTED_ORIGINS = env.list("DJANGO_CSRF_TRUSTED_ORIGINS", default=[])

# Served over HTTPS (production): redirect plain HTTP, send HSTS, keep cookies off plain HTTP.
# Off by default so `make run` works on http://localhost; `manage.py check --deploy` wants it on.
HTTPS = env.bool("DJANGO_HTTPS", default=False)
SECURE_SSL_REDIRECT = SESSION_COOKIE_SECURE = CSRF_COOKIE_SECURE = HTTPS
SECURE_HSTS_SECONDS = 365 * 24 * 3600 if HTTPS else 0
SECURE_HSTS_INCLUDE_SUBDOMAINS = HTTPS
# Asking browsers to hard-code HTTPS for the domain is hard to undo: a choice of its own.
SECURE_HSTS_PRELOAD = HTTPS and env.bool("DJANGO_HSTS_PRELOAD", default=False)
SILENCED_SYSTEM_CHECKS = [] if SECURE_HSTS_PRELOAD else ["security.W021"]  # "no preload": chosen above

# Behind a proxy (one that ends TLS, a load balancer): trust its X-Forwarded-Proto, and take the
# client's address from X-Forwarded-For, DJANGO_PROXY_COUNT entries from the end (each proxy
# appends one). Only then: a client can send those headers too, and would pick its own address
# for the rate limits and the sign-in lockout.
BEHIND_PROXY = env.bool("DJANGO_BEHIND_PROXY", default=False)
PROXY_COUNT = env.int("DJANGO_PROXY_COUNT", default=1) if BEHIND_PROXY else 0
if BEHIND_PROXY:
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
NINJA_NUM_PROXIES = PROXY_COUNT  # django-ninja's throttles (JOBS_LAUNCH_RATE)
AXES_IPWARE_PROXY_COUNT = PROXY_COUNT or None  # django-axes (the sign-in lockout)
AXES_IPWARE_META_PRECEDENCE_ORDER = ["HTTP_X_FORWARDED_FOR", "REMOTE_ADDR"] if BEHIND_PROXY else ["REMOTE_ADDR"]

# Failed sign-ins, on the site's login page and the admin's (django-axes): after
# LOGIN_FAILURE_LIMIT failures for one account from one address, that account is refused on that
# address for LOGIN_LOCKOUT_MINUTES (elsewhere, its owner still signs in); after
# LOGIN_ADDRESS_FAILURE_LIMIT failures from one address over any accounts, the address is. A page
# says so. A success resets the count. Why: site_config/lockout.py.
AXES_FAILURE_LIMIT = env.int("LOGIN_FAILURE_LIMIT", default=5)
LOGIN_ADDRESS_FAILURE_LIMIT = env.int("LOGIN_ADDRESS_FAILURE_LIMIT", default=50)
AXES_COOLOFF_TIME = timedelta(minutes=env.int("LOGIN_LOCKOUT_MINUTES", default=15))
AXES_HANDLER = "site_config.lockout.AccountOnAddressLockout"
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"], "ip_address"]  # site_config/lockout.py counts them

AXES_RESET_ON_SUCCESS = True
AXES_LOCKOUT_TEMPLATE = "registration/locked_out.html"
AUTHENTICATION_BACKENDS = [
    "axes.backends.AxesStandaloneBackend",  # first: refuses locked-out accounts and addresses
    "django.contrib.auth.backends.ModelBackend",
]

# Content-Security-Policy (django-csp): scripts and styles only from this site's static files,
# no inline script anywhere; style attributes are allowed (the admin and Swagger UI set them).
CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": ["'self'"],
        "script-src": ["'self'"],
        "style-src": ["'self'", "'unsafe-inline'"],
        "img-src": ["'self'", "data:"],
        "object-src": ["'none'"],
        "base-uri": ["'self'"],
        "form-action": ["'self'"],
        "frame-ancestors": ["'none'"],
    },
}
# Features no page here uses, refused to every page (site_config/middleware.py).
PERMISSIONS_POLICY = "camera=(), microphone=(), geolocation=(), payment=(), usb=(), interest-cohort=()"

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django_celery_results",
    "django_celery_beat",
    "ninja",
    "axes",
    "csp",
    # The job engine: a reusable app that needs none of the apps below it.
    "jobs",
    # Apps built on the engine; each is optional.
    "accounts",  # API tokens, sign-up with an activation email
    "contacts",  # CSV import of contacts
    "reports",  # the report file job
    "examples",  # the seeds' small jobs: add, say_hello, countdown, probe, fetch_url
]

MIDDLEWARE = [
    "site_config.middleware.RefuseNulMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "csp.middleware.CSPMiddleware",
    "site_config.middleware.SecurityHeadersMiddleware",
    "axes.middleware.AxesMiddleware",  # last, as django-axes asks
]

ROOT_URLCONF = "site_config.urls"
WSGI_APPLICATION = "site_config.wsgi.application"

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
            ],
        },
    },
]

DATABASES = {"default": env.db("DATABASE_URL", default="postgres://postgres@127.0.0.1:5432/jobs")}
# Keep connections open between requests and between tasks (see jobs/results/fixups.py),
# and check one still works before reusing it, so a PostgreSQL restart costs one reconnect.
DATABASES["default"]["CONN_MAX_AGE"] = env.int("DATABASE_CONN_MAX_AGE", default=600)
DATABASES["default"]["CONN_HEALTH_CHECKS"] = True
# Behind PgBouncer in transaction pooling mode: no server-side cursors, which would outlive the
# transaction whose server connection they live on (Django's docs on transaction pooling).
DATABASES["default"]["DISABLE_SERVER_SIDE_CURSORS"] = env.bool("DATABASE_TRANSACTION_POOLING", default=False)
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# The Django cache, and beat's lock (jobs/scheduling/beat.py).
REDIS_URL = env.str("REDIS_URL", default="redis://127.0.0.1:6379/0")
# Redis's answers wait a second at most: a frozen Redis (a stopped VM, a full disk) costs a launch about
# that before the launch rate and the unfinished count fail open (redis-py's default is 5 s a call).
CACHES = {"default": {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": REDIS_URL,
                      "OPTIONS": {"socket_connect_timeout": 1, "socket_timeout": 1}}}

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

LANGUAGE_CODE = "en-us"
TIME_ZONE = env.str("DJANGO_TIME_ZONE", default="UTC")
USE_I18N = True
USE_TZ = True
FORMAT_MODULE_PATH = ["site_config.formats"]  # one time format everywhere (see its module)

STATIC_URL = "static/"
STATIC_ROOT = BASE_DIR / "staticfiles"
# Uploaded CSV files and generated reports; in docker compose, a volume shared by web and workers.
MEDIA_ROOT = env.path("MEDIA_ROOT", default=BASE_DIR / "media")
MEDIA_URL = "media/"

# Email: console by default; SMTP with EMAIL_URL=smtp+tls://user:password@host:587. Sets
# EMAIL_BACKEND, EMAIL_HOST... (django-environ's documented way).
vars().update(env.email_url("EMAIL_URL", default="consolemail://"))
# Activation emails are sent at most this fast, across every worker (a sign-up storm stays within the SMTP
# provider's rate); the rest wait their turn in the database.
ACTIVATION_EMAIL_RATE = env.str("ACTIVATION_EMAIL_RATE", default="10/s")
DEFAULT_FROM_EMAIL = env.str("DEFAULT_FROM_EMAIL", default="jobs@localhost")
# Where links in emails point.
SITE_URL = env.str("SITE_URL", default=f"http://localhost:{env.int('WEB_PORT', default=8000)}")  # make run sets WEB_PORT
# How long an activation link works.
ACTIVATION_MAX_AGE = timedelta(days=env.int("ACTIVATION_DAYS", default=3))

# Jobs (and imports, and sign-ups) one user, or one address when signed out, may start: "60/m".
JOBS_LAUNCH_RATE = env.str("JOBS_LAUNCH_RATE", default="60/m")
# Jobs one person may have queued or running at once (a workflow's steps each count); 0: no limit.
JOBS_MAX_UNFINISHED = env.int("JOBS_MAX_UNFINISHED", default=10_000)
# Whether this process's workers send the jobs waiting on their limits (jobs/limits/dispatcher.py). Any one
# worker dispatching is enough; turn it off for a worker that should only run jobs.
JOBS_LIMITS_DISPATCH = env.bool("JOBS_LIMITS_DISPATCH", default=True)
# The longest a unique job's key is held until its job starts or finishes (job(unique=...)): the bound
# on a key whose job was lost before it reached the queue (a web process killed between its commit and
# its publish). A job still queued after this long no longer keeps an identical one out.
JOBS_UNIQUE_MAX_HOLD = timedelta(hours=env.int("JOBS_UNIQUE_MAX_HOLD_HOURS", default=24))

# The fetch job (examples/fetch.py) fetches public addresses only; networks listed here too
# (comma-separated, e.g. "10.1.2.0/24,127.0.0.1/32" for an intranet page, or tests' local server).
FETCH_ALLOWED_NETWORKS = env.list("FETCH_ALLOWED_NETWORKS", default=[])
# Alert rules' webhooks are POSTed by the worker from inside the network: to public addresses only,
# unless this lists the network of an internal receiver (e.g. 10.0.5.0/24 for Alertmanager's).
ALERT_WEBHOOK_ALLOWED_NETWORKS = env.list("ALERT_WEBHOOK_ALLOWED_NETWORKS", default=[])
# The fetch job (jobs.fetch_url) is polite to each host, across every worker: at most this many fetches
# of one host a second, and this many at once.
FETCH_RATE_PER_HOST = env.str("FETCH_RATE_PER_HOST", default="2/s")
FETCH_CONCURRENCY_PER_HOST = env.int("FETCH_CONCURRENCY_PER_HOST", default=4)

# CSV imports: refused before anything is stored or enqueued when larger.
IMPORT_MAX_BYTES = env.int("IMPORT_MAX_BYTES", default=20 * 1024 * 1024)
IMPORT_MAX_ROWS = env.int("IMPORT_MAX_ROWS", default=200_000)
# Rows a chunk job imports: chunks run side by side on `long`; a worker holds one chunk, not the file.
IMPORT_CHUNK_ROWS = env.int("IMPORT_CHUNK_ROWS", default=25_000)
# At most this many chunks of one person's imports run at once (a limit across every worker): one huge
# file cannot take every `long` worker from the others' imports and reports.
IMPORT_CHUNKS_PER_OWNER = env.int("IMPORT_CHUNKS_PER_OWNER", default=2)
# Larger uploads are stopped while they stream in, never spooled to disk in full (contacts/uploads.py).
FILE_UPLOAD_HANDLERS = [
    "contacts.uploads.SizeLimitedUploadHandler",
    "django.core.files.uploadhandler.MemoryFileUploadHandler",
    "django.core.files.uploadhandler.TemporaryFileUploadHandler",
]

# Bodies above this size are refused with 413 before anything is parsed or enqueued.
DATA_UPLOAD_MAX_MEMORY_SIZE = env.int("DJANGO_MAX_REQUEST_BYTES", default=256 * 1024)

# --- Celery -------------------------------------------------------------------------------
# Read by site_config/celery.py through config_from_object(namespace="CELERY").

# RabbitMQ, never the database (best practice 1): a real broker acknowledges, redelivers and
# never hands a long-running task to a second worker because a visibility timeout ran out.
CELERY_BROKER_URL = env.str("CELERY_BROKER_URL", default="amqp://guest:guest@localhost:5672//")
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
# Publisher confirms: publishing returns only once RabbitMQ has taken responsibility for the
# message, so a launch that answered 202 cannot be lost in a broker crash a moment later.
CELERY_BROKER_TRANSPORT_OPTIONS = {"confirm_publish": True}

# Results in PostgreSQL through the ORM. Overridable only so the benchmark can compare rpc://.
CELERY_RESULT_BACKEND = env.str("CELERY_RESULT_BACKEND", default="jobs.results:DatabaseBackend")
# Store task name, args, kwargs and worker with each result, and record STARTED.
CELERY_RESULT_EXTENDED = True
CELERY_TASK_TRACK_STARTED = True
# A run is recorded STARTED once it has lasted this long (jobs/results/started.py); a job that ends
# sooner goes from PENDING to its outcome, which records when and where it started. 0: at every start.
JOBS_STARTED_AFTER_SECONDS = env.float("JOBS_STARTED_AFTER_SECONDS", default=0.1)
# A job sent from code outside a transaction has its record written on a second connection of the
# process while the message is published (jobs/records/alongside.py); false: on Django's, before it.
JOBS_RECORD_ALONGSIDE = env.bool("JOBS_RECORD_ALONGSIDE", default=True)
CELERY_RESULT_EXPIRES = timedelta(days=env.int("RESULT_RETENTION_DAYS", default=30))
# A result that cannot be written because PostgreSQL restarted is written again on a new
# connection, backing off from 0.1 s to 5 s, for about a minute, instead of being lost.
CELERY_RESULT_BACKEND_ALWAYS_RETRY = True
CELERY_RESULT_BACKEND_MAX_RETRIES = 15
CELERY_RESULT_BACKEND_BASE_SLEEP_BETWEEN_RETRIES_MS = 100
CELERY_RESULT_BACKEND_MAX_SLEEP_BETWEEN_RETRIES_MS = 5000

# JSON only: a pickled message could run arbitrary code on the worker.
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_RESULT_ACCEPT_CONTENT = ["json"]
CELERY_TASK_SERIALIZER = "json"
CELERY_RESULT_SERIALIZER = "json"

CELERY_TIMEZONE = TIME_ZONE

# Beat reads the periodic tasks edited in the admin (django-celery-beat's DatabaseScheduler),
# one beat at a time (jobs/scheduling/beat.py). It looks for edits at least every 5 seconds, and a standby
# beat takes over within BEAT_LOCK_TIMEOUT seconds of the active one dying.
CELERY_BEAT_SCHEDULER = "jobs.scheduling.beat:SingleBeatScheduler"
CELERY_BEAT_MAX_LOOP_INTERVAL = 5
BEAT_LOCK_TIMEOUT = env.int("BEAT_LOCK_TIMEOUT", default=15)

# More queues than the default one, each with its own worker (best practices 2 and 3): short
# email I/O is never stuck behind a 20-minute import. Durable queues and persistent messages
# survive a broker restart. Tasks are routed here, not at call sites.
CELERY_TASK_DEFAULT_QUEUE = "default"
# What a worker refuses without requeueing (failed jobs, unknown tasks, invalid messages) goes to
# the dead-letter queue (declared when a worker starts: jobs/queues/workers.py) instead of vanishing. It keeps them
# 14 days, at most 100,000 (the oldest go first).
DEAD_LETTER_RETENTION = {"x-message-ttl": 14 * 24 * 3600 * 1000, "x-max-length": 100_000}
DEAD_LETTER_EXCHANGE = DEAD_LETTER_QUEUE = "dead-letter"

# The operations pages read queue depths, consumers and rates from RabbitMQ's management HTTP API.
# Empty: the broker's first host on port 15672, with the broker URL's user and password.
RABBITMQ_MANAGEMENT_URL = env.str("RABBITMQ_MANAGEMENT_URL", default="")
# Prometheus scrapes /metrics with this bearer token, or from these networks (comma-separated CIDRs).
METRICS_TOKEN = env.str("METRICS_TOKEN", default="")
METRICS_ALLOWED_NETWORKS = env.list("METRICS_ALLOWED_NETWORKS", default=["127.0.0.1/32", "::1/128"])
# Seconds between a worker's heartbeats (a row in the Worker table); silent for three, it is lost.
WORKER_HEARTBEAT_SECONDS = env.float("WORKER_HEARTBEAT_SECONDS", default=10.0)

# classic: one RabbitMQ node, queues with priorities. quorum: a cluster of nodes (list them all in
# CELERY_BROKER_URL, separated by ";"), replicated queues, a broker-side delivery limit, no
# priorities (RabbitMQ 3.x quorum queues have none). Existing queues keep their type: delete them
# (or start on a fresh vhost) when switching.
BROKER_QUEUE_TYPE = env.str("BROKER_QUEUE_TYPE", default="classic")
CELERY_TASK_QUEUES = job_queues(["default", "email", "long", "demo"], queue_type=BROKER_QUEUE_TYPE,
                                dead_letter_exchange=DEAD_LETTER_EXCHANGE)
CELERY_TASK_DEFAULT_QUEUE_TYPE = BROKER_QUEUE_TYPE
# Django's own tasks API (django.tasks) runs on this engine: a task declared with @task is a catalog job
# (jobs/django_tasks/backend.py), on any of the job queues.
TASKS = {"default": {"BACKEND": "jobs.django_tasks.backend.JobsBackend",
                     "QUEUES": [queue.name for queue in CELERY_TASK_QUEUES]}}
# Django logs every task's start and success at INFO ("django.tasks"), which Celery's worker already
# logs for every job ("received", "succeeded in"): on a worker that doubled the log lines of a django.tasks
# job, and cost it a fifth of its throughput (docs/how-to/django-tasks.md). Failures are still logged,
# with their traceback, at ERROR.
LOGGING = {"version": 1, "disable_existing_loggers": False, "loggers": {"django.tasks": {"level": "WARNING"}}}
CELERY_TASK_ROUTES = {
    "jobs.send_activation_email": {"queue": "email"},
    "jobs.import_contacts": {"queue": "long"},
    "jobs.import_contacts_chunk": {"queue": "long"},
    "jobs.build_report": {"queue": "long"},
    # Anyone may launch the countdown, for up to 10 minutes: on a queue of its own, where it can
    # delay only other countdowns, never an import or a report.
    "jobs.countdown": {"queue": "demo"},
}
CELERY_TASK_DEFAULT_DELIVERY_MODE = "persistent"
# Priorities 0-9 (9 first) on every classic queue: RabbitMQ classic queues order by x-max-priority.
# On quorum queues a job's priority is ignored (see BROKER_QUEUE_TYPE).
if BROKER_QUEUE_TYPE == "classic":
    CELERY_TASK_QUEUE_MAX_PRIORITY = 9
    CELERY_TASK_DEFAULT_PRIORITY = 5

# Late acknowledgement: a task is acknowledged after it finishes, so a worker that dies
# mid-task leaves it on the queue to run again. Right for idempotent tasks, which ours are;
# a task that must never run twice opts out with acks_late=False.
CELERY_TASK_ACKS_LATE = True
# A pool process that dies mid-job (killed, out of memory) does not lose the job: it is retried,
# a few seconds later, up to the job's max_retries (5 by default, jobs/catalog.py). A job that
# kills its process every time ("poison") therefore fails after a bounded number of tries, with
# WorkerLostError as its error, instead of looping; other jobs keep flowing. If the retry cannot be
# sent, the message is requeued instead.
CELERY_TASK_RETRY_ON_WORKER_LOST = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
# A job that fails for good (an error, a time limit, tries used up) has its message rejected, not
# acknowledged: it moves to the dead-letter queue, where it can be inspected (its result, with the
# error, is recorded in the database as well).
CELERY_TASK_ACKS_ON_FAILURE_OR_TIMEOUT = False
# A worker that loses its broker connection stops the late-acked tasks it is running, since
# RabbitMQ hands them to another worker: otherwise they would run twice.
CELERY_WORKER_CANCEL_LONG_RUNNING_TASKS_ON_CONNECTION_LOSS = True
# Reserve one task per process: long tasks do not sit behind a busy process while another
# worker idles, and fewer unacknowledged messages wait out RabbitMQ's consumer timeout.
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
# RabbitMQ closes the channel of a consumer that holds a message unacknowledged for longer
# than its consumer timeout (30 minutes by default), and redelivers the message. The hard
# limit kills a task before that, so no task runs twice for running long; the soft limit
# gives it a minute to clean up first.
CELERY_TASK_TIME_LIMIT = env.int("CELERY_TASK_TIME_LIMIT", default=25 * 60)
CELERY_TASK_SOFT_TIME_LIMIT = CELERY_TASK_TIME_LIMIT - 60

LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "jobs:list"
LOGOUT_REDIRECT_URL = "login"
