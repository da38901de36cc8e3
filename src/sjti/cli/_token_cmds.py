"""``sjti token issue|inspect|verify``: one token, both layers, from the shell.

* ``issue`` signs an access token for a user, creating the user's key in the store on
  first use (``ensure``).
* ``inspect`` decodes header and claims WITHOUT trusting them and shows what each layer
  says: the boundary (signature and claims, with ``--key-file`` or ``--jwks``) and the
  user layer (``sjti`` against the user's key, with the store and ``SJTI_KEK``).
* ``verify`` exits 0 only if both layers accept. ``--boundary-only`` skips the user layer
  and is therefore **not revocation-aware**.

Nothing here prints a key, a user secret or the KEK. A token given as ``-`` is read from
stdin, which keeps it out of shell history.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any, Final

import typer
from rich.json import JSON
from rich.markup import escape

from .._core.binding import UserKey, check_sjti
from .._core.claims import Claims, ClaimsPolicy
from .._core.codec import b64url_decode, loads_object
from .._core.jws import DEFAULT_MAX_TOKEN_SIZE
from .._core.keyset import KeySet
from ..errors import (
    InvalidClaimError,
    MalformedTokenError,
    RevokedTokenError,
    TokenError,
    UnwrapError,
)
from ..settings import Settings
from ..stores._devices import DEFAULT_MAX_DEVICES
from ..stores.base import SecretStore
from ..tokens import BoundaryVerifier, Issuer, system_clock
from ._keys_cmds import CliError, cli_errors, console, err_console, load_jwks, load_key_file
from ._revoke_cmds import _service_ids, is_service_store, open_store
from ._settings import DatabaseUrl, cli_settings

__all__ = [
    "LayerVerdicts",
    "app",
    "boundary_verdict",
    "decode_unverified",
    "issue_token",
    "judge",
    "parse_claims",
    "user_verdict",
]

app = typer.Typer(help="Issue, inspect and verify access tokens.", no_args_is_help=True)

ACCEPTED: Final = "accepted"
SKIPPED: Final = "skipped"

KeyFile = Annotated[
    Path | None,
    typer.Option(
        "--key-file",
        help="Key file: the service's (sjti-keys.json) or one 'sjti keys new' wrote "
        "(default: the key_file setting).",
        show_default=False,
    ),
]
JwksFile = Annotated[
    Path | None,
    typer.Option("--jwks", help="Public JWKS file ('sjti keys jwks' output) to verify with."),
]
IssuerOpt = Annotated[
    str | None,
    typer.Option(
        "--issuer", help="The 'iss' claim (default: the issuer setting).", show_default=False
    ),
]
AudienceOpt = Annotated[
    str | None,
    typer.Option(
        "--audience", help="The 'aud' claim (default: the audience setting).", show_default=False
    ),
]
TokenArg = Annotated[str, typer.Argument(help="The token, or '-' to read it from stdin.")]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")]


# ---------------------------------------------------------------------------------------
# plain functions


def parse_claims(pairs: list[str]) -> dict[str, Any]:
    """``NAME=VALUE`` pairs; VALUE is JSON when it parses (``n=3``, ``admin=true``),
    otherwise a string (``scope=read write``)."""
    claims: dict[str, Any] = {}
    for pair in pairs:
        name, sep, raw = pair.partition("=")
        if not sep or not name:
            raise CliError("--claim expects NAME=VALUE")
        if name in claims:
            raise CliError(f"--claim {name!r} given twice")
        try:
            claims[name] = json.loads(raw)
        except ValueError:
            claims[name] = raw
    return claims


def issue_token(
    keys: KeySet,
    store: SecretStore,
    subject: str,
    *,
    issuer: str,
    audience: str,
    ttl: int,
    claims: Mapping[str, Any] | None = None,
    max_devices: int = DEFAULT_MAX_DEVICES,
) -> str:
    """A token for ``subject`` bound to its key in ``store`` (created on first use)."""
    if not subject:
        raise CliError("--sub must not be empty")
    signer = Issuer(keys, issuer=issuer, audience=audience, ttl=ttl)
    # Validate everything that needs no database before the store creates a user key.
    signer.claims_for(subject, UserKey.generate(), claims=claims)
    key = store.ensure(subject)
    sign_in = getattr(store, "sign_in", None)
    if key.devices is not None and sign_in is not None:
        # The user's devices are tracked: a token without a listed sid would be refused,
        # so the CLI signs in a device of its own (sign it out like any other).
        signed_in = sign_in(subject, max_devices=max_devices)
        return signer.issue(subject, signed_in.key, claims={**(claims or {}), "sid": signed_in.sid})
    return signer.issue(subject, key, claims=claims)


def decode_unverified(token: str) -> tuple[dict[str, Any], Claims]:
    """Header and claims as written in the token. NOT verified: show, never trust."""
    if len(token) > DEFAULT_MAX_TOKEN_SIZE:
        raise MalformedTokenError("token too large")
    parts = token.split(".")
    if len(parts) != 3:
        raise MalformedTokenError("a compact JWS has exactly three segments")
    return loads_object(b64url_decode(parts[0])), loads_object(b64url_decode(parts[1]))


@dataclass(frozen=True, slots=True)
class LayerVerdicts:
    """``"accepted"``, an error ``code``, or ``"skipped"`` for each layer."""

    boundary: str
    user: str
    user_note: str | None = None  # why the user layer was skipped or refused

    @property
    def first_refusal(self) -> tuple[str, str] | None:
        for layer, verdict in (("boundary", self.boundary), ("user", self.user)):
            if verdict not in (ACCEPTED, SKIPPED):
                return layer, verdict
        return None


def boundary_verdict(token: str, keys: KeySet | None, policy: ClaimsPolicy) -> str:
    """``"accepted"``, the refusal's code, or ``"skipped"`` without keys."""
    if keys is None:
        return SKIPPED
    try:
        BoundaryVerifier(keys, policy).verify(token, now=system_clock())
    except TokenError as exc:
        return exc.code
    return ACCEPTED


