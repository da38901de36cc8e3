"""Django settings for tests/django (and the gunicorn process they start).

SQLite always; PostgreSQL as the alias "pg" when a server answers. ``SJTI_TEST_DJANGO_DIR``
holds the SQLite files and the key file (a temporary directory per run).
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

BASE = Path(os.environ.setdefault("SJTI_TEST_DJANGO_DIR", tempfile.mkdtemp(prefix="sjti-django-")))
SECRET_KEY = "django-insecure-test-key-0123456789-abcdefghijklmnopqrstuvwxyz"
DEBUG = False
ALLOWED_HOSTS = ["*"]
USE_TZ = True
INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "rest_framework",
    "sjti.django",
    "tests.django.testapp",
]
MIDDLEWARE = [
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
]
ROOT_URLCONF = "tests.django.testapp.urls"
AUTH_USER_MODEL = "testapp.User"
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]  # fast tests only
TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ]
        },
    }
]
DATABASES = {
    "default": {
        "ENGINE": "django.db.backends.sqlite3",
        "NAME": str(BASE / "db.sqlite3"),
        "OPTIONS": {"transaction_mode": "IMMEDIATE", "timeout": 30},
        "TEST": {"NAME": str(BASE / "test.sqlite3")},
    }
}
if os.environ.get("SJTI_TEST_DJANGO_PG"):
    DATABASES["default"] = {
        "ENGINE": "django.db.backends.postgresql",
        "NAME": os.environ["SJTI_TEST_DJANGO_PG"],
        "USER": os.environ.get("SJTI_TEST_DJANGO_PG_USER", "postgres"),
        "HOST": os.environ.get("SJTI_TEST_DJANGO_PG_HOST", "127.0.0.1"),
        "PORT": os.environ.get("SJTI_TEST_DJANGO_PG_PORT", "5432"),
        "TEST": {"NAME": "test_" + os.environ["SJTI_TEST_DJANGO_PG"]},
    }
SJTI = {
    "ISSUER": "https://api.test",
    "AUDIENCE": "api",
    "KEY_FILE": str(BASE / "sjti-keys.json"),
    "SECRETS": os.environ.get("SJTI_TEST_DJANGO_SECRETS", "user_model"),
    "REALM": "api",
}
if os.environ.get("SJTI_TEST_DJANGO_REDIS"):
    SJTI["REDIS_URL"] = os.environ["SJTI_TEST_DJANGO_REDIS"]
REST_FRAMEWORK = {"DEFAULT_AUTHENTICATION_CLASSES": ["sjti.drf.SjtiAuthentication"]}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
