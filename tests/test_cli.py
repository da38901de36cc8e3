"""The CLI: thin commands, exact outputs, exit codes."""

from __future__ import annotations

import json
import stat
from pathlib import Path

from typer.testing import CliRunner

from sjti import KeySet
from sjti.cli._app import app

runner = CliRunner()


def test_demo_runs_every_step_as_expected() -> None:
    """`make demo` is the README's first command: every step must behave as documented."""
    result = runner.invoke(app, ["demo", "--json"])
    assert result.exit_code == 0, result.output
    steps = json.loads(result.output)["steps"]
    assert [s["outcome"] for s in steps] == [s["expected"] for s in steps]
    by_step = {(s["step"], s["layer"]): s["outcome"] for s in steps}
    assert by_step[("same token after revoke", "boundary")] == "accepted"
    assert by_step[("same token after revoke", "user")] == "revoked"
    assert by_step[("stolen app key: forged admin token", "user")] == "revoked"


def test_demo_table_mentions_both_layers() -> None:
    """The human output says which layer is revocation-aware."""
    result = runner.invoke(app, ["demo"])
    assert result.exit_code == 0
    assert "not revocation-aware" in result.output
    assert "revoked" in result.output


def test_keys_new_writes_private_file_and_jwks_prints_public_only(tmp_path: Path) -> None:
    """Key files are 0600; the JWKS printed from them carries no private member."""
    key_file = tmp_path / "keys.json"
    result = runner.invoke(app, ["keys", "new", "--out", str(key_file), "--alg", "ES256"])
    assert result.exit_code == 0, result.output
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    assert "d" in json.loads(key_file.read_text())["keys"][0]

    result = runner.invoke(app, ["keys", "jwks", str(key_file)])
    assert result.exit_code == 0, result.output
    jwks = json.loads(result.output)
    assert [sorted(k) for k in jwks["keys"]] == [["alg", "crv", "kid", "kty", "use", "x", "y"]]
    assert len(KeySet.from_jwks(jwks)) == 1


def test_keys_new_refuses_to_overwrite(tmp_path: Path) -> None:
    """Overwriting a key file logs everyone out: it takes --force."""
    key_file = tmp_path / "keys.json"
    key_file.write_text("{}")
    result = runner.invoke(app, ["keys", "new", "--out", str(key_file)])
    assert result.exit_code == 1
    assert key_file.read_text() == "{}"


def test_keys_new_unknown_algorithm_is_exit_1() -> None:
    """A typo in --alg is a clear error, not a traceback."""
    result = runner.invoke(app, ["keys", "new", "--out", "/nonexistent/x", "--alg", "none"])
    assert result.exit_code == 1
    assert "not supported" in result.output


def test_db_upgrade_creates_tables_once_and_is_idempotent(tmp_path: Path) -> None:
    """`sjti db upgrade` replaces hand-run SQL: first run migrates, second changes nothing."""
    url = f"sqlite:///{tmp_path / 'sjti.db'}"
    first = runner.invoke(app, ["db", "upgrade", "--database-url", url])
    second = runner.invoke(app, ["db", "upgrade"], env={"SJTI_DATABASE_URL": url})
    assert first.exit_code == 0, first.output
    assert "secrets:sjti_user_secrets v1" in first.output
    assert second.exit_code == 0, second.output
    assert "schema already up to date" in second.output


def test_db_upgrade_with_a_bad_url_is_exit_1_without_traceback() -> None:
    """A typo in the URL is a clear one-line error."""
    result = runner.invoke(app, ["db", "upgrade", "--database-url", "nope://"])
    assert result.exit_code == 1
    assert "cannot use this database URL" in result.output
    assert "Traceback" not in result.output


def test_compare_command_reaches_the_harness() -> None:
    """`sjti compare` passes its options through: --json gives the machine-readable cells."""
    result = runner.invoke(
        app,
        [
            "compare",
            "--quick",
            "--sqlite-only",
            "--users",
            "20",
            "--tokens",
            "1",
            "--json",
            "--no-write",
        ],
    )
    assert result.exit_code == 0, result.output
    cells = json.loads(result.output[result.output.index("{") :])["cells"]
    strategies = {cell["strategy"] for cell in cells}
    assert {"sjti", "epoch", "denylist", "session", "plain"} <= strategies


def test_every_command_help_lists_its_options() -> None:
    """`sjti bench --help` and `sjti compare --help` show their real options (they parse
    their own), like every other command's --help."""
    import subprocess
    import sys

    for command, option in (("bench", "--quick"), ("compare", "--sqlite-only")):
        shown = subprocess.run(  # noqa: S603 - fixed argv
            [sys.executable, "-m", "sjti.cli", command, "--help"],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert shown.returncode == 0, shown.stderr
        assert option in shown.stdout
    for group, command, option in (("users", "create", "--admin"), ("kek", "new", "--kid")):
        result = runner.invoke(app, [group, command, "--help"])
        assert result.exit_code == 0
        assert option in result.stdout
