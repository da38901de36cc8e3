"""The demo user alice / alice-password (an example, not a pattern for real users)."""

from django.contrib.auth.hashers import make_password
from django.db import migrations


def create_alice(apps, schema_editor):
    user = apps.get_model("auth", "User")
    user.objects.get_or_create(
        username="alice",
        defaults={
            "password": make_password("alice-password"),
            "is_staff": True,
            "is_superuser": True,
        },
    )


class Migration(migrations.Migration):
    dependencies = [("auth", "0012_alter_user_first_name_max_length")]
    operations = [migrations.RunPython(create_alice, migrations.RunPython.noop)]
