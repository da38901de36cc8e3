"""Every constructor that takes a policy, a key or a limit refuses what it cannot enforce.

A misconfiguration that is accepted silently is a check that is off: ``typ=""`` that skips
the typ check, a 16-byte user key, a zero ttl. Each boundary is tested on both sides, so a
changed comparison (``<`` for ``<=``) or a changed ``or`` (for ``and``) is caught.
"""

from __future__ import annotations

from typing import Any

import pytest

from sjti import (
    ClaimsPolicy,
    ConfigurationError,
    InvalidKeyError,
    Issuer,
    SigningKey,
    UserKey,
    VerifyingKey,
)
from sjti._core.codec import b64url_decode
from sjti._core.strategies import EpochStrategy, SessionKey, get_strategy
from sjti._core.strategies.session import mint
from sjti._core.wrapping import Kek, KekRing, WrappedSecret
from sjti.errors import UnwrapError
from tests.conftest import AUDIENCE, ISSUER, NOW

SECRET = bytes(range(32))


# ---------------------------------------------------------------------------------------
# ClaimsPolicy


@pytest.mark.parametrize("typ", ["", 0, 1, b"at+jwt", ["at+jwt"]])
def test_policy_refuses_a_typ_that_is_not_a_non_empty_string(typ: Any) -> None:
    """typ="" would silently switch the typ check off; only None may do that, on purpose."""
    with pytest.raises(ConfigurationError):
        ClaimsPolicy(issuer=ISSUER, audience=AUDIENCE, typ=typ)


def test_policy_with_typ_none_skips_the_typ_check() -> None:
    """None is the one explicit way to accept any typ (for tokens that carry none)."""
    assert ClaimsPolicy(issuer=ISSUER, audience=AUDIENCE, typ=None).typ is None


@pytest.mark.parametrize("max_lifetime", [1, 2, 86_400])
def test_policy_accepts_any_positive_max_lifetime(max_lifetime: int) -> None:
    """A one-second cap is strict but valid; only 0 and below are meaningless."""
    policy = ClaimsPolicy(issuer=ISSUER, audience=AUDIENCE, max_lifetime=max_lifetime)
    assert max_lifetime == policy.max_lifetime


@pytest.mark.parametrize("max_lifetime", [True, 1.0, None])
def test_policy_max_lifetime_must_be_an_int_or_none(max_lifetime: Any) -> None:
    """True is not a number of seconds; None means no cap."""
    if max_lifetime is None:
        assert ClaimsPolicy(issuer=ISSUER, audience=AUDIENCE).max_lifetime is None
        return
    with pytest.raises(ConfigurationError):
        ClaimsPolicy(issuer=ISSUER, audience=AUDIENCE, max_lifetime=max_lifetime)


def test_max_lifetime_adds_iat_and_exp_to_the_required_claims_and_keeps_the_rest() -> None:
    """A cap needs both time claims, and must not drop iss, aud, sub or jti to get them."""
    policy = ClaimsPolicy(issuer=ISSUER, audience=AUDIENCE, max_lifetime=60)
    assert frozenset({"iss", "aud", "sub", "jti", "iat", "exp"}) == policy.required
    custom = ClaimsPolicy(issuer=ISSUER, audience=AUDIENCE, required={"sub"}, max_lifetime=60)
    assert frozenset({"sub", "iat", "exp"}) == custom.required


@pytest.mark.parametrize("required", [{"iss", 1}, [b"sub"], (None,)])
def test_policy_required_names_are_strings(required: Any) -> None:
    """A non-string name can never be present in JSON claims: refuse it at setup."""
    with pytest.raises(ConfigurationError):
        ClaimsPolicy(issuer=ISSUER, audience=AUDIENCE, required=required)


# ---------------------------------------------------------------------------------------
# keys


@pytest.mark.parametrize(
    "secret",
    [b"", b"k" * 16, b"k" * 31, b"k" * 33, "k" * 32, bytearray(32), None],
    ids=["empty", "16", "31", "33", "str", "bytearray", "none"],
)
def test_user_key_is_exactly_32_bytes(secret: Any) -> None:
    """A short user key would make every sjti of that user guessable."""
    with pytest.raises(ConfigurationError):
        UserKey(secret)


