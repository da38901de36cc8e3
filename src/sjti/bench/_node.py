"""One node of the multi-node harness: its own process, store client, cache and bus.

Driven over stdin/stdout, one command per line, one answer per line:

    issue USER          -> a token for USER (creating the user's key if needed)
    check TOKEN         -> "accepted" or the refusal code ("revoked", ...)
    revoke USER         -> "done" or "done-unpublished" (committed; the bus was down)
    stats               -> the cache counters as JSON
    quit

Configuration comes from the environment (SJTI_NODE_*), never from the command line, so
no secret shows up in a process list.
"""

from __future__ import annotations

import dataclasses
import json
import os
import sys

from sqlalchemy import create_engine

from .. import BoundaryVerifier, ClaimsPolicy, Issuer, KekRing, SigningKey, UserVerifier
from ..cache import CachedKeys, KeyCache
from ..cache.redis_bus import RedisBus
from ..errors import BackendError, TokenError
from ..stores.sql import SqlSecretStore

ISSUER = "https://auth.sjti.test"
AUDIENCE = "https://api.sjti.test"


def main() -> int:
    env = os.environ
    engine = create_engine(env["SJTI_NODE_DATABASE_URL"], pool_size=2)
    store = SqlSecretStore(engine, KekRing.from_config(env["SJTI_NODE_KEK"]))
    app_key = SigningKey.from_secret(bytes.fromhex(env["SJTI_NODE_APP_SECRET"]), alg="HS256")
    cache = KeyCache(max_age=float(env.get("SJTI_NODE_MAX_AGE", "60")))
    bus = RedisBus(cache, env["SJTI_NODE_REDIS_URL"], health_check_interval=0.5).start()
    bus.wait_connected(10)
    store.add_listener(bus.publish)  # after each commit; raises BackendError if Redis is down
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
                answer = "done"
            except BackendError:
                answer = "done-unpublished"
        elif command == "stats":
            answer = json.dumps(dataclasses.asdict(cache.stats()), default=str)
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
