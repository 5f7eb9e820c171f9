"""Django settings for the peers measured by `bench_peers.py`: one small site per peer, chosen by
BENCH_PEER, each set up as that peer's own documentation recommends for production."""
import os

import environ

PEER = os.environ["BENCH_PEER"]
SECRET_KEY = "benchmarks-only"
USE_TZ = True
DEBUG = False
DATABASES = {"default": {**environ.Env.db_url_config(os.environ["DATABASE_URL"]), "CONN_MAX_AGE": 600}}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
INSTALLED_APPS = ["django.contrib.contenttypes", "django.contrib.auth"]
LOGGING = {"version": 1, "disable_existing_loggers": False,
           "root": {"handlers": ["console"], "level": "WARNING"},
           "handlers": {"console": {"class": "logging.StreamHandler"}}}

if PEER == "django-tasks-db":
    INSTALLED_APPS += ["django_tasks_db"]
    TASKS = {"default": {"BACKEND": "django_tasks_db.DatabaseBackend"}}

elif PEER == "django-tasks-celery":
    # Its README: CELERY_RESULT_EXTENDED on, a result backend set (django-celery-results here, as the
    # issue asks: results in PostgreSQL).
    INSTALLED_APPS += ["django_celery_results"]
    TASKS = {"default": {"BACKEND": "django_tasks_celery.CeleryBackend",
                         "OPTIONS": {"CELERY_APP": "benchmarks.celery_app.app"}}}
    CELERY_BROKER_URL = os.environ.get("BENCH_BROKER_URL", "amqp://guest:guest@127.0.0.1:5672//")
    CELERY_RESULT_BACKEND = "django-db"
    CELERY_RESULT_EXTENDED = True
    CELERY_TASK_DEFAULT_QUEUE = "bench_peers"  # its own queue: a running `make run` takes none of these
    CELERY_IMPORTS = ["benchmarks.tasks"]  # registers the django.tasks task with Celery on the worker

elif PEER == "celery-redis":
    # Celery as most people run it: Redis as the broker, django-celery-results' django-db backend.
    INSTALLED_APPS += ["django_celery_results"]
    CELERY_BROKER_URL = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/12")
    CELERY_RESULT_BACKEND = "django-db"
    CELERY_RESULT_EXTENDED = True
    CELERY_TASK_DEFAULT_QUEUE = "bench_peers"
    CELERY_IMPORTS = ["benchmarks.celery_tasks"]

elif PEER == "django-rq":
    # Its README: RQ_QUEUES naming a Redis; results stay in Redis, as RQ keeps them.
    INSTALLED_APPS += ["django_rq"]
    RQ_QUEUES = {"default": {"URL": os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/12")}}

elif PEER == "django-q2":
    # Its documentation's ORM broker (no service beside the database), a cluster of 2 workers, its
    # defaults otherwise (the broker polled every 0.2 s); every success kept (save_limit 0: by
    # default only the last 250 are).
    INSTALLED_APPS += ["django_q"]
    Q_CLUSTER = {"name": "bench_peers", "orm": "default", "workers": 2, "timeout": 60, "retry": 120,
                 "save_limit": 0}

elif PEER == "dramatiq":
    # django-dramatiq's README: the RabbitMQ broker, Dramatiq's default middleware, and results in
    # Redis through Dramatiq's Results middleware. Not its AdminMiddleware, which keeps each
    # message's state in the database: its "enqueued" row is written after the worker's "done"
    # one often enough to leave 3 of 300 finished jobs shown as waiting for ever.
    INSTALLED_APPS += ["django_dramatiq", "benchmarks"]  # benchmarks: where its actor is found
    DRAMATIQ_BROKER = {
        "BROKER": "dramatiq.brokers.rabbitmq.RabbitmqBroker",
        "OPTIONS": {"url": os.environ.get("BENCH_BROKER_URL", "amqp://guest:guest@127.0.0.1:5672")},
        "MIDDLEWARE": [
            "dramatiq.middleware.AgeLimit", "dramatiq.middleware.TimeLimit", "dramatiq.middleware.Callbacks",
            "dramatiq.middleware.Retries", "django_dramatiq.middleware.DbConnectionsMiddleware",
        ],
    }
    DRAMATIQ_RESULT_BACKEND = {
        "BACKEND": "dramatiq.results.backends.redis.RedisBackend",
        "BACKEND_OPTIONS": {"url": os.environ.get("BENCH_DRAMATIQ_RESULTS_URL", "redis://127.0.0.1:6379/13")},
        "MIDDLEWARE_OPTIONS": {"result_ttl": 3_600_000},
    }
    DRAMATIQ_AUTODISCOVER_MODULES = ["dramatiq_tasks"]

elif PEER == "procrastinate":
    # Its Django integration: jobs as rows of its own tables, workers woken by PostgreSQL's
    # LISTEN/NOTIFY, finished jobs kept (its default). Run from its own virtualenv (psycopg 3).
    INSTALLED_APPS += ["procrastinate.contrib.django", "benchmarks"]  # benchmarks: where its task is found
    PROCRASTINATE_AUTODISCOVER_MODULE_NAME = "procrastinate_tasks"

else:
    raise ValueError(f"Unknown BENCH_PEER {PEER!r}")
