"""Workflows: specs checked whole at launch, every step recorded PENDING, run by real workers through
RabbitMQ (chains pass results on, a chord's body gets its header's results), failed, cancelled,
repaired, and completed through a worker's SIGKILL."""
import os
import tempfile
from unittest import skipUnless

from django.apps import apps
from django.contrib.auth.models import User
from django.test import TestCase, TransactionTestCase, tag
from django.urls import reverse
from django_celery_results.models import TaskResult

from jobs.exceptions import InvalidWorkflow
from jobs.models import JobAction, JobRecord, Workflow, WorkflowStep
from jobs.testing.processes import Worker, wait_for
from jobs.workflows import chain, chord, group, step
from jobs.workflows.selectors import GRAPH_NODES_PER_LAYER
from jobs.workflows.services import WORKFLOW_REPAIR_AFTER, workflow_launch, workflows_repair
from jobs.workflows.specs import compile_spec, fits
from tests.users import grant


class SpecTests(TestCase):
    def invalid(self, spec) -> list[dict[str, str]]:
        with self.assertRaises(InvalidWorkflow) as caught:
            compile_spec(spec)
        return caught.exception.errors

    def test_a_chain_feeds_each_step_the_previous_result(self):
        steps = compile_spec(chain(step("testapp.add", x=1, y=2), step("testapp.add", input="x", y=3)))
        self.assertEqual([(s.path, s.kwargs, s.input, s.gathers, s.parents) for s in steps], [
            ("chain[0]", {"x": 1, "y": 2}, "", False, []), ("chain[1]", {"y": 3}, "x", False, [0])])

    def test_a_chord_body_gathers_its_header_and_nesting_goes_deep(self):
        spec = chain(step("testapp.add", x=1, y=1),
                     chord([step("testapp.add", input="x", y=n) for n in range(3)], step("testapp.xsum", input="numbers")),
                     group(step("testapp.add", input="x", y=1), chain(step("testapp.say_hello", name="a"))))
        steps = compile_spec(spec)
        body = steps[4]
        self.assertEqual((body.path, body.gathers, body.parents), ("chain[1].chord.body", True, [1, 2, 3]))
        self.assertEqual([s.parents for s in steps[5:]], [[4], [4]])

    def test_wrong_steps_are_named_by_their_place_in_the_spec(self):
        errors = self.invalid(chain(
            step("testapp.add", x=1, y=2),
            step("testapp.say_hello", input="name"),  # str, given an int
            group(step("testapp.add", x="one", y=1), {"job": "testapp.nope"}),
            step("testapp.add", input="x", y=1),  # a group's results come as a list
        ))
        self.assertEqual([error["field"] for error in errors], [
            "chain[1] (testapp.say_hello)", "chain[2].group[0] (testapp.add).x", "chain[2].group[1]"])
        self.assertIn("input 'name' is declared str, but chain[0] (testapp.add) returns int", errors[0]["message"])
        self.assertIn("Unknown job 'testapp.nope'", errors[2]["message"])

    def test_inputs_must_be_declared_parameters_fed_by_a_step_with_a_return_type(self):
        errors = self.invalid(group(
            step("testapp.add", input="x", y=1),
            chain(step("testapp.add", x=1, y=1), step("testapp.add", input="z", y=1)),
            chord([step("testapp.add", x=1, y=1)], step("testapp.add", input="x", y=1)),
        ))
        messages = [error["message"] for error in errors]
        self.assertIn("no step comes before this one", messages[0])
        self.assertIn("input 'z' is not a parameter of testapp.add", messages[1])
        self.assertIn("declare it list[...]", messages[2])
        self.assertEqual(self.invalid({"chain": []})[0]["message"], "a non-empty list of nodes is expected here")
        self.assertIn("each node is one of", self.invalid({"job": "testapp.add", "chain": []})[0]["message"])

    def test_types_that_fit(self):
        self.assertTrue(fits(int, float))
        self.assertTrue(fits(list[int], list[float]))
        self.assertTrue(fits(dict[str, int], dict))
        self.assertFalse(fits(int | None, int))
        self.assertFalse(fits(list[str], list[int]))


