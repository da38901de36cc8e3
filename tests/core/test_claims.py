"""Unit tests of the pure claim checks: ClaimsPolicy, check_claims and check_typ."""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import pytest

from sjti import (
    ClaimsPolicy,
    ConfigurationError,
    ExpiredTokenError,
    ImmatureTokenError,
    InvalidAudienceError,
    InvalidClaimError,
    InvalidIssuerError,
    InvalidTypeError,
    MissingClaimError,
    TokenError,
)
from sjti._core.claims import check_claims, check_typ
from tests.conftest import AUDIENCE, ISSUER, NOW

MAX_NUMERIC_DATE = 253_402_300_799  # 9999-12-31T23:59:59Z
DROP = object()


def claims(**members: Any) -> dict[str, Any]:
    """A claims set that passes the default policy at NOW; ``DROP`` removes a member."""
    base: dict[str, Any] = {
        "iss": ISSUER,
        "sub": "user-1",
        "aud": AUDIENCE,
        "exp": NOW + 600,
        "iat": NOW,
        "jti": "jti-1",
    }
    for name, value in members.items():
        if value is DROP:
            base.pop(name, None)
        else:
            base[name] = value
    return base


def make_policy(**options: Any) -> ClaimsPolicy:
    options.setdefault("issuer", ISSUER)
    options.setdefault("audience", AUDIENCE)
    return ClaimsPolicy(**options)


# ---------------------------------------------------------------------------------------
# ClaimsPolicy validation


@pytest.mark.parametrize(
    "options",
    [
        pytest.param({"issuer": ""}, id="issuer-empty"),
        pytest.param({"issuer": None}, id="issuer-none"),
        pytest.param({"issuer": 123}, id="issuer-int"),
        pytest.param({"issuer": b"https://auth"}, id="issuer-bytes"),
        pytest.param({"audience": ""}, id="audience-empty"),
        pytest.param({"audience": []}, id="audience-empty-list"),
        pytest.param({"audience": ()}, id="audience-empty-tuple"),
        pytest.param({"audience": [""]}, id="audience-list-of-empty"),
        pytest.param({"audience": ["api", ""]}, id="audience-list-with-empty"),
        pytest.param({"audience": ["api", 1]}, id="audience-list-with-int"),
        pytest.param({"audience": b"api"}, id="audience-bytes"),
        pytest.param({"audience": None}, id="audience-none"),
        pytest.param({"audience": 123}, id="audience-int"),
        pytest.param({"leeway": -1}, id="leeway-negative"),
        pytest.param({"leeway": 301}, id="leeway-too-large"),
        pytest.param({"leeway": 10**9}, id="leeway-huge"),
        pytest.param({"leeway": 1.5}, id="leeway-float"),
        pytest.param({"leeway": "30"}, id="leeway-str"),
        pytest.param({"leeway": None}, id="leeway-none"),
        pytest.param({"max_lifetime": 0}, id="max-lifetime-zero"),
        pytest.param({"max_lifetime": -1}, id="max-lifetime-negative"),
        pytest.param({"max_lifetime": "3600"}, id="max-lifetime-str"),
    ],
)
def test_policy_refuses_bad_configuration(options: dict[str, Any]) -> None:
    """A policy that cannot be enforced as written must fail at setup, as ConfigurationError."""
    with pytest.raises(ConfigurationError):
        make_policy(**options)


@pytest.mark.parametrize("leeway", [0, 1, 300])
def test_policy_accepts_leeway_in_range(leeway: int) -> None:
    """The documented leeway range 0..300 s must be usable at both ends."""
    assert make_policy(leeway=leeway).leeway == leeway


@pytest.mark.parametrize(
    "audience",
    [AUDIENCE, [AUDIENCE, "other"], (AUDIENCE,), frozenset({AUDIENCE, "other"})],
)
def test_policy_accepts_one_or_several_audiences(audience: Any) -> None:
    """Services that answer to several audiences must be able to say so in any collection."""
    check_claims(claims(), make_policy(audience=audience), now=NOW)


def test_policy_required_is_frozen_set() -> None:
    """The required set is copied to a frozenset so later edits of the caller's list do nothing."""
    required = ["iss", "exp"]
    policy = make_policy(required=required)
    required.append("nbf")
    assert frozenset({"iss", "exp"}) == policy.required