def refused_claim(token: str, keys: KeySet | None, policy: ClaimsPolicy) -> str | None:
    """The claim the boundary layer refused (``iss``, ``aud``…), to name it to a person."""
    if keys is None:
        return None
    try:
        BoundaryVerifier(keys, policy).verify(token, now=system_clock())
    except TokenError as exc:
        claim = getattr(exc, "claim", None)
        return claim if isinstance(claim, str) else None
    return None


def user_verdict(claims: Claims, store: SecretStore | None) -> tuple[str, str | None]:
    """``sjti`` against the key ``store`` holds for ``sub``, with a note on refusals.

    Read-only: never creates a user key. A user without a key counts as revoked.
    """
    if store is None:
        return SKIPPED, None
    subject = claims.get("sub")
    if type(subject) is not str or not subject:
        return InvalidClaimError.code, "no usable 'sub' claim"
    try:
        user_key = store.load(subject)
    except UnwrapError:
        return "unwrap_failed", "the stored key does not open with SJTI_KEK"
    if user_key is None:
        return RevokedTokenError.code, "the user has no key in the store"
    try:
        check_sjti(claims, user_key)
    except TokenError as exc:
        return exc.code, None
    return ACCEPTED, None


def judge(
    token: str,
    claims: Claims,
    *,
    keys: KeySet | None,
    policy: ClaimsPolicy,
    store: SecretStore | None,
) -> LayerVerdicts:
    """Each layer's verdict on its own (``inspect`` shows both even if one refuses)."""
    user, note = user_verdict(claims, store)
    return LayerVerdicts(boundary_verdict(token, keys, policy), user, note)


def _read_token(token: str) -> str:
    if token == "-":  # noqa: S105 - the stdin marker, not a password
        token = sys.stdin.read(DEFAULT_MAX_TOKEN_SIZE + 1)
    token = token.strip()
    if not token:
        raise CliError("no token given")
    return token


def _verification_keys(
    settings: Settings, key_file: Path | None, jwks: Path | None
) -> KeySet | None:
    """``--jwks``, else the key file (given or from the settings) when it exists."""
    if key_file is not None and jwks is not None:
        raise CliError("use --key-file or --jwks, not both")
    if jwks is not None:
        return load_jwks(jwks)
    path = Path(settings.key_file)
    return load_key_file(path) if key_file is not None or path.exists() else None


