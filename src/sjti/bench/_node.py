"""One node of the multi-node harness: its own process, store client, cache and bus.

Wired as a deployment wires a node: the store drops revoked users from this process's
cache (``add_listener``), the Redis bus follows the revocation event log (``log=store``:
watermark, catch-up after reconnecting, heartbeats into the node registry) and relays
this node's own events (``add_event_listener``).

Driven over stdin/stdout, one command per line, one answer per line:

    issue USER              -> a token for USER (creating the user's key if needed)
    check TOKEN             -> "accepted" or the refusal code ("revoked", ...)
    revoke USER             -> "done" (committed; the relay publishes in the background and
                               counts failures in stats' publish_failures)
    revoke-ack USER SECONDS -> JSON: the revocation with wait="all" and that timeout:
                               {"ms", "event", "complete", "acknowledged", "pending"}
    node                    -> this node's id in the node registry
    live                    -> JSON list of the ids of the live nodes in the registry
    stats                   -> the cache counters, the bus watermark and counters, as JSON
    quit

Configuration comes from the environment (SJTI_NODE_*), never from the command line, so
no secret shows up in a process list.
"""

from __future__ import annotations

import dataclasses
import json
import os
import sys
import time

from sqlalchemy import create_engine

from .. import BoundaryVerifier, ClaimsPolicy, Issuer, KekRing, SigningKey, UserVerifier
from ..cache import CachedKeys, KeyCache
from ..cache.redis_bus import RedisBus
from ..errors import BackendError, TokenError
from ..stores.sql import SqlSecretStore

ISSUER = "https://auth.sjti.test"
AUDIENCE = "https://api.sjti.test"


def _revoke_acknowledged(store: SqlSecretStore, argument: str) -> str:
    user, _, seconds = argument.partition(" ")
    started = time.perf_counter()
    result = store.revoke(user, actor="multinode", wait="all", timeout=float(seconds or "2"))
    elapsed_ms = (time.perf_counter() - started) * 1000
    ack = result.acknowledgement
    return json.dumps(
        {
            "ms": elapsed_ms,
            "event": result.event_id,
            "complete": ack is not None and ack.complete,
            "acknowledged": 0 if ack is None else len(ack.acknowledged),
            "pending": 0 if ack is None else len(ack.pending),
        }
    )


def main() -> int:
    env = os.environ
    engine = create_engine(env["SJTI_NODE_DATABASE_URL"], pool_size=2)
    store = SqlSecretStore(engine, KekRing.from_config(env["SJTI_NODE_KEK"]))
    app_key = SigningKey.from_secret(bytes.fromhex(env["SJTI_NODE_APP_SECRET"]), alg="HS256")
    cache = KeyCache(max_age=float(env.get("SJTI_NODE_MAX_AGE", "60")))
    store.add_listener(cache.invalidate)  # this node refuses as soon as revoke returns
    bus = RedisBus(
        cache,
        env["SJTI_NODE_REDIS_URL"],
        health_check_interval=0.5,
        log=store,
        poll_interval=float(env.get("SJTI_NODE_POLL_INTERVAL", "1.0")),
    ).start()
    bus.wait_connected(10)
    store.add_event_listener(bus.relay)  # after each commit; never raises
    keys = CachedKeys(store, cache=cache)
    issuer = Issuer(app_key, issuer=ISSUER, audience=AUDIENCE)
    verifier = UserVerifier(
        BoundaryVerifier(app_key, ClaimsPolicy(issuer=ISSUER, audience=AUDIENCE))
    )

    out = sys.stdout
    for line in sys.stdin:
        command, _, argument = line.strip().partition(" ")
        if command == "issue":
            answer = issuer.issue(argument, store.ensure(argument))
        elif command == "check":
            try:
                verifier.verify_with(argument, keys.get)
                answer = "accepted"
            except TokenError as exc:
                answer = exc.code
            except BackendError:
                answer = "backend_error"
        elif command == "revoke":
            try:
                store.revoke(argument, actor="multinode")
                answer = "done"  # committed; the relay publishes (or counts a failure) after
            except BackendError:
                answer = "backend_error"
        elif command == "revoke-ack":
            try:
                answer = _revoke_acknowledged(store, argument)
            except BackendError:
                answer = json.dumps({"error": "backend_error"})
        elif command == "node":
            answer = bus.node_id
        elif command == "live":
            answer = json.dumps([node.id for node in store.live_nodes()])
        elif command == "stats":
            stats = dataclasses.asdict(cache.stats())
            stats.update(
                watermark=bus.watermark,
                replayed=bus.follower.replayed,
                cleared=bus.follower.cleared,
                publish_failures=bus.publish_failures,
            )
            answer = json.dumps(stats, default=str)
        elif command == "quit":
            break
        else:
            answer = "unknown-command"
        out.write(answer + "\n")
        out.flush()
    bus.close()
    engine.dispose()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
