"""Why a job could not be launched. One base class, so callers (the API, the pages, the admin)
catch one thing and map each kind to an answer in one place (HTTP statuses: jobs/http.py)."""


class JobLaunchError(Exception):
    """A job was not launched; the message says why and what to do."""


class UnknownJob(JobLaunchError, LookupError):
    """A name that is not in the catalog of launchable jobs."""

    def __init__(self, name: str, known: list[str]):
        self.name = name
        super().__init__(f"Unknown job {name!r}. Launchable jobs: {', '.join(known) or 'none'}.")


class JobForbidden(JobLaunchError, PermissionError):
    """A restricted job, asked for by someone without the permission to launch it."""

    def __init__(self, name: str, known: list[str]):
        self.name = name
        super().__init__(f"{name} is restricted: launching it needs the 'Can launch restricted jobs' permission. "
                         f"Jobs you may launch: {', '.join(known) or 'none'}.")


class InvalidArguments(JobLaunchError, ValueError):
    """Arguments that do not match a job's declared parameters; `errors` names each problem."""

    def __init__(self, job_name: str, errors: list[dict[str, str]]):
        # The arguments are what the result backend stores and rebuilds it from (exc_message): a
        # job's .get() raises this class again, with its errors, not a bare Exception.
        super().__init__(job_name, errors)
        self.job_name = job_name
        self.errors = errors

    def __str__(self):
        problems = "; ".join(f"{e['field']}: {e['message']}" if e["field"] else e["message"] for e in self.errors)
        return f"Invalid arguments for {self.job_name}: {problems}"


class InvalidWorkflow(JobLaunchError, ValueError):
    """A workflow spec that cannot run as given; `errors` names each wrong step by its path."""

    def __init__(self, errors: list[dict[str, str]]):
        super().__init__(errors)  # rebuilt from it, as InvalidArguments
        self.errors = errors

    def __str__(self):
        problems = "; ".join(f"{e['field']}: {e['message']}" for e in self.errors[:5])
        more = f" (and {len(self.errors) - 5} more)" if len(self.errors) > 5 else ""
        return f"Invalid workflow: {problems}{more}"


class LaunchLimitReached(JobLaunchError):
    """More than one person may launch: JOBS_LAUNCH_RATE (counted in jobs, a workflow's steps each)
    or JOBS_MAX_UNFINISHED; `wait` is how many seconds until it fits, when that can be known."""

    def __init__(self, message: str, wait: int | None = None):
        super().__init__(message)
        self.wait = wait


class JobNotRetryable(JobLaunchError):
    """A retry that would run a job twice at once, or a workflow step out of its turn."""


class JobQueueUnavailable(JobLaunchError, RuntimeError):
    """The broker refused or could not be reached; the job was recorded as failed, not queued."""


class JobNotCancellable(ValueError):
    """The job already ended."""


class WorkerUnreachable(RuntimeError):
    """A worker told to do something did not answer, or refused; the message says which."""
