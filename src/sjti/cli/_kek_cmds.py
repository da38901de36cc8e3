"""``sjti kek rotate``: move every stored secret to the primary KEK of ``SJTI_KEK``.

Rotation, step by step: put the new KEK first in ``SJTI_KEK`` (the old ones after it),
deploy, run ``sjti kek rotate``; once it reports 0 secrets under an old KEK, drop that KEK
from ``SJTI_KEK``. User keys do not change: nobody is logged out. Each batch is one
transaction with one audit row (kind ``kek_rewrap``), so an interrupted run is simply run
again. Output names KEK ids only, never key material.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Annotated

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from .._core.wrapping import Kek, KekRing
from ..errors import SjtiError, UnwrapError
from ._keys_cmds import CliError, cli_errors, console, err_console, warn
from ._revoke_cmds import _default_actor, open_store, read_kek_ring
from ._settings import DatabaseUrl, cli_settings

if TYPE_CHECKING:
    from ..settings import Settings
    from ..stores.sql import SqlSecretStore

__all__ = ["KekRotation", "kek_new", "kek_rotate", "rotate_kek"]

DEFAULT_BATCH_SIZE = 10_000  # one transaction each; the bulk path measured at this size


@dataclass(frozen=True, slots=True)
class KekRotation:
    """What a run did (``dry_run``: would do): KEK ids and counts only."""

    primary: str
    moved: int  # with dry_run: how many would move
    remaining: dict[str, int]  # old KEK id (from the ring) -> secrets still under it
    unknown: int  # secrets under a KEK that is not in the ring at all
    dry_run: bool


def _secrets(n: int) -> str:
    return f"{n} secret" if n == 1 else f"{n} secrets"


def rotate_kek(
    database_url: str | None,
    *,
    batch_size: int = DEFAULT_BATCH_SIZE,
    dry_run: bool = False,
    actor: str | None = None,
    show_progress: bool = False,
) -> KekRotation:
    """Rewrap under the ring's primary KEK (``SJTI_KEK``); report what is left per old KEK.

    ``show_progress``: a progress bar on stderr, when stderr is a terminal.
    """
    if batch_size < 1:
        raise CliError("--batch-size must be at least 1")
    settings = cli_settings(database_url=database_url)
    ring = _with_service_dev_kek(read_kek_ring(settings), settings)
    with open_store(database_url, ring) as store:
        pending = store.rewrap_pending()
        moved = pending if dry_run else _run(store, pending, batch_size, actor, show_progress)
        remaining = {kek.kid: store.rewrap_pending(kek.kid) for kek in ring.keks[1:]}
        left = pending if dry_run else store.rewrap_pending()
    return KekRotation(
        primary=ring.primary.kid,
        moved=moved,
        remaining=remaining,
        unknown=left - sum(remaining.values()),
        dry_run=dry_run,
    )


def _with_service_dev_kek(ring: KekRing, settings: Settings) -> KekRing:
    """The service keeps a development KEK in its key file until SJTI_KEK is set: secrets
    wrapped under it are moved too (it joins the ring after SJTI_KEK's KEKs, to unwrap
    only), and it is reported like any old KEK: droppable only once nothing uses it."""
    from pathlib import Path

    from .._keyfile import dev_kek_ring

    try:
        dev = dev_kek_ring(Path(settings.key_file))
    except SjtiError:  # no readable key file here: nothing to add
        dev = None
    if dev is not None:
        known = {k.kid for k in ring.keks}
        extra = [k for k in dev.keks if k.kid not in known]
        if extra:
            return KekRing([*ring.keks, *extra])
    return ring


def _run(
    store: SqlSecretStore, total: int, batch_size: int, actor: str | None, show_progress: bool
) -> int:
    moved = 0

    def rewrap(advance: Callable[[int], None]) -> int:
        nonlocal moved
        for count in store.rewrap(batch_size, actor=actor):
            moved += count
            advance(count)
        return moved

    try:
        if not show_progress or total == 0 or not err_console.is_terminal:
            return rewrap(lambda n: None)
        columns = (
            TextColumn("rewrapping"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeRemainingColumn(),
        )
        with Progress(*columns, console=err_console, transient=True) as progress:
            task = progress.add_task("rewrap", total=total)
            return rewrap(lambda n: progress.advance(task, n))
    except UnwrapError:
        raise CliError(
            f"a stored secret does not open with any KEK in SJTI_KEK (a KEK missing from the "
            f"ring, or a corrupted row); {_secrets(moved)} moved before it, its batch "
            "changed nothing"
        ) from None


def _print(result: KekRotation) -> None:
    if result.dry_run:
        console.print(
            f"would move {_secrets(result.moved)} to KEK {result.primary} "
            "(dry run, nothing changed)"
        )
    else:
        console.print(f"moved {_secrets(result.moved)} to KEK {result.primary}")
    for kid, count in result.remaining.items():
        if result.dry_run:
            console.print(f"under KEK {kid}: {_secrets(count)} (would move)")
        elif count == 0:
            console.print(f"under KEK {kid}: 0 secrets; it can now be dropped from SJTI_KEK")
        else:
            console.print(
                f"under KEK {kid}: {_secrets(count)}; keep it in SJTI_KEK until this is 0 "
                "(run again)"
            )
    if result.unknown:
        warn(f"{_secrets(result.unknown)} under a KEK that is not in SJTI_KEK")


def kek_rotate(
    batch_size: Annotated[
        int, typer.Option("--batch-size", min=1, help="Secrets per transaction.")
    ] = DEFAULT_BATCH_SIZE,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Count the secrets to move; change nothing.")
    ] = False,
    actor: Annotated[
        str | None,
        typer.Option(envvar="SJTI_ACTOR", help="Who rotates, for the audit (default cli:<login>)."),
    ] = None,
    database_url: DatabaseUrl = None,
) -> None:
    """Rewrap every user secret under the first KEK of SJTI_KEK (nobody is logged out).

    Put the new KEK first in SJTI_KEK, the old ones after it; drop an old KEK once this
    reports 0 secrets under it.
    """
    with cli_errors():
        result = rotate_kek(
            database_url,
            batch_size=batch_size,
            dry_run=dry_run,
            actor=actor or _default_actor(),
            show_progress=True,
        )
    _print(result)


def kek_new(
    kid: Annotated[
        str | None, typer.Option(help="Its id (default: 8 random URL-safe characters).")
    ] = None,
) -> None:
    """Print a new KEK, ``kid:base64url(32 random bytes)``: put it FIRST in SJTI_KEK (the
    current ones after it), deploy, then run ``sjti kek rotate``. Keep it secret."""
    with cli_errors():
        try:
            ring = KekRing([Kek.generate(kid)] if kid else [Kek.generate()])
        except ValueError as exc:
            raise CliError(str(exc)) from None
    typer.echo(ring.to_config())
