"""The operations pages: queues (the overview, with pause, resume and purge), dead letters and
workers, inside the admin. Seeing needs the view permission of Queue (or Worker); acting needs
jobs.operate_queue, and every action is audited (JobAction)."""
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.http import Http404
from django.middleware.csrf import get_token
from django.shortcuts import redirect
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.html import format_html, format_html_join
from django.views.decorators.http import require_POST
from django_celery_results.models import TaskResult

from ..alerts.selectors import alerts_firing
from ..catalog import catalog
from ..exceptions import WorkerUnreachable
from ..records.models import JobAction
from ..records.selectors import COUNT_CAP, UNFINISHED
from ..stats.charts import sparkline, stats_charts
from ..stats.selectors import STATS_RANGES, job_counts_now, job_stats
from . import broker, selectors, services
from .models import Queue, Worker

OPERATE = "jobs.operate_queue"
LIVE_SECONDS = 5  # how often the pages refresh themselves while visible


def job_links(ids: list[str]) -> dict[str, int]:
    """The results admin's primary key of each job id, to link to its page."""
    return dict(TaskResult.objects.filter(task_id__in=ids).values_list("task_id", "pk"))


class OperationsAdmin(admin.ModelAdmin):
    """Read-only: what these pages show is the broker's and the workers' to say."""

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


