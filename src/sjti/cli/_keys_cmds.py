"""``sjti keys rotate``, plus what every command of this package shares.

The key file written by ``sjti keys new`` is ``{"keys": [private JWK, ...]}``. Its first
entry is the active key (new tokens are signed with it); every later entry verifies only,
so tokens signed before a rotation stay valid until they expire. Private parts of the
older keys stay in the file so that ``sjti keys jwks`` can still publish them.

Commands parse options and call the plain functions here; those raise :class:`CliError`
(or an :class:`~sjti.errors.SjtiError`), which :func:`cli_errors` turns into one line on
stderr and exit code 1. Messages never carry a key, a secret, a KEK or a token.
"""

from __future__ import annotations

import json
import os
import stat
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape

from .._core.keys import SigningKey
from .._core.keyset import KeySet
from ..errors import BackendError, SjtiError

__all__ = [
    "CliError",
    "Rotation",
    "app",
    "cli_errors",
    "keys_rotate",
    "load_jwks",
    "load_key_file",
    "rotate_key_file",
]

app = typer.Typer(help="Application signing keys.", no_args_is_help=True)
console = Console()
err_console = Console(stderr=True)


class CliError(Exception):
    """The one error the commands turn into exit code 1; its message is shown as is."""


def fail(message: str) -> typer.Exit:
    """Print ``error: message`` on one line of stderr; return the exit to raise."""
    err_console.print(f"[red]error:[/red] {escape(message)}", soft_wrap=True)
    return typer.Exit(1)


def warn(message: str) -> None:
    err_console.print(f"[yellow]warning:[/yellow] {escape(message)}", soft_wrap=True)


@contextmanager
def cli_errors() -> Iterator[None]:
    """Map the errors a command may meet to one line and exit code 1 (no traceback)."""
    try:
        yield
    except CliError as exc:
        raise fail(str(exc)) from None
    except BackendError as exc:
        raise fail(f"database unavailable: {exc}") from None
    except SjtiError as exc:
        raise fail(str(exc)) from None


# ---------------------------------------------------------------------------------------
# key files


def _read_entries(path: Path) -> list[dict[str, Any]]:
    try:
        document = json.loads(path.read_text())
    except OSError as exc:
        raise CliError(f"cannot read {path}: {exc.strerror or type(exc).__name__}") from None
    except ValueError:
        raise CliError(f"cannot read {path}: not JSON") from None
    # "keys": `sjti keys new`; "signing_keys": the reference service's own key file.
    entries = (
        document.get("keys") or document.get("signing_keys") if isinstance(document, dict) else None
    )
    if not isinstance(entries, list) or not entries:
        raise CliError(f'cannot read {path}: expected {{"keys": [private JWK, ...]}}')
    if not all(isinstance(entry, dict) for entry in entries):
        raise CliError(f"cannot read {path}: every key must be a JSON object")
    return entries


def _signing_keys(path: Path, entries: list[dict[str, Any]]) -> list[SigningKey]:
    try:
        return [SigningKey.from_jwk(entry) for entry in entries]
    except SjtiError as exc:  # messages name members, never their values
        raise CliError(f"bad key in {path}: {exc}") from None


def load_key_file(path: Path) -> KeySet:
    """The key set of a key file: the first key signs, the others verify only."""
    entries = _read_entries(path)
    keys = _signing_keys(path, entries)
    try:
        keyset = KeySet(keys[0], verify_only=keys[1:])
    except SjtiError as exc:
        raise CliError(f"bad key file {path}: {exc}") from None
    if stat.S_IMODE(path.stat().st_mode) & 0o077:
        warn(f"{path} can be read by other users; run: chmod 600 {path}")
    return keyset


def load_jwks(path: Path) -> KeySet:
    """A verification-only key set from a public JWKS file (``sjti keys jwks`` output)."""
    try:
        text = path.read_bytes()
    except OSError as exc:
        raise CliError(f"cannot read {path}: {exc.strerror or type(exc).__name__}") from None
    try:
        return KeySet.from_jwks(text)
    except SjtiError as exc:
        raise CliError(f"bad JWKS in {path}: {exc}") from None


@dataclass(frozen=True, slots=True)
class Rotation:
    old_kid: str
    new_kid: str
    alg: str
    dropped: tuple[str, ...]  # kids removed from the file (beyond ``keep``)


def _write_private(path: Path, document: dict[str, Any]) -> None:
    """Replace ``path`` atomically with a file only its owner can read (mode 0600)."""
    fd, temp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.fchmod(fd, 0o600)
        with os.fdopen(fd, "w") as fh:
            json.dump(document, fh, indent=2)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(temp, path)
    except BaseException:
        Path(temp).unlink(missing_ok=True)
        raise
    os.chmod(path, 0o600)


def rotate_key_file(path: Path, alg: str | None = None, *, keep: int = 1) -> Rotation:
    """Put a new active key first; the previous active key and ``keep - 1`` older ones
    stay in the file for verification only."""
    if keep < 1:
        raise CliError("--keep must be at least 1 (the previous key must keep verifying)")
    entries = _read_entries(path)
    old = _signing_keys(path, entries)
    try:
        new = SigningKey.generate(alg or old[0].alg)
        KeySet(new, verify_only=old[:keep])  # refuses a kid clash before the file changes
    except SjtiError as exc:
        raise CliError(str(exc)) from None
    try:
        _write_private(path, {"keys": [new.export_private_jwk(), *entries[:keep]]})
    except OSError as exc:
        raise CliError(f"cannot write {path}: {exc.strerror or type(exc).__name__}") from None
    return Rotation(
        old_kid=old[0].kid,
        new_kid=new.kid,
        alg=new.alg,
        dropped=tuple(key.kid for key in old[keep:]),
    )


@app.command("rotate")
def keys_rotate(
    key_file: Annotated[Path, typer.Argument(help="Key file written by 'sjti keys new'.")],
    alg: Annotated[
        str | None,
        typer.Option(help="Algorithm of the new key (default: the current key's)."),
    ] = None,
    keep: Annotated[
        int,
        typer.Option(help="How many previous keys stay for verification (oldest dropped)."),
    ] = 1,
) -> None:
    """Add a new active signing key; the previous one keeps verifying until its tokens expire."""
    with cli_errors():
        rotation = rotate_key_file(key_file, alg, keep=keep)
    console.print(f"old kid: {escape(rotation.old_kid)} (verify only)", soft_wrap=True)
    console.print(f"new kid: {escape(rotation.new_kid)} (active, {rotation.alg})", soft_wrap=True)
    for kid in rotation.dropped:
        console.print(f"dropped kid: {escape(kid)}", soft_wrap=True)