def _policy(settings: Settings) -> ClaimsPolicy:
    return ClaimsPolicy(issuer=settings.issuer, audience=settings.audience, leeway=settings.leeway)


def _colour(verdict: str) -> str:
    if verdict == ACCEPTED:
        return f"[green]{verdict}[/green]"
    if verdict == SKIPPED:
        return f"[dim]{verdict}[/dim]"
    return f"[red]{escape(verdict)}[/red]"


def _dump(value: Any) -> str:
    return json.dumps(value, indent=2, ensure_ascii=True)


def _when(value: object, now: int) -> str | None:
    if type(value) is not int:
        return None
    try:
        at = datetime.fromtimestamp(value, UTC).strftime("%Y-%m-%d %H:%M:%SZ")
    except (OverflowError, OSError, ValueError):
        return None
    delta = value - now
    span = abs(delta)
    if span >= 3600:
        text = f"{span // 3600}h{span % 3600 // 60:02d}m"
    else:
        text = f"{span // 60}m{span % 60:02d}s"
    return f"{at} ({'in ' + text if delta >= 0 else text + ' ago'})"


# ---------------------------------------------------------------------------------------
# commands


@app.command("issue")
def token_issue(
    sub: Annotated[
        str,
        typer.Option(
            "--sub", help="The user ('sub'); on the service's database, a username works too."
        ),
    ],
    key_file: KeyFile = None,
    claim: Annotated[
        list[str] | None,
        typer.Option(
            "--claim",
            help="Extra claim NAME=VALUE (repeatable); VALUE is JSON if it parses, else text.",
        ),
    ] = None,
    ttl: Annotated[
        int | None,
        typer.Option(help="Lifetime in seconds (default: the access_ttl setting).", min=1),
    ] = None,
    issuer: IssuerOpt = None,
    audience: AudienceOpt = None,
    as_json: JsonOpt = False,
    database_url: DatabaseUrl = None,
) -> None:
    """Issue an access token for a user (its key is created in the store on first use)."""
    with cli_errors():
        settings = _settings(key_file, issuer, audience, database_url)
        keys = _signing_keys(settings)
        extra = parse_claims(claim or [])
        lifetime = ttl if ttl is not None else settings.access_ttl
        with open_store(settings.database_url) as store:
            subject = _service_ids(store, [sub])[0] if is_service_store(store) else sub
            token = issue_token(
                keys,
                store,
                subject,
                issuer=settings.issuer,
                audience=settings.audience,
                ttl=lifetime,
                claims=extra,
                max_devices=settings.max_devices,
            )
        _, claims = decode_unverified(token)
    if as_json:
        document = {
            "access_token": token,
            "token_type": "bearer",
            "expires_in": lifetime,
            "claims": claims,
        }
        typer.echo(_dump(document))
    else:
        typer.echo(token)


def _settings(
    key_file: Path | None, issuer: str | None, audience: str | None, database_url: str | None
) -> Settings:
    return cli_settings(
        key_file=None if key_file is None else str(key_file),
        issuer=issuer,
        audience=audience,
        database_url=database_url,
    )


def _signing_keys(settings: Settings) -> KeySet:
    path = Path(settings.key_file)
    if not path.exists():
        raise CliError(
            f"no key file {path}: run in the service's directory (it makes one on first "
            "start), pass --key-file, or make one with 'sjti keys new'"
        )
    return load_key_file(path)


def _store_url(settings: Settings, given: str | None) -> str | None:
    """The database for the user layer: the one given, else the setting's unless it is a
    SQLite file that does not exist (then the user layer is skipped, not created)."""
    if given is not None:
        return given
    url = settings.database_url
    if url.startswith("sqlite:///") and not Path(url.removeprefix("sqlite:///")).exists():
        return None
    return url