def test_policy_is_immutable() -> None:
    """A policy shared by every request must not be weakened by one careless assignment."""
    policy = make_policy()
    with pytest.raises(dataclasses.FrozenInstanceError):
        policy.issuer = "https://evil.example"  # type: ignore[misc]


def test_default_policy_requires_the_access_token_claims() -> None:
    """RFC 9068 access tokens carry iss, aud, sub, jti, iat and exp; the default asks for all."""
    assert frozenset({"iss", "aud", "sub", "jti", "iat", "exp"}) == make_policy().required


# ---------------------------------------------------------------------------------------
# check_claims


def test_valid_claims_pass_and_are_not_mutated() -> None:
    """The pure check returns nothing and leaves the claims it was given untouched."""
    value = claims(scope="read", nbf=NOW)
    before = dict(value)
    assert check_claims(value, make_policy(), now=NOW) is None
    assert before == value


@pytest.mark.parametrize("name", ["iss", "aud", "sub", "jti", "iat", "exp"])
def test_missing_required_claim(name: str) -> None:
    """Each required claim that is absent is reported by name, so clients can be told which."""
    with pytest.raises(MissingClaimError) as excinfo:
        check_claims(claims(**{name: DROP}), make_policy(), now=NOW)
    assert name == excinfo.value.claim


@pytest.mark.parametrize("name", ["nbf", "scope"])
def test_extra_required_claim_is_enforced(name: str) -> None:
    """A claim the application adds to ``required`` is enforced like a registered one."""
    policy = make_policy(required=frozenset({"iss", "exp", name}))
    with pytest.raises(MissingClaimError) as excinfo:
        check_claims(claims(), policy, now=NOW)
    assert name == excinfo.value.claim


def test_optional_claims_may_be_absent() -> None:
    """With a smaller required set, tokens without the optional claims are accepted."""
    policy = make_policy(required=frozenset({"sub"}))
    check_claims({"sub": "user-1"}, policy, now=NOW)


@pytest.mark.parametrize(
    ("members", "error"),
    [
        pytest.param({"iss": "https://evil.example"}, InvalidIssuerError, id="iss"),
        pytest.param({"aud": "https://other.example"}, InvalidAudienceError, id="aud"),
        pytest.param({"exp": NOW}, ExpiredTokenError, id="exp"),
        pytest.param({"nbf": NOW + 1}, ImmatureTokenError, id="nbf"),
        pytest.param({"iat": NOW + 1}, ImmatureTokenError, id="iat"),
        pytest.param({"jti": 5}, InvalidClaimError, id="jti"),
    ],
)
def test_optional_claims_are_still_checked_when_present(
    members: dict[str, Any], error: type[TokenError]
) -> None:
    """Making a claim optional must not switch off its check when a token does carry it."""
    policy = make_policy(required=frozenset({"sub"}))
    with pytest.raises(error):
        check_claims({"sub": "user-1", **members}, policy, now=NOW)


@pytest.mark.parametrize(
    ("members", "leeway", "error"),
    [
        pytest.param({"exp": NOW}, 0, ExpiredTokenError, id="exp-eq-now"),
        pytest.param({"exp": NOW + 1}, 0, None, id="exp-now+1"),
        pytest.param({"exp": NOW - 30, "iat": NOW - 60}, 30, ExpiredTokenError, id="exp-now-30"),
        pytest.param({"exp": NOW - 29, "iat": NOW - 60}, 30, None, id="exp-now-29"),
        pytest.param({"nbf": NOW + 1}, 0, ImmatureTokenError, id="nbf-now+1"),
        pytest.param({"nbf": NOW}, 0, None, id="nbf-eq-now"),
        pytest.param({"nbf": NOW + 30}, 30, None, id="nbf-now+30"),
        pytest.param({"nbf": NOW + 31}, 30, ImmatureTokenError, id="nbf-now+31"),
        pytest.param({"iat": NOW + 1}, 0, ImmatureTokenError, id="iat-now+1"),
        pytest.param({"iat": NOW + 30}, 30, None, id="iat-now+30"),
        pytest.param({"iat": NOW + 31}, 30, ImmatureTokenError, id="iat-now+31"),
        pytest.param({"exp": NOW + 0.5, "iat": NOW - 1}, 0, None, id="exp-fractional"),
        pytest.param({"exp": float(NOW)}, 0, ExpiredTokenError, id="exp-float-eq-now"),
    ],
)
def test_time_claims_at_the_leeway_edges(
    members: dict[str, Any], leeway: int, error: type[TokenError] | None
) -> None:
    """Off-by-one at the leeway edge either lets expired tokens in or locks valid ones out."""
    policy = make_policy(leeway=leeway)
    if error is None:
        check_claims(claims(**members), policy, now=NOW)
    else:
        with pytest.raises(error):
            check_claims(claims(**members), policy, now=NOW)


