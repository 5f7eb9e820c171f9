import django.db.models.deletion
from django.conf import settings
from django.db import migrations, models


class Migration(migrations.Migration):
    """Contacts get an owner: the person whose upload wrote them. An address is unique per owner,
    so one person's import never overwrites another's contact. Contacts imported before this
    have no owner (only those with the admin's view permission see them)."""

    dependencies = [
        ("contacts", "0001_initial"),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.AddField(
            model_name="contact",
            name="owner",
            field=models.ForeignKey(blank=True, null=True, on_delete=django.db.models.deletion.CASCADE,
                                    related_name="contacts", to=settings.AUTH_USER_MODEL),
        ),
        migrations.AlterField(model_name="contact", name="email", field=models.EmailField(max_length=254)),
        migrations.AddConstraint(
            model_name="contact",
            constraint=models.UniqueConstraint(fields=("owner", "email"), name="contacts_contact_owner_email"),
        ),
    ]
