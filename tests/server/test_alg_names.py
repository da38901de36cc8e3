"""The two names of the Ed25519 signature (RFC 9864), as Python verifiers see the service.

``SJTI_ALG=EdDSA`` (the default) and ``SJTI_ALG=Ed25519`` sign with the same kind of key;
only the ``alg`` name differs, and libraries disagree on which names they accept. These tests
pin what the installed versions do (docs/interop.md is the table): when one fails after an
upgrade, the library changed; update the table with the test.
"""

from __future__ import annotations

import importlib
import json
import secrets
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jwt
import pytest
from jose import jwt as python_jose_jwt
from jose.exceptions import JWKError
from joserfc import jwk as jose_jwk
from joserfc import jwt as jose_jwt
from joserfc.errors import SecurityWarning, UnsupportedAlgorithmError
from joserfc.jws import JWSRegistry
from joserfc.jwt import JWTClaimsRegistry
from jwt.algorithms import get_default_algorithms
from jwt.exceptions import InvalidAlgorithmError, PyJWKSetError

from sjti._keyfile import load_key_material
from sjti.errors import ConfigurationError
from sjti.server.settings import Settings

from .harness import Server, bearer, login, refresh, register

ALGS = ("EdDSA", "Ed25519")
ISSUER = "https://auth.test"  # set by the harness
AUDIENCE = "api.test"
_PYJWT_NEWS = "PyJWT changed its Ed25519 support (jpadilla/pyjwt#1199?): update docs/interop.md"
_JOSERFC_NEWS = "joserfc changed its defaults: update docs/interop.md"


@pytest.fixture(scope="module")
def servers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Server]]:
    """One service per name, each with a key file created under that name."""
    started: dict[str, Server] = {}
    try:
        for alg in ALGS:
            started[alg] = Server(tmp_path_factory.mktemp(f"sjti-{alg}"), {"SJTI_ALG": alg})
        yield started
    finally:
        for server in started.values():
            server.stop()


def _issued(server: Server) -> tuple[str, dict[str, Any], dict[str, Any]]:
    """A fresh user's access token, the JWKS and the discovery metadata."""
    with server.client() as client:
        name = f"alg-{secrets.token_hex(4)}"
        register(client, name)
        token = login(client, name)["access_token"]
        jwks = client.get("/.well-known/jwks.json").json()
        metadata = client.get("/.well-known/oauth-authorization-server").json()
    return token, jwks, metadata


def _header(token: str) -> dict[str, Any]:
    header: dict[str, Any] = jwt.get_unverified_header(token)
    return header


def _joserfc_claims(token: str, jwks: dict[str, Any], algorithms: list[str] | None) -> Any:
    keys = jose_jwk.KeySet.import_key_set(jwks)
    verified = jose_jwt.decode(token, keys, algorithms=algorithms)
    JWTClaimsRegistry(
        iss={"essential": True, "value": ISSUER}, aud={"essential": True, "value": AUDIENCE}
    ).validate(verified.claims)
    return verified.claims


@pytest.mark.parametrize("alg", ALGS)
def test_one_name_in_the_header_the_jwks_and_the_metadata(
    servers: dict[str, Server], alg: str
) -> None:
    """A resource server that selects the JWK by kid *and* alg (node jose, Nimbus) needs the
    JWKS to carry the name the tokens carry; the metadata announces the same one."""
    token, jwks, metadata = _issued(servers[alg])
    [key] = jwks["keys"]
    assert _header(token)["alg"] == alg
    assert key["alg"] == alg
    assert (key["kty"], key["crv"]) == ("OKP", "Ed25519")
    assert _header(token)["kid"] == key["kid"]
    assert metadata["access_token_signing_alg_values_supported"] == [alg]


@pytest.mark.parametrize("alg", ALGS)
def test_joserfc_refuses_both_names_by_default(servers: dict[str, Server], alg: str) -> None:
    """joserfc's default allow-list is HS256, RS256 and ES256: neither Ed25519 name passes
    unless the caller lists it (not only the deprecated EdDSA)."""
    token, jwks, _ = _issued(servers[alg])
    assert alg not in JWSRegistry.recommended, _JOSERFC_NEWS
    with pytest.raises(UnsupportedAlgorithmError, match="not recommended"):
        _joserfc_claims(token, jwks, None)


def test_joserfc_verifies_eddsa_when_allowed_and_warns(servers: dict[str, Server]) -> None:
    """algorithms=["EdDSA"] verifies, with a SecurityWarning that RFC 9864 deprecates it."""
    token, jwks, _ = _issued(servers["EdDSA"])
    with pytest.warns(SecurityWarning, match="EdDSA is deprecated via RFC 9864"):
        claims = _joserfc_claims(token, jwks, ["EdDSA"])
    assert claims["iss"] == ISSUER


def test_joserfc_verifies_ed25519_when_allowed_without_warning(
    servers: dict[str, Server],
) -> None:
    """algorithms=["Ed25519"] verifies silently: the name joserfc recommends."""
    token, jwks, _ = _issued(servers["Ed25519"])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        claims = _joserfc_claims(token, jwks, ["Ed25519"])
    assert claims["iss"] == ISSUER


@pytest.mark.parametrize(("alg", "other"), [("EdDSA", "Ed25519"), ("Ed25519", "EdDSA")])
def test_joserfc_treats_the_names_as_different_algorithms(
    servers: dict[str, Server], alg: str, other: str
) -> None:
    """Allowing one name does not admit the other: a resource server must list the name the
    service issues (or both, during a switch)."""
    token, jwks, _ = _issued(servers[alg])
    with pytest.raises(UnsupportedAlgorithmError, match="not allowed"):
        _joserfc_claims(token, jwks, [other])
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", "EdDSA is deprecated", SecurityWarning)
        assert _joserfc_claims(token, jwks, [other, alg])["aud"] == AUDIENCE