@pytest.mark.parametrize("name", ["exp", "nbf", "iat"])
@pytest.mark.parametrize(
    "value",
    [
        pytest.param("123", id="str"),
        pytest.param(True, id="bool"),
        pytest.param(None, id="null"),
        pytest.param([], id="list"),
        pytest.param({}, id="object"),
        pytest.param(-1, id="negative"),
        pytest.param(MAX_NUMERIC_DATE + 1, id="after-9999"),
        pytest.param(2**64, id="huge-int"),
        pytest.param(math.inf, id="inf"),
        pytest.param(math.nan, id="nan"),
    ],
)
def test_numeric_date_of_wrong_type_or_range(name: str, value: Any) -> None:
    """A NumericDate that is not a finite number in 1970..9999 is refused, naming the claim."""
    with pytest.raises(InvalidClaimError) as excinfo:
        check_claims(claims(**{name: value}), make_policy(), now=NOW)
    assert name == excinfo.value.claim


@pytest.mark.parametrize("name", ["exp", "iat", "nbf"])
def test_numeric_date_bounds_are_inclusive(name: str) -> None:
    """The last second of year 9999 and the epoch itself are valid NumericDates."""
    value = MAX_NUMERIC_DATE if name == "exp" else 0
    check_claims(claims(**{name: value}), make_policy(), now=NOW)


@pytest.mark.parametrize("name", ["iss", "sub", "jti"])
@pytest.mark.parametrize(
    "value",
    [
        pytest.param(1, id="int"),
        pytest.param(["x"], id="list"),
        pytest.param("", id="empty"),
        pytest.param(None, id="null"),
        pytest.param(True, id="bool"),
        pytest.param("x" * 1025, id="too-long"),
    ],
)
def test_string_claim_of_wrong_type(name: str, value: Any) -> None:
    """iss, sub and jti are non-empty bounded strings; anything else is refused by name."""
    with pytest.raises(InvalidClaimError) as excinfo:
        check_claims(claims(**{name: value}), make_policy(), now=NOW)
    assert name == excinfo.value.claim


def test_string_claim_at_length_limit_is_accepted() -> None:
    """The 1024-character limit is a bound on abuse, not on ordinary long identifiers."""
    check_claims(claims(sub="x" * 1024, jti="j" * 1024), make_policy(), now=NOW)


@pytest.mark.parametrize(
    "value",
    [
        pytest.param(1, id="int"),
        pytest.param({}, id="object"),
        pytest.param([], id="empty-list"),
        pytest.param([1], id="list-of-int"),
        pytest.param([AUDIENCE, 1], id="list-mixed"),
        pytest.param([[AUDIENCE]], id="nested-list"),
        pytest.param(None, id="null"),
        pytest.param(True, id="bool"),
    ],
)
def test_aud_of_wrong_type(value: Any) -> None:
    """aud is a string or a non-empty list of strings (RFC 7519 §4.1.3)."""
    with pytest.raises(InvalidClaimError) as excinfo:
        check_claims(claims(aud=value), make_policy(), now=NOW)
    assert excinfo.value.claim == "aud"


@pytest.mark.parametrize(
    ("policy_audience", "aud", "accepted"),
    [
        (["a", "b"], "b", True),
        (["a", "b"], ["c", "a"], True),
        (["a", "b"], "c", False),
        (["a", "b"], ["c", "d"], False),
        ("a", ["a"], True),
        ("a", ["A"], False),
    ],
)
def test_audience_matching(policy_audience: Any, aud: Any, accepted: bool) -> None:
    """A token is for us if any of its audiences is one of ours, compared exactly."""
    policy = make_policy(audience=policy_audience)
    if accepted:
        check_claims(claims(aud=aud), policy, now=NOW)
    else:
        with pytest.raises(InvalidAudienceError):
            check_claims(claims(aud=aud), policy, now=NOW)


