"""KEK rotation (``rewrap``) on memory, SQLite and PostgreSQL, both layouts, sync and async.

The harness stores secrets under an old KEK; the tests then open the same data with a ring
whose primary is a new KEK (old one after it), rewrap, and finally with the new KEK only.
"""

from __future__ import annotations

import inspect
from collections.abc import AsyncGenerator, Sequence
from dataclasses import dataclass
from typing import Any

import pytest

from sjti import Issuer, Kek, KekRing, UnwrapError, UserVerifier
from sjti.errors import ConfigurationError
from sjti.stores import AsyncSecretStore, MemorySecretStore
from sjti.stores.memory import AsyncMemorySecretStore
from sjti.stores.sql import SqlSecretStore
from sjti.stores.sql_async import AsyncSqlSecretStore

from ._harness import AsAsync, Harness, MemoryHarness, SqlHarness

pytestmark = pytest.mark.anyio

USERS = [str(i) for i in range(101, 108)]  # 7 users: batches of 3 are 3, 3, 1
# "_" is a LIKE wildcard: the app layout's prefix match must escape it.
OLD = Kek.generate("old_k")
NEW = Kek.generate("new_k")


@pytest.fixture
def ring() -> KekRing:
    """The harness's store (and the data it writes) uses the old KEK only."""
    return KekRing([OLD])


@dataclass
class Opened:
    """A store on the harness's data under another ring, behind the async interface."""

    store: AsyncSecretStore
    pending_of: Any  # the concrete store's rewrap_pending (sync or async)

    async def pending(self, kek_id: str | None = None) -> int:
        value = self.pending_of(kek_id)
        count: int = await value if inspect.isawaitable(value) else value
        return count

    async def rewrap(self, batch_size: int) -> list[int]:
        return [moved async for moved in self.store.rewrap(batch_size, actor="test")]


def reopen(h: Harness, ring: KekRing, mode: str) -> Opened:
    if isinstance(h, MemoryHarness):
        memory = MemorySecretStore(ring, clock=h.clock)
        # Same rows and audit trail as the harness's store: only the ring differs.
        memory._users = h.memory._users
        memory._audit = h.memory._audit
        memory._lock = h.memory._lock
        if mode == "async":
            facade = AsyncMemorySecretStore(ring)
            facade.sync = memory
            return Opened(facade, memory.rewrap_pending)
        return Opened(AsAsync(memory), memory.rewrap_pending)
    assert isinstance(h, SqlHarness)
    if mode == "async":
        assert h.async_engine is not None
        async_store = AsyncSqlSecretStore(h.async_engine, ring, h.layout, clock=h.clock)
        return Opened(async_store, async_store.rewrap_pending)
    sync_store = SqlSecretStore(h.engine, ring, h.layout, clock=h.clock)
    return Opened(AsAsync(sync_store), sync_store.rewrap_pending)


async def populate(h: Harness, issuer: Issuer) -> dict[str, str]:
    """Every user gets a key under the old KEK and one token."""
    tokens = {}
    for user_id in USERS:
        h.add_user(user_id)
        tokens[user_id] = issuer.issue(user_id, await h.store.ensure(user_id))
    return tokens


async def test_rewrap_moves_every_secret_and_old_tokens_verify_without_the_old_kek(
    harness: Harness, mode: str, issuer: Issuer, verifier: UserVerifier
) -> None:
    """Batches of 3 move 7 secrets; keys and versions unchanged; the old KEK can go."""
    tokens = await populate(harness, issuer)
    versions = {u: harness.version(u) for u in USERS}
    rotated = reopen(harness, KekRing([NEW, OLD]), mode)
    assert await rotated.pending() == 7
    assert await rotated.pending(OLD.kid) == 7
    assert await rotated.pending(NEW.kid) == 0

    assert await rotated.rewrap(3) == [3, 3, 1]

    assert await rotated.pending() == 0
    assert await rotated.pending(OLD.kid) == 0
    assert await rotated.pending(NEW.kid) == 7
    assert {u: harness.version(u) for u in USERS} == versions  # nobody logged out
    audit = await rotated.store.audit_log()
    assert [(r.kind, r.count, r.actor, r.detail) for r in audit] == [
        ("kek_rewrap", n, "test", f"to kek {NEW.kid}") for n in (1, 3, 3)
    ]
    new_only = reopen(harness, KekRing([NEW]), mode)
    for user_id, token in tokens.items():
        key = await new_only.store.load(user_id)
        assert key is not None
        assert verifier.verify(token, key)["sub"] == user_id
    old_only = reopen(harness, KekRing([OLD]), mode)
    with pytest.raises(UnwrapError):
        await old_only.store.load(USERS[0])


