"""One configuration for sjti: your app, the ``sjti`` CLI and the reference service read it.

Each setting comes from, lowest to highest precedence: its default, ``sjti.toml`` (in the
working directory, or the file ``SJTI_CONFIG`` names), the environment variable
``SJTI_<NAME>``, and keyword arguments::

    settings = Settings.load()                       # sjti.toml + SJTI_* environment
    settings = Settings.load(issuer="https://auth")  # ... with one value pinned in code
    settings = Settings.from_mapping({"ISSUER": "https://auth"})   # a framework's dict

``sjti.toml`` holds the same names, flat (``issuer = "https://auth"``); a name it does not
know is an error, so a typo cannot silently fall back to a default. Keep ``kek`` in the
environment or a secrets manager rather than in a file next to the database.

Every value is checked when the settings are made; a bad one raises
:class:`~sjti.errors.ConfigurationError` naming the variable and where it came from
(never a secret's value). ``docs/configuration.md`` lists every field (``sjti config docs``
prints that table; ``sjti config show`` prints the values in force and their source).
"""

from __future__ import annotations

import dataclasses
import difflib
import math
import os
import tomllib
import types
import urllib.parse
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final, Literal, Union, get_args, get_origin, get_type_hints

from .errors import ConfigurationError

__all__ = ["CONFIG_ENV", "CONFIG_FILE", "ENV_PREFIX", "Secret", "Setting", "Settings", "redact_url"]

ENV_PREFIX: Final = "SJTI_"
CONFIG_FILE: Final = "sjti.toml"
CONFIG_ENV: Final = "SJTI_CONFIG"
MIN_CLIENT_SECRET: Final = 16
_MAX_SHOWN: Final = 60

# Settings that existed once and were removed on purpose: setting one is an error that says why.
_REMOVED: Final = {
    "admin_usernames": (
        "SJTI_ADMIN_USERNAMES is gone: it made whoever registered a listed name first an "
        "admin. Create admins with `sjti users create NAME --admin` or "
        "`sjti users set-role NAME admin`"
    ),
}