@admin.register(Queue)
class QueueAdmin(OperationsAdmin):
    """The overview: every job queue with the broker's figures, jobs by state, workers alive."""

    def get_urls(self):
        view = self.admin_site.admin_view
        return [
            path("dead-letters/", view(self.dead_letters_view), name="jobs_queue_dead_letters"),
            path("charts/", view(self.charts_view), name="jobs_queue_charts"),
            path("<str:name>/pause/", view(require_POST(self.pause_view)), name="jobs_queue_pause"),
            path("<str:name>/resume/", view(require_POST(self.resume_view)), name="jobs_queue_resume"),
            path("<str:name>/purge/", view(self.purge_view), name="jobs_queue_purge"),
            path("<str:name>/", view(self.queue_view), name="jobs_queue_detail"),
            *super().get_urls(),
        ]

    def context(self, request, **extra):
        return {**self.admin_site.each_context(request), "opts": self.model._meta,
                "can_operate": request.user.has_perm(OPERATE), "live_seconds": LIVE_SECONDS, **extra}

    def changelist_view(self, request, extra_context=None):
        if not self.has_view_permission(request):
            raise PermissionDenied
        queues, dead_letters, broker_error = selectors.queues_overview()
        for row in queues:
            row["sparkline"] = sparkline(row["stats"].depth_history) if row["stats"] else ""
        workers = selectors.workers_overview()
        counts = job_counts_now()
        return TemplateResponse(request, "admin/jobs/operations/overview.html", self.context(
            request, title="Operations", queues=queues, broker_error=broker_error,
            counts=counts, capped=[state for state in UNFINISHED if counts[state] >= COUNT_CAP],
            workers=workers,
            workers_alive=sum(worker.status in ("busy", "idle") for worker in workers),
            dead_letters=dead_letters,
            actions=JobAction.objects.select_related("actor", "record__result")[:10],
            throughput=stats_charts(job_stats(period="hour"))[0], alerts=alerts_firing(),
        ))

    def charts_view(self, request):
        if not self.has_view_permission(request):
            raise PermissionDenied
        period = request.GET.get("period", "hour")
        if period not in STATS_RANGES:
            period = "hour"
        job, queue = request.GET.get("job", ""), request.GET.get("queue", "")
        figures = job_stats(period=period, task_name=job, queue=queue)
        return TemplateResponse(request, "admin/jobs/operations/charts.html", self.context(
            request, title="Job charts", figures=figures, charts=stats_charts(figures), period=period,
            periods=list(STATS_RANGES), job=job, queue=queue, jobs=list(catalog()),
            queues=selectors.job_queue_names(),
        ))

    def operator_check(self, request, queue: str | None = None):
        if not request.user.has_perm(OPERATE):
            raise PermissionDenied
        if queue is not None and queue not in selectors.job_queue_names():
            raise Http404(f"No job queue named {queue!r}: the queues are {', '.join(selectors.job_queue_names())}.")

    def pause_view(self, request, name):
        self.operator_check(request, name)
        services.queue_pause(name=name, user=request.user)
        messages.success(request, f"Queue {name} is paused: no worker takes its jobs until it is resumed.")
        return redirect("admin:jobs_queue_changelist")

    def resume_view(self, request, name):
        self.operator_check(request, name)
        services.queue_resume(name=name, user=request.user)
        messages.success(request, f"Queue {name} is resumed.")
        return redirect("admin:jobs_queue_changelist")

    def purge_view(self, request, name):
        self.operator_check(request, name)
        if request.method == "POST":
            try:
                removed = services.queue_purge(name=name, user=request.user)
            except broker.BrokerUnavailable as exc:
                messages.error(request, f"Queue {name} was not purged: {exc}")
            else:
                messages.success(request, f"Queue {name} purged: {removed} jobs removed, each now REVOKED.")
            return redirect("admin:jobs_queue_changelist")
        queues, _, broker_error = selectors.queues_overview()
        stats = next((row["stats"] for row in queues if row["name"] == name), None)
        return TemplateResponse(request, "admin/jobs/operations/purge.html", self.context(
            request, title=f"Purge queue {name}?", name=name, stats=stats, broker_error=broker_error))

    def queue_view(self, request, name):
        """One queue: who consumes it (the broker's consumers, with their worker, prefetch and
        connection time) and the jobs waiting in it, oldest first."""
        if not self.has_view_permission(request):
            raise PermissionDenied
        if name not in selectors.job_queue_names():
            raise Http404(f"No job queue named {name!r}: the queues are {', '.join(selectors.job_queue_names())}.")
        try:
            consumers, broker_error = selectors.queue_consumers(name), ""
        except broker.BrokerUnavailable as exc:
            consumers, broker_error = [], str(exc)
        waiting, waiting_count = selectors.queue_waiting(name)
        return TemplateResponse(request, "admin/jobs/operations/queue.html", self.context(
            request, title=f"Queue {name}", name=name, consumers=consumers, broker_error=broker_error,
            waiting=waiting, waiting_count=waiting_count, capped=waiting_count >= COUNT_CAP,
            paused=Queue.objects.filter(name=name, paused_at__isnull=False).select_related("paused_by").first(),
            workers_for_it=[worker for worker in selectors.workers_overview()
                            if name in worker.queues and worker.status in ("busy", "idle")],
        ))

    def discard_confirm(self, request, chosen, *, filters: dict[str, str]):
        """Discarding every dead letter a filter matches, none ticked, asks first, with how many."""
        try:
            letters, total = selectors.dead_letters_peek()
        except broker.BrokerUnavailable as exc:
            messages.error(request, f"Nothing was changed: {exc}")
            return redirect(request.get_full_path())
        return TemplateResponse(request, "admin/jobs/operations/dead_letters_discard.html", self.context(
            request, title="Discard dead letters?", matching=sum(map(chosen, letters)), looked_at=len(letters),
            total=total, filters={key: value for key, value in filters.items() if value}))

    def dead_letters_view(self, request):
        if not self.has_view_permission(request):
            raise PermissionDenied
        job, queue, reason = (request.GET.get(key, "").strip() for key in ("job", "queue", "reason"))

        def chosen(letter: broker.DeadLetter) -> bool:
            return ((not job or letter.task_name == job) and (not queue or letter.queue == queue)
                    and (not reason or letter.reason == reason))

        if request.method == "POST":
            self.operator_check(request)
            ids = set(request.POST.getlist("id"))
            requeue = request.POST.get("action") == "requeue"
            if not ids and not requeue and request.POST.get("confirmed") != "yes":
                return self.discard_confirm(request, chosen, filters={"job": job, "queue": queue, "reason": reason})
            try:
                done = services.dead_letters_handle(
                    requeue=requeue, user=request.user,
                    chosen=(lambda letter: letter.task_id in ids) if ids else chosen)
            except broker.BrokerUnavailable as exc:
                messages.error(request, f"Nothing was changed: {exc}")
            else:
                messages.success(request, f"{done} dead letters {'requeued' if requeue else 'discarded'}.")
            return redirect(request.get_full_path())
        try:
            letters, total = selectors.dead_letters_peek()
            error = ""
        except broker.BrokerUnavailable as exc:
            letters, total, error = [], 0, str(exc)
        shown = [letter for letter in letters if chosen(letter)]
        links = job_links([letter.task_id for letter in shown])
        return TemplateResponse(request, "admin/jobs/operations/dead_letters.html", self.context(
            request, title="Dead letters", letters=[(letter, links.get(letter.task_id)) for letter in shown],
            total=total, error=error, filters={"job": job, "queue": queue, "reason": reason},
            filtered=bool(job or queue or reason),
        ))


