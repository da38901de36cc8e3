"""Foreseeable faults answer what an operator and a client can act on, never a 500:
an oversized body (413), control characters (400), a KEK that does not open the stored
keys (503, with /readyz naming the KEK), and a SQLite file nobody else can read."""

from __future__ import annotations

import json
import os
import socket
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from sjti import Kek, KekRing

from .harness import PASSWORD, Server, bearer, login, register


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    started = Server(tmp_path_factory.mktemp("faults"), {"SJTI_MAX_BODY_BYTES": "4096"})
    yield started
    started.stop()


def test_an_oversized_body_is_refused_before_it_is_read(server: Server) -> None:
    """A declared 100 MB body is refused from its Content-Length alone: the 2 bytes sent
    are never awaited, the answer comes at once."""
    with socket.create_connection(("127.0.0.1", server.port), timeout=5) as raw:
        raw.sendall(
            b"POST /users HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            b"Content-Length: 104857600\r\n\r\n{}"
        )
        answer = b""
        while b"request body too large" not in answer:
            chunk = raw.recv(4096)  # the server closes after a 413: this ends
            if not chunk:
                break
            answer += chunk
    assert answer.startswith(b"HTTP/1.1 413")
    assert b"request body too large" in answer


def test_a_chunked_body_is_cut_off_at_the_limit(server: Server) -> None:
    """No Content-Length: counted as it arrives, refused once past the limit."""

    def chunks() -> Iterator[bytes]:
        yield b'{"username": "' + b"a" * 3000
        yield b"b" * 3000 + b'"}'

    with server.client() as client:
        answer = client.post(
            "/users", content=chunks(), headers={"content-type": "application/json"}
        )
    assert answer.status_code == 413


@pytest.mark.parametrize("field", ["username", "password", "grant_type"])
def test_control_characters_in_a_grant_are_an_oauth_400(server: Server, field: str) -> None:
    """A NUL byte in a login never reaches the database (PostgreSQL would refuse it)."""
    form = {"grant_type": "password", "username": "alice", "password": PASSWORD}
    form[field] = form[field] + "\x00"
    with server.client() as client:
        answer = client.post("/token", data=form)
    assert answer.status_code == 400
    assert answer.json() == {
        "error": "invalid_request",
        "error_description": "control characters are not allowed",
    }


def test_a_kek_that_does_not_open_stored_keys_is_503_and_named(tmp_path: Path) -> None:
    """The key file's dev KEK replaced by another ring: requests fail closed with 503
    (not 500), and /readyz says which KEK the stored keys need."""
    first = Server(tmp_path, {})
    try:
        with first.client() as client:
            register(client, "kek-alice")
            tokens = login(client, "kek-alice")
    finally:
        first.stop()
    dev_kek = json.loads((tmp_path / "sjti-keys.json").read_text())["dev_kek"].split(":")[0]
    other = KekRing([Kek.generate("other")]).to_config()
    second = Server(tmp_path, {"SJTI_KEK": other}, wait_ready=False)
    try:
        with second.client() as client:
            ready = client.get("/readyz")
            assert ready.status_code == 503
            assert f"KEK {dev_kek!r} does not open" in ready.json()["problem"]
            me = client.get("/me", headers=bearer(tokens))
            assert me.status_code == 503
            assert me.headers["content-type"] == "application/problem+json"
            assert me.json()["code"] == "temporarily_unavailable"
            form = {"grant_type": "password", "username": "kek-alice", "password": PASSWORD}
            assert client.post("/token", data=form).status_code == 503
    finally:
        second.stop()


@pytest.mark.skipif(os.name != "posix", reason="file modes")
def test_the_sqlite_file_is_private(server: Server) -> None:
    """It holds password hashes and wrapped keys: 0600, whatever the umask."""
    mode = stat.S_IMODE((server.workdir / "sjti.db").stat().st_mode)
    assert mode == 0o600