class Secret:
    """A secret setting: its ``repr``/``str`` never show the value.

    >>> Secret("hunter2")
    Secret('**********')
    """

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def get_secret_value(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return "Secret('**********')"

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(self._value)


@dataclass(frozen=True, slots=True)
class Setting:
    """What ``docs/configuration.md`` says about one field, and its bounds."""

    name: str
    section: str
    doc: str
    type_name: str
    default: object
    gt: float | None = None
    ge: float | None = None
    le: float | None = None

    @property
    def env(self) -> str:
        return ENV_PREFIX + self.name.upper()

    @property
    def secret(self) -> bool:
        return self.type_name.startswith("secret")


def _setting(
    default: object,
    doc: str,
    section: str,
    *,
    gt: float | None = None,
    ge: float | None = None,
    le: float | None = None,
) -> Any:
    return field(
        default=default, metadata={"sjti": {"doc": doc, "section": section, "bounds": (gt, ge, le)}}
    )


@dataclass(frozen=True, kw_only=True, slots=True, repr=False)
class Settings:
    """Every setting of sjti. Build it with :meth:`load` (file + environment) or directly
    (``Settings(issuer=...)``: defaults for the rest, nothing read from the environment)."""

    # -- tokens -------------------------------------------------------------------------
    issuer: str = _setting("http://127.0.0.1:8000", "the `iss` claim issued and required", "tokens")
    audience: str = _setting("sjti", "the `aud` claim issued and required", "tokens")
    alg: str = _setting(
        "EdDSA", "access-token algorithm (EdDSA, ES256, RS256, PS256, HS256...)", "tokens"
    )
    access_ttl: int = _setting(900, "access-token lifetime, seconds", "tokens", gt=0, le=86_400)
    refresh_ttl: int = _setting(
        30 * 86_400, "refresh-token lifetime, seconds (renewed on rotation)", "tokens", gt=0
    )
    leeway: int = _setting(
        0, "clock skew tolerated on `exp`/`nbf`/`iat`, seconds", "tokens", ge=0, le=300
    )
    key_file: str = _setting(
        "sjti-keys.json",
        "signing keys, the refresh-token key and (without `kek`) a development KEK; "
        "created 0600 on first use (not used with `database_url = memory://`)",
        "tokens",
    )
    # -- secrets at rest ----------------------------------------------------------------
    env: Literal["development", "production"] = _setting(
        "development", "`production` refuses to start without `kek`", "secrets"
    )
    kek: Secret | None = _setting(  # noqa: RUF009 - a dataclasses.field with metadata
        None,
        "KEK ring `kid:base64url(32 bytes),...` (first one wraps); without it a development "
        "KEK is kept in `key_file`",
        "secrets",
    )
    # -- store --------------------------------------------------------------------------
    database_url: str = _setting(
        "sqlite:///sjti.db",
        "SQLAlchemy URL (`sqlite:///...`, `postgresql+psycopg://...`), or `memory://` "
        "(one process, gone on exit: examples and tests)",
        "store",
    )
    event_retention_days: float = _setting(
        7.0, "`sjti events prune` keeps revocation events this long", "store", gt=0
    )
    database_replica_url: str | None = _setting(
        None,
        "PostgreSQL streaming replica for user-key lookups (cache misses); revocations, "
        "sign-ins and every write go to `database_url`; a miss reads the replica only when it "
        "proves it holds the newest event this node applied (docs/storage.md)",
        "store",
    )
    # -- cache and bus ------------------------------------------------------------------
    redis_url: str | None = _setting(
        None, "Redis for cache invalidation across processes (several workers/hosts)", "cache"
    )
    redis_cluster: bool = _setting(
        False,
        "`redis_url` names a node of a Redis Cluster (Redis 7+): the bus uses sharded "
        "pub/sub (`SPUBLISH`/`SSUBSCRIBE`)",
        "cache",
    )
    cache_max_age: float = _setting(60.0, "user-key cache entry lifetime, seconds", "cache", gt=0)
    cache_max_size: int = _setting(100_000, "user keys kept per process", "cache", ge=2)
    cache_without_bus: Literal["bypass", "poll"] = _setting(
        "bypass",
        "with neither Redis nor PostgreSQL NOTIFY: `bypass` reads every user key from the "
        "database; `poll` trusts the cache while polling the event log (other processes may "
        "accept a revoked token for up to `poll_interval` seconds)",
        "cache",
    )
    poll_interval: float = _setting(
        1.0,
        "seconds between event-log polls (bounds staleness when a publish is lost)",
        "cache",
        gt=0,
        le=60,
    )
    revoke_wait_timeout: float = _setting(
        5.0, "longest an acknowledged revocation waits, seconds", "cache", gt=0, le=60
    )
    # -- the reference service ----------------------------------------------------------
    host: str = _setting("127.0.0.1", "bind address", "service")
    port: int = _setting(8000, "bind port", "service", ge=0, le=65_535)
    workers: int = _setting(1, "worker processes (more than one needs a bus)", "service", ge=1)
    public_base_url: str | None = _setting(
        None,
        "absolute URL clients reach the service at (behind a proxy); default: `issuer`",
        "service",
    )
    session_granularity: Literal["device", "user", "session"] = _setting(
        "device",
        "what a device sign-out ends at once: `device` (its access tokens too, from the "
        "device list on the user row: no query more), `user` (its refresh tokens only; "
        "logout everywhere rotates the key), `session` (its access tokens, with one query "
        "more per request)",
        "service",
    )
    max_devices: int = _setting(
        32,
        "signed-in devices per user (`device` granularity); a sign-in past it signs the "
        "oldest device out",
        "service",
        ge=1,
        le=1000,
    )
    reuse_rotates_key: bool = _setting(
        False,
        "refresh-token reuse also rotates the user's key (every device signs out); with "
        "`device` granularity it otherwise ends only the reused device",
        "service",
    )
    introspection_client_id: str | None = _setting(
        None, "HTTP Basic client allowed to call `/introspect`", "service"
    )
    introspection_client_secret: Secret | None = _setting(  # noqa: RUF009 - as above
        None, f"its secret (at least {MIN_CLIENT_SECRET} characters)", "service"
    )
    login_max_failures: int = _setting(
        5, "failed logins per username and client IP per window", "service", ge=1
    )
    login_max_failures_per_ip: int = _setting(
        50, "failed logins per client IP per window", "service", ge=1
    )
    login_window: int = _setting(60, "rate-limit window, seconds", "service", ge=1)
    registrations_per_ip: int = _setting(
        20, "`POST /users` attempts per client IP per window", "service", ge=1
    )
    max_body_bytes: int = _setting(
        1_048_576, "largest request body accepted (else 413)", "service", ge=1024
    )

    def __post_init__(self) -> None:
        for spec in describe():
            value = _coerce(spec, getattr(self, spec.name), "argument")
            object.__setattr__(self, spec.name, value)
        self._check_combinations()

    def _check_combinations(self) -> None:
        if self.kek is not None and not self.kek.get_secret_value().strip():
            raise ConfigurationError("SJTI_KEK is set but empty (unset it, or give the ring)")
        if self.env == "production" and self.kek is None:
            raise ConfigurationError(
                "SJTI_ENV=production needs SJTI_KEK (a KEK ring kept outside the database)"
            )
        secret = self.introspection_client_secret
        if secret is not None:
            if len(secret.get_secret_value()) < MIN_CLIENT_SECRET:
                raise ConfigurationError(
                    f"SJTI_INTROSPECTION_CLIENT_SECRET must have at least {MIN_CLIENT_SECRET} "
                    "characters (an empty one would open /introspect to anyone)"
                )
            if not (self.introspection_client_id or "").strip():
                raise ConfigurationError("SJTI_INTROSPECTION_CLIENT_SECRET needs a CLIENT_ID")

    # -- building -----------------------------------------------------------------------

    @classmethod
    def load(
        cls,
        file: str | os.PathLike[str] | None = None,
        *,
        environ: Mapping[str, str] | None = None,
        **overrides: Any,
    ) -> Settings:
        """Defaults < ``sjti.toml`` (or ``file``, or ``$SJTI_CONFIG``) < ``SJTI_*``
        environment < ``overrides``."""
        values: dict[str, Any] = {
            name: value for name, (value, _) in collect(file, environ, overrides).items()
        }
        return cls(**values)

    @classmethod
    def from_mapping(cls, values: Mapping[str, object], *, source: str = "settings") -> Settings:
        """From a framework's dict (``SJTI = {"ISSUER": ...}`` in Django): names in either
        case; an unknown name is an error."""
        return cls(**_coerced(_known(values, source), source))

    def replace(self, **changes: Any) -> Settings:
        """A copy with ``changes`` (checked like any other value)."""
        _known(changes, "argument")
        return dataclasses.replace(self, **changes)

    def __repr__(self) -> str:
        # Secrets print as Secret('**********'); a password inside a URL as ***.
        shown = ", ".join(
            f"{spec.name}={redact_url(getattr(self, spec.name))!r}" for spec in describe()
        )
        return f"Settings({shown})"

    @property
    def on_postgresql(self) -> bool:
        return self.database_url.startswith(("postgresql", "postgres"))

    @property
    def in_memory(self) -> bool:
        return self.database_url.startswith("memory:")


# ---------------------------------------------------------------------------------------
# where values come from


def collect(
    file: str | os.PathLike[str] | None,
    environ: Mapping[str, str] | None,
    overrides: Mapping[str, object],
) -> dict[str, tuple[object, str]]:
    """Each set value and its source (``sjti.toml``, ``environment``, ``argument``),
    already coerced and checked: what ``sjti config show`` prints."""
    environ = os.environ if environ is None else environ
    specs = {spec.name: spec for spec in describe()}
    raw: dict[str, tuple[object, str]] = {}
    path = _config_path(file, environ)
    if path is not None:
        raw.update((name, (value, str(path))) for name, value in _read_toml(path).items())
    for name in _REMOVED:
        if environ.get(ENV_PREFIX + name.upper(), "").strip():
            raise ConfigurationError(_REMOVED[name])
    for name, spec in specs.items():
        if spec.env in environ:
            raw[name] = (environ[spec.env], "environment")
    raw.update((name, (value, "argument")) for name, value in _known(overrides, "argument").items())
    return {name: (_coerce(specs[name], value, src), src) for name, (value, src) in raw.items()}


def _coerced(values: Mapping[str, object], source: str) -> dict[str, Any]:
    specs = {spec.name: spec for spec in describe()}
    return {name: _coerce(specs[name], value, source) for name, value in values.items()}


def redact_url(value: object) -> object:
    """A URL with its password replaced by ``***`` (anything else unchanged)."""
    if not isinstance(value, str) or "://" not in value or "@" not in value:
        return value
    parts = urllib.parse.urlsplit(value)
    if parts.password is None:
        return value
    user = parts.username or ""
    host = parts.netloc.rsplit("@", 1)[1]
    return urllib.parse.urlunsplit(parts._replace(netloc=f"{user}:***@{host}"))


def _config_path(file: str | os.PathLike[str] | None, environ: Mapping[str, str]) -> Path | None:
    if file is not None:
        return Path(file)
    named = environ.get(CONFIG_ENV, "").strip()
    if named:
        return Path(named)
    default = Path(CONFIG_FILE)
    return default if default.is_file() else None


def _read_toml(path: Path) -> dict[str, object]:
    try:
        with path.open("rb") as handle:
            document = tomllib.load(handle)
    except OSError as exc:
        raise ConfigurationError(
            f"cannot read {path}: {exc.strerror or type(exc).__name__}"
        ) from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigurationError(f"{path} is not valid TOML: {exc}") from None
    return _known(document, str(path))


def _known(values: Mapping[str, object], source: str) -> dict[str, object]:
    """``values`` with lower-case names, every one a setting (else a helpful error)."""
    names = {spec.name for spec in describe()}
    known: dict[str, object] = {}
    for given, value in values.items():
        name = str(given).lower()
        if name in _REMOVED:
            raise ConfigurationError(_REMOVED[name])
        if name not in names:
            close = difflib.get_close_matches(name, names, n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise ConfigurationError(f"{source}: unknown setting {given!r}{hint}")
        known[name] = value
    return known


# ---------------------------------------------------------------------------------------
# types


def describe() -> tuple[Setting, ...]:
    """Every setting, in declaration order: name, section, doc, type, default, bounds."""
    return _SPECS


def _type_name(hint: object) -> str:
    if hint is Secret:
        return "secret"
    if get_origin(hint) is Literal:
        return " or ".join(f"`{choice}`" for choice in get_args(hint))
    if _is_optional(hint):
        return f"{_type_name(_inner(hint))} or unset"
    return getattr(hint, "__name__", str(hint))


def _is_optional(hint: object) -> bool:
    return get_origin(hint) in (Union, types.UnionType) and type(None) in get_args(hint)


def _inner(hint: object) -> object:
    (inner,) = (arg for arg in get_args(hint) if arg is not type(None))
    return inner


def _specs() -> tuple[Setting, ...]:
    hints = get_type_hints(Settings)
    specs = []
    for item in dataclasses.fields(Settings):
        meta = item.metadata["sjti"]
        gt, ge, le = meta["bounds"]
        specs.append(
            Setting(
                name=item.name,
                section=meta["section"],
                doc=meta["doc"],
                type_name=_type_name(hints[item.name]),
                default=item.default,
                gt=gt,
                ge=ge,
                le=le,
            )
        )
    return tuple(specs)


def _shown(spec: Setting, value: object) -> str:
    if spec.secret:
        return "(hidden)"
    text = repr(value)
    return text if len(text) <= _MAX_SHOWN else text[: _MAX_SHOWN - 3] + "..."


def _coerce(spec: Setting, value: object, source: str) -> object:
    """``value`` (text from the environment, TOML's types, or Python's) as ``spec``'s type."""
    hint = _HINTS[spec.name]
    try:
        coerced = _as(hint, value, from_text=source == "environment")
    except (TypeError, ValueError) as exc:
        raise ConfigurationError(
            f"{spec.env} ({source}): {exc}; got {_shown(spec, value)}"
        ) from None
    if isinstance(coerced, int | float) and not isinstance(coerced, bool):
        problem = _out_of_bounds(spec, coerced)
        if problem is not None:
            raise ConfigurationError(
                f"{spec.env} ({source}): must be {problem}; got {_shown(spec, value)}"
            )
    return coerced


def _out_of_bounds(spec: Setting, number: float) -> str | None:
    if spec.gt is not None and not number > spec.gt:
        return f"greater than {_number(spec.gt)}"
    if spec.ge is not None and not number >= spec.ge:
        return f"at least {_number(spec.ge)}"
    if spec.le is not None and not number <= spec.le:
        return f"at most {_number(spec.le)}"
    return None


def _number(bound: float) -> str:
    return str(int(bound)) if float(bound).is_integer() else str(bound)


def _as(hint: object, value: object, *, from_text: bool) -> object:
    if _is_optional(hint):
        # An empty variable unsets a setting, except a secret: an empty secret is a
        # mistake (a template's unset variable) and is refused below, never ignored.
        if value is None or (from_text and value == "" and _inner(hint) is not Secret):
            return None
        return _as(_inner(hint), value, from_text=from_text)
    if get_origin(hint) is Literal:
        choices = get_args(hint)
        if value not in choices:
            raise ValueError("must be one of " + ", ".join(map(repr, choices)))
        return value
    if hint is Secret:
        if isinstance(value, Secret):
            return value
        if not isinstance(value, str):
            raise TypeError("must be text")
        return Secret(value)
    if hint is str:
        if not isinstance(value, str):
            raise TypeError("must be text")
        return value
    if hint is bool:
        if from_text and isinstance(value, str):
            words = {"true": True, "1": True, "yes": True, "on": True}
            words |= {"false": False, "0": False, "no": False, "off": False}
            if value.strip().lower() not in words:
                raise ValueError("must be true or false")
            return words[value.strip().lower()]
        if type(value) is not bool:
            raise TypeError("must be true or false")
        return value
    if hint is int:
        if from_text and isinstance(value, str):
            value = int(value.strip())  # ValueError names no secret: ints are not secret
        if type(value) is not int:
            raise TypeError("must be an integer")
        return value
    if hint is float:
        if from_text and isinstance(value, str):
            value = float(value.strip())
        if type(value) not in (int, float) or not math.isfinite(value):  # type: ignore[arg-type]
            raise TypeError("must be a finite number")
        return float(value)  # type: ignore[arg-type]
    raise TypeError(f"unsupported setting type {hint!r}")  # pragma: no cover - a bug here


def iter_values(settings: Settings) -> Iterator[tuple[Setting, object]]:
    """Each setting with its value in ``settings``."""
    for spec in describe():
        yield spec, getattr(settings, spec.name)


_HINTS: Final = get_type_hints(Settings)
_SPECS: Final = _specs()