class LaunchTests(TestCase):
    def setUp(self):
        self.user = User.objects.create_user("ada")
        self.client.force_login(self.user)

    def post(self, body):
        return self.client.post("/api/workflows/", body, content_type="application/json")

    def test_every_step_is_pending_from_launch_and_knows_its_workflow_and_parents(self):
        response = self.post(chord([step("testapp.add", x=n, y=n) for n in range(3)],
                                   step("testapp.xsum", input="numbers")))
        self.assertEqual(response.status_code, 201, response.content)
        body = response.json()
        self.assertEqual((body["state"], body["steps_total"], body["counts"]), ("RUNNING", 4, {"PENDING": 4}))
        flow = Workflow.objects.get(pk=body["id"])
        self.assertEqual((flow.launched_by, flow.origin), (self.user, "api"))
        records = JobRecord.objects.filter(step__workflow=flow).select_related("result", "step")
        self.assertEqual(sorted(record.result.status for record in records), ["PENDING"] * 4)
        self.assertEqual({record.launched_by for record in records}, {self.user})
        body_step = WorkflowStep.objects.get(workflow=flow, path="chord.body")
        self.assertEqual(sorted(body_step.parents.values_list("path", flat=True)),
                         ["chord.header[0]", "chord.header[1]", "chord.header[2]"])
        self.assertEqual(self.client.get(body["url"]).json()["steps"][3]["parents"],
                         [step["id"] for step in body["steps"][:3]])

    def test_a_declared_workflow_is_launched_by_name_and_is_in_the_catalog(self):
        body = self.post({"workflow": "testapp.add_chain", "kwargs": {"x": 5, "times": 4}}).json()
        self.assertEqual((body["name"], body["steps_total"]), ("testapp.add_chain", 4))
        catalog = [entry["name"] for entry in self.client.get("/api/jobs/catalog/").json()]
        self.assertIn("testapp.add_chain", catalog)

    def test_bad_specs_get_a_422_naming_the_step_and_nothing_is_recorded(self):
        response = self.post({"chain": [step("testapp.add", x=1, y=2), step("testapp.say_hello", input="name")]})
        self.assertEqual(response.status_code, 422)
        self.assertEqual(response.json()["errors"][0]["field"], "chain[1] (testapp.say_hello)")
        response = self.post({"workflow": "testapp.add_chain", "kwargs": {"x": "five"}})
        self.assertEqual((response.status_code, response.json()["errors"][0]["field"]), (422, "x"))
        response = self.post({"workflow": "testapp.add", "kwargs": {}})
        self.assertIn("not a declared workflow", response.json()["detail"])
        self.assertEqual(self.post({"chord": {"header": []}}).status_code, 422)
        self.assertFalse(Workflow.objects.exists())
        self.assertFalse(TaskResult.objects.exists())

    def test_restricted_jobs_need_the_permission_in_a_workflow_too(self):
        response = self.post(chain(step("testapp.purge")))
        self.assertEqual(response.status_code, 422)
        self.assertIn("is restricted", response.json()["errors"][0]["message"])

    def test_the_page_draws_the_graph_and_the_lists_filter_by_workflow(self):
        flow = workflow_launch(spec=chord([step("testapp.add", x=n, y=n) for n in range(30)],
                                                   step("testapp.xsum", input="numbers")), launched_by=self.user)
        workflow_launch(spec=step("testapp.add", x=1, y=1), launched_by=self.user)  # another
        page = self.client.get(reverse("jobs:workflow", args=[flow.id]))
        self.assertContains(page, 'class="step step-PENDING"', count=GRAPH_NODES_PER_LAYER + 2)
        self.assertContains(page, "+10 more · 10 pending")
        self.assertContains(page, ">testapp.xsum</text>")  # whole, its state on a line of its own
        self.assertContains(page, '<text x="266" y="43" class="state">PENDING</text>', html=False)
        self.assertContains(page, "0 of 31 steps done")
        self.assertContains(page, 'data-live="2"')
        listed = self.client.get(reverse("jobs:list"), {"workflow": flow.id})
        self.assertEqual(len(listed.context["jobs"]), 31)
        self.assertEqual(self.client.get(reverse("jobs:list"), {"workflow": "../x"}).status_code, 400)

        staff = grant(User.objects.create_user("ops", is_staff=True), "django_celery_results.view_taskresult",
                      "jobs.view_workflow")
        self.client.force_login(staff)
        results = self.client.get(reverse("admin:django_celery_results_taskresult_changelist"),
                                   {"record__step__workflow_id": flow.id})
        self.assertEqual(results.context["cl"].result_count, 31)
        admin_page = self.client.get(reverse("admin:jobs_workflow_change", args=[flow.id]))
        self.assertContains(admin_page, '<svg class="workflow"')

    def test_a_long_job_name_keeps_the_end_that_tells_jobs_apart(self):
        from jobs.workflows.graphs import NAME_CHARS, short_name

        self.assertEqual(short_name("testapp.sleep_then_add"), "testapp.sleep_then_add")
        self.assertEqual(short_name("reports.monthly_revenue_by_region"), "…monthly_revenue_by_region")
        long = short_name("app." + "x" * 20 + "_and_then_the_end")
        self.assertTrue(long.endswith("the_end") and len(long) <= NAME_CHARS, long)

    def test_someone_elses_workflow_is_not_found(self):
        flow = workflow_launch(spec=step("testapp.add", x=1, y=1), launched_by=self.user)
        self.client.force_login(User.objects.create_user("bob"))
        self.assertEqual(self.client.get(f"/api/workflows/{flow.id}/").status_code, 404)
        self.assertEqual(self.client.post(f"/api/workflows/{flow.id}/cancel/").status_code, 404)


