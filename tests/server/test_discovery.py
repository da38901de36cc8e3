"""RFC 8414 discovery, read by a real OAuth 2 client: authlib's ``OAuth2Client`` over httpx.

The clients below know one URL, the issuer, and learn everything else from the metadata.
They reach the service the way deployed clients do: at a public address
(``https://auth.test``) served by a reverse proxy, played here by an httpx transport.
"""

from __future__ import annotations

import importlib
import secrets
import time
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from authlib.oauth2.rfc8414 import AuthorizationServerMetadata
from joserfc import jwk as jose_jwk
from joserfc import jwt as jose_jwt
from joserfc.errors import SecurityWarning

from sjti._keyfile import load_key_material
from sjti.server.routes.wellknown import server_metadata
from sjti.server.settings import Settings

from .harness import PASSWORD, Server, register

PUBLIC = "https://auth.test"  # the harness's SJTI_ISSUER; public_base_url defaults to it
WELL_KNOWN = "/.well-known/oauth-authorization-server"
RS_ID = "resource-server"
RS_SECRET = secrets.token_urlsafe(24)

# authlib.deprecate puts an "always" filter first when it loads; authlib 1.9 then warns that
# it runs on httpx rather than httpx2. Load it, then import the client with that one
# warning ignored (every other warning is still an error).
importlib.import_module("authlib.deprecate")
with warnings.catch_warnings():
    warnings.filterwarnings("ignore", "The httpx module is deprecated", DeprecationWarning)
    from authlib.integrations.base_client import OAuthError
    from authlib.integrations.httpx_client import OAuth2Client


class ReverseProxy(httpx.BaseTransport):
    """The TLS-terminating proxy in front of the service: ``https://auth.test/...`` goes to
    the process, keeping the public Host; any other host is unreachable."""

    def __init__(self, public: str, upstream: str) -> None:
        self._public = httpx.URL(public)
        self._upstream = httpx.URL(upstream)
        self._inner = httpx.HTTPTransport()

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        if request.url.host != self._public.host:
            raise httpx.ConnectError(f"no route to {request.url.host}", request=request)
        url = request.url.copy_with(
            scheme=self._upstream.scheme, host=self._upstream.host, port=self._upstream.port
        )
        request.url = url
        return self._inner.handle_request(request)

    def close(self) -> None:
        self._inner.close()


