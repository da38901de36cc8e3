"""A DRF API whose tokens are sjti's: revocable per user, at once, on every worker.

Everything sjti needs is the ``SJTI`` dict, ``"sjti.django"`` in INSTALLED_APPS, the
authentication class and the URLs. Keys live in sjti's one-to-one model, so the stock
``django.contrib.auth`` user works unchanged. For production: ``SJTI_KEK`` (a KEK ring
kept outside the database) and ``"ENV": "production"``, PostgreSQL, and Redis for the bus.
"""

import os
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parent.parent
SECRET_KEY = os.environ.get(
    "DJANGO_SECRET_KEY", "django-insecure-example-only-0123456789-abcdefghijklmnopqrstuvwxyz"
)
DEBUG = os.environ.get("DJANGO_DEBUG", "1") == "1"
ALLOWED_HOSTS = ["127.0.0.1", "localhost"]
USE_TZ = True

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "sjti.django",  # after admin: adds "Revoke tokens" to the user admin
    "api",
]
MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
]
ROOT_URLCONF = "exampleproject.urls"
STATIC_URL = "static/"
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
        "NAME": BASE_DIR / "db.sqlite3",
        # grants take the write lock up front, so a refresh racing a revocation waits
        "OPTIONS": {"transaction_mode": "IMMEDIATE", "timeout": 30},
    }
}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

SJTI = {
    "ISSUER": "http://127.0.0.1:8000",
    "AUDIENCE": "example-api",
    "KEY_FILE": str(BASE_DIR / "sjti-keys.json"),  # signing keys, made 0600 on first use
    "REALM": "example",
    # "KEK": os.environ["SJTI_KEK"], "ENV": "production", "REDIS_URL": "redis://...",
}
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": ["sjti.drf.SjtiAuthentication"],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
}
