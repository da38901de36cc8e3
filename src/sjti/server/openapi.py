"""The service's OpenAPI document, completed: security schemes and the error shapes.

FastAPI documents every route's 422 with its own validation model, which this service
never sends: OAuth endpoints answer 400 ``invalid_request`` (RFC 6749), the others an
RFC 9457 problem. This rewrites those entries, declares the bearer scheme on every route
that takes a bearer token and HTTP Basic (or an admin bearer) on introspection.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi

from .errors import OAUTH_PATHS
from .models import OAuthErrorOut, ProblemOut

__all__ = ["install"]

_PROBLEM = {"$ref": "#/components/schemas/ProblemOut"}
_OAUTH = {"$ref": "#/components/schemas/OAuthErrorOut"}
_SCHEMES = {
    "bearer": {
        "type": "http",
        "scheme": "bearer",
        "bearerFormat": "JWT",
        "description": "an access token from POST /token (both layers are checked)",
    },
    "basic": {
        "type": "http",
        "scheme": "basic",
        "description": "the introspection client (SJTI_INTROSPECTION_CLIENT_ID / _SECRET)",
    },
}


def _problem(description: str) -> dict[str, Any]:
    return {
        "description": description,
        "content": {"application/problem+json": {"schema": _PROBLEM}},
    }


def _oauth(description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": _OAUTH}}}


def _complete(document: dict[str, Any]) -> dict[str, Any]:
    components = document.setdefault("components", {})
    schemas = components.setdefault("schemas", {})
    schemas["ProblemOut"] = ProblemOut.model_json_schema(
        ref_template="#/components/schemas/{model}"
    )
    schemas["OAuthErrorOut"] = OAuthErrorOut.model_json_schema()
    for unused in ("HTTPValidationError", "ValidationError"):
        schemas.pop(unused, None)
    components["securitySchemes"] = _SCHEMES
    for path, operations in document.get("paths", {}).items():
        for operation in operations.values():
            responses: dict[str, Any] = operation.setdefault("responses", {})
            if path in OAUTH_PATHS:
                responses.pop("422", None)
                responses["400"] = _oauth("malformed request, or an invalid grant")
                for status, text in (("413", "request body too large"), ("503", "unavailable")):
                    responses[status] = _oauth(text)
                if path == "/introspect":
                    operation["security"] = [{"basic": []}, {"bearer": []}]
                for status, entry in list(responses.items()):
                    if status[0] in "45" and not entry.get("content"):
                        responses[status] = _oauth(entry.get("description") or "error")
                continue
            if "422" in responses:
                responses["422"] = _problem("the request does not match the schema")
            for status, entry in list(responses.items()):
                if status[0] in "45" and not entry.get("content"):
                    responses[status] = _problem(entry.get("description") or "error")
            if operation.get("security"):
                responses.setdefault("401", _problem("missing, invalid, expired or revoked token"))
            if path.startswith("/admin"):
                responses.setdefault("403", _problem("admin role required"))
            if "requestBody" in operation:
                responses.setdefault("400", _problem("a body that is not JSON"))
                responses.setdefault("413", _problem("request body too large"))
            responses.setdefault("503", _problem("database unavailable, or keys do not open"))
    return document


def install(app: FastAPI) -> None:
    """Serve the completed document at /openapi.json (built once)."""

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            document = get_openapi(
                title=app.title,
                version=app.version,
                description=app.description,
                routes=app.routes,
            )
            app.openapi_schema = _complete(document)
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
