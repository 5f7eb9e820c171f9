"""Global rate and concurrency limits (job(limit=Limit(...))): a job over its limit waits in the database,
not on a worker, and is sent to its queue when its limit lets it, by whichever process dispatches first."""
