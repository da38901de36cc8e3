"""The soak's traffic: ordinary users, victims with an attacker each, an admin, a prober.

* **Background users** register, log in, refresh, call ``/me`` and sometimes log out,
  each on a node picked at random.
* **Victims** log in on two devices; the second device's refresh token is "stolen": an
  attacker thread refreshes it in a tight loop on one node, keeps every access token it
  gets and keeps calling ``/me`` with all of them on every node. The victim then logs out
  (or an admin revokes it, with a cohort of background users) on *another* node while the
  attacker is mid-loop. The attacker goes on for ``linger`` seconds after the revocation
  returned, then sweeps its tokens over every node.
* **The prober** calls ``/me`` on every node with the tokens of each revocation that just
  returned, again and again, then samples old ones: a checker that never probed a revoked
  token could never find one accepted.

A revocation answered with an error is retried the way a client would: the admin sends
the same request again; a user sends ``/logout`` again with the same bearer token, and if
that is now refused (401) it can only conclude it is logged out (``401-after-error``).
"""

from __future__ import annotations

import base64
import itertools
import json
import random
import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from ._soak_record import Answer, Api, Mint, Recorder, Refresh, Revocation

__all__ = ["ADMIN", "LOGOUT_REASON", "Load", "LoadPlan"]

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


@dataclass(slots=True)
class _Settled:
    """Hands a victim's revocation (or ``None``: none happened) to its attacker."""

    event: threading.Event = field(default_factory=threading.Event)
    revocation: Revocation | None = None

    def set(self, revocation: Revocation | None) -> None:
        self.revocation = revocation
        self.event.set()


def _rng(seed: int) -> random.Random:
    """The load's choices, reproducible from ``--seed`` (timings are not)."""
    return random.Random(seed)  # noqa: S311 - load choices, not secrets


def _subject(access_token: str) -> str:
    """The ``sub`` claim, read client-side (the checker needs who a token is for)."""
    payload = access_token.split(".")[1]
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    return str(claims["sub"])


class _Pool:
    """Idle background accounts; a thread checks one out so no two use a session at once."""

    def __init__(self) -> None:
        self._idle: list[Account] = []
        self._lock = threading.Lock()
        self.size = 0

    def add(self, account: Account) -> None:
        with self._lock:
            self._idle.append(account)
            self.size += 1

    def take(self, rng: random.Random, count: int = 1) -> list[Account]:
        with self._lock:
            picked = rng.sample(self._idle, min(count, len(self._idle)))
            for account in picked:
                self._idle.remove(account)
            return picked

    def give_back(self, account: Account) -> None:
        with self._lock:
            self._idle.append(account)

    def retire(self, accounts: list[Account]) -> None:
        with self._lock:
            self.size -= len(accounts)


