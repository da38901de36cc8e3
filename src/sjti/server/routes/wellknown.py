"""Discovery for clients and boundary services: RFC 8414 metadata and the JWKS.

Both documents are derived from the settings and the key file alone, so every worker and
every node serves the same bytes, and both are cacheable for the same time.
"""

from __future__ import annotations

from typing import Any, Final
from urllib.parse import urlsplit

from fastapi import APIRouter, HTTPException, Request, Response

from ... import KeySet
from ..auth import ServicesDep
from ..settings import Settings

__all__ = ["METADATA_PATH", "router", "server_metadata"]

router = APIRouter(tags=["well-known"])

METADATA_PATH: Final = "/.well-known/oauth-authorization-server"
JWKS_PATH: Final = "/.well-known/jwks.json"
_CACHE_CONTROL: Final = "public, max-age=300"


def server_metadata(
    settings: Settings, keys: KeySet, *, docs_url: str | None = None
) -> dict[str, Any]:
    """The RFC 8414 document for this service.

    * ``issuer`` is the ``iss`` of every token, byte for byte; endpoint URLs start at
      ``public_base_url`` (the issuer when unset), the address clients reach behind a proxy.
    * Only the password and refresh_token grants exist, and neither uses an authorization
      endpoint, so there is none and ``response_types_supported`` is empty (RFC 7591 2.1
      pairs both grants with no response type). No PKCE either: it protects codes.
    * /token and /revoke take public clients (``none``); /introspect takes the Basic client
      when one is configured and an admin's access token (``Bearer``, RFC 8414 2 allows
      access token types there).
    * RFC 8414 registers no member for the access tokens' ``alg``: the JWKS ``alg`` of each
      key is what libraries select on, and ``access_token_signing_alg_values_supported``
      (the name other servers use) lists the same names, the active key's first.
    """
    base = (settings.public_base_url or settings.issuer).rstrip("/")
    introspection_auth = ["Bearer"]
    if settings.introspection_client_secret is not None:
        introspection_auth.insert(0, "client_secret_basic")
    metadata: dict[str, Any] = {
        "issuer": settings.issuer,
        "token_endpoint": f"{base}/token",
        "grant_types_supported": ["password", "refresh_token"],
        "response_types_supported": [],
        "token_endpoint_auth_methods_supported": ["none"],
        "revocation_endpoint": f"{base}/revoke",
        "revocation_endpoint_auth_methods_supported": ["none"],
        "introspection_endpoint": f"{base}/introspect",
        "introspection_endpoint_auth_methods_supported": introspection_auth,
        "access_token_signing_alg_values_supported": list(dict.fromkeys(k.alg for k in keys)),
    }
    if keys.to_jwks()["keys"]:  # HMAC keys are never published: then there is no JWKS
        metadata["jwks_uri"] = f"{base}{JWKS_PATH}"
    if docs_url is not None:
        metadata["service_documentation"] = f"{base}{docs_url}"
    return metadata


def _metadata_response(
    services: ServicesDep, request: Request, response: Response
) -> dict[str, Any]:
    response.headers["Cache-Control"] = _CACHE_CONTROL
    docs_url: str | None = request.app.docs_url
    return server_metadata(services.settings, services.material.keys, docs_url=docs_url)


@router.get(METADATA_PATH)
def authorization_server_metadata(
    services: ServicesDep, request: Request, response: Response
) -> dict[str, Any]:
    """RFC 8414 authorization server metadata: endpoints, grants, client authentication."""
    return _metadata_response(services, request, response)


@router.get(METADATA_PATH + "/{issuer_path:path}", responses={404: {}})
def authorization_server_metadata_for_path(
    issuer_path: str, services: ServicesDep, request: Request, response: Response
) -> dict[str, Any]:
    """The same document where RFC 8414 3.1 puts it for an issuer with a path
    (``https://host/tenant`` is described at ``/.well-known/oauth-authorization-server/tenant``)."""
    own_path = urlsplit(services.settings.issuer).path.strip("/")
    if not own_path or issuer_path.strip("/") != own_path:
        raise HTTPException(404, {"error": "not_found", "error_description": "unknown issuer"})
    return _metadata_response(services, request, response)


@router.get(JWKS_PATH)
def jwks(services: ServicesDep, response: Response) -> dict[str, Any]:
    """The public signing keys (never private members; HMAC keys are never published)."""
    response.headers["Cache-Control"] = _CACHE_CONTROL
    return services.material.keys.to_jwks()