def test_exp_before_iat_is_invalid() -> None:
    """A token that expires before it was issued is nonsense and is refused, naming exp."""
    policy = make_policy(leeway=30)
    with pytest.raises(InvalidClaimError) as excinfo:
        check_claims(claims(iat=NOW + 20, exp=NOW + 10), policy, now=NOW)
    assert excinfo.value.claim == "exp"


@pytest.mark.parametrize(
    ("lifetime", "accepted"),
    [(3599, True), (3600, True), (3601, False), (10**9, False)],
)
def test_max_lifetime(lifetime: int, accepted: bool) -> None:
    """max_lifetime caps exp - iat, so a leaked long-lived token is refused by policy."""
    policy = make_policy(max_lifetime=3600)
    value = claims(iat=NOW, exp=NOW + lifetime)
    if accepted:
        check_claims(value, policy, now=NOW)
    else:
        with pytest.raises(InvalidClaimError) as excinfo:
            check_claims(value, policy, now=NOW)
        assert excinfo.value.claim == "exp"


@pytest.mark.parametrize(
    ("required", "members"),
    [
        pytest.param(frozenset({"iss", "aud", "sub", "exp"}), {"iat": DROP}, id="no-iat"),
        pytest.param(frozenset({"iss", "aud", "sub", "iat"}), {"exp": DROP}, id="no-exp"),
    ],
)
def test_max_lifetime_is_not_bypassed_by_omitting_a_time_claim(
    required: frozenset[str], members: dict[str, Any]
) -> None:
    """A lifetime cap the token can dodge by leaving out iat or exp is no cap at all.

    Either the policy refuses the combination at setup, or the check refuses the token.
    """
    with pytest.raises((ConfigurationError, MissingClaimError, InvalidClaimError)):
        _check_with_lifetime_cap(required, claims(**{"exp": NOW + 10**8, **members}))


def _check_with_lifetime_cap(required: frozenset[str], value: dict[str, Any]) -> None:
    check_claims(value, make_policy(required=required, max_lifetime=3600), now=NOW)


# ---------------------------------------------------------------------------------------
# check_typ


@pytest.mark.parametrize(
    ("policy_typ", "header", "accepted"),
    [
        pytest.param("at+jwt", {"typ": "at+jwt"}, True, id="exact"),
        pytest.param("at+jwt", {"typ": "AT+JWT"}, True, id="upper"),
        pytest.param("at+jwt", {"typ": "application/at+jwt"}, True, id="full-media-type"),
        pytest.param("at+jwt", {"typ": "Application/AT+JWT"}, True, id="full-mixed-case"),
        pytest.param("application/at+jwt", {"typ": "at+jwt"}, True, id="policy-full"),
        pytest.param("JWT", {"typ": "jwt"}, True, id="jwt-policy"),
        pytest.param("at+jwt", {}, False, id="missing"),
        pytest.param("at+jwt", {"typ": "JWT"}, False, id="jwt"),
        pytest.param("at+jwt", {"typ": "at+jwt "}, False, id="trailing-space"),
        pytest.param("at+jwt", {"typ": " at+jwt"}, False, id="leading-space"),
        pytest.param("at+jwt", {"typ": "application/jwt"}, False, id="application-jwt"),
        pytest.param("at+jwt", {"typ": "application/application/at+jwt"}, False, id="double"),
        pytest.param("at+jwt", {"typ": "text/at+jwt"}, False, id="other-type"),
        pytest.param("at+jwt", {"typ": ""}, False, id="empty"),
        pytest.param("at+jwt", {"typ": None}, False, id="null"),
        pytest.param("at+jwt", {"typ": 1}, False, id="int"),
        pytest.param("at+jwt", {"typ": ["at+jwt"]}, False, id="list"),
        pytest.param(None, {}, True, id="check-disabled"),
        pytest.param(None, {"typ": "anything"}, True, id="check-disabled-any"),
    ],
)
def test_check_typ(policy_typ: str | None, header: dict[str, Any], accepted: bool) -> None:
    """Explicit typing (RFC 8725 §3.11) stops an ID token or other JWT posing as an access token."""
    policy = make_policy(typ=policy_typ)
    if accepted:
        check_typ(header, policy)
    else:
        with pytest.raises(InvalidTypeError) as excinfo:
            check_typ(header, policy)
        assert excinfo.value.claim == "typ"