@pytest.fixture(scope="module")
def proxied(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """A service with a Basic introspection client, reachable at https://auth.test."""
    started = Server(
        tmp_path_factory.mktemp("sjti-discovery"),
        {"SJTI_INTROSPECTION_CLIENT_ID": RS_ID, "SJTI_INTROSPECTION_CLIENT_SECRET": RS_SECRET},
    )
    yield started
    started.stop()


def _http(server: Server) -> httpx.Client:
    return httpx.Client(transport=ReverseProxy(PUBLIC, server.url), timeout=30)


def _discover(server: Server) -> dict[str, Any]:
    """What a client does first: GET the metadata at the well-known URL of the issuer."""
    with _http(server) as http:
        response = http.get(PUBLIC + WELL_KNOWN)
    assert response.status_code == 200, response.text
    metadata: dict[str, Any] = response.json()
    assert metadata["issuer"] == PUBLIC  # RFC 8414 3.3: a client must check this
    return metadata


def _app_client(server: Server, metadata: dict[str, Any]) -> OAuth2Client:
    """A public client (an app): no secret, configured from the metadata alone."""
    assert metadata["token_endpoint_auth_methods_supported"] == ["none"]
    assert metadata["revocation_endpoint_auth_methods_supported"] == ["none"]
    return OAuth2Client(
        client_id="mobile-app",
        token_endpoint_auth_method="none",
        revocation_endpoint_auth_method="none",
        token_endpoint=metadata["token_endpoint"],
        transport=ReverseProxy(PUBLIC, server.url),
        timeout=30,
    )


def _resource_server(server: Server, metadata: dict[str, Any]) -> OAuth2Client:
    """A resource server introspecting with the Basic client the metadata announces."""
    assert "client_secret_basic" in metadata["introspection_endpoint_auth_methods_supported"]
    return OAuth2Client(
        client_id=RS_ID,
        client_secret=RS_SECRET,
        token_endpoint_auth_method="client_secret_basic",
        transport=ReverseProxy(PUBLIC, server.url),
        timeout=30,
    )


def _user(server: Server) -> str:
    name = f"disco-{secrets.token_hex(4)}"
    with server.client() as client:
        register(client, name)
    return name


def _introspect(rs: OAuth2Client, metadata: dict[str, Any], token: str, hint: str) -> Any:
    response = rs.introspect_token(
        metadata["introspection_endpoint"], token=token, token_type_hint=hint
    )
    assert response.status_code == 200, response.text
    return response.json()


def test_metadata_is_rfc8414_for_a_server_without_authorization_endpoint(
    proxied: Server,
) -> None:
    """Every member an RFC 8414 client reads is there and says the truth about this server."""
    metadata = _discover(proxied)
    assert metadata == {
        "issuer": PUBLIC,
        "token_endpoint": f"{PUBLIC}/token",
        "grant_types_supported": ["password", "refresh_token"],
        "response_types_supported": [],
        "token_endpoint_auth_methods_supported": ["none"],
        "revocation_endpoint": f"{PUBLIC}/revoke",
        "revocation_endpoint_auth_methods_supported": ["none"],
        "introspection_endpoint": f"{PUBLIC}/introspect",
        "introspection_endpoint_auth_methods_supported": ["client_secret_basic", "Bearer"],
        "access_token_signing_alg_values_supported": ["EdDSA"],
        "jwks_uri": f"{PUBLIC}/.well-known/jwks.json",
        "service_documentation": f"{PUBLIC}/docs",
    }
    # No grant here uses an authorization endpoint, so RFC 8414 2 does not require one,
    # and PKCE (code_challenge_methods_supported) and token_endpoint_auth_signing_alg_...
    # (only for *_jwt client authentication) would describe features that do not exist.
    checked = AuthorizationServerMetadata(metadata)
    for key in AuthorizationServerMetadata.REGISTRY_KEYS:
        if key != "response_types_supported":
            getattr(checked, f"validate_{key}")()
    # authlib reads "required" as "non-empty"; RFC 8414 requires the member and RFC 7591 2.1
    # pairs the password and refresh_token grants with no response type at all: [] it is.
    with pytest.raises(ValueError, match="response_types_supported"):
        checked.validate_response_types_supported()


def test_metadata_is_cached_like_the_jwks(proxied: Server) -> None:
    """Clients and resource servers may cache both documents for the same five minutes."""
    with _http(proxied) as http:
        metadata = http.get(PUBLIC + WELL_KNOWN)
        jwks = http.get(metadata.json()["jwks_uri"])
    assert jwks.status_code == 200
    assert metadata.headers["cache-control"] == "public, max-age=300"
    assert jwks.headers["cache-control"] == metadata.headers["cache-control"]


def test_issuer_is_the_iss_of_tokens_verified_with_the_discovered_jwks(proxied: Server) -> None:
    """A resource server checks iss against the metadata issuer and the signature against
    the jwks_uri with the algorithm the metadata announces: all three agree."""
    metadata = _discover(proxied)
    with _app_client(proxied, metadata) as app:
        token = app.fetch_token(username=_user(proxied), password=PASSWORD)
    with _http(proxied) as http:
        keys = jose_jwk.KeySet.import_key_set(http.get(metadata["jwks_uri"]).json())
    algorithms = metadata["access_token_signing_alg_values_supported"]
    with pytest.warns(
        SecurityWarning, match="EdDSA is deprecated"
    ):  # joserfc's RFC 9864 warning, see interop.md
        verified = jose_jwt.decode(token["access_token"], keys, algorithms=algorithms)
    assert verified.header["alg"] == algorithms[0]
    assert verified.claims["iss"] == metadata["issuer"]


def test_password_grant_then_authlibs_own_refresh(proxied: Server) -> None:
    """authlib fetches a token at the discovered token_endpoint and, once it has expired,
    refreshes it on its own before calling the API; the refresh token rotates."""
    metadata = _discover(proxied)
    name = _user(proxied)
    with _app_client(proxied, metadata) as app:
        first = app.fetch_token(username=name, password=PASSWORD)
        assert first["token_type"].lower() == "bearer"
        assert app.get(f"{PUBLIC}/me").json()["username"] == name
        app.token = {**first, "expires_at": int(time.time()) - 1}  # as if 15 minutes passed
        me = app.get(f"{PUBLIC}/me")  # authlib's ensure_active_token refreshes first
        assert me.status_code == 200
        assert me.json()["username"] == name
        assert app.token["access_token"] != first["access_token"]
        assert app.token["refresh_token"] != first["refresh_token"]
        with pytest.raises(OAuthError) as reused:  # the rotated one is spent
            app.refresh_token(refresh_token=first["refresh_token"])
        assert reused.value.error == "invalid_grant"


def test_rfc7009_revocation_of_the_refresh_token(proxied: Server) -> None:
    """Revoking the refresh token ends that session's refreshes; introspection agrees."""
    metadata = _discover(proxied)
    with _app_client(proxied, metadata) as app, _resource_server(proxied, metadata) as rs:
        token = app.fetch_token(username=_user(proxied), password=PASSWORD)
        refresh_token = token["refresh_token"]
        assert _introspect(rs, metadata, refresh_token, "refresh_token")["active"] is True
        revoked = app.revoke_token(
            metadata["revocation_endpoint"], token=refresh_token, token_type_hint="refresh_token"
        )
        assert revoked.status_code == 200
        assert _introspect(rs, metadata, refresh_token, "refresh_token") == {"active": False}
        with pytest.raises(OAuthError) as refused:
            app.refresh_token(refresh_token=refresh_token)
        assert refused.value.error == "invalid_grant"
        # RFC 7009 2.2: an invalid token is answered 200 as well (no oracle)
        again = app.revoke_token(metadata["revocation_endpoint"], token=refresh_token)
        assert again.status_code == 200


def test_rfc7009_revocation_of_the_access_token(proxied: Server) -> None:
    """Revoking the access token ends it at once, and its session's refresh token with it."""
    metadata = _discover(proxied)
    with _app_client(proxied, metadata) as app, _resource_server(proxied, metadata) as rs:
        token = app.fetch_token(username=_user(proxied), password=PASSWORD)
        access = token["access_token"]
        assert app.get(f"{PUBLIC}/me").status_code == 200
        revoked = app.revoke_token(
            metadata["revocation_endpoint"], token=access, token_type_hint="access_token"
        )
        assert revoked.status_code == 200
        assert app.get(f"{PUBLIC}/me").status_code == 401
        assert _introspect(rs, metadata, access, "access_token") == {"active": False}
        with pytest.raises(OAuthError):
            app.refresh_token(refresh_token=token["refresh_token"])


def test_rfc7662_introspection_with_the_basic_client(proxied: Server) -> None:
    """The resource server's Basic credentials open /introspect; the answer names the token
    and carries the claims a resource server needs; a wrong secret is invalid_client."""
    metadata = _discover(proxied)
    name = _user(proxied)
    with _app_client(proxied, metadata) as app, _resource_server(proxied, metadata) as rs:
        token = app.fetch_token(username=name, password=PASSWORD)
        answer = _introspect(rs, metadata, token["access_token"], "access_token")
        assert answer["active"] is True
        assert answer["token_type"] == "access_token"
        assert answer["username"] == name
        assert answer["iss"] == metadata["issuer"]
        assert answer["aud"] == "api.test"
        assert answer["exp"] > time.time()
        refresh_answer = _introspect(rs, metadata, token["refresh_token"], "refresh_token")
        assert refresh_answer["active"] is True
        assert refresh_answer["token_type"] == "refresh_token"
        assert refresh_answer["sub"] == answer["sub"]
    with OAuth2Client(
        client_id=RS_ID,
        client_secret=RS_SECRET + "x",
        token_endpoint_auth_method="client_secret_basic",
        transport=ReverseProxy(PUBLIC, proxied.url),
    ) as impostor:
        refused = impostor.introspect_token(
            metadata["introspection_endpoint"], token=token["access_token"]
        )
    assert refused.status_code == 401
    assert refused.json()["error"] == "invalid_client"


@pytest.fixture(scope="module")
def behind_gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """Issuer with a path, published under another host and prefix, no Basic client."""
    started = Server(
        tmp_path_factory.mktemp("sjti-gateway"),
        {
            "SJTI_ISSUER": "https://id.example/tenant-a",
            "SJTI_PUBLIC_BASE_URL": "https://gateway.example/auth/",
        },
    )
    yield started
    started.stop()


def test_metadata_urls_respect_public_base_url(behind_gateway: Server) -> None:
    """Endpoints are where clients reach them (the proxy's address, one slash), while the
    issuer stays the tokens' iss; without a Basic client only admin bearers introspect."""
    with behind_gateway.client() as client:
        metadata = client.get(WELL_KNOWN).json()
    assert metadata["issuer"] == "https://id.example/tenant-a"
    urls = {k: v for k, v in metadata.items() if isinstance(v, str) and k != "issuer"}
    assert urls == {
        "token_endpoint": "https://gateway.example/auth/token",
        "revocation_endpoint": "https://gateway.example/auth/revoke",
        "introspection_endpoint": "https://gateway.example/auth/introspect",
        "jwks_uri": "https://gateway.example/auth/.well-known/jwks.json",
        "service_documentation": "https://gateway.example/auth/docs",
    }
    assert metadata["introspection_endpoint_auth_methods_supported"] == ["Bearer"]


def test_issuer_with_a_path_is_also_described_where_rfc8414_puts_it(
    behind_gateway: Server,
) -> None:
    """RFC 8414 3.1 inserts the well-known segment before the issuer's path: a proxy that
    passes /.well-known/oauth-authorization-server/tenant-a through finds the same document,
    and no other suffix answers."""
    with behind_gateway.client() as client:
        plain = client.get(WELL_KNOWN)
        for path in ("/tenant-a", "/tenant-a/"):
            assert client.get(WELL_KNOWN + path).json() == plain.json()
        assert client.get(WELL_KNOWN + "/tenant-b").status_code == 404
        assert client.get(WELL_KNOWN + "/").status_code == 404


def test_metadata_builder_leaves_out_the_jwks_when_nothing_is_published(tmp_path: Path) -> None:
    """With an HMAC signing key there is no public key: no jwks_uri, the alg still listed."""
    settings = Settings(key_file=str(tmp_path / "k.json"), alg="HS256")
    metadata = server_metadata(settings, load_key_material(settings).keys)
    assert "jwks_uri" not in metadata
    assert "service_documentation" not in metadata
    assert metadata["access_token_signing_alg_values_supported"] == ["HS256"]
    assert metadata["token_endpoint"] == "http://127.0.0.1:8000/token"
