"""Request and response bodies (pydantic). Validation failures answer 422."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, model_validator

from .passwords import MAX_PASSWORD, password_problem

__all__ = [
    "PROBLEM_RESPONSES",
    "AuditOut",
    "CohortIn",
    "DeviceLogoutOut",
    "NewUser",
    "OAuthErrorOut",
    "ProblemOut",
    "RevocationIn",
    "RevocationOut",
    "SessionOut",
    "TokenOut",
    "UserOut",
]

UserId = Annotated[str, Field(max_length=64)]
Username = Annotated[str, Field(min_length=3, max_length=64, pattern=r"^[A-Za-z0-9._@-]+$")]


class NewUser(BaseModel):
    """``POST /users``: usernames are case-insensitive (stored lower-case)."""

    model_config = ConfigDict(extra="forbid")

    username: Username
    password: Annotated[str, Field(max_length=MAX_PASSWORD)]

    @model_validator(mode="after")
    def _strong_enough(self) -> NewUser:
        self.username = self.username.lower()
        problem = password_problem(self.password, self.username)
        if problem is not None:
            raise ValueError(problem)
        return self


class UserOut(BaseModel):
    id: str
    username: str
    roles: list[str]
    tenant: str | None
    created_at: datetime
    last_login_at: datetime | None


class TokenOut(BaseModel):
    """RFC 6749 section 5.1."""

    access_token: str
    token_type: Literal["bearer"] = "bearer"  # noqa: S105 - the RFC 6749 type name
    expires_in: int
    refresh_token: str


class SessionOut(BaseModel):
    """One device: a refresh-token family."""

    id: str
    created_at: datetime
    last_used_at: datetime
    user_agent: str | None
    ip: str | None
    current: bool = Field(description="the session of the access token making this request")


class DeviceLogoutOut(BaseModel):
    id: str
    revoked: bool
    access_tokens: str = Field(description="what happens to this device's access tokens")


class CohortIn(BaseModel):
    """Users matching every given field (at least one)."""

    model_config = ConfigDict(extra="forbid")

    tenant: Annotated[str, Field(max_length=64)] | None = None
    role: Annotated[str, Field(max_length=32)] | None = None
    created_before: AwareDatetime | None = None
    last_login_before: AwareDatetime | None = None

    @model_validator(mode="after")
    def _not_empty(self) -> CohortIn:
        if all(getattr(self, name) is None for name in type(self).model_fields):
            raise ValueError("a cohort needs at least one field (an empty one means everyone)")
        return self


class RevocationIn(BaseModel):
    """``POST /admin/revocations``: exactly one of ``user_ids`` and ``cohort``."""

    model_config = ConfigDict(extra="forbid")

    user_ids: (
        Annotated[list[Annotated[str, Field(max_length=64)]], Field(max_length=10_000)] | None
    ) = None
    cohort: CohortIn | None = None
    dry_run: bool = False
    reason: Annotated[str, Field(max_length=200)] | None = None
    wait: bool = Field(
        default=False,
        description="answer only once every live node applied the revocation (or timeout)",
    )

    @model_validator(mode="after")
    def _one_selection(self) -> RevocationIn:
        if (self.user_ids is None) == (self.cohort is None):
            raise ValueError("give exactly one of user_ids and cohort")
        return self


class RevocationOut(BaseModel):
    count: int
    user_ids: list[str]
    truncated: bool
    dry_run: bool
    audit_id: int | None
    refresh_sessions_revoked: int
    event_id: int | None = None
    # With ``wait``: the live nodes that applied the event, and those that had not by the
    # timeout (empty when every live node acknowledged).
    acknowledged_by: list[str] | None = None
    pending_nodes: list[str] | None = None


class AuditOut(BaseModel):
    id: int
    at: datetime
    actor: str | None
    reason: str | None
    kind: str
    count: int
    detail: str | None


IntrospectionOut = dict[str, Any]


class ProblemOut(BaseModel):
    """RFC 9457 ``application/problem+json``: every error outside the OAuth endpoints."""

    type: str = "about:blank"
    title: str
    status: int
    code: str = Field(description="stable: the core's code (revoked, expired…) or a fixed word")
    detail: str | None = None
    errors: list[dict[str, Any]] | None = Field(
        default=None, description="422 only: where and why (never the input)"
    )


class OAuthErrorOut(BaseModel):
    """RFC 6749 §5.2: errors of /token, /revoke and /introspect."""

    error: str
    error_description: str | None = None


def _problem(description: str) -> dict[str, Any]:
    return {
        "model": ProblemOut,
        "description": description,
        "content": {"application/problem+json": {}},
    }


# What any route outside the OAuth endpoints may answer besides its success.
PROBLEM_RESPONSES: dict[int | str, dict[str, Any]] = {
    413: _problem("request body too large"),
    422: _problem("the request does not match the schema"),
    500: _problem("unexpected error"),
    503: _problem("database unavailable, or stored keys do not open (fails closed)"),
}
