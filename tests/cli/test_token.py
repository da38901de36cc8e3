"""`sjti token issue|inspect|verify`: exact outputs and exit codes on real SQLite stores."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from sjti import SigningKey
from sjti.cli._keys_cmds import CliError
from sjti.cli._token_cmds import parse_claims

from .conftest import store_for


def issue(runner: CliRunner, root: typer.Typer, key_file: Path, db_url: str, *args: str) -> str:
    result = runner.invoke(
        root, ["token", "issue", "--key-file", str(key_file), "--database-url", db_url, *args]
    )
    assert result.exit_code == 0, result.output
    return result.stdout.strip()


def test_issue_verify_revoke_verify(
    runner: CliRunner, root: typer.Typer, key_file: Path, db_url: str
) -> None:
    """The CLI's main story: a token verifies until its user is revoked, then exits 1."""
    token = issue(runner, root, key_file, db_url, "--sub", "alice", "--claim", "scope=read")
    verify = ["token", "verify", token, "--key-file", str(key_file), "--database-url", db_url]

    ok = runner.invoke(root, verify)
    assert ok.exit_code == 0, ok.output
    claims = json.loads(ok.stdout)
    assert (claims["sub"], claims["scope"], claims["iss"], claims["aud"]) == (
        "alice",
        "read",
        "http://127.0.0.1:8000",
        "sjti",
    )
    assert claims["exp"] - claims["iat"] == 900

    revoked = runner.invoke(root, ["revoke", "--user", "alice", "--database-url", db_url])
    assert revoked.exit_code == 0, revoked.output
    assert revoked.stdout == "revoked 1 user\n"

    refused = runner.invoke(root, verify)
    assert refused.exit_code == 1
    assert refused.stdout == ""
    assert refused.stderr == "error: refused by the user layer: revoked\n"


def test_verify_json_reports_both_layers(
    runner: CliRunner, root: typer.Typer, key_file: Path, db_url: str
) -> None:
    """Scripts get each layer's verdict and the error code, not prose."""
    token = issue(runner, root, key_file, db_url, "--sub", "alice")
    verify = ["token", "verify", token, "--json", "--key-file", str(key_file)]
    first = runner.invoke(root, [*verify, "--database-url", db_url])
    assert first.exit_code == 0, first.output
    document = json.loads(first.stdout)
    assert (document["valid"], document["boundary"], document["user"]) == (
        True,
        "accepted",
        "accepted",
    )
    assert document["claims"]["sub"] == "alice"

    runner.invoke(root, ["revoke", "--user", "alice", "--database-url", db_url])
    second = runner.invoke(root, [*verify, "--database-url", db_url])
    assert second.exit_code == 1
    assert json.loads(second.stdout) == {
        "valid": False,
        "boundary": "accepted",
        "user": "revoked",
        "error": "revoked",
    }


