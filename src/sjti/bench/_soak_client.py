"""The soak's client: one request each, and revocations retried like a real client.

Every answer is recorded (:mod:`._soak_record`); every token pair is recorded with its
lineage (the pair it was refreshed from), which the checker needs to tell which tokens a
revocation ends. A revocation answered with an error is retried the way a client would:
the admin sends the same request again until it answers 2xx; a user sends ``/logout``
again with the same bearer token, and if that is now refused (401) it can only conclude
it is logged out (``401-after-error``). A registration or login answered with an error is
retried on another node until ``retry_for`` runs out.
"""

from __future__ import annotations

import base64
import itertools
import json
import random
import secrets
import threading
import time
from dataclasses import dataclass

from ._soak_record import Answer, Api, Mint, Recorder, Refresh, Revocation

__all__ = ["ADMIN", "LOGOUT_REASON", "Account", "Client", "LoadPlan", "seeded"]

ADMIN = "root"
LOGOUT_REASON = "logout (all devices)"  # what the service writes for POST /logout
_REUSE = "reused"  # in the error_description of a reuse-detected refresh


@dataclass(frozen=True, slots=True)
class LoadPlan:
    """How much traffic: thread counts, pacing, and the staleness bound to linger over."""

    seed: int = 1
    nodes: int = 3
    background_workers: int = 2
    background_users: int = 8  # pool size the background workers keep up
    concurrent_victims: int = 3
    victim_every: float = 0.8  # seconds between victim spawns
    admin_share: float = 0.35  # share of victims revoked by an admin rather than a logout
    bound: float = 1.0  # staleness bound (s): attackers linger past it
    retry_for: float = 20.0  # how long a revocation is retried through an outage


@dataclass(slots=True)
class Account:
    username: str
    password: str
    user_id: str = ""
    session: Mint | None = None  # the newest tokens of its main device


def seeded(seed: int) -> random.Random:
    """The load's choices, reproducible from ``--seed`` (timings are not)."""
    return random.Random(seed)  # noqa: S311 - load choices, not secrets


def _subject(access_token: str) -> str:
    """The ``sub`` claim, read client-side (the checker needs who a token is for)."""
    payload = access_token.split(".")[1]
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    return str(claims["sub"])


