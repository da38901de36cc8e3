"""`sjti keys rotate`: a new active key, the previous one verify-only, file stays 0600."""

from __future__ import annotations

import json
import stat
from pathlib import Path

import typer
from typer.testing import CliRunner

from sjti import KeySet, SigningKey

from .test_token import issue


def kids(path: Path) -> list[str]:
    return [entry["kid"] for entry in json.loads(path.read_text())["keys"]]


def test_rotate_keeps_old_tokens_verifiable(
    runner: CliRunner, root: typer.Typer, key_file: Path, db_url: str
) -> None:
    """Tokens signed before a rotation stay valid; new ones use the new kid."""
    [old_kid] = kids(key_file)
    old_token = issue(runner, root, key_file, db_url, "--sub", "alice")

    result = runner.invoke(root, ["keys", "rotate", str(key_file)])
    assert result.exit_code == 0, result.output
    new_kid = kids(key_file)[0]
    assert kids(key_file) == [new_kid, old_kid]
    assert result.stdout == (
        f"old kid: {old_kid} (verify only)\nnew kid: {new_kid} (active, EdDSA)\n"
    )
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600

    verify = ["token", "verify", "--key-file", str(key_file), "--database-url", db_url]
    assert runner.invoke(root, [*verify[:2], old_token, *verify[2:]]).exit_code == 0
    new_token = issue(runner, root, key_file, db_url, "--sub", "alice")
    inspected = runner.invoke(root, ["token", "inspect", new_token, "--json"])
    assert json.loads(inspected.stdout)["header"]["kid"] == new_kid
    assert runner.invoke(root, [*verify[:2], new_token, *verify[2:]]).exit_code == 0


def test_rotated_file_still_loads_as_key_set_and_jwks(
    runner: CliRunner, root: typer.Typer, key_file: Path
) -> None:
    """The file format stays `{"keys": [private JWK...]}`: the first signs, the rest verify."""
    runner.invoke(root, ["keys", "rotate", str(key_file), "--alg", "ES256"])
    entries = json.loads(key_file.read_text())["keys"]
    keys = [SigningKey.from_jwk(entry) for entry in entries]
    assert [k.alg for k in keys] == ["ES256", "EdDSA"]
    keyset = KeySet(keys[0], verify_only=keys[1:])
    assert sorted(k["kid"] for k in keyset.to_jwks()["keys"]) == sorted(k.kid for k in keys)


def test_second_rotation_drops_the_oldest_key(
    runner: CliRunner, root: typer.Typer, key_file: Path, db_url: str
) -> None:
    """With --keep 1 (default), two rotations retire the first key: its tokens stop."""
    [first] = kids(key_file)
    token = issue(runner, root, key_file, db_url, "--sub", "alice")
    runner.invoke(root, ["keys", "rotate", str(key_file)])
    second = runner.invoke(root, ["keys", "rotate", str(key_file)])
    assert second.exit_code == 0, second.output
    assert second.stdout.splitlines()[-1] == f"dropped kid: {first}"
    assert first not in kids(key_file)
    result = runner.invoke(
        root, ["token", "verify", token, "--key-file", str(key_file), "--database-url", db_url]
    )
    assert result.exit_code == 1
    assert result.stderr == "error: refused by the boundary layer: unknown_kid\n"


def test_rotate_keep_2_keeps_two_previous_keys(
    runner: CliRunner, root: typer.Typer, key_file: Path
) -> None:
    """--keep N lets a longer token lifetime span several rotations."""
    [first] = kids(key_file)
    runner.invoke(root, ["keys", "rotate", str(key_file)])
    runner.invoke(root, ["keys", "rotate", str(key_file), "--keep", "2"])
    assert len(kids(key_file)) == 3
    assert kids(key_file)[-1] == first


def test_rotate_a_bad_file_is_exit_1_and_leaves_it_alone(
    runner: CliRunner, root: typer.Typer, tmp_path: Path
) -> None:
    """A broken or missing key file is never overwritten by a rotation."""
    path = tmp_path / "keys.json"
    path.write_text('{"keys": "nope"}')
    result = runner.invoke(root, ["keys", "rotate", str(path)])
    assert result.exit_code == 1
    assert result.stderr == f'error: cannot read {path}: expected {{"keys": [private JWK, ...]}}\n'
    assert path.read_text() == '{"keys": "nope"}'
    assert [p.name for p in tmp_path.iterdir()] == ["keys.json"]

    missing = runner.invoke(root, ["keys", "rotate", str(tmp_path / "none.json")])
    assert missing.exit_code == 1
    assert (
        missing.stderr
        == f"error: cannot read {tmp_path / 'none.json'}: No such file or directory\n"
    )


def test_rotate_unknown_algorithm_is_exit_1(
    runner: CliRunner, root: typer.Typer, key_file: Path
) -> None:
    """A typo in --alg changes nothing."""
    before = key_file.read_text()
    result = runner.invoke(root, ["keys", "rotate", str(key_file), "--alg", "none"])
    assert result.exit_code == 1
    assert result.stderr.startswith("error: ")
    assert key_file.read_text() == before
