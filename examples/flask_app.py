"""Flask + sjti: ``@guard.require_user`` checks both layers on a view.

Run:  PORT=5000 python examples/flask_app.py
Try:  TOKEN=$(curl -s -X POST 'localhost:5000/login?user=alice' | jq -r .access_token)
      curl -H "Authorization: Bearer $TOKEN" localhost:5000/me           # 200
      curl -X POST -H "Authorization: Bearer $TOKEN" localhost:5000/logout
      curl -i -H "Authorization: Bearer $TOKEN" localhost:5000/me        # 401 "revoked"

A demo: /login takes no password; with the demo's defaults the keys live in memory (gone
on restart). Its tests build it from sjti.testing's fixtures and run the attack pack.
"""

from __future__ import annotations

import os
from typing import Any

from flask import Flask, g, request

import sjti
from sjti.flask import Sjti

# The demo's defaults; sjti.toml and SJTI_* variables override them.
DEMO = {"SJTI_DATABASE_URL": "memory://", "SJTI_ISSUER": "http://127.0.0.1/example",
        "SJTI_AUDIENCE": "example-api", "SJTI_ACCESS_TTL": "300"}  # fmt: skip


def create_app(auth: sjti.Auth) -> Flask:
    app = Flask(__name__)
    guard = Sjti(app, verifier=auth.verifier, lookup=auth.user_keys, realm="example")

    @app.get("/healthz")
    def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.post("/login")
    def login() -> dict[str, str]:
        """Demo only: a real service checks a password first."""
        return {"access_token": auth.issue(request.args["user"]), "token_type": "bearer"}

    @app.get("/me")
    @guard.require_user
    def me() -> dict[str, Any]:
        return {"sub": g.sjti_subject, "claims": g.sjti_claims}

    @app.post("/logout")
    @guard.require_user
    def logout() -> tuple[str, int]:
        auth.revoke(g.sjti_subject, actor=g.sjti_subject, reason="logout")
        return "", 204

    return app


app = create_app(sjti.configure(sjti.Settings.load(environ={**DEMO, **os.environ})))

if __name__ == "__main__":
    app.run(host="127.0.0.1", port=int(os.environ.get("PORT", "5000")))