@app.command("inspect")
def token_inspect(
    token: TokenArg,
    key_file: KeyFile = None,
    jwks: JwksFile = None,
    issuer: IssuerOpt = None,
    audience: AudienceOpt = None,
    database_url: DatabaseUrl = None,
    as_json: JsonOpt = False,
) -> None:
    """Show a token's header and claims (unverified) and each layer's verdict."""
    with cli_errors():
        text = _read_token(token)
        try:
            header, claims = decode_unverified(text)
        except MalformedTokenError as exc:
            raise CliError(f"cannot decode the token: {exc}") from None
        settings = _settings(key_file, issuer, audience, database_url)
        keys = _verification_keys(settings, key_file, jwks)
        policy = _policy(settings)
        store_url = _store_url(settings, database_url)
        if store_url is None:
            verdicts = judge(text, claims, keys=keys, policy=policy, store=None)
        else:
            with open_store(store_url) as store:
                verdicts = judge(text, claims, keys=keys, policy=policy, store=store)
    if as_json:
        document = {
            "header": header,
            "claims": claims,
            "boundary": verdicts.boundary,
            "user": verdicts.user,
        }
        typer.echo(_dump(document))
        return
    console.print("[bold]header[/bold] [yellow](unverified)[/yellow]")
    console.print(JSON(_dump(header)))
    console.print("[bold]claims[/bold] [yellow](unverified: decoded, not trusted)[/yellow]")
    console.print(JSON(_dump(claims)))
    now = system_clock()
    for name in ("iat", "nbf", "exp"):
        when = _when(claims.get(name), now)
        if when is not None:
            console.print(f"{name}: {when}", soft_wrap=True)
    boundary_note = "" if keys is not None else " (no key file here: --key-file or --jwks)"
    console.print(f"boundary: {_colour(verdicts.boundary)}{boundary_note}", soft_wrap=True)
    if verdicts.user == SKIPPED:
        user_note = " (no database here: --database-url)"
    else:
        user_note = f" ({escape(verdicts.user_note)})" if verdicts.user_note else ""
    console.print(f"user:     {_colour(verdicts.user)}{user_note}", soft_wrap=True)
    console.print(
        "[dim]A token is valid only if both layers accept; the boundary layer alone is "
        "not revocation-aware.[/dim]",
        soft_wrap=True,
    )


@app.command("verify")
def token_verify(
    token: TokenArg,
    key_file: KeyFile = None,
    jwks: JwksFile = None,
    issuer: IssuerOpt = None,
    audience: AudienceOpt = None,
    boundary_only: Annotated[
        bool,
        typer.Option(
            "--boundary-only",
            help="Check signature and claims only: NOT revocation-aware (no store needed).",
        ),
    ] = False,
    as_json: JsonOpt = False,
    database_url: DatabaseUrl = None,
) -> None:
    """Exit 0 and print the claims if both layers accept the token; else exit 1 and the code."""
    with cli_errors():
        text = _read_token(token)
        settings = _settings(key_file, issuer, audience, database_url)
        keys = _verification_keys(settings, key_file, jwks)
        if keys is None:
            raise CliError(
                f"no key file {settings.key_file} here: pass --key-file or --jwks to verify"
            )
        policy = _policy(settings)
        boundary = boundary_verdict(text, keys, policy)
        user, claims = SKIPPED, Claims()
        if boundary == ACCEPTED:
            _, claims = decode_unverified(text)  # the boundary just verified them
            if not boundary_only:
                with open_store(settings.database_url) as store:
                    user, _ = user_verdict(claims, store)
        verdicts = LayerVerdicts(boundary, user)
    refusal = verdicts.first_refusal
    if as_json:
        document: dict[str, Any] = {
            "valid": refusal is None,
            "boundary": verdicts.boundary,
            "user": verdicts.user,
        }
        if refusal is None:
            document["claims"] = claims
        else:
            document["error"] = refusal[1]
        typer.echo(_dump(document))
    elif refusal is None:
        typer.echo(_dump(claims))
    if boundary_only and not as_json:
        err_console.print(
            "[yellow]warning:[/yellow] boundary layer only: not revocation-aware",
            soft_wrap=True,
        )
    if refusal is not None:
        if not as_json:
            layer, code = refusal
            claim = refused_claim(text, keys, policy) if layer == "boundary" else None
            named = f" (claim '{claim}')" if claim else ""
            err_console.print(
                f"[red]error:[/red] refused by the {layer} layer: {escape(code)}{named}",
                soft_wrap=True,
            )
        raise typer.Exit(1)
