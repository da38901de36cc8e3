"""The API the tests attack: /api/me behind sjti.drf.SjtiAuthentication."""

from __future__ import annotations

from typing import Any

from rest_framework.decorators import api_view, authentication_classes, permission_classes
from rest_framework.permissions import IsAuthenticated
from rest_framework.request import Request
from rest_framework.response import Response

from sjti.drf import SjtiAuthentication, SjtiStatelessAuthentication


@api_view(["GET"])
@authentication_classes([SjtiAuthentication])
@permission_classes([IsAuthenticated])
def me(request: Request) -> Response:
    user: Any = request.user
    return Response({"sub": request.auth["sub"], "username": user.get_username()})


@api_view(["GET"])
@authentication_classes([SjtiStatelessAuthentication])
@permission_classes([IsAuthenticated])
def me_stateless(request: Request) -> Response:
    return Response({"sub": request.auth["sub"], "user": str(request.user.pk)})
