"""The example features' models move to their own apps (accounts, contacts, reports, examples),
whose first migrations take over these tables with their rows (jobs.migration_operations). Here they only
leave the jobs app's state; the database is not touched."""
from django.db import migrations, models
import django.db.models.deletion


class Migration(migrations.Migration):
    dependencies = [("jobs", "0009_stale_jobs_schedule")]

    operations = [
        migrations.SeparateDatabaseAndState(state_operations=[
            migrations.DeleteModel("ApiToken"),
            migrations.DeleteModel("EmailDelivery"),
            migrations.DeleteModel("ImportRowError"),
            migrations.DeleteModel("ContactImport"),
            migrations.DeleteModel("Contact"),
            migrations.DeleteModel("Report"),
            migrations.DeleteModel("Probe"),
        ]),
        # One name per thing: a result's JobRecord is its `record`, and an action's too.
        migrations.AlterField(
            model_name="jobrecord", name="result",
            field=models.OneToOneField(on_delete=django.db.models.deletion.CASCADE, primary_key=True,
                                       related_name="record", serialize=False, to="django_celery_results.taskresult"),
        ),
        migrations.RenameField(model_name="jobaction", old_name="job", new_name="record"),
    ]
