from django.test import SimpleTestCase

from jobs.catalog import InvalidArguments, UnknownJob, catalog, find_job
from tests.testapp.tasks import add, say_hello


class CatalogTests(SimpleTestCase):
    def test_catalog_lists_the_launchable_jobs_by_their_stable_names(self):
        self.assertEqual(catalog()["testapp.add"], add)
        self.assertEqual(catalog()["testapp.say_hello"], say_hello)
        self.assertNotIn("celery.backend_cleanup", catalog())

    def test_unknown_job_names_the_valid_ones(self):
        with self.assertRaises(UnknownJob) as caught:
            find_job("jobs.delete_everything")
        named = str(caught.exception).split("Launchable jobs: ")[1].rstrip(".").split(", ")
        self.assertEqual(named, sorted(catalog()))
        self.assertIn("testapp.purge", named)

    def test_positional_and_named_arguments_bind_to_the_declared_parameters(self):
        self.assertEqual(add.json_arguments([4], {"y": 5}), {"x": 4, "y": 5})

    def test_types_are_strict(self):
        """A string is not an int and a float is not an int, even when it looks like one."""
        for bad in ("4", 4.5, None, True, [4]):
            with self.subTest(bad=bad), self.assertRaises(InvalidArguments) as caught:
                add.json_arguments([bad, 1])
            self.assertEqual(caught.exception.errors[0]["field"], "x")

    def test_missing_extra_and_duplicated_arguments_are_each_named(self):
        with self.assertRaises(InvalidArguments) as caught:
            add.json_arguments([], {"x": 1, "z": 2})
        self.assertEqual(
            caught.exception.errors,
            [{"field": "y", "message": "Field required"}, {"field": "z", "message": "Extra inputs are not permitted"}],
        )
        with self.assertRaisesMessage(InvalidArguments, "x: given both by position and by name"):
            add.json_arguments([1], {"x": 1, "y": 2})
        with self.assertRaisesMessage(InvalidArguments, "takes at most 2 positional arguments (x, y), got 3"):
            add.json_arguments([1, 2, 3])

    def test_the_worker_validates_too(self):
        """Calling the task with bad arguments fails before the function runs."""
        self.assertEqual(add(2, 3), 5)
        with self.assertRaisesMessage(InvalidArguments, "name: Input should be a valid string"):
            say_hello(42)

    def test_every_job_is_retried_when_the_database_drops_its_connection(self):
        from django.db import InterfaceError, OperationalError

        for name, job in catalog().items():
            with self.subTest(job=name):
                self.assertTrue({OperationalError, InterfaceError} <= set(job.autoretry_for))
                self.assertTrue(job.retry_backoff)

    def test_argument_schema_is_published(self):
        schema = add.arguments_model.model_json_schema()
        self.assertEqual(schema["required"], ["x", "y"])
        self.assertEqual(schema["properties"]["x"]["type"], "integer")
        self.assertIs(schema["additionalProperties"], False)
