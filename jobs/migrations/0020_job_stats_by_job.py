"""Job statistics: one row per period, job and queue, counting each final state in a field of its
own, where there was a row per state too. The rows already counted are folded together: counts
into their state's field, histograms summed."""
from django.db import migrations, models

STATE_FIELDS = {"SUCCESS": "succeeded", "FAILURE": "failed", "REVOKED": "revoked"}
BATCH = 2000


def histogram_add(total, more):
    for bucket, count in more.items():
        total[bucket] = total.get(bucket, 0) + count


def fold_states(apps, schema_editor):
    JobStats = apps.get_model("jobs", "JobStats")
    kept, dropped, current = [], [], None

    def flush():
        JobStats.objects.bulk_update(kept, [*STATE_FIELDS.values(), "wait", "run"])
        JobStats.objects.filter(pk__in=dropped).delete()
        kept.clear()
        dropped.clear()

    rows = JobStats.objects.order_by("period", "start", "task_name", "queue", "id")
    for row in rows.iterator(chunk_size=BATCH):
        key = (row.period, row.start, row.task_name, row.queue)
        if current is None or key != current[0]:
            if len(kept) >= BATCH:
                flush()
            current = (key, row)
            kept.append(row)
        else:
            histogram_add(current[1].wait, row.wait)
            histogram_add(current[1].run, row.run)
            dropped.append(row.pk)
        field = STATE_FIELDS.get(row.status)
        if field:
            setattr(current[1], field, getattr(current[1], field) + row.count)
    flush()


class Migration(migrations.Migration):

    dependencies = [
        ("jobs", "0019_workflow_name_help"),
    ]

    operations = [
        migrations.AddField(model_name="jobstats", name="succeeded", field=models.PositiveIntegerField(default=0)),
        migrations.AddField(model_name="jobstats", name="failed", field=models.PositiveIntegerField(default=0)),
        migrations.AddField(model_name="jobstats", name="revoked", field=models.PositiveIntegerField(default=0)),
        migrations.RunPython(fold_states, elidable=True),
        migrations.RemoveConstraint(model_name="jobstats", name="jobs_jobstats_unique"),
        migrations.RemoveField(model_name="jobstats", name="status"),
        migrations.RemoveField(model_name="jobstats", name="count"),
        migrations.AddConstraint(
            model_name="jobstats",
            constraint=models.UniqueConstraint(fields=("period", "start", "task_name", "queue"),
                                               name="jobs_jobstats_unique_job"),
        ),
    ]
