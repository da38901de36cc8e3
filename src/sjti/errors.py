"""The one exception tree of sjti.

::

    SjtiError
    ├── ConfigurationError          misuse: short key, unknown algorithm, bad policy
    │   └── InvalidKeyError          a key or key set that must not be used
    ├── TokenError                  bad data; ``code`` is safe to show a client
    │   ├── MalformedTokenError         "malformed"       bad base64, bad JSON, bad shape
    │   │   ├── TokenTooLargeError          "too_large"       over the size limit (a 413)
    │   │   ├── UnsupportedHeaderError      "unsupported_header"  crit, b64, zip, enc
    │   │   ├── BadAlgHeaderError           "bad_alg"         alg missing or not a string
    │   │   └── BadKidHeaderError           "bad_kid"         kid not a string
    │   ├── InvalidSignatureError       "bad_signature"
    │   ├── UnknownKeyError             "unknown_kid"
    │   ├── AlgorithmNotAllowedError    "alg_not_allowed"
    │   ├── ExpiredTokenError           "expired"
    │   ├── ImmatureTokenError          "not_yet_valid"
    │   ├── MissingClaimError(claim)    "missing_claim"
    │   ├── InvalidClaimError(claim)    "invalid_claim"   wrong type or out of range
    │   │   ├── InvalidIssuerError          iss does not match
    │   │   ├── InvalidAudienceError        aud does not match
    │   │   └── InvalidTypeError            typ header does not match
    │   ├── RevokedTokenError           "revoked"         sjti does not match the user key
    │   └── LegacyWindowClosedError     "legacy_window_closed"  a pre-sjti token after the cutoff
    ├── SecretError
    │   └── UnwrapError                 one opaque error for any unwrap failure
    └── BackendError                    store or bus down: maps to 503, fails closed

Messages name the claim or the header member, never its value, a key or the token.
"""

from __future__ import annotations

from typing import ClassVar

__all__ = [
    "AlgorithmNotAllowedError",
    "BackendError",
    "BadAlgHeaderError",
    "BadKidHeaderError",
    "ConfigurationError",
    "ExpiredTokenError",
    "ImmatureTokenError",
    "InvalidAudienceError",
    "InvalidClaimError",
    "InvalidIssuerError",
    "InvalidKeyError",
    "InvalidSignatureError",
    "InvalidTypeError",
    "LegacyWindowClosedError",
    "MalformedTokenError",
    "MissingClaimError",
    "RevokedTokenError",
    "SecretError",
    "SjtiError",
    "TokenError",
    "TokenTooLargeError",
    "UnknownKeyError",
    "UnsupportedHeaderError",
    "UnwrapError",
]


class SjtiError(Exception):
    """Root of every error sjti raises on purpose."""


class ConfigurationError(SjtiError):
    """The library was set up wrongly (short key, unknown algorithm, bad policy)."""


class InvalidKeyError(ConfigurationError):
    """A key, JWK or key set that is unsafe or inconsistent and must not be used."""


class TokenError(SjtiError):
    """A token was refused. ``code`` is stable and safe to show to a client."""

    code: ClassVar[str] = "invalid_token"
    default_message: ClassVar[str] = "invalid token"

    def __init__(self, message: str | None = None) -> None:
        super().__init__(message or self.default_message)


class MalformedTokenError(TokenError):
    """Not a well-formed compact JWS/JWT: too large, bad base64, bad JSON, bad header."""

    code = "malformed"
    default_message = "malformed token"


class TokenTooLargeError(MalformedTokenError):
    """Larger than the size limit: refused before any parsing (a server may answer 413)."""

    code = "too_large"
    default_message = "token too large"


class UnsupportedHeaderError(MalformedTokenError):
    """A header member sjti refuses on principle (``crit``, ``b64``, ``zip``, ``enc``)."""

    code = "unsupported_header"
    default_message = "header member not supported"


class BadAlgHeaderError(MalformedTokenError):
    """The header's ``alg`` is missing or not a string (an ``alg`` that is a string but
    not the key's is :class:`AlgorithmNotAllowedError`)."""

    code = "bad_alg"
    default_message = "header 'alg' missing or not a string"


class BadKidHeaderError(MalformedTokenError):
    """The header's ``kid`` is not a string."""

    code = "bad_kid"
    default_message = "header 'kid' is not a string"


class InvalidSignatureError(TokenError):
    """The signature does not verify with the key the token names."""

    code = "bad_signature"
    default_message = "signature verification failed"


class UnknownKeyError(TokenError):
    """The token names a key id that the key set does not hold."""

    code = "unknown_kid"
    default_message = "unknown key id"


class AlgorithmNotAllowedError(TokenError):
    """The header's ``alg`` is not the algorithm pinned to the selected key."""

    code = "alg_not_allowed"
    default_message = "algorithm not allowed for this key"


class ExpiredTokenError(TokenError):
    """``exp`` has passed (beyond the leeway)."""

    code = "expired"
    default_message = "token expired"


class ImmatureTokenError(TokenError):
    """``nbf`` or ``iat`` lies in the future (beyond the leeway)."""

    code = "not_yet_valid"
    default_message = "token not yet valid"


class _ClaimError(TokenError):
    """Base for errors about one named claim; the value never appears in the message."""

    def __init__(self, claim: str, message: str | None = None) -> None:
        self.claim = claim
        super().__init__(message or f"{self.default_message}: {claim}")


class MissingClaimError(_ClaimError):
    """A required claim (or header member) is absent."""

    code = "missing_claim"
    default_message = "missing required claim"


class InvalidClaimError(_ClaimError):
    """A claim has the wrong type, is out of range or does not match the policy."""

    code = "invalid_claim"
    default_message = "invalid claim"


class InvalidIssuerError(InvalidClaimError):
    """``iss`` is not the expected issuer."""

    def __init__(self) -> None:
        super().__init__("iss", "issuer not accepted")


class InvalidAudienceError(InvalidClaimError):
    """``aud`` does not contain an accepted audience."""

    def __init__(self) -> None:
        super().__init__("aud", "audience not accepted")


class InvalidTypeError(InvalidClaimError):
    """The header's ``typ`` is not the expected token type."""

    def __init__(self) -> None:
        super().__init__("typ", "token type not accepted")


class RevokedTokenError(TokenError):
    """The user layer refused the token: its ``sjti`` does not match the user's key."""

    code = "revoked"
    default_message = "token revoked"


class LegacyWindowClosedError(TokenError):
    """A token without ``sjti`` (minted before the switch) arrived after the migration
    window closed (:class:`sjti.LegacyTokens`): the client must sign in again."""

    code = "legacy_window_closed"
    default_message = "legacy token no longer accepted"


class SecretError(SjtiError):
    """Problem with a user secret at rest."""


class UnwrapError(SecretError):
    """A wrapped secret could not be opened. Deliberately says nothing more."""

    def __init__(self) -> None:
        super().__init__("cannot unwrap secret")


class BackendError(SjtiError):
    """A store or bus is unreachable; callers must fail closed (HTTP 503)."""