class Load:
    """All load threads; :meth:`start`, then :meth:`stop` and :meth:`sweep` at the end."""

    def __init__(self, api: Api, plan: LoadPlan) -> None:
        self.api = api
        self.rec: Recorder = api.rec
        self.plan = plan
        self.pool = _Pool()
        self.spawning = threading.Event()
        self.running = threading.Event()
        self.tainted: set[str] = set()  # users whose session the service revoked on reuse
        self._admin: Mint | None = None
        self._admin_account = Account(ADMIN, "soak-admin-" + secrets.token_hex(8))
        self._names = itertools.count()
        self._threads: list[threading.Thread] = []
        self._victims: list[threading.Thread] = []
        self._spawner: threading.Thread | None = None
        self._lock = threading.Lock()

    # -- one request each ------------------------------------------------------------

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
                self._admin = self.login(rng, self._admin_account)
            return self._admin

    def setup_admin(self, rng: random.Random) -> None:
        if not self.register(rng, self._admin_account) or self._admin_bearer(rng) is None:
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

    # -- threads -------------------------------------------------------------------

    def _spawn(self, target: Callable[..., None], *args: object) -> threading.Thread:
        thread = threading.Thread(target=target, args=args, daemon=True)
        thread.start()
        return thread

    def start(self) -> None:
        """Log the admin in, then start the background workers, the victims, the prober."""
        self.running.set()
        self.spawning.set()
        self.setup_admin(_rng(self.plan.seed))
        for index in range(self.plan.background_workers):
            self._threads.append(self._spawn(self._background, index))
        self._spawner = self._spawn(self._victim_spawner)
        self._threads.append(self._spawn(self._prober))

    def stop(self, timeout: float = 25.0) -> None:
        """Stop new work, let victims settle (their revocations retry), stop everything."""
        self.spawning.clear()
        deadline = time.monotonic() + timeout
        if self._spawner is not None:
            self._spawner.join(max(0.0, deadline - time.monotonic()))
        for thread in list(self._victims):
            thread.join(max(0.0, deadline - time.monotonic()))
        self.running.clear()
        for thread in self._threads:
            thread.join(max(1.0, deadline - time.monotonic()))

    def _background(self, index: int) -> None:
        rng = _rng(self.plan.seed * 1000 + index)
        while self.spawning.is_set():
            picked = self.pool.take(rng)
            if not picked or (self.pool.size < self.plan.background_users and rng.random() < 0.3):
                for account in picked:
                    self.pool.give_back(account)
                created = self.new_account(rng)
                if created is not None:
                    self.pool.add(created)
                continue
            account = picked[0]
            if self._background_step(rng, account):
                self.pool.give_back(account)
            else:
                self.pool.retire([account])
            time.sleep(rng.uniform(0.005, 0.02))

    def _background_step(self, rng: random.Random, account: Account) -> bool:
        """One action for ``account``; False when it logged out (retired)."""
        session = account.session or self._fresh_session(rng, account)
        if session is None:
            return True
        roll = rng.random()
        if roll < 0.55:
            if self.api.me(session, self._node(rng)).status == 401:
                self._fresh_session(rng, account)
        elif roll < 0.85:
            answer, child = self.refresh(account, session, self._node(rng))
            if child is not None:
                account.session = child
            elif answer.error or answer.status == 400:
                # an unanswered rotation may have happened: never spend that token again
                account.session = None
        elif roll < 0.96:
            owned = self.rec.mints_by_user.get(account.user_id, [])
            if owned:
                self.api.me(self.rec.mints[rng.choice(owned)], self._node(rng))
        else:
            self._leftovers(rng, self.logout(rng, account, self._node(rng)), [account])
            return False
        return True

    def _leftovers(
        self, rng: random.Random, revocation: Revocation | None, accounts: list[Account]
    ) -> None:
        """After a revocation returned, spend each revoked user's refresh token once more:
        the service must refuse it (a half-done logout would leave it working)."""
        if revocation is None:
            return
        time.sleep(rng.uniform(0.0, 0.3))
        for account in accounts:
            if account.session is not None:
                self.refresh(account, account.session, self._node(rng))

    def _victim_spawner(self) -> None:
        rng = _rng(self.plan.seed * 7919)
        for index in itertools.count():
            if not self.spawning.is_set():
                return
            self._victims = [t for t in self._victims if t.is_alive()]
            if len(self._victims) < self.plan.concurrent_victims:
                self._victims.append(self._spawn(self._victim, index))
            time.sleep(self.plan.victim_every * rng.uniform(0.6, 1.4))

    def _victim(self, index: int) -> None:
        rng = _rng(self.plan.seed * 104_729 + index)
        account = self.new_account(rng)
        if account is None or account.session is None:
            return
        stolen = self.login(rng, account)
        if stolen is None:
            return
        for node in range(self.plan.nodes):  # every node caches this user's key
            self.api.me(account.session, node)
            self.api.me(stolen, node)
        attack_node = self._node(rng)
        revoke_node = rng.choice([n for n in range(self.plan.nodes) if n != attack_node])
        settled = _Settled()
        attacker = self._spawn(self._attacker, index, account, stolen, attack_node, settled)
        time.sleep(rng.uniform(0.15, 0.8))
        revocation: Revocation | None
        if rng.random() < self.plan.admin_share:
            cohort = self.pool.take(rng, rng.randint(0, 2))
            self.pool.retire(cohort)
            users = [account.user_id, *(a.user_id for a in cohort if a.user_id)]
            revocation = self.admin_revoke(rng, users, revoke_node)
        else:
            cohort = []
            revocation = self.logout(rng, account, revoke_node)
        settled.set(revocation)
        self._leftovers(rng, revocation, [account, *cohort])
        attacker.join(self.plan.retry_for + 10)

    def _attacker(
        self, index: int, victim: Account, stolen: Mint, node: int, settled: _Settled
    ) -> None:
        """Refresh the stolen token in a tight loop on ``node``; use every token it yields."""
        rng = _rng(self.plan.seed * 15_485_863 + index)
        thief = Account(victim.username, "", victim.user_id)
        tokens, current, alive = [stolen], stolen, True
        give_up = self.rec.now() + self.plan.retry_for + 15
        while self.running.is_set() and self.rec.now() < give_up:
            if alive:
                answer, child = self.refresh(thief, current, node)
                if child is not None:
                    current = child
                    tokens.append(child)
                    self.api.me(child, self._node(rng))
                elif answer.error:
                    time.sleep(0.05)  # unanswered: spend the same token again
                else:
                    alive = False  # refused: the family is gone
            self.api.me(rng.choice(tokens), self._node(rng))
            if settled.event.is_set():
                done = settled.revocation
                if done is None or self.rec.now() > done.end + self.plan.bound + 1.0:
                    break
            if not alive:
                time.sleep(0.01)
        picks = tokens[-3:] + rng.sample(tokens, min(3, len(tokens)))
        for mint in picks:
            for where in range(self.plan.nodes):
                self.api.me(mint, where)

    def _prober(self) -> None:
        """``/me`` with revoked tokens on every node, hardest right after each return."""
        rng = _rng(self.plan.seed * 31)
        while self.running.is_set():
            recent = self.rec.recent_revocations(self.rec.now() - self.plan.bound - 1.0)
            for revocation in recent:
                for user in revocation.users:
                    self._probe_sample(rng, user, revocation.start, every_node=True)
            everything = self.rec.all_revocations()
            if everything:
                old = rng.choice(everything)
                self._probe_sample(rng, rng.choice(old.users), old.start, every_node=False)
            time.sleep(0.02 if recent else 0.05)

    def _probe_sample(
        self, rng: random.Random, user: str, before: float, *, every_node: bool
    ) -> None:
        revoked = self.rec.tokens_of(user, before)
        if not revoked:
            return
        picks = {revoked[-1].id: revoked[-1], (m := rng.choice(revoked)).id: m}
        for mint in picks.values():
            nodes = range(self.plan.nodes) if every_node else [self._node(rng)]
            for node in nodes:
                self.api.me(mint, node)

    def sweep(self) -> None:
        """After the load: every revocation's tokens, sampled, on every node once more."""
        rng = _rng(self.plan.seed * 17)
        for revocation in self.rec.all_revocations():
            for user in revocation.users:
                self._probe_sample(rng, user, revocation.start, every_node=True)
