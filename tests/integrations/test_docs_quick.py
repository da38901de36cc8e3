"""docs/integrations.md's short FastAPI and Flask apps run as written and keep their promise:
a token is accepted, and refused once its user is revoked."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from .test_fastapi import TestClient

DOC = Path(__file__).resolve().parents[2] / "docs" / "integrations.md"
MARK = "<!-- executed by tests/integrations/test_docs_quick.py -->"


def snippets() -> list[str]:
    text = DOC.read_text(encoding="utf-8")
    return re.findall(re.escape(MARK) + r"\n```python\n(.*?)```", text, flags=re.DOTALL)


def run(code: str, monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    monkeypatch.setenv("SJTI_DATABASE_URL", "memory://")
    namespace: dict[str, Any] = {"__name__": "docs_snippet"}
    exec(compile(code, str(DOC), "exec"), namespace)  # noqa: S102 - our own docs, the point
    return namespace


def test_there_are_two_snippets_of_at_most_fifteen_lines() -> None:
    found = snippets()
    assert len(found) == 2
    for code in found:
        assert len([line for line in code.splitlines() if line.strip()]) <= 15


def test_the_fastapi_snippet_accepts_then_refuses_after_revocation(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    namespace = run(snippets()[0], monkeypatch)
    auth, client = namespace["auth"], TestClient(namespace["app"])
    token = auth.issue("alice")
    headers = {"Authorization": f"Bearer {token}"}
    assert client.get("/me", headers=headers).json() == {"sub": "alice"}
    assert client.get("/me").status_code == 401
    auth.revoke("alice", actor="test", reason="test")
    refused = client.get("/me", headers=headers)
    assert refused.status_code == 401
    assert 'error_description="revoked"' in refused.headers["www-authenticate"]


def test_the_flask_snippet_accepts_then_refuses_after_revocation(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    namespace = run(snippets()[1], monkeypatch)
    auth, client = namespace["auth"], namespace["app"].test_client()
    token = auth.issue("bob")
    headers = {"Authorization": f"Bearer {token}"}
    assert client.get("/me", headers=headers).json == {"sub": "bob"}
    auth.revoke("bob", actor="test", reason="test")
    refused = client.get("/me", headers=headers)
    assert refused.status_code == 401
    assert 'error_description="revoked"' in refused.headers["www-authenticate"]
