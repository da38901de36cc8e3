"""sjti for Django and Django REST framework: add ``"sjti.django"`` to ``INSTALLED_APPS``.

* settings: one dict, ``SJTI = {...}`` (:mod:`sjti.django.conf`), checked at start-up;
* keys: on your user model (:class:`~sjti.django.models.TokenSecretFields`) or in this
  app's one-to-one model; read with the user in one query, written by sjti's store
  (:mod:`sjti.django.keys`: one transaction per revocation, audit and event rows);
* DRF: :mod:`sjti.drf` (``SjtiAuthentication`` and simplejwt-compatible views,
  ``include("sjti.django.urls")``);
* revocation on password change and deactivation (signals), from the admin ("Revoke
  tokens", with a dry run and a reason) and from ``manage.py sjti_revoke``;
* the cache and bus of :func:`sjti.configure`, per process, started lazily (fork-safe).

This module imports nothing at import time: Django loads it before the app registry.
docs/integrations.md ("Django") has the whole story, docs/migration.md the switch from
simplejwt or PyJWT.
"""

from __future__ import annotations

__all__: list[str] = []