def test_pyjwt_verifies_eddsa_from_the_jwks(servers: dict[str, Server]) -> None:
    """PyJWT's PyJWKClient fetches the JWKS and verifies the default name."""
    server = servers["EdDSA"]
    token, _, _ = _issued(server)
    key = jwt.PyJWKClient(f"{server.url}/.well-known/jwks.json").get_signing_key_from_jwt(token)
    assert key.algorithm_name == "EdDSA"
    claims = jwt.decode(token, key, algorithms=["EdDSA"], audience=AUDIENCE, issuer=ISSUER)
    assert claims["iss"] == ISSUER


def test_pyjwt_cannot_verify_ed25519_tokens(servers: dict[str, Server]) -> None:
    """PyJWT knows only EdDSA: it cannot load the Ed25519 JWKS, and with the key imported by
    hand it still refuses the header's name. Resource servers on PyJWT need SJTI_ALG=EdDSA."""
    token, jwks, _ = _issued(servers["Ed25519"])
    assert "EdDSA" in get_default_algorithms()
    assert "Ed25519" not in get_default_algorithms(), _PYJWT_NEWS
    with pytest.raises(PyJWKSetError, match="did not contain any usable keys"):
        jwt.PyJWKSet.from_dict(jwks)
    raw_key = jwt.PyJWK(jwks["keys"][0], algorithm="EdDSA").key  # the same key, by hand
    with pytest.raises(InvalidAlgorithmError, match="Algorithm not supported"):
        jwt.decode(token, raw_key, algorithms=["Ed25519"], audience=AUDIENCE, issuer=ISSUER)
    with pytest.raises(InvalidAlgorithmError, match="alg value is not allowed"):
        jwt.decode(token, raw_key, algorithms=["EdDSA"], audience=AUDIENCE, issuer=ISSUER)


def test_switching_names_keeps_the_key_and_the_sessions(tmp_path: Path) -> None:
    """EdDSA -> Ed25519 on an existing deployment: same key and kid, refresh tokens survive;
    access tokens carrying the old name are refused, so clients refresh once."""
    first = Server(tmp_path, {"SJTI_ALG": "EdDSA"})
    try:
        with first.client() as client:
            register(client, "switcher")
            before = login(client, "switcher")
            old_kid = client.get("/.well-known/jwks.json").json()["keys"][0]["kid"]
    finally:
        first.stop()
    second = Server(tmp_path, {"SJTI_ALG": "Ed25519"})
    try:
        with second.client() as client:
            refused = client.get("/me", headers=bearer(before))
            assert refused.status_code == 401
            assert 'error_description="alg_not_allowed"' in refused.headers["www-authenticate"]
            renewed = refresh(client, before["refresh_token"])
            assert renewed.status_code == 200, renewed.text
            after = renewed.json()
            assert client.get("/me", headers=bearer(after)).status_code == 200
            [key] = client.get("/.well-known/jwks.json").json()["keys"]
    finally:
        second.stop()
    header = _header(after["access_token"])
    assert (header["alg"], header["kid"]) == ("Ed25519", old_kid)
    assert (key["alg"], key["kid"]) == ("Ed25519", old_kid)
    # the file still holds the key under its first name; only the process renames it
    stored = json.loads((tmp_path / "sjti-keys.json").read_text())
    assert stored["signing_keys"][0]["alg"] == "EdDSA"


def test_key_file_renames_only_between_the_two_ed25519_names(tmp_path: Path) -> None:
    """Ed25519 -> EdDSA works the same way; another algorithm is still refused."""
    path = str(tmp_path / "keys.json")
    created = load_key_material(Settings(key_file=path, alg="Ed25519")).keys.active
    renamed = load_key_material(Settings(key_file=path, alg="EdDSA")).keys.active
    assert (renamed.alg, renamed.kid) == ("EdDSA", created.kid)
    assert renamed.to_public_jwk()["x"] == created.to_public_jwk()["x"]
    with pytest.raises(ConfigurationError, match="holds a Ed25519 key but SJTI_ALG is ES256"):
        load_key_material(Settings(key_file=path, alg="ES256"))


def _authlib_jose() -> Any:
    """authlib.jose, imported past its own deprecation warning (it points at joserfc)."""
    importlib.import_module("authlib.deprecate")  # puts an "always" filter first: load it first
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", "authlib.jose module is deprecated", DeprecationWarning)
        return importlib.import_module("authlib.jose")


@pytest.mark.parametrize(("alg", "accepted"), [("EdDSA", True), ("Ed25519", False)])
def test_authlib_jose_knows_only_eddsa(
    servers: dict[str, Server], alg: str, accepted: bool
) -> None:
    """authlib's own (deprecated) JOSE module verifies EdDSA and has no Ed25519 algorithm."""
    jose = _authlib_jose()
    token, jwks, _ = _issued(servers[alg])
    keys = jose.JsonWebKey.import_key_set(jwks)
    if accepted:
        assert jose.JsonWebToken([alg]).decode(token, keys)["iss"] == ISSUER
    else:
        with pytest.raises(jose.errors.UnsupportedAlgorithmError):
            jose.JsonWebToken([alg]).decode(token, keys)


@pytest.mark.parametrize("alg", ALGS)
def test_python_jose_verifies_neither_name(servers: dict[str, Server], alg: str) -> None:
    """python-jose has no OKP keys at all: neither name can be verified with it."""
    token, jwks, _ = _issued(servers[alg])
    with pytest.raises(JWKError, match="Unable to find an algorithm for key"):
        python_jose_jwt.decode(token, jwks, algorithms=[alg], audience=AUDIENCE)
