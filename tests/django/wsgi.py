"""WSGI entry point for the gunicorn process tests/django/test_http.py starts."""

import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tests.django.settings")
application = get_wsgi_application()
