"""The engine's admin, found by Django's autodiscovery: each capability registers its own ModelAdmins."""
from .alerts import admin as alerts  # noqa: F401  alert rules
from .launching import admin as launching  # noqa: F401  the results admin: jobs, retry and cancel, fast at scale
from .limits import admin as limits  # noqa: F401  rate and concurrency limits, and the jobs waiting on them
from .queues import admin as queues  # noqa: F401  the operations pages: queues, dead letters, workers
from .scheduling import admin as scheduling  # noqa: F401  periodic tasks and crontabs
from .workflows import admin as workflows  # noqa: F401