def test_user_key_repr_is_exact_and_generated_keys_are_full_size() -> None:
    """The repr is fixed text (never derived from the secret); generate() gives 32 bytes."""
    key = UserKey.generate()
    assert repr(key) == "UserKey(<secret>)"
    assert len(key.secret_bytes()) == 32
    assert UserKey.generate().secret_bytes() != key.secret_bytes()


@pytest.mark.parametrize("secret", [b"", b"k" * 31, "k" * 32, None])
def test_session_key_is_at_least_32_bytes(secret: Any) -> None:
    """The session MAC key guards every opaque token: no short or text keys."""
    with pytest.raises(ConfigurationError):
        SessionKey(secret)


def test_session_key_accepts_32_bytes_and_more_and_hides_itself() -> None:
    """32 is the minimum, not the only size; the repr never shows the key."""
    SessionKey(b"k" * 64)
    key = SessionKey.generate()
    assert repr(key) == "SessionKey(<secret>)"
    assert len(key._secret) == 32


@pytest.mark.parametrize(("alg", "size"), [("HS256", 32), ("HS384", 48), ("HS512", 64)])
def test_generated_hmac_secrets_are_as_long_as_the_hash(alg: str, size: int) -> None:
    """generate() must not pick a shorter secret than from_secret() accepts."""
    key = SigningKey.generate(alg)
    assert alg == key.alg
    jwk = key.export_private_jwk()
    assert {"kty": "oct", "kid": key.kid, "alg": alg} == {k: jwk[k] for k in ("kty", "kid", "alg")}
    assert size == len(b64url_decode(jwk["k"]))


def test_generate_defaults_to_eddsa() -> None:
    """The documented default algorithm: small, fast, deterministic signatures."""
    assert SigningKey.generate().alg == "EdDSA"


def test_from_secret_defaults_to_hs256() -> None:
    """The HMAC default is HS256, for signing and for verifying keys alike."""
    assert SigningKey.from_secret(SECRET).alg == "HS256"
    verifying = VerifyingKey.from_secret(SECRET, kid="mine")
    assert (verifying.alg, verifying.kid) == ("HS256", "mine")
    assert verifying.verify(b"data", SigningKey.from_secret(SECRET).sign(b"data"))


# ---------------------------------------------------------------------------------------
# Issuer


@pytest.mark.parametrize("issuer", ["", 123, None, b"https://auth"])
def test_issuer_name_must_be_a_non_empty_string(issuer: Any) -> None:
    """Tokens with an empty or non-string iss would fail every verifier's issuer check."""
    with pytest.raises(ConfigurationError):
        Issuer(SigningKey.from_secret(SECRET), issuer=issuer, audience=AUDIENCE)


@pytest.mark.parametrize("ttl", [0, -1, 1.5, "900", None])
def test_issuer_ttl_must_be_a_positive_int(ttl: Any) -> None:
    """A zero or negative ttl mints tokens that are dead on arrival."""
    with pytest.raises(ConfigurationError):
        Issuer(SigningKey.from_secret(SECRET), issuer=ISSUER, audience=AUDIENCE, ttl=ttl)


def test_issuer_accepts_a_one_second_ttl_and_defaults_to_900() -> None:
    """ttl=1 is the smallest valid lifetime; the default is 15 minutes."""
    key = SigningKey.from_secret(SECRET)
    assert Issuer(key, issuer=ISSUER, audience=AUDIENCE, ttl=1).ttl == 1
    issuer = Issuer(key, issuer=ISSUER, audience=AUDIENCE)
    claims = issuer.claims_for("alice", UserKey(SECRET), now=NOW)
    assert (issuer.ttl, claims["exp"]) == (900, NOW + 900)


@pytest.mark.parametrize("audience", [[AUDIENCE, "other"], (AUDIENCE,), ["a", "b", "c"]])
def test_issuer_keeps_every_audience_of_a_collection(audience: Any) -> None:
    """aud is written as the list given, in order, so every named service accepts it."""
    issuer = Issuer(SigningKey.from_secret(SECRET), issuer=ISSUER, audience=audience)
    assert list(audience) == issuer.claims_for("alice", UserKey(SECRET), now=NOW)["aud"]


@pytest.mark.parametrize("audience", ["", [], ()])
def test_issuer_audience_must_not_be_empty(audience: Any) -> None:
    """A token for nobody would be refused everywhere; say so at setup."""
    with pytest.raises(ConfigurationError):
        Issuer(SigningKey.from_secret(SECRET), issuer=ISSUER, audience=audience)