class BrokerDownLaunchTests(TransactionTestCase):
    """Real commits, so the first steps are sent inside the request as in production."""

    def test_a_workflow_launched_while_the_broker_is_down_is_accepted_and_sent_once_it_is_back(self):
        """A step whose publish failed may have reached the queue all the same (its confirm lost),
        so the launch is not answered "not started": it is recorded and the repair sends the rest."""
        from unittest import mock

        from kombu.exceptions import OperationalError

        from jobs.catalog import find_job

        self.client.force_login(User.objects.create_user("ada"))
        spec = chain(step("testapp.add", x=1, y=1), step("testapp.add", input="x", y=1))
        with mock.patch.object(find_job("testapp.add"), "apply_async", side_effect=OperationalError("refused")):
            response = self.client.post("/api/workflows/", spec, content_type="application/json")
        self.assertEqual(response.status_code, 201, response.content)
        flow = Workflow.objects.get(pk=response.json()["id"])
        self.assertEqual(flow.state, Workflow.State.RUNNING)
        first = flow.steps.get(position=0)
        self.assertIsNone(first.sent_at)
        self.assertEqual(TaskResult.objects.get(task_id=first.task_id).status, "PENDING")

        WorkflowStep.objects.filter(pk=first.pk).update(sending_at=first.sending_at - WORKFLOW_REPAIR_AFTER)
        with mock.patch.object(find_job("testapp.add"), "apply_async") as apply_async:
            self.assertEqual(workflows_repair(), 1)
        self.assertEqual(apply_async.call_args.kwargs["task_id"], first.task_id)
        first.refresh_from_db()
        self.assertIsNotNone(first.sent_at)


