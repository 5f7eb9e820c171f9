"""JOBS_MAX_UNFINISHED's headroom: a launch that takes its job without the lock is counted, by a
count made meanwhile, before its record is committed."""
from concurrent.futures import ThreadPoolExecutor

from celery import current_app
from django.contrib.auth.models import User
from django.db import connection, transaction
from django.test import TransactionTestCase, override_settings

from jobs.catalog import find_job
from jobs.exceptions import LaunchLimitReached
from jobs.records.services import job_enqueue
from jobs.records.unfinished import unfinished_limit_check, unfinished_taken


def in_another_thread(function, *args):
    """`function(*args)` on a thread of its own (its own database connection): its result, or its exception raised here."""
    def run():
        try:
            return function(*args)
        finally:
            connection.close()

    with ThreadPoolExecutor(1) as pool:
        return pool.submit(run).result()


@override_settings(JOBS_MAX_UNFINISHED=3)
class InFlightTests(TransactionTestCase):
    def setUp(self):
        self.user = User.objects.create_user("ada")
        task = find_job("testapp.add")
        # The first launch counts (none) and leaves a headroom of 2.
        job_enqueue(task=task, arguments={"x": 1, "y": 2}, options={}, launched_by=self.user)
        self.addCleanup(current_app.control.purge)  # no worker runs here: leave nothing for the next test's

    def count_for(self, adding):
        with transaction.atomic():
            unfinished_limit_check(self.user, adding)

    def test_a_count_meanwhile_adds_the_jobs_in_flight(self):
        with unfinished_taken(self.user, 1) as taken:  # in flight: no record yet, one job of headroom left
            self.assertTrue(taken)
            # 1 recorded + 1 in flight + 2 > 3: the count must not let these two through.
            with self.assertRaisesMessage(LaunchLimitReached, "You have 2 jobs queued or running; with 2 more"):
                in_another_thread(self.count_for, 2)
            in_another_thread(self.count_for, 1)  # 1 + 1 + 1 = 3 fits, and leaves no headroom
        with unfinished_taken(self.user, 1) as taken:
            self.assertFalse(taken)

    def test_inside_a_transaction_of_the_callers_nothing_is_taken_without_the_lock(self):
        with transaction.atomic(), unfinished_taken(self.user, 1) as taken:
            self.assertFalse(taken)