# ---------------------------------------------------------------------------------------
# strategies


@pytest.mark.parametrize("name", [None, 1, b"sjti", "SJTI", "", ["sjti"]])
def test_get_strategy_refuses_unknown_names(name: Any) -> None:
    """Only the registered names select a strategy; anything else is a setup error."""
    with pytest.raises(ConfigurationError):
        get_strategy(name)


@pytest.mark.parametrize("now_ms", [0, 1, 253_402_300_799_999])
def test_epoch_revoke_accepts_every_millisecond_in_range(now_ms: int) -> None:
    """Both ends of the NumericDate range, in ms, are valid revocation times."""
    assert now_ms == EpochStrategy().revoke(None, now_ms=now_ms)


@pytest.mark.parametrize("now_ms", [-1, 253_402_300_800_000, True, 1.0])
def test_epoch_revoke_refuses_times_out_of_range(now_ms: Any) -> None:
    """Out of range or not an int: a configuration error, never a silent epoch."""
    with pytest.raises(ConfigurationError):
        EpochStrategy().revoke(None, now_ms=now_ms)


@pytest.mark.parametrize(("now_ms", "ttl_ms"), [(0, 1), (1, 2), (5, 60_000)])
def test_session_mint_accepts_the_smallest_valid_times(now_ms: int, ttl_ms: int) -> None:
    """now_ms=0 and ttl_ms=1 are valid; the record says exactly when it was made and ends."""
    _, record = mint(SessionKey(SECRET), user="alice", now_ms=now_ms, ttl_ms=ttl_ms)
    assert (now_ms, now_ms + ttl_ms) == (record.created_at_ms, record.expires_at_ms)


@pytest.mark.parametrize(("now_ms", "ttl_ms"), [(-1, 1), (0, 0), (0, -1), (True, 1), (0, 1.0)])
def test_session_mint_refuses_impossible_times(now_ms: Any, ttl_ms: Any) -> None:
    """A negative clock or an empty lifetime is a caller bug."""
    with pytest.raises(ConfigurationError):
        mint(SessionKey(SECRET), user="alice", now_ms=now_ms, ttl_ms=ttl_ms)


# ---------------------------------------------------------------------------------------
# wrapping


@pytest.mark.parametrize("text", ["", "   ", None, 1])
def test_kek_config_must_be_non_empty_text(text: Any) -> None:
    """An empty KEK config would leave every secret unopenable: fail at startup."""
    with pytest.raises(ConfigurationError):
        KekRing.from_config(text)


def test_kek_ring_accepts_only_keks() -> None:
    """A raw key in the ring would have no id to label what it wraps."""
    with pytest.raises(ConfigurationError):
        KekRing([Kek("k1", SECRET), SECRET])  # type: ignore[list-item]


@pytest.mark.parametrize(
    ("kek_id", "blob"),
    [("bad id", b"x" * 60), ("k1", "x" * 60), ("", b"x" * 60), ("k1", None)],
)
def test_wrapped_secret_refuses_malformed_fields(kek_id: Any, blob: Any) -> None:
    """A row with a bad id or a non-bytes blob is one more unwrap failure, not a crash."""
    with pytest.raises(UnwrapError):
        WrappedSecret(kek_id=kek_id, blob=blob)


def test_kek_generate_gives_a_short_url_safe_id_and_a_full_key() -> None:
    """Generated ids are 8 URL-safe characters (6 random bytes); keys are 32 bytes."""
    kek = Kek.generate()
    assert len(kek.kid) == 8
    assert len(kek.key) == 32
    assert Kek.generate("fixed").kid == "fixed"


def test_keks_hash_by_id_so_equal_keks_collapse_in_a_set() -> None:
    """Equal KEKs (same id and key) are one KEK; a different key is a different KEK."""
    same = {Kek("k1", SECRET), Kek("k1", SECRET)}
    assert len(same) == 1
    assert hash(Kek("k1", SECRET)) == hash(Kek("k1", bytes(32)))
    assert Kek("k1", SECRET) != Kek("k1", bytes(32))


def test_invalid_key_error_is_raised_for_a_short_kek() -> None:
    """Key-size problems are InvalidKeyError, the class key loaders catch."""
    with pytest.raises(InvalidKeyError):
        Kek("k1", SECRET[:16])
