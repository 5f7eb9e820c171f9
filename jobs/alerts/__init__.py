"""Alerts: rules checked each minute against the job statistics (a failure rate, a queue wait), their
incidents, and the notices they send by email and webhook."""