@tag("integration")
class WorkflowRunTests(TransactionTestCase):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.worker = Worker(concurrency=2, queues="default").start()
        cls.addClassCleanup(cls.worker.stop)

    def setUp(self):
        self.user = User.objects.create_user("ada")
        self.client.force_login(self.user)

    def launch(self, body) -> dict:
        response = self.client.post("/api/workflows/", body, content_type="application/json")
        self.assertEqual(response.status_code, 201, response.content)
        return response.json()

    def wait_until(self, workflow_id: str, *states: str, timeout: float = 30) -> dict:
        def ended():
            body = self.client.get(f"/api/workflows/{workflow_id}/").json()
            return body if body["state"] in states else None

        return wait_for(ended, timeout=timeout, message=f"workflow {workflow_id} to be {states}; worker log:\n"
                        f"{self.worker.output()}")

    def test_a_chain_passes_results_along(self):
        body = self.wait_until(self.launch({"workflow": "testapp.add_chain", "kwargs": {"x": 1, "times": 3}})["id"],
                               "SUCCESS")
        self.assertEqual((body["result"], body["steps_done"], body["counts"]), (4, 3, {"SUCCESS": 3}))
        self.assertEqual([step["status"] for step in body["steps"]], ["SUCCESS"] * 3)
        last = TaskResult.objects.get(task_id=body["steps"][2]["job_id"])
        self.assertEqual(last.task_kwargs, "\"{'y': 1, 'x': 3}\"")

    def test_a_declared_workflow_launched_as_a_job_runs_its_graph_on_the_launchers_behalf(self):
        response = self.client.post("/api/jobs/", {"task": "testapp.add_chain", "kwargs": {"x": 10, "times": 2}},
                                    content_type="application/json")
        self.assertEqual(response.status_code, 202, response.content)
        launcher = response.json()

        def launched():
            body = self.client.get(launcher["url"]).json()
            return body["result"] if body["status"] == "SUCCESS" else None

        workflow_id = wait_for(launched, message=f"the launching job; worker log:\n{self.worker.output()}")
        self.assertEqual(self.wait_until(workflow_id, "SUCCESS")["result"], 12)
        flow = Workflow.objects.get(pk=workflow_id)
        self.assertEqual((flow.launcher.result.task_id, flow.launched_by, flow.origin), (launcher["id"], self.user, "api"))
        page = self.client.get(reverse("jobs:detail", args=[launcher["id"]]))
        self.assertContains(page, reverse("jobs:workflow", args=[workflow_id]))

    def test_a_chord_gets_its_headers_results_in_order(self):
        flow = self.launch(chord([step("testapp.add", x=n, y=n) for n in range(20)],
                                 step("testapp.xsum", input="numbers")))
        self.assertEqual(self.wait_until(flow["id"], "SUCCESS")["result"], sum(2 * n for n in range(20)))
        body = WorkflowStep.objects.get(workflow_id=flow["id"], path="chord.body")
        self.assertIn(str([2 * n for n in range(20)]), TaskResult.objects.get(task_id=body.task_id).task_kwargs)

    def test_a_failed_step_fails_its_chord_naming_it_and_a_retry_goes_on_from_it(self):
        path = os.path.join(tempfile.mkdtemp(), "seven")
        flow = self.launch(chord([step("testapp.add", x=1, y=1), step("testapp.number_from_file", path=path)],
                                 step("testapp.xsum", input="numbers")))
        failed = self.wait_until(flow["id"], "FAILURE")
        self.assertIn("Step chord.header[1] (testapp.number_from_file", failed["error"])
        self.assertIn("FileNotFoundError", failed["error"])
        # The body was never sent: it ends REVOKED, saying why, rather than PENDING for ever.
        self.assertEqual(failed["counts"], {"SUCCESS": 1, "FAILURE": 1, "REVOKED": 1})
        body_step = TaskResult.objects.get(task_id=failed["steps"][2]["job_id"])
        self.assertIn("not run: step chord.header[1] of its workflow failed: FileNotFoundError", body_step.result)
        self.assertEqual(self.client.post(f"/api/jobs/{body_step.task_id}/retry/").status_code, 409)  # not its turn

        with open(path, "w") as number:
            number.write("7")
        failed_job = failed["steps"][1]["job_id"]
        response = self.client.post(reverse("jobs:retry", args=[failed_job]))
        self.assertEqual(response.status_code, 302)
        done = self.wait_until(flow["id"], "SUCCESS")
        self.assertEqual(done["result"], 9)
        self.assertEqual(done["error"], "")
        retried = JobRecord.objects.get(retry_of__result__task_id=failed_job)
        self.assertEqual((retried.step.path, retried.result.status), ("chord.header[1]", "SUCCESS"))
        self.assertTrue(JobAction.objects.filter(kind="retry", workflow_id=flow["id"], actor=self.user).exists())

    def test_cancelling_a_step_fails_its_workflow_and_retrying_the_step_goes_on(self):
        flow = self.launch(chain(step("testapp.sleep_then_add", seconds=3, x=1), step("testapp.add", input="x", y=1)))
        first, second = flow["steps"][0]["job_id"], flow["steps"][1]["job_id"]
        wait_for(lambda: TaskResult.objects.filter(task_id=first, status="STARTED").exists(),
                 message=f"the first step to start; worker log:\n{self.worker.output()}")
        self.client.post(reverse("jobs:cancel", args=[first]))
        failed = self.wait_until(flow["id"], "FAILURE")
        self.assertIn("was cancelled by ada", failed["error"])
        self.assertEqual(failed["counts"], {"REVOKED": 2})
        self.assertIn("not run", TaskResult.objects.get(task_id=second).result)
        page = self.client.get(reverse("jobs:workflow", args=[flow["id"]])).content.decode()
        self.assertIn(reverse("jobs:retry", args=[first]), page)
        self.assertNotIn(reverse("jobs:retry", args=[second]), page)

        response = self.client.post(f"/api/jobs/{first}/retry/")
        self.assertEqual(response.status_code, 202, response.content)
        self.assertEqual(self.wait_until(flow["id"], "SUCCESS")["result"], 2)

    def test_a_cancelled_workflow_is_confirmed_with_its_counts_and_offers_no_retry(self):
        flow = self.launch(chain(step("testapp.sleep_then_add", seconds=30, x=1), step("testapp.add", input="x", y=1)))
        first = flow["steps"][0]["job_id"]
        wait_for(lambda: TaskResult.objects.filter(task_id=first, status="STARTED").exists(),
                 message=f"the first step to start; worker log:\n{self.worker.output()}")
        confirm = self.client.get(reverse("jobs:workflow_cancel", args=[flow["id"]]))
        self.assertContains(confirm, "<strong>1</strong> step running", html=False)
        self.assertContains(confirm, "<strong>1</strong> step waiting for others", html=False)
        self.assertEqual(Workflow.objects.get(pk=flow["id"]).state, "RUNNING")  # asking cancels nothing
        self.client.post(reverse("jobs:workflow_cancel", args=[flow["id"]]))
        self.assertEqual(Workflow.objects.get(pk=flow["id"]).state, "REVOKED")
        page = self.client.get(reverse("jobs:detail", args=[first])).content.decode()
        self.assertNotIn(reverse("jobs:retry", args=[first]), page)
        self.assertIn("Only a failed or cancelled step of a failed workflow is retried", page)

    def test_cancel_stops_running_steps_and_queued_ones_never_start(self):
        flow = self.launch(chain(step("testapp.sleep_then_add", seconds=30, x=1), step("testapp.add", input="x", y=1)))
        first = flow["steps"][0]["job_id"]
        wait_for(lambda: TaskResult.objects.filter(task_id=first, status="STARTED").exists(),
                 message=f"the first step to start; worker log:\n{self.worker.output()}")
        response = self.client.post(f"/api/workflows/{flow['id']}/cancel/")
        self.assertEqual(response.status_code, 200, response.content)
        self.assertEqual((response.json()["state"], response.json()["counts"]), ("REVOKED", {"REVOKED": 2}))
        wait_for(lambda: "SIGTERM" in self.worker.output() or "Terminating" in self.worker.output(), timeout=10,
                 message=f"the running step to be stopped; worker log:\n{self.worker.output()}")
        self.assertEqual(TaskResult.objects.get(task_id=flow["steps"][1]["job_id"]).status, "REVOKED")
        self.assertEqual(self.client.post(f"/api/workflows/{flow['id']}/cancel/").status_code, 409)
        self.assertEqual(JobAction.objects.get(workflow_id=flow["id"]).detail,
                         "2 steps cancelled, 1 of them stopped while running")


