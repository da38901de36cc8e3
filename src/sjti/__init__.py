"""sjti: JSON Web Tokens revocable per user, instantly, without a revocation list.

The safe API is re-exported here; modules starting with ``_`` are private.
"""

from ._configure import Auth, SignedIn, configure
from ._core.binding import UserKey
from ._core.claims import Claims, ClaimsPolicy
from ._core.keys import SigningKey, VerifyingKey
from ._core.keyset import KeySet
from ._core.wrapping import Kek, KekRing, WrappedSecret, generate_user_key
from .errors import (
    AlgorithmNotAllowedError,
    BackendError,
    BadAlgHeaderError,
    BadKidHeaderError,
    ConfigurationError,
    ExpiredTokenError,
    ImmatureTokenError,
    InvalidAudienceError,
    InvalidClaimError,
    InvalidIssuerError,
    InvalidKeyError,
    InvalidSignatureError,
    InvalidTypeError,
    LegacyWindowClosedError,
    MalformedTokenError,
    MissingClaimError,
    RevokedTokenError,
    SecretError,
    SjtiError,
    TokenError,
    TokenTooLargeError,
    UnknownKeyError,
    UnsupportedHeaderError,
    UnwrapError,
)
from .legacy import LegacyTokens
from .settings import Settings
from .tokens import BoundaryVerifier, Clock, Issuer, UserVerifier, system_clock

__version__ = "0.1.0.dev0"

__all__ = [
    "AlgorithmNotAllowedError",
    "Auth",
    "BackendError",
    "BadAlgHeaderError",
    "BadKidHeaderError",
    "BoundaryVerifier",
    "Claims",
    "ClaimsPolicy",
    "Clock",
    "ConfigurationError",
    "ExpiredTokenError",
    "ImmatureTokenError",
    "InvalidAudienceError",
    "InvalidClaimError",
    "InvalidIssuerError",
    "InvalidKeyError",
    "InvalidSignatureError",
    "InvalidTypeError",
    "Issuer",
    "Kek",
    "KekRing",
    "KeySet",
    "LegacyTokens",
    "LegacyWindowClosedError",
    "MalformedTokenError",
    "MissingClaimError",
    "RevokedTokenError",
    "SecretError",
    "Settings",
    "SignedIn",
    "SigningKey",
    "SjtiError",
    "TokenError",
    "TokenTooLargeError",
    "UnknownKeyError",
    "UnsupportedHeaderError",
    "UnwrapError",
    "UserKey",
    "UserVerifier",
    "VerifyingKey",
    "WrappedSecret",
    "__version__",
    "configure",
    "generate_user_key",
    "system_clock",
]
