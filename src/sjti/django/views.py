"""Token endpoints with djangorestframework-simplejwt's URLs and bodies, plus logout.

================  ==================================  =====================================
URL               body                                answer
================  ==================================  =====================================
``token/``          ``{USERNAME_FIELD, "password"}``    ``{"access", "refresh"}``
``token/refresh/``  ``{"refresh"}``                     ``{"access", "refresh"}`` (rotated;
                                                        a reused token ends its family and
                                                        revokes the user)
``token/verify/``   ``{"token"}``                       ``{}`` (both layers, revocation-aware)
``token/blacklist/`` ``{"refresh"}``                    ``{}`` (ends that refresh family)
``logout/``         ``{"refresh"}`` (optional)          access tokens of the user refused,
                                                        that device's refresh family ended
``logout-all/``     (none)                              every access and refresh token ended
================  ==================================  =====================================

Refusals use simplejwt's ``{"detail", "code": "token_not_valid"}`` plus sjti's
``error_description`` (the stable :class:`~sjti.TokenError` code). The views write with
sjti's store on its own connection, so they opt out of ``ATOMIC_REQUESTS``.
"""

from __future__ import annotations

import logging
from typing import Any

from django.conf import settings
from django.contrib.auth import authenticate, get_user_model
from django.db import DatabaseError, transaction
from django.utils.decorators import method_decorator
from rest_framework import serializers, status
from rest_framework.permissions import AllowAny, IsAuthenticated
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from ..errors import BackendError, RevokedTokenError, SecretError, SjtiError, TokenError
from ..legacy import is_legacy
from . import keys, refresh
from ._runtime import runtime
from .drf import ServiceUnavailable, SjtiAuthentication

__all__ = [
    "LogoutAllView",
    "LogoutView",
    "TokenBlacklistView",
    "TokenObtainPairView",
    "TokenRefreshView",
    "TokenVerifyView",
    "issue_access",
]

logger = logging.getLogger("sjti.django")
_ALIAS = str(getattr(settings, "SJTI", {}).get("DATABASE_ALIAS", "default"))
_non_atomic = method_decorator(transaction.non_atomic_requests(using=_ALIAS), name="dispatch")


def issue_access(user: Any, key: Any) -> str:
    """An access token for ``user`` bound to ``key``, with simplejwt's ``token_type`` and
    ``user_id`` claims for clients that read them."""
    pk = user.pk
    user_id = pk if isinstance(pk, int | str) else str(pk)
    return runtime().auth.issuer.issue(
        str(pk), key, claims={"token_type": "access", "user_id": user_id}
    )


def _invalid(code: str = "token_not_valid", description: str | None = None) -> Response:
    body: dict[str, Any] = {"detail": "Token is invalid or expired", "code": code}
    if description is not None:
        body["error"] = "invalid_token"
        body["error_description"] = description
    return Response(
        body, status=status.HTTP_401_UNAUTHORIZED, headers={"Cache-Control": "no-store"}
    )


def _pair(minted: refresh.Minted) -> Response:
    return Response(
        {"access": issue_access(minted.user, minted.key), "refresh": minted.refresh},
        headers={"Cache-Control": "no-store"},
    )


class _Credentials(serializers.Serializer):
    password = serializers.CharField(write_only=True, trim_whitespace=False, max_length=4096)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        field = get_user_model().USERNAME_FIELD
        self.fields[field] = serializers.CharField(write_only=True, max_length=254)


class _RefreshBody(serializers.Serializer):
    refresh = serializers.CharField(max_length=8192)


class _TokenBody(serializers.Serializer):
    token = serializers.CharField(max_length=8192)


class _OptionalRefresh(serializers.Serializer):
    refresh = serializers.CharField(max_length=8192, required=False)


class _Public(APIView):
    authentication_classes: Any = ()
    permission_classes: Any = (AllowAny,)


def _client(request: Request) -> tuple[str | None, str | None]:
    meta = request.META
    return meta.get("HTTP_USER_AGENT"), meta.get("REMOTE_ADDR")


@_non_atomic
class TokenObtainPairView(_Public):
    """``token/``: the password grant (a new device session)."""

    def post(self, request: Request) -> Response:
        body = _Credentials(data=request.data)
        body.is_valid(raise_exception=True)
        field = get_user_model().USERNAME_FIELD
        username = body.validated_data[field]
        try:
            before = _version_of(field, username)
            user = authenticate(
                request._request, password=body.validated_data["password"], **{field: username}
            )
            if user is None or not user.is_active:
                return Response(
                    {
                        "detail": "No active account found with the given credentials",
                        "code": "no_active_account",
                    },
                    status=status.HTTP_401_UNAUTHORIZED,
                )
            user_agent, ip = _client(request)
            minted = refresh.mint_for_login(user, before=before, user_agent=user_agent, ip=ip)
        except refresh.AccountChanged:
            raise ServiceUnavailable() from None
        except (SjtiError, DatabaseError) as exc:
            logger.warning("token grant failed: %s", type(exc).__name__, exc_info=exc)
            raise ServiceUnavailable() from None
        return _pair(minted)


