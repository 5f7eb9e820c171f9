"""Launching, retrying and cancelling jobs, and the pages, API router and admin that do it and show
them: the jobs list and page, the launch form, /api/jobs/, the results admin."""