def test_issue_json_and_claim_values(
    runner: CliRunner, root: typer.Typer, key_file: Path, db_url: str
) -> None:
    """--claim values parse as JSON when they can, else stay text; --ttl sets expires_in."""
    result = runner.invoke(
        root,
        [
            "token", "issue", "--key-file", str(key_file), "--database-url", db_url,
            "--sub", "alice", "--ttl", "60", "--json",
            "--claim", "scope=read write", "--claim", "admin=true", "--claim", "level=3",
            "--issuer", "https://auth", "--audience", "api",
        ],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    document = json.loads(result.stdout)
    assert (document["token_type"], document["expires_in"]) == ("bearer", 60)
    claims = document["claims"]
    assert (claims["scope"], claims["admin"], claims["level"]) == ("read write", True, 3)
    assert (claims["iss"], claims["aud"]) == ("https://auth", "api")


def test_issue_refuses_reserved_claim_without_creating_a_user_key(
    runner: CliRunner, root: typer.Typer, key_file: Path, db_url: str, kek_config: str
) -> None:
    """A bad --claim is a one-line error and leaves the store untouched."""
    result = runner.invoke(
        root,
        [
            "token", "issue", "--key-file", str(key_file), "--database-url", db_url,
            "--sub", "alice", "--claim", "sub=mallory",
        ],
    )  # fmt: skip
    assert result.exit_code == 1
    assert result.stderr == "error: claim is set by the issuer: sub\n"
    store = store_for(db_url, kek_config)
    assert store.load("alice") is None
    store.engine.dispose()


def test_parse_claims_refuses_pairs_without_equals() -> None:
    """`--claim admin` is a usage error, not a claim named 'admin' with no value."""
    assert parse_claims(["a=1", "b=x"]) == {"a": 1, "b": "x"}
    with pytest.raises(CliError, match="NAME=VALUE"):
        parse_claims(["admin"])


@pytest.mark.parametrize(("alg", "secret_member"), [("EdDSA", "d"), ("HS256", "k")])
def test_inspect_shows_both_verdicts_and_no_secret(
    runner: CliRunner,
    root: typer.Typer,
    tmp_path: Path,
    db_url: str,
    kek_config: str,
    alg: str,
    secret_member: str,
) -> None:
    """inspect labels decoded data as unverified, shows each layer, and leaks no key."""
    key_file = tmp_path / "hs.json"
    jwk = SigningKey.generate(alg).export_private_jwk()
    key_file.write_text(json.dumps({"keys": [jwk]}))
    key_file.chmod(0o600)
    token = issue(runner, root, key_file, db_url, "--sub", "alice")
    store = store_for(db_url, kek_config)
    user_secret = store.load_secret("alice")
    store.engine.dispose()
    assert user_secret is not None
    inspect = ["token", "inspect", token, "--key-file", str(key_file), "--database-url", db_url]

    result = runner.invoke(root, inspect)
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert "header (unverified)" in lines
    assert "claims (unverified: decoded, not trusted)" in lines
    assert "boundary: accepted" in lines
    assert "user:     accepted" in lines

    runner.invoke(root, ["revoke", "--user", "alice", "--database-url", db_url])
    after = runner.invoke(root, inspect)
    assert after.exit_code == 0, after.output
    assert "boundary: accepted" in after.stdout.splitlines()
    assert "user:     revoked" in after.stdout.splitlines()

    as_json = runner.invoke(root, [*inspect, "--json"])
    document = json.loads(as_json.stdout)
    assert (document["boundary"], document["user"]) == ("accepted", "revoked")
    assert document["header"]["alg"] == alg
    assert document["claims"]["sub"] == "alice"

    for output in (result.output, after.output, as_json.output):
        assert jwk[secret_member] not in output
        assert kek_config not in output
        assert kek_config.split(":")[1] not in output
        assert user_secret.hex() not in output


def test_inspect_without_keys_or_store_skips_both_layers(
    runner: CliRunner, root: typer.Typer, key_file: Path, db_url: str
) -> None:
    """Decoding alone is allowed, and says plainly that nothing was checked."""
    token = issue(runner, root, key_file, db_url, "--sub", "alice")
    result = runner.invoke(root, ["token", "inspect", token, "--json"])
    assert result.exit_code == 0, result.output
    document = json.loads(result.stdout)
    assert (document["boundary"], document["user"]) == ("skipped", "skipped")

    human = runner.invoke(root, ["token", "inspect", token])
    assert "boundary: skipped (no key file here: --key-file or --jwks)" in human.stdout.splitlines()
    assert "user:     skipped (no database here: --database-url)" in human.stdout.splitlines()


def test_inspect_reports_a_forged_signature_at_the_boundary(
    runner: CliRunner, root: typer.Typer, key_file: Path, db_url: str, tmp_path: Path
) -> None:
    """A token signed by another key is 'bad_signature' or 'unknown_kid', never accepted."""
    other = tmp_path / "other.json"
    other.write_text(json.dumps({"keys": [SigningKey.generate("EdDSA").export_private_jwk()]}))
    other.chmod(0o600)
    token = issue(runner, root, other, db_url, "--sub", "alice")
    jwks = tmp_path / "jwks.json"
    entry = SigningKey.from_jwk(json.loads(key_file.read_text())["keys"][0]).to_public_jwk()
    jwks.write_text(json.dumps({"keys": [entry]}))
    result = runner.invoke(root, ["token", "inspect", token, "--jwks", str(jwks), "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["boundary"] == "unknown_kid"


def test_verify_boundary_only_accepts_a_revoked_token_and_says_so(
    runner: CliRunner, root: typer.Typer, key_file: Path, db_url: str
) -> None:
    """--boundary-only is documented as not revocation-aware, and warns when used."""
    token = issue(runner, root, key_file, db_url, "--sub", "alice")
    runner.invoke(root, ["revoke", "--user", "alice", "--database-url", db_url])
    result = runner.invoke(
        root, ["token", "verify", token, "--key-file", str(key_file), "--boundary-only"]
    )
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["sub"] == "alice"
    assert result.stderr == "warning: boundary layer only: not revocation-aware\n"


def test_verify_with_the_wrong_audience_is_refused_at_the_boundary(
    runner: CliRunner, root: typer.Typer, key_file: Path, db_url: str
) -> None:
    """The claims policy applies: a token for another audience exits 1 'invalid_claim'."""
    token = issue(runner, root, key_file, db_url, "--sub", "alice")
    result = runner.invoke(
        root,
        [
            "token", "verify", token, "--key-file", str(key_file),
            "--database-url", db_url, "--audience", "billing",
        ],
    )  # fmt: skip
    assert result.exit_code == 1
    assert result.stderr == "error: refused by the boundary layer: invalid_claim (claim 'aud')\n"


def test_verify_reads_the_token_from_stdin(
    runner: CliRunner, root: typer.Typer, key_file: Path, db_url: str
) -> None:
    """'-' keeps the token out of shell history."""
    token = issue(runner, root, key_file, db_url, "--sub", "alice")
    result = runner.invoke(
        root,
        ["token", "verify", "-", "--key-file", str(key_file), "--database-url", db_url],
        input=token + "\n",
    )
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["sub"] == "alice"


@pytest.mark.parametrize(
    ("token", "code"),
    [("not-a-token", "malformed"), ("a.b.c", "malformed"), ("x" * 10_000, "too_large")],
)
def test_malformed_token_is_exit_1_without_traceback(
    runner: CliRunner, root: typer.Typer, key_file: Path, db_url: str, token: str, code: str
) -> None:
    """Garbage input is one line and exit 1, for verify and inspect alike."""
    verify = runner.invoke(
        root, ["token", "verify", token, "--key-file", str(key_file), "--database-url", db_url]
    )
    assert verify.exit_code == 1
    assert verify.stderr == f"error: refused by the boundary layer: {code}\n"
    inspect = runner.invoke(root, ["token", "inspect", token])
    assert inspect.exit_code == 1
    assert inspect.stderr.startswith("error: cannot decode the token: ")
    assert inspect.stderr.count("\n") == 1
    assert token not in inspect.output


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("not json", "error: cannot read {path}: not JSON\n"),
        ('{"keys": []}', 'error: cannot read {path}: expected {{"keys": [private JWK, ...]}}\n'),
        ('{"keys": [{"kty": "OKP"}]}', "error: bad key in {path}: JWK has no private part\n"),
    ],
)
def test_bad_key_file_is_one_line(
    runner: CliRunner, root: typer.Typer, tmp_path: Path, db_url: str, content: str, message: str
) -> None:
    """A broken key file names the file and the problem, never a key."""
    path = tmp_path / "bad.json"
    path.write_text(content)
    path.chmod(0o600)
    result = runner.invoke(
        root,
        ["token", "issue", "--key-file", str(path), "--sub", "a", "--database-url", db_url],
    )
    assert result.exit_code == 1
    assert result.stderr == message.format(path=path)


def test_database_down_is_exit_1_one_line(
    runner: CliRunner, root: typer.Typer, key_file: Path
) -> None:
    """An unreachable database is a clear error that shows neither URL nor traceback."""
    url = "postgresql+psycopg://sjti:hunter2@127.0.0.1:1/sjti?connect_timeout=2"
    result = runner.invoke(
        root,
        ["token", "issue", "--key-file", str(key_file), "--sub", "a", "--database-url", url],
    )
    assert result.exit_code == 1
    assert result.stderr == "error: database unavailable: OperationalError\n"
    assert "hunter2" not in result.output


def test_database_without_tables_says_what_to_run(
    runner: CliRunner, root: typer.Typer, key_file: Path, tmp_path: Path
) -> None:
    """A missing SQLite file is not silently created: the message names `sjti db upgrade`."""
    path = tmp_path / "missing.db"
    result = runner.invoke(
        root,
        [
            "token", "issue", "--key-file", str(key_file), "--sub", "a",
            "--database-url", f"sqlite:///{path}",
        ],
    )  # fmt: skip
    assert result.exit_code == 1
    assert result.stderr == f"error: no database file {path}: run 'sjti db upgrade' first\n"
    assert not path.exists()


def test_missing_or_bad_kek_is_exit_1_without_echoing_it(
    root: typer.Typer, key_file: Path, db_url: str
) -> None:
    """The KEK comes from SJTI_KEK only; a bad one is named by position, never shown."""
    args = ["token", "issue", "--key-file", str(key_file), "--sub", "a", "--database-url", db_url]
    missing = CliRunner(env={"SJTI_KEK": None}).invoke(root, args)
    assert missing.exit_code == 1
    assert missing.stderr.startswith("error: SJTI_KEK is not set")

    bad_value = "kek-1:c2hvcnQtYnV0LXNlY3JldA"
    bad = CliRunner(env={"SJTI_KEK": bad_value}).invoke(root, args)
    assert bad.exit_code == 1
    assert bad.stderr == "error: SJTI_KEK: KEK config entry 1: key must decode to 32 bytes\n"
    assert "c2hvcnQtYnV0LXNlY3JldA" not in bad.output