def _version_of(field: str, username: str) -> int | None:
    """The key version of the user named ``username`` now, before the password check."""
    user = keys.user_queryset().filter(**{field: username}).first()
    return None if user is None else keys.key_state(user).version


@_non_atomic
class TokenRefreshView(_Public):
    """``token/refresh/``: rotate the refresh token, mint an access token under the lock.

    During a migration window a legacy (simplejwt) refresh token is exchanged, once, for
    a new sjti pair."""

    def post(self, request: Request) -> Response:
        body = _RefreshBody(data=request.data)
        body.is_valid(raise_exception=True)
        token = body.validated_data["refresh"]
        rt = runtime()
        try:
            if rt.options.legacy is not None and is_legacy(token):
                return self._exchange(request, token)
            minted = refresh.rotate(token)
        except refresh.ReuseDetected:
            return _invalid(description="refresh_reused")
        except refresh.InvalidRefreshToken:
            return _invalid(description="invalid_refresh")
        except refresh.AccountChanged:
            return _invalid(description="revoked")
        except (SjtiError, DatabaseError):
            raise ServiceUnavailable() from None
        return _pair(minted)

    def _exchange(self, request: Request, token: str) -> Response:
        policy = runtime().options.legacy
        if policy is None:  # pragma: no cover - post() checks first
            return _invalid(description="malformed")
        try:
            claims = policy.open(token, token_type="refresh")  # noqa: S106 - a claim value
            user = keys.load_user(policy.user_id(claims))
            if user is None or not user.is_active:
                policy.check_state(claims, None)  # counts the refusal and raises
                raise RevokedTokenError()
            policy.check_state(claims, keys.key_state(user))
        except TokenError as exc:
            return _invalid(description=exc.code)
        policy.accept(claims)
        user_agent, ip = _client(request)
        jti = str(claims.get("jti") or token)
        try:
            minted = refresh.mint_for_login(
                user, before=None, user_agent=user_agent, ip=ip, legacy_jti=jti
            )
        except refresh.ReuseDetected:  # exchanged before: someone else holds a copy
            keys.revoke([user.pk], actor="sjti:refresh-reuse", reason="legacy refresh token reused")
            raise
        return _pair(minted)


@_non_atomic
class TokenVerifyView(_Public):
    """``token/verify/``: both layers (unlike simplejwt, a revoked token is refused)."""

    def post(self, request: Request) -> Response:
        body = _TokenBody(data=request.data)
        body.is_valid(raise_exception=True)
        rt = runtime()
        try:
            keys.verified_user(rt.auth.boundary.verify(body.validated_data["token"]))
        except TokenError as exc:
            return _invalid(description=exc.code)
        except (SecretError, BackendError, DatabaseError):
            raise ServiceUnavailable() from None
        return Response({})


@_non_atomic
class TokenBlacklistView(_Public):
    """``token/blacklist/``: end the refresh token's family (that device signs out)."""

    def post(self, request: Request) -> Response:
        body = _RefreshBody(data=request.data)
        body.is_valid(raise_exception=True)
        found = refresh.lookup(body.validated_data["refresh"])
        if found is None:
            return _invalid(description="invalid_refresh")
        _, family_id = found
        refresh.end_family(family_id)
        return Response({})


class _Authenticated(APIView):
    authentication_classes: Any = (SjtiAuthentication,)
    permission_classes: Any = (IsAuthenticated,)


@_non_atomic
class LogoutView(_Authenticated):
    """``logout/``: the caller's access tokens are refused at once (a new user key, on
    every node) and the refresh family of ``refresh`` (this device) ends; the other
    devices' refresh tokens stay valid and mint tokens with the new key."""

    def post(self, request: Request) -> Response:
        body = _OptionalRefresh(data=request.data)
        body.is_valid(raise_exception=True)
        user_id = str(request.user.pk)
        family = None
        if "refresh" in body.validated_data:
            found = refresh.lookup(body.validated_data["refresh"])
            if found is not None and found[0] == user_id:
                family = found[1]
        try:
            result = keys.revoke(
                [user_id],
                actor=f"user:{user_id}",
                reason="logout",
                end_family=family,
                end_families=False,  # without a refresh token: the key only
            )
        except SjtiError:
            raise ServiceUnavailable() from None
        return Response({"revoked": True, "audit_id": getattr(result, "audit_id", None)})


@_non_atomic
class LogoutAllView(_Authenticated):
    """``logout-all/``: every access and refresh token of the caller ends, one transaction."""

    def post(self, request: Request) -> Response:
        user_id = str(request.user.pk)
        try:
            result = keys.revoke([user_id], actor=f"user:{user_id}", reason="logout everywhere")
        except SjtiError:
            raise ServiceUnavailable() from None
        return Response({"revoked": True, "audit_id": getattr(result, "audit_id", None)})
