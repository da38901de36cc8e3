"""sjti.django's tables: the one-to-one key model, refresh families and tokens (hashes
only), and the unmanaged view of sjti's audit table (the store creates that one, with the
event log and the node registry, after ``migrate``: see ``SjtiConfig.ready``)."""

import django.db.models.deletion
from django.conf import settings
from django.db import migrations, models


class Migration(migrations.Migration):
    initial = True

    dependencies = [
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.CreateModel(
            name="RevocationAudit",
            fields=[
                ("id", models.BigAutoField(primary_key=True, serialize=False)),
                ("at", models.DateTimeField()),
                ("actor", models.TextField(null=True)),
                ("reason", models.TextField(null=True)),
                ("kind", models.CharField(max_length=32)),
                ("count", models.IntegerField()),
                ("detail", models.TextField(null=True)),
            ],
            options={
                "verbose_name": "token revocation",
                "db_table": "sjti_revocation_audit",
                "ordering": ["-id"],
                "managed": False,
            },
        ),
        migrations.CreateModel(
            name="RefreshFamily",
            fields=[
                ("id", models.CharField(max_length=32, primary_key=True, serialize=False)),
                ("created_at", models.DateTimeField()),
                ("last_used_at", models.DateTimeField()),
                ("user_agent", models.CharField(blank=True, max_length=256, null=True)),
                ("ip", models.CharField(blank=True, max_length=64, null=True)),
                ("revoked", models.BooleanField(default=False)),
                ("revoked_at", models.DateTimeField(blank=True, null=True)),
            ],
            options={
                "verbose_name_plural": "refresh families",
                "db_table": "sjti_refresh_family",
            },
        ),
        migrations.CreateModel(
            name="RefreshToken",
            fields=[
                ("id", models.CharField(max_length=32, primary_key=True, serialize=False)),
                ("verifier_hash", models.CharField(max_length=64)),
                ("used", models.BooleanField(default=False)),
                ("created_at", models.DateTimeField()),
                ("expires_at", models.DateTimeField()),
            ],
            options={
                "db_table": "sjti_refresh_token",
            },
        ),
        migrations.CreateModel(
            name="UserTokenSecret",
            fields=[
                ("token_secret", models.TextField(blank=True, editable=False, null=True)),
                ("token_version", models.IntegerField(db_default=0, default=0, editable=False)),
                ("token_rotated_at", models.DateTimeField(blank=True, editable=False, null=True)),
                ("token_devices", models.TextField(blank=True, editable=False, null=True)),
                (
                    "user",
                    models.OneToOneField(
                        on_delete=django.db.models.deletion.CASCADE,
                        primary_key=True,
                        related_name="sjti_secret",
                        serialize=False,
                        to=settings.AUTH_USER_MODEL,
                    ),
                ),
            ],
            options={
                "verbose_name": "token key",
                "db_table": "sjti_user_token_secret",
            },
        ),
        migrations.AddField(
            model_name="refreshfamily",
            name="user",
            field=models.ForeignKey(
                on_delete=django.db.models.deletion.CASCADE,
                related_name="sjti_refresh_families",
                to=settings.AUTH_USER_MODEL,
            ),
        ),
        migrations.AddField(
            model_name="refreshtoken",
            name="family",
            field=models.ForeignKey(
                on_delete=django.db.models.deletion.CASCADE,
                related_name="tokens",
                to="sjti_django.refreshfamily",
            ),
        ),
        migrations.AddIndex(
            model_name="refreshfamily",
            index=models.Index(fields=["user", "revoked"], name="sjti_family_user_live"),
        ),
    ]