@tag("integration")
@skipUnless(apps.is_installed("examples"), "the chord's body counts its runs in the examples app's Probe rows")
class WorkflowWorkerKilledTests(TransactionTestCase):
    def test_a_chord_completes_through_a_sigkill_and_its_body_runs_once(self):
        worker = Worker(concurrency=2, queues="default").start()
        self.addCleanup(lambda: worker.stop())
        user = User.objects.create_user("ada")
        flow = workflow_launch(spec=chord(
            [step("testapp.sleep_then_add", seconds=0.2, x=n, y=n) for n in range(60)],
            step("testapp.sum_once", input="numbers", key="chord-body")), launched_by=user)
        ids = list(flow.steps.values_list("task_id", flat=True))
        wait_for(lambda: TaskResult.objects.filter(task_id__in=ids, status="SUCCESS").count() >= 15,
                 message=f"a quarter of the chord to run; worker log:\n{worker.output()}")
        worker.kill()
        replacement = Worker(concurrency=2, queues="default").start()
        self.addCleanup(replacement.stop)

        def done():
            flow.refresh_from_db()
            return flow.state == Workflow.State.SUCCESS

        wait_for(done, timeout=90, message=f"the chord to complete; worker log:\n{replacement.output()}")
        self.assertEqual(flow.result, sum(2 * n for n in range(60)))
        from examples.models import Probe

        self.assertEqual(Probe.objects.get(key="chord-body").runs, 1)
        self.assertEqual(TaskResult.objects.filter(task_id__in=ids, status="SUCCESS").count(), 61)