@admin.register(Worker)
class WorkerAdmin(OperationsAdmin):
    """Each worker: what it consumes (the broker's word, where its management API answers), its pool,
    which an operator may grow or shrink, and the jobs it runs."""
    search_fields = ["hostname"]
    change_list_template = "admin/jobs/operations/worker_change_list.html"

    def get_urls(self):
        view = self.admin_site.admin_view
        return [path("<str:hostname>/pool/", view(require_POST(self.pool_view)), name="jobs_worker_pool"),
                *super().get_urls()]

    def get_queryset(self, request):
        return selectors.workers_recent()

    def get_list_display(self, request):
        try:
            by_worker, _ = selectors.consumers_by_worker()
        except broker.BrokerUnavailable:
            by_worker = None
        paused = selectors.paused_queues()

        @admin.display(description="consuming")
        def consuming(worker):
            """Each queue it consumes, by the broker's consumer list (its heartbeat's, if the
            broker's management API is down), and those it was started for but does not."""
            if by_worker is None:
                now = dict.fromkeys(worker.consuming)
            else:
                now = {consumer.queue: consumer for consumer in by_worker.get(worker.hostname, [])}
            rows = [(queue, f" (prefetch {now[queue].prefetch})" if now[queue] else "") for queue in sorted(now)
                    if queue in worker.queues]
            rows += [(queue, " (NOT started for it)") for queue in sorted(set(now) - set(worker.queues))]
            rows += [(queue, " (paused)" if queue in paused else " (not consuming)")
                     for queue in worker.queues if queue not in now and worker.status in ("busy", "idle")]
            return format_html_join(", ", "{}{}", rows) or "nothing"

        @admin.display(description="pool")
        def pool(worker):
            """Its pool size, with − and + for an operator while it is alive."""
            if not request.user.has_perm(OPERATE) or worker.status not in ("busy", "idle"):
                return worker.concurrency
            return format_html(
                '<form method="post" action="{}" class="pool-resize">'
                '<input type="hidden" name="csrfmiddlewaretoken" value="{}">{} '
                '<button name="change" value="-1" class="button" title="Stop one pool process"{}>−</button> '
                '<button name="change" value="1" class="button" title="Start one more pool process">+</button></form>',
                reverse("admin:jobs_worker_pool", args=[worker.hostname]), get_token(request), worker.concurrency,
                " disabled" if worker.concurrency <= 1 else "")

        return ["hostname", "state", consuming, pool, "processed", "running_jobs", "last_heartbeat", "started_at"]

    @admin.display(description="state")
    def state(self, worker):
        return format_html('<span class="worker-{}">{}</span>', worker.status, worker.status)

    def pool_view(self, request, hostname):
        if not request.user.has_perm(OPERATE):
            raise PermissionDenied
        worker = selectors.workers_recent().filter(hostname=hostname).first()
        if worker is None:
            raise Http404(f"No worker {hostname!r} has reported in the last day.")
        change = request.POST.get("change")
        if change not in ("1", "-1"):
            messages.error(request, "Choose + or − to grow or shrink a pool by one process.")
        elif change == "-1" and worker.concurrency <= 1:
            messages.error(request, f"{hostname} runs one process: a pool is not shrunk to none (pause its queues instead).")
        else:
            try:
                services.worker_pool_resize(hostname=hostname, change=int(change), user=request.user)
            except WorkerUnreachable as exc:
                messages.error(request, f"The pool was not resized: {exc}")
            else:
                messages.success(request, f"{hostname}: pool {'grown' if change == '1' else 'shrunk'} by one "
                                          "process; the page shows it from the worker's next heartbeat.")
        return redirect("admin:jobs_worker_changelist")

    @admin.display(description="running now")
    def running_jobs(self, worker):
        if not worker.running:
            return "idle"
        links = job_links([job["id"] for job in worker.running])
        return format_html_join(", ", '<a href="{}">{} {}</a>', (
            (reverse("admin:django_celery_results_taskresult_change", args=[links[job["id"]]])
             if job["id"] in links else "#", job["name"], job["id"][:8])
            for job in worker.running))