async def test_interrupted_run_resumes_and_a_second_run_moves_nothing(
    harness: Harness, mode: str, issuer: Issuer
) -> None:
    """Stopping after one batch keeps that batch; the next run moves only what is left."""
    await populate(harness, issuer)
    rotated = reopen(harness, KekRing([NEW, OLD]), mode)
    await rotated.store.revoke(USERS[-1])  # a revocation already writes under the new KEK
    assert await rotated.pending() == 6

    batches = rotated.store.rewrap(4)
    assert isinstance(batches, AsyncGenerator)
    assert await anext(batches) == 4
    await batches.aclose()  # interrupted: the first batch stays committed
    assert await rotated.pending() == 2

    assert await rotated.rewrap(4) == [2]
    assert await rotated.rewrap(4) == []
    assert await rotated.pending() == 0
    kinds = [r.kind for r in await rotated.store.audit_log()]
    assert kinds == ["kek_rewrap", "kek_rewrap", "user"]


@pytest.mark.parametrize("how", ["flip", "garbage"])
async def test_a_secret_that_does_not_open_fails_closed(
    harness: Harness, mode: str, issuer: Issuer, how: str
) -> None:
    """UnwrapError, naming nobody; its batch changes nothing (never skipped silently)."""
    await populate(harness, issuer)
    before = {u: harness.peek(u) for u in USERS[1:]}
    harness.tamper(USERS[1], how)
    rotated = reopen(harness, KekRing([NEW, OLD]), mode)
    with pytest.raises(UnwrapError) as caught:
        await rotated.rewrap(3)
    assert USERS[1] not in str(caught.value)
    assert str(caught.value) == "cannot unwrap secret"
    assert await rotated.pending() == 7  # the failing batch rolled back
    assert await rotated.store.audit_log() == []
    assert {u: harness.peek(u) for u in USERS[2:]} == {u: before[u] for u in USERS[2:]}


async def test_batch_size_must_be_positive(harness: Harness, mode: str) -> None:
    rotated = reopen(harness, KekRing([NEW, OLD]), mode)
    for bad in (0, -1):
        with pytest.raises(ConfigurationError):
            rotated.store.rewrap(bad)


def test_unwrap_texts_opens_a_batch_like_unwrap_str_and_refuses_what_it_refuses() -> None:
    """The re-wrap's bulk unwrap: one KEK's batch opens in one pass, a mixed batch opens
    one by one, and a tampered text, another user's text, a KEK column that disagrees, a
    character outside base64url or an unknown KEK is the one opaque UnwrapError."""
    both = KekRing([NEW, OLD])
    ids = [str(i) for i in range(40)]
    keys = [bytes([i]) * 32 for i in range(40)]
    under_old = KekRing([OLD]).wrap_texts(ids, keys)
    assert both.unwrap_texts(ids, under_old) == keys
    assert both.unwrap_texts(ids, under_old, [OLD.kid] * 40) == keys
    mixed = under_old[:20] + both.wrap_texts(ids[20:], keys[20:])
    assert both.unwrap_texts(ids, mixed) == keys
    assert both.unwrap_texts([], []) == []
    flipped = under_old[7][:-3] + ("A" if under_old[7][-3] != "A" else "B") + under_old[7][-2:]
    plus = under_old[7][:-3] + "+" + under_old[7][-2:]
    refused: list[tuple[list[str], list[str], Sequence[str | None] | None]] = [
        (ids, [*under_old[:7], flipped, *under_old[8:]], None),
        (ids, [*under_old[:7], plus, *under_old[8:]], None),
        (list(reversed(ids)), under_old, None),  # each text bound to its own user
        (ids, under_old, [OLD.kid] * 39 + [NEW.kid]),
        (ids, [*under_old[:39], "v1.old_k." + "A" * 81], None),
    ]
    for user_ids, texts, kek_ids in refused:
        with pytest.raises(UnwrapError):
            both.unwrap_texts(user_ids, texts, kek_ids)
    with pytest.raises(UnwrapError):
        KekRing([NEW]).unwrap_texts(ids, under_old)  # the old KEK is gone
    with pytest.raises(ConfigurationError):
        both.unwrap_texts(ids, under_old[:3])
