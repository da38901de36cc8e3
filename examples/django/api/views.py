from rest_framework.decorators import api_view
from rest_framework.request import Request
from rest_framework.response import Response


@api_view(["GET"])
def me(request: Request) -> Response:
    """Both layers passed: the user exists, is active, and was not revoked since."""
    return Response({"username": request.user.get_username(), "claims": request.auth})
