"""Configuration of the reference service, read from ``SJTI_*`` environment variables.

Every field below is ``SJTI_<NAME>`` in the environment (``SJTI_DATABASE_URL``,
``SJTI_REDIS_URL``, ``SJTI_KEK``...). ``sjti serve --help`` lists them too.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from ..errors import ConfigurationError

__all__ = ["MIN_CLIENT_SECRET", "Settings"]

MIN_CLIENT_SECRET = 16


class Settings(BaseSettings):
    """Settings of the reference auth service (environment prefix ``SJTI_``)."""

    model_config = SettingsConfigDict(env_prefix="SJTI_", extra="ignore", frozen=True)

    env: Literal["development", "production"] = Field(
        default="development", description="production refuses to start without an explicit KEK"
    )
    database_url: str = Field(
        default="sqlite:///sjti.db",
        description="SQLAlchemy URL: sqlite:///... or postgresql+psycopg://...",
    )
    redis_url: str | None = Field(
        default=None,
        description="Redis for cache invalidation across processes (several workers/hosts)",
    )
    kek: SecretStr | None = Field(
        default=None,
        description="KEK ring 'kid:base64url(32 bytes),...'; generated into KEY_FILE in dev",
    )
    key_file: str = Field(
        default="sjti-keys.json",
        description="signing keys (and the dev KEK), created 0600 on first start",
    )
    alg: str = Field(
        default="EdDSA", description="access-token algorithm: EdDSA, ES256, RS256, HS256..."
    )
    issuer: str = Field(default="http://127.0.0.1:8000", description="the iss claim")
    public_base_url: str | None = Field(
        default=None,
        description="absolute URL clients reach the service at (behind a proxy); "
        "default: the issuer",
    )
    audience: str = Field(default="sjti", description="the aud claim")
    access_ttl: int = Field(
        default=900, gt=0, le=86_400, description="access-token lifetime, seconds"
    )
    refresh_ttl: int = Field(
        default=30 * 86_400,
        gt=0,
        description="refresh-token lifetime, seconds (renewed on rotation)",
    )
    host: str = Field(default="127.0.0.1", description="bind address")
    port: int = Field(default=8000, ge=0, le=65_535, description="bind port")
    workers: int = Field(default=1, ge=1, description="uvicorn worker processes")
    session_granularity: Literal["user", "session"] = Field(
        default="user",
        description="'session': a device logout also ends that device's access tokens at once",
    )
    admin_usernames: str = Field(
        default="",
        description="removed: granting admin at open registration was a race; refused if set",
    )
    introspection_client_id: str | None = Field(
        default=None, description="HTTP Basic client for /introspect"
    )
    introspection_client_secret: SecretStr | None = Field(
        default=None, description="its secret (at least 16 characters)"
    )
    login_max_failures: int = Field(
        default=5, ge=1, description="failed logins per username and client IP per window"
    )
    max_body_bytes: int = Field(
        default=1_048_576, ge=1024, description="largest request body accepted (else 413)"
    )
    registrations_per_ip: int = Field(
        default=20, ge=1, description="POST /users attempts per client IP per window"
    )
    login_max_failures_per_ip: int = Field(
        default=50, ge=1, description="failed logins per IP per window"
    )
    login_window: int = Field(default=60, ge=1, description="rate-limit window, seconds")
    cache_max_age: float = Field(
        default=60.0, gt=0, description="user-key cache entry lifetime, seconds"
    )
    cache_without_bus: Literal["bypass", "poll"] = Field(
        default="bypass",
        description=(
            "with neither Redis nor PostgreSQL NOTIFY: 'bypass' reads every user key from the "
            "database; 'poll' trusts the cache while polling the event log (other processes "
            "may accept a revoked token for up to POLL_INTERVAL seconds)"
        ),
    )
    poll_interval: float = Field(
        default=1.0,
        gt=0,
        le=60,
        description="seconds between event-log polls (bounds staleness when a publish is lost)",
    )
    revoke_wait_timeout: float = Field(
        default=5.0, gt=0, le=60, description="longest an acknowledged revocation waits, seconds"
    )

    @model_validator(mode="after")
    def _no_admin_by_registration(self) -> Settings:
        if self.admin_usernames.strip():
            raise ConfigurationError(
                "SJTI_ADMIN_USERNAMES is gone: it made whoever registered a listed name first "
                "an admin. Create admins with `sjti users create NAME --admin` or "
                "`sjti users set-role NAME admin`"
            )
        return self

    @model_validator(mode="after")
    def _introspection_client_is_real(self) -> Settings:
        secret = self.introspection_client_secret
        if secret is None:
            return self
        if len(secret.get_secret_value()) < MIN_CLIENT_SECRET:
            raise ConfigurationError(
                f"SJTI_INTROSPECTION_CLIENT_SECRET must have at least {MIN_CLIENT_SECRET} "
                "characters (an empty one would open /introspect to anyone)"
            )
        if not (self.introspection_client_id or "").strip():
            raise ConfigurationError("SJTI_INTROSPECTION_CLIENT_SECRET needs a CLIENT_ID")
        return self

    @model_validator(mode="after")
    def _production_needs_kek(self) -> Settings:
        if self.env == "production" and self.kek is None:
            raise ConfigurationError(
                "SJTI_ENV=production needs SJTI_KEK (a KEK ring kept outside the database)"
            )
        return self

    @property
    def on_postgresql(self) -> bool:
        return self.database_url.startswith(("postgresql", "postgres"))