class Client:
    """The soak's user agent: the requests of users, victims, attackers and the admin."""

    def __init__(self, api: Api, plan: LoadPlan) -> None:
        self.api = api
        self.rec: Recorder = api.rec
        self.plan = plan
        self.running = threading.Event()  # cleared: registrations and logins stop retrying
        self.tainted: set[str] = set()  # users whose session the service revoked on reuse
        self._admin: Mint | None = None
        self.admin_account = Account(ADMIN, "soak-admin-" + secrets.token_hex(8))
        self._names = itertools.count()
        self._lock = threading.Lock()

    def _node(self, rng: random.Random) -> int:
        return rng.randrange(self.plan.nodes)

    def register(self, rng: random.Random, account: Account) -> bool:
        """``POST /users``; a 409 after an unanswered attempt means it was created."""
        deadline = self.rec.now() + self.plan.retry_for
        while self.rec.now() < deadline and self.running.is_set():
            body = {"username": account.username, "password": account.password}
            answer = self.api.call("POST", self._node(rng), "/users", "POST /users", json=body)
            if answer.status in (201, 409):
                return True
            if not answer.error:
                return False
            time.sleep(rng.uniform(0.1, 0.3))
        return False

    def login(self, rng: random.Random, account: Account, node: int | None = None) -> Mint | None:
        """Password grant on ``node`` (random if ``None``; again at random after an error)."""
        deadline = self.rec.now() + self.plan.retry_for
        where = self._node(rng) if node is None else node
        while self.rec.now() < deadline and self.running.is_set():
            form = {
                "grant_type": "password",
                "username": account.username,
                "password": account.password,
            }
            answer = self.api.call("POST", where, "/token", "POST /token password", data=form)
            if answer.status == 200:
                return self._mint(account, answer, where, "password", None)
            if not answer.error:
                return None
            time.sleep(rng.uniform(0.1, 0.3))
            where = self._node(rng)
        return None

    def _mint(
        self, account: Account, answer: Answer, node: int, grant: str, parent: Mint | None
    ) -> Mint:
        access, refresh = str(answer.body["access_token"]), str(answer.body["refresh_token"])
        if not account.user_id:
            account.user_id = _subject(access)
            self.rec.user(account.user_id, account.username)
        return self.rec.mint(
            user=account.user_id,
            node=node,
            grant=grant,
            start=answer.start,
            end=answer.end,
            parent=None if parent is None else parent.id,
            root_end=answer.end if parent is None else parent.root_end,
            access=access,
            refresh=refresh,
        )

    def refresh(self, account: Account, parent: Mint, node: int) -> tuple[Answer, Mint | None]:
        """One ``refresh_token`` grant spending ``parent``'s refresh token."""
        form = {"grant_type": "refresh_token", "refresh_token": parent.refresh}
        answer = self.api.call("POST", node, "/token", "POST /token refresh", data=form)
        child = self._mint(account, answer, node, "refresh_token", parent) if answer.ok else None
        reuse = answer.status == 400 and _REUSE in str(answer.body.get("error_description", ""))
        if reuse:
            with self._lock:
                self.tainted.add(parent.user)
        self.rec.refresh(
            Refresh(
                parent=parent.id,
                node=node,
                start=answer.start,
                end=answer.end,
                status=answer.status,
                child=None if child is None else child.id,
                reuse=reuse,
            )
        )
        return answer, child

    def new_account(self, rng: random.Random, node: int | None = None) -> Account | None:
        """Register a user and log it in (its main device)."""
        name = f"u{self.plan.seed}-{next(self._names)}-{secrets.token_hex(3)}"
        account = Account(name, "pw-" + secrets.token_hex(8) + "-Soak!")
        if not self.register(rng, account):
            return None
        account.session = self.login(rng, account, node)
        return account if account.session is not None else None

    def _fresh_session(self, rng: random.Random, account: Account) -> Mint | None:
        """A working bearer again: refresh the main device, or log in anew."""
        if account.session is not None:
            _, child = self.refresh(account, account.session, self._node(rng))
            if child is not None:
                account.session = child
                return child
        account.session = self.login(rng, account)
        return account.session

    # -- revocations, retried like a client would ----------------------------------

    def logout(self, rng: random.Random, account: Account, node: int) -> Revocation | None:
        """``POST /logout`` until settled (204, or 401 after an error), or give up."""
        bearer = account.session
        start: float | None = None
        attempts, had_error = 0, False
        deadline = self.rec.now() + self.plan.retry_for
        while bearer is not None and self.rec.now() < deadline:
            headers = {"Authorization": f"Bearer {bearer.access}"}
            answer = self.api.call("POST", node, "/logout", "POST /logout", headers=headers)
            attempts += 1
            start = answer.start if start is None else start
            settled_by = "2xx" if answer.status == 204 else None
            if answer.status == 401 and had_error and account.user_id not in self.tainted:
                settled_by = "401-after-error"
            if settled_by is not None:
                return self.rec.revocation(
                    kind="logout",
                    users=(account.user_id,),
                    node=node,
                    start=start,
                    end=answer.end,
                    confirmed_by=settled_by,
                    reason=LOGOUT_REASON,
                    attempts=attempts,
                )
            if answer.status == 401:  # the bearer was dead before we began: start over
                bearer, start, had_error = self._fresh_session(rng, account), None, False
                continue
            if not answer.error:
                break
            had_error = True
            time.sleep(rng.uniform(0.2, 0.5))
            if answer.status is None:
                node = self._node(rng)
        self._unconfirmed("logout", [account.user_id], attempts)
        return None

    def _admin_bearer(self, rng: random.Random) -> Mint | None:
        with self._lock:
            if self._admin is None:
                self._admin = self.login(rng, self.admin_account)
            return self._admin

    def setup_admin(self, rng: random.Random) -> None:
        if not self.register(rng, self.admin_account) or self._admin_bearer(rng) is None:
            raise RuntimeError("could not register and log in the admin")

    def admin_revoke(self, rng: random.Random, user_ids: list[str], node: int) -> Revocation | None:
        """``POST /admin/revocations`` (unique reason) until 2xx, or give up."""
        reason = f"soak cohort {secrets.token_hex(6)}"
        start: float | None = None
        attempts = 0
        deadline = self.rec.now() + self.plan.retry_for
        while self.rec.now() < deadline:
            admin = self._admin_bearer(rng)
            if admin is None:
                break
            headers = {"Authorization": f"Bearer {admin.access}"}
            body = {"user_ids": user_ids, "reason": reason}
            answer = self.api.call(
                "POST", node, "/admin/revocations", "POST /admin/revocations",
                json=body, headers=headers,
            )  # fmt: skip
            attempts += 1
            start = answer.start if start is None else start
            if answer.ok:
                return self.rec.revocation(
                    kind="admin",
                    users=tuple(user_ids),
                    node=node,
                    start=start,
                    end=answer.end,
                    confirmed_by="2xx",
                    reason=reason,
                    attempts=attempts,
                )
            if answer.status == 401:
                with self._lock:
                    self._admin = None  # log the admin in again
                continue
            if not answer.error:
                break
            time.sleep(rng.uniform(0.2, 0.5))
            if answer.status is None:
                node = self._node(rng)
        self._unconfirmed("admin", user_ids, attempts)
        return None

    def _unconfirmed(self, kind: str, users: list[str], attempts: int) -> None:
        with self._lock:
            self.rec.unconfirmed.append(
                {"kind": kind, "users": users, "attempts": attempts, "at": self.rec.now()}
            )
