"""What the soak's independent checker sees: every HTTP exchange, as timed by the client.

All times are ``time.monotonic()`` seconds since the soak started, taken in this one
process: ``start`` just before a request is sent, ``end`` just after its answer arrived.
The checker (:mod:`._soak_check`) decides from these records alone; it never asks the
service what it believes.
"""

from __future__ import annotations

import threading
import time
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

import httpx

__all__ = ["Answer", "Api", "Mint", "Probe", "Recorder", "Refresh", "Request", "Revocation"]


@dataclass(frozen=True, slots=True)
class Request:
    """One HTTP exchange: ``status`` is ``None`` when no answer came (transport error)."""

    endpoint: str
    node: int
    start: float
    end: float
    status: int | None


@dataclass(frozen=True, slots=True)
class Mint:
    """A successful ``/token`` answer: one access token and one refresh token.

    ``root_end`` is when the password login that started this session (refresh family)
    returned: the session existed, unambiguously, from then on.
    """

    id: int
    user: str
    node: int
    grant: str  # "password" or "refresh_token"
    start: float
    end: float
    parent: int | None  # the mint whose refresh token was spent (refresh grant)
    root_end: float
    access: str
    refresh: str


@dataclass(frozen=True, slots=True)
class Probe:
    """``GET /me`` with the access token of mint ``mint``."""

    mint: int
    node: int
    start: float
    end: float
    status: int | None


@dataclass(frozen=True, slots=True)
class Refresh:
    """A ``refresh_token`` grant spending the refresh token of mint ``parent``."""

    parent: int
    node: int
    start: float
    end: float
    status: int | None
    child: int | None  # the new mint when it succeeded
    reuse: bool  # the service said "reuse detected" (it revoked that session)


@dataclass(frozen=True, slots=True)
class Revocation:
    """A logout or an admin revocation the client believes done.

    ``start`` is when its first attempt was sent; ``end`` when the answer that settled it
    arrived, from node ``node``. ``confirmed_by`` is ``"2xx"``, or ``"401-after-error"``: a
    logout answered with an error, then refused with 401 when retried with the same bearer
    token (the client can only conclude that it is logged out).
    """

    id: int
    kind: str  # "logout" or "admin"
    users: tuple[str, ...]
    node: int
    start: float
    end: float
    confirmed_by: str
    reason: str
    attempts: int


@dataclass(slots=True)
class Recorder:
    """Thread-safe append-only log of everything the load did, plus a few notes."""

    t0: float = field(default_factory=time.monotonic)
    requests: list[Request] = field(default_factory=list)
    mints: list[Mint] = field(default_factory=list)
    probes: list[Probe] = field(default_factory=list)
    refreshes: list[Refresh] = field(default_factory=list)
    revocations: list[Revocation] = field(default_factory=list)
    unconfirmed: list[dict[str, Any]] = field(default_factory=list)
    users: dict[str, str] = field(default_factory=dict)  # user id -> username
    mints_by_user: dict[str, list[int]] = field(default_factory=lambda: defaultdict(list))
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def now(self) -> float:
        return time.monotonic() - self.t0

    def request(self, item: Request) -> None:
        with self._lock:
            self.requests.append(item)

    def mint(self, **fields: Any) -> Mint:
        with self._lock:
            item = Mint(id=len(self.mints), **fields)
            self.mints.append(item)
            self.mints_by_user[item.user].append(item.id)
            return item

    def probe(self, item: Probe) -> None:
        with self._lock:
            self.probes.append(item)

    def refresh(self, item: Refresh) -> None:
        with self._lock:
            self.refreshes.append(item)

    def revocation(self, **fields: Any) -> Revocation:
        with self._lock:
            item = Revocation(id=len(self.revocations), **fields)
            self.revocations.append(item)
            return item

    def user(self, user_id: str, username: str) -> None:
        with self._lock:
            self.users[user_id] = username

    def tokens_of(self, user: str, before: float) -> list[Mint]:
        """Mints of ``user`` whose session existed before ``before`` (revoked by then)."""
        with self._lock:
            mints = (self.mints[i] for i in self.mints_by_user.get(user, ()))
            return [m for m in mints if m.root_end < before]

    def recent_revocations(self, since: float) -> list[Revocation]:
        with self._lock:
            return [r for r in self.revocations if r.end >= since]

    def all_revocations(self) -> list[Revocation]:
        with self._lock:
            return list(self.revocations)


@dataclass(frozen=True, slots=True)
class Answer:
    """What a request got: status (``None``: no answer) and the JSON body if any."""

    status: int | None
    body: dict[str, Any]
    start: float
    end: float

    @property
    def ok(self) -> bool:
        return self.status is not None and 200 <= self.status < 300

    @property
    def error(self) -> bool:
        """No answer or a 5xx: the client cannot tell what happened."""
        return self.status is None or self.status >= 500


def _json(response: httpx.Response) -> dict[str, Any]:
    if not response.headers.get("content-type", "").startswith("application/json"):
        return {}
    try:
        parsed = response.json()
    except ValueError:
        return {}
    return parsed if isinstance(parsed, dict) else {"items": parsed}


class Api:
    """The soak's HTTP client: one connection pool per thread, every exchange recorded."""

    def __init__(self, urls: list[str], recorder: Recorder, *, timeout: float = 10.0) -> None:
        self.urls = urls
        self.rec = recorder
        self._timeout = httpx.Timeout(timeout, connect=2.0)
        self._local = threading.local()
        self._clients: list[httpx.Client] = []
        self._lock = threading.Lock()

    def _client(self) -> httpx.Client:
        client: httpx.Client | None = getattr(self._local, "client", None)
        if client is None:
            client = httpx.Client(timeout=self._timeout)
            self._local.client = client
            with self._lock:
                self._clients.append(client)
        return client

    def call(self, method: str, node: int, path: str, endpoint: str, **kwargs: Any) -> Answer:
        """Send one request to ``node``; never raises for HTTP or transport failures."""
        start = self.rec.now()
        try:
            response: httpx.Response | None = self._client().request(
                method, self.urls[node] + path, **kwargs
            )
        except httpx.HTTPError:
            response = None  # refused, reset, timed out: the client got no answer
        end = self.rec.now()
        status = None if response is None else response.status_code
        self.rec.request(Request(endpoint, node, start, end, status))
        return Answer(status, {} if response is None else _json(response), start, end)

    def me(self, mint: Mint, node: int) -> Answer:
        """``GET /me`` with ``mint``'s access token; recorded as a probe."""
        answer = self.call(
            "GET", node, "/me", "GET /me", headers={"Authorization": f"Bearer {mint.access}"}
        )
        self.rec.probe(Probe(mint.id, node, answer.start, answer.end, answer.status))
        return answer

    def close(self) -> None:
        with self._lock:
            for client in self._clients:
                client.close()
            self._clients.clear()
