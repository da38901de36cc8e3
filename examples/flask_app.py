"""Flask + sjti: ``@sjti.require_user`` checks both layers on a view.

Run:  PORT=5000 python examples/flask_app.py
Try:  TOKEN=$(curl -s -X POST 'localhost:5000/login?user=alice' | jq -r .access_token)
      curl -H "Authorization: Bearer $TOKEN" localhost:5000/me           # 200
      curl -X POST -H "Authorization: Bearer $TOKEN" localhost:5000/logout
      curl -i -H "Authorization: Bearer $TOKEN" localhost:5000/me        # 401 "revoked"

A demo: /login takes no password and the keys live in memory (gone on restart).
"""

from __future__ import annotations

import os
from typing import Any

from flask import Flask, g, request

from sjti import BoundaryVerifier, ClaimsPolicy, Issuer, SigningKey, UserVerifier
from sjti.cache import CachedKeys, KeyCache
from sjti.flask import Sjti
from sjti.stores import MemorySecretStore

ISSUER, AUDIENCE = "http://127.0.0.1/example", "example-api"

signing_key = SigningKey.generate("EdDSA")
issuer = Issuer(signing_key, issuer=ISSUER, audience=AUDIENCE, ttl=300)
boundary = BoundaryVerifier(signing_key, ClaimsPolicy(issuer=ISSUER, audience=AUDIENCE))

# One process: a trusted cache, invalidated by the store's listener on every revocation.
store = MemorySecretStore()
keys = CachedKeys(store, cache=KeyCache(trusted=True))
store.add_listener(keys.cache.invalidate)

app = Flask(__name__)
sjti = Sjti(app, verifier=UserVerifier(boundary), lookup=keys, realm="example")


@app.get("/healthz")
def healthz() -> dict[str, str]:
    return {"status": "ok"}


@app.post("/login")
def login() -> dict[str, str]:
    """Demo only: a real service checks a password first."""
    user = request.args["user"]
    return {"access_token": issuer.issue(user, store.ensure(user)), "token_type": "bearer"}


@app.get("/me")
@sjti.require_user
def me() -> dict[str, Any]:
    return {"sub": g.sjti_subject, "claims": g.sjti_claims}


@app.post("/logout")
@sjti.require_user
def logout() -> tuple[str, int]:
    store.revoke(g.sjti_subject, actor=g.sjti_subject, reason="logout")
    return "", 204


if __name__ == "__main__":
    app.run(host="127.0.0.1", port=int(os.environ.get("PORT", "5000")))
