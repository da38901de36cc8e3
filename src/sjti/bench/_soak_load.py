"""The soak's traffic: ordinary users, victims with an attacker each, an admin, a prober.

* **Background users** register, log in, refresh, call ``/me`` and sometimes log out,
  each on a node picked at random.
* **Victims** log in on two devices; the second device's refresh token is "stolen": an
  attacker thread refreshes it in a tight loop on one node, keeps every access token it
  gets and keeps calling ``/me`` with all of them on every node. The victim then logs out
  (or an admin revokes it, with a cohort of background users) on *another* node while the
  attacker is mid-loop. The attacker goes on until a second past the staleness bound
  after the revocation returned, then sweeps its tokens over every node.
* **The prober** calls ``/me`` on every node with the tokens of each revocation that just
  returned, again and again, then samples old ones: a checker that never probed a revoked
  token could never find one accepted.

Requests and retries are :class:`._soak_client.Client`'s.
"""

from __future__ import annotations

import itertools
import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from ._soak_client import ADMIN, LOGOUT_REASON, Account, Client, LoadPlan, seeded
from ._soak_record import Api, Mint, Revocation

__all__ = ["ADMIN", "LOGOUT_REASON", "Load", "LoadPlan"]


@dataclass(slots=True)
class _Settled:
    """Hands a victim's revocation (or ``None``: none happened) to its attacker."""

    event: threading.Event = field(default_factory=threading.Event)
    revocation: Revocation | None = None

    def set(self, revocation: Revocation | None) -> None:
        self.revocation = revocation
        self.event.set()


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


class Load(Client):
    """All load threads; :meth:`start`, then :meth:`stop` and :meth:`sweep` at the end."""

    def __init__(self, api: Api, plan: LoadPlan) -> None:
        super().__init__(api, plan)
        self.pool = _Pool()
        self.spawning = threading.Event()
        self._threads: list[threading.Thread] = []
        self._victims: list[threading.Thread] = []
        self._spawner: threading.Thread | None = None

    # -- threads -------------------------------------------------------------------

    def _spawn(self, target: Callable[..., None], *args: object) -> threading.Thread:
        thread = threading.Thread(target=target, args=args, daemon=True)
        thread.start()
        return thread

    def start(self) -> None:
        """Log the admin in, then start the background workers, the victims, the prober."""
        self.running.set()
        self.spawning.set()
        self.setup_admin(seeded(self.plan.seed))
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
        rng = seeded(self.plan.seed * 1000 + index)
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
        rng = seeded(self.plan.seed * 7919)
        for index in itertools.count():
            if not self.spawning.is_set():
                return
            self._victims = [t for t in self._victims if t.is_alive()]
            if len(self._victims) < self.plan.concurrent_victims:
                self._victims.append(self._spawn(self._victim, index))
            time.sleep(self.plan.victim_every * rng.uniform(0.6, 1.4))

    def _victim(self, index: int) -> None:
        rng = seeded(self.plan.seed * 104_729 + index)
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
        rng = seeded(self.plan.seed * 15_485_863 + index)
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
        rng = seeded(self.plan.seed * 31)
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
        rng = seeded(self.plan.seed * 17)
        for revocation in self.rec.all_revocations():
            for user in revocation.users:
                self._probe_sample(rng, user, revocation.start, every_node=True)
