"""KEK rotation of a running service that started on its development KEK: the CLI moves
the secrets, says the dev KEK is droppable only when nothing uses it, and the service
then runs on the new KEK alone with every user still signed in."""

from __future__ import annotations

from pathlib import Path

from .harness import Server, bearer, login, register


def test_moving_off_the_development_kek(tmp_path: Path) -> None:
    first = Server(tmp_path, {})  # no SJTI_KEK: the key file's dev KEK wraps the secrets
    try:
        with first.client() as client:
            for name in ("kek-ann", "kek-ben"):
                register(client, name)
            ann = login(client, "kek-ann")
            login(client, "kek-ben")
        new = first.cli("kek", "new", "--kid", "prod1").stdout.strip()
        assert new.startswith("prod1:")
        env = {"SJTI_KEK": new}
        first.env.update(env)
        preview = first.cli("kek", "rotate", "--dry-run")
        assert preview.returncode == 0, preview.stderr
        assert "would move 2 secrets to KEK prod1" in preview.stdout
        assert "under KEK dev: 2 secrets (would move)" in preview.stdout
        assert "dropped" not in preview.stdout
        done = first.cli("kek", "rotate")
        assert done.returncode == 0, done.stderr
        assert "moved 2 secrets to KEK prod1" in done.stdout
        assert "under KEK dev: 0 secrets; it can now be dropped from SJTI_KEK" in done.stdout
    finally:
        first.stop()
    second = Server(tmp_path, env)  # the new KEK alone
    try:
        with second.client() as client:
            assert client.get("/readyz").json()["ready"] is True
            assert client.get("/me", headers=bearer(ann)).status_code == 200  # still signed in
            assert login(client, "kek-ben")["access_token"]
    finally:
        second.stop()
