"""Public keys for boundary services (any JWKS client)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Response

from ..auth import ServicesDep

router = APIRouter(tags=["well-known"])


@router.get("/.well-known/jwks.json")
def jwks(services: ServicesDep, response: Response) -> dict[str, Any]:
    """The public signing keys (never private members; HMAC keys are never published)."""
    response.headers["Cache-Control"] = "public, max-age=300"
    return services.material.keys.to_jwks()
