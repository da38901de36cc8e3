"""``sjti revoke``: rotate users' keys (by id, id file or cohort), with ``--dry-run``.

Also the store access the token commands share: :func:`open_store` reads the KEK ring
from ``SJTI_KEK`` (never from an option: options show up in ``ps`` and shell history).
"""

from __future__ import annotations

import getpass
import json
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Final

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from .._core.wrapping import KekRing
from ..cache._bus import DEFAULT_PG_CHANNEL
from ..errors import BackendError
from ..stores.base import (
    MAX_LISTED_IDS,
    Acknowledgement,
    Cohort,
    CohortError,
    RevocationResult,
    UnknownUserError,
)
from ._keys_cmds import CliError, cli_errors, console, err_console
from ._settings import DatabaseUrl, cli_settings

__all__ = [
    "BATCH_SIZE",
    "DatabaseUrl",
    "RevokeOutcome",
    "open_store",
    "read_ids",
    "read_kek_ring",
    "revoke",
    "revoke_ids",
    "revoke_users",
]

BATCH_SIZE: Final = 1000
_NO_FILTER: Final = Cohort()

if TYPE_CHECKING:  # SQLAlchemy is imported only when a command needs the database
    from sqlalchemy import Engine

    from ..settings import Settings
    from ..stores.sql import SqlSecretStore


def read_kek_ring(settings: Settings | None = None) -> KekRing:
    """The KEK ring of the ``kek`` setting (``SJTI_KEK``: ``kid:base64url-key,...``)."""
    settings = settings if settings is not None else cli_settings()
    if settings.kek is None or not settings.kek.get_secret_value().strip():
        raise CliError("SJTI_KEK is not set (the KEK ring: 'kid:base64url-key,...')")
    try:
        return KekRing.from_config(settings.kek.get_secret_value())
    except Exception as exc:  # from_config names the entry by position, never its text
        raise CliError(f"SJTI_KEK: {exc}") from None


@contextmanager
def open_store(
    database_url: str | None, kek_ring: KekRing | None = None
) -> Iterator[SqlSecretStore]:
    """A store on ``database_url`` (``None``: the setting) whose schema is in place; the
    engine is closed after.

    The reference service's database (it has ``sjti_users``) is opened the way the service
    opens it: its layout (keys in the users table), its cohort columns, and its KEK ring
    from its settings (``SJTI_KEK``, else the development KEK in its key file), checked
    against a stored key first. Any other database holds sjti's own secrets table and
    needs ``SJTI_KEK`` (or ``kek_ring``).
    """
    from sqlalchemy import create_engine, inspect, make_url
    from sqlalchemy.exc import ArgumentError, SQLAlchemyError

    from ..stores.sql import SqlSecretStore, schema_versions

    settings = cli_settings(database_url=database_url)
    try:
        url = make_url(settings.database_url)
        engine = create_engine(url)
    except (ArgumentError, ImportError, ValueError) as exc:
        raise CliError(f"cannot use this database URL: {type(exc).__name__}") from None
    path = url.database if url.get_backend_name() == "sqlite" else None
    if path and path != ":memory:" and not path.startswith("file:") and not Path(path).exists():
        engine.dispose()  # SQLite would create an empty file: say what to run instead
        raise CliError(f"no database file {path}: run 'sjti db upgrade' first")
    try:
        try:
            versions = schema_versions(engine)
            service = inspect(engine).has_table("sjti_users")
        except SQLAlchemyError as exc:
            raise CliError(f"database unavailable: {type(exc).__name__}") from None
        if service:
            yield _service_store(engine, settings, kek_ring)
            return
        if not any(scope.startswith("secrets:") for scope in versions):
            raise CliError("the database has no sjti tables: run 'sjti db upgrade' first")
        yield SqlSecretStore(engine, kek_ring if kek_ring is not None else read_kek_ring(settings))
    finally:
        engine.dispose()


def _service_store(engine: Engine, settings: Settings, kek_ring: KekRing | None) -> SqlSecretStore:
    """The service's store, with the service's settings and a checked KEK ring."""
    from .._keyfile import load_key_material
    from ..server.db import COHORT_COLUMNS, LAYOUT
    from ..server.services import kek_self_check
    from ..stores.sql import SqlSecretStore

    if kek_ring is None:
        if settings.kek is None and not Path(settings.key_file).exists():
            raise CliError(
                f"this is the service's database, but its key file {settings.key_file} is not "
                "here: run in the service's directory, or set SJTI_KEY_FILE or SJTI_KEK"
            )
        kek_ring = load_key_material(settings).kek_ring
        problem = kek_self_check(engine, kek_ring)
        if problem is not None:
            raise CliError(problem)
    notify = DEFAULT_PG_CHANNEL if engine.dialect.name == "postgresql" else None
    return SqlSecretStore(
        engine, kek_ring, LAYOUT, cohort_columns=COHORT_COLUMNS, notify_channel=notify
    )


def _also(store: SqlSecretStore) -> Any:
    """On the service's database a revocation also ends the users' refresh sessions, in
    the same transaction (as the service's own logout does)."""
    if not is_service_store(store):
        return None
    from ..server.sessions import revoke_families_of

    return revoke_families_of([])


def _service_ids(store: SqlSecretStore, names_or_ids: list[str]) -> list[str]:
    """The service's users by username or id (what operators type), or a clear error."""
    from ..server.users import find_user

    ids: list[str] = []
    for given in names_or_ids:
        user = find_user(store.engine, given)
        if user is None:
            raise CliError(f"unknown user {given!r}")
        ids.append(user.id)
    return list(dict.fromkeys(ids))


def is_service_store(store: SqlSecretStore) -> bool:
    """Whether ``store`` is the reference service's (refresh sessions live next to it)."""
    from ..server.db import LAYOUT

    return store.layout is LAYOUT


def read_ids(path: Path) -> list[str]:
    """User ids, one a line; blank lines and ``#`` comments skipped, duplicates dropped."""
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError as exc:
        raise CliError(f"cannot read {path}: {exc.strerror or type(exc).__name__}") from None
    except UnicodeDecodeError:
        raise CliError(f"cannot read {path}: not UTF-8") from None
    ids = [line.strip() for line in lines]
    return list(dict.fromkeys(i for i in ids if i and not i.startswith("#")))


def parse_when(value: str | None, option: str) -> datetime | None:
    """An ISO 8601 date or date-time; without a zone it is read as UTC."""
    if value is None:
        return None
    try:
        when = datetime.fromisoformat(value)
    except ValueError:
        raise CliError(f"{option} expects an ISO 8601 date, e.g. 2025-01-31T12:00Z") from None
    return when if when.tzinfo is not None else when.replace(tzinfo=UTC)


@dataclass(frozen=True, slots=True)
class RevokeOutcome:
    count: int
    user_ids: tuple[str, ...]
    dry_run: bool
    audit_ids: tuple[int, ...]
    truncated: bool = False
    event_ids: tuple[int, ...] = ()
    acknowledgement: Acknowledgement | None = None  # with --wait
    batches: int = 0  # a batched cohort revocation: its committed batches

    @classmethod
    def of(cls, results: Sequence[RevocationResult], dry_run: bool) -> RevokeOutcome:
        return cls(
            count=sum(r.count for r in results),
            user_ids=tuple(sorted(i for r in results for i in r.user_ids)),
            dry_run=dry_run,
            audit_ids=tuple(r.audit_id for r in results if r.audit_id is not None),
            truncated=any(r.truncated for r in results),
            event_ids=tuple(r.event_id for r in results if r.event_id is not None),
        )

    def plus(self, batch: RevocationResult) -> RevokeOutcome:
        """With one more committed batch: ids kept up to MAX_LISTED_IDS (memory stays
        bounded by a batch however large the cohort)."""
        ids = sorted((*self.user_ids, *batch.user_ids))
        return replace(
            self,
            count=self.count + batch.count,
            user_ids=tuple(ids[:MAX_LISTED_IDS]),
            audit_ids=(*self.audit_ids, *(() if batch.audit_id is None else (batch.audit_id,))),
            truncated=self.truncated or batch.truncated or len(ids) > MAX_LISTED_IDS,
            event_ids=(*self.event_ids, *(() if batch.event_id is None else (batch.event_id,))),
            batches=self.batches + 1,
        )


def revoke_ids(
    store: SqlSecretStore,
    user_ids: Sequence[str],
    *,
    actor: str | None,
    reason: str | None,
    dry_run: bool,
    batch_size: int = BATCH_SIZE,
    advance: Callable[[int], None] = lambda n: None,
) -> RevokeOutcome:
    """Revoke in batches of ``batch_size`` (one transaction and audit row each)."""
    results: list[RevocationResult] = []
    for start in range(0, len(user_ids), batch_size):
        batch = user_ids[start : start + batch_size]
        try:
            results.append(
                store.revoke_many(
                    batch, actor=actor, reason=reason, dry_run=dry_run, also=_also(store)
                )
            )
        except BackendError:
            if not results or dry_run:
                raise
            done = sum(r.count for r in results)
            raise CliError(
                f"database unavailable after revoking {done} users (ids {start + 1}.. of "
                f"{len(user_ids)} not done); running the same command again is safe"
            ) from None
        advance(len(batch))
    return RevokeOutcome.of(results, dry_run)


def revoke_cohort_batches(
    store: SqlSecretStore,
    cohort: Cohort,
    *,
    actor: str | None,
    reason: str | None,
    batch_size: int = MAX_LISTED_IDS,
    advance: Callable[[RevokeOutcome], None] = lambda outcome: None,
) -> RevokeOutcome:
    """A criteria cohort of any size, batch after batch: each one transaction (keys, the
    service's refresh sessions, audit row, one event); ``advance`` sees the outcome so
    far after each commit."""
    outcome = RevokeOutcome(0, (), False, ())
    batches = store.revoke_batches(
        cohort, batch_size=batch_size, actor=actor, reason=reason, also=_also(store)
    )
    try:
        for batch in batches:
            outcome = outcome.plus(batch)
            advance(outcome)
    except BackendError:
        if not outcome.batches:
            raise
        raise CliError(
            f"database unavailable after revoking {outcome.count} users in "
            f"{outcome.batches} batches (each committed); running the same command again "
            "is safe"
        ) from None
    return outcome


def _cohort_progress(
    total: int, run: Callable[[Callable[[RevokeOutcome], None]], RevokeOutcome]
) -> RevokeOutcome:
    """A bar on a terminal; elsewhere (logs, CI) one plain line per committed batch."""
    if not err_console.is_terminal:

        def line(outcome: RevokeOutcome) -> None:
            typer.echo(
                f"revoked {outcome.count}/{total} users ({outcome.batches} batches)", err=True
            )

        return run(line)
    columns = (
        TextColumn("revoking"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[batches]} batches"),
        TimeRemainingColumn(),
    )
    with Progress(*columns, console=err_console, transient=True) as progress:
        task = progress.add_task("revoke", total=total, batches=0)
        return run(lambda o: progress.update(task, completed=o.count, batches=o.batches))


def _default_actor() -> str:
    try:
        return f"cli:{getpass.getuser()}"
    except (KeyError, OSError):  # no passwd entry / no login name, e.g. in containers
        return "cli"


def _with_progress(
    total: int, run: Callable[[Callable[[int], None]], RevokeOutcome]
) -> RevokeOutcome:
    columns = (
        TextColumn("revoking"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
    )
    with Progress(*columns, console=err_console, transient=True) as progress:
        task = progress.add_task("revoke", total=total)
        return run(lambda n: progress.advance(task, n))


def _print(outcome: RevokeOutcome, as_json: bool) -> None:
    if as_json:
        document = {
            "dry_run": outcome.dry_run,
            "count": outcome.count,
            "user_ids": list(outcome.user_ids),
            "truncated": outcome.truncated,
            "audit_ids": list(outcome.audit_ids),
            "event_ids": list(outcome.event_ids),
        }
        if outcome.batches:
            document["batches"] = outcome.batches
        ack = outcome.acknowledgement
        if ack is not None:
            document["acknowledged_by"] = list(ack.acknowledged)
            document["pending_nodes"] = list(ack.pending)
        typer.echo(json.dumps(document, indent=2))
        return
    noun = "user" if outcome.count == 1 else "users"
    if outcome.dry_run:
        console.print(f"would revoke {outcome.count} {noun} (dry run, nothing changed)")
        for user_id in outcome.user_ids:
            typer.echo(user_id)  # plain: ids are data, not markup
        if outcome.truncated:
            console.print("(list truncated)")
    else:
        batches = f" in {outcome.batches} batches" if outcome.batches > 1 else ""
        console.print(f"revoked {outcome.count} {noun}{batches}")
        ack = outcome.acknowledgement
        if ack is not None and ack.complete:
            console.print(f"applied by every live node ({len(ack.acknowledged)})")


def _check_acknowledged(outcome: RevokeOutcome) -> None:
    """``--wait`` that timed out: committed, but say which nodes may still serve old keys."""
    ack = outcome.acknowledgement
    if ack is not None and not ack.complete:
        raise CliError(
            f"revoked (committed), but {len(ack.pending)} live node(s) had not applied event "
            f"{ack.event_id} by the timeout: {', '.join(ack.pending)}"
        )


def revoke(
    user: Annotated[
        list[str] | None,
        typer.Option("--user", "-u", help="User id to revoke (repeatable)."),
    ] = None,
    file: Annotated[
        Path | None,
        typer.Option(
            "--file",
            help=f"File of user ids, one a line ('#' comments allowed); "
            f"revoked in batches of {BATCH_SIZE}.",
        ),
    ] = None,
    tenant: Annotated[
        str | None, typer.Option(help="Users of this tenant (needs cohort columns).")
    ] = None,
    role: Annotated[
        str | None, typer.Option(help="Users with this role (needs cohort columns).")
    ] = None,
    created_before: Annotated[
        str | None,
        typer.Option(help="Users created before this ISO date, UTC if no zone (cohort columns)."),
    ] = None,
    last_login_before: Annotated[
        str | None,
        typer.Option(help="Users last logged in before this ISO date (needs cohort columns)."),
    ] = None,
    rotated_before: Annotated[
        str | None,
        typer.Option(help="Users whose key was last rotated before this ISO date."),
    ] = None,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Show who would be revoked; change nothing.")
    ] = False,
    reason: Annotated[str | None, typer.Option(help="Reason, kept in the audit trail.")] = None,
    actor: Annotated[
        str | None,
        typer.Option(envvar="SJTI_ACTOR", help="Who revokes, for the audit (default cli:<login>)."),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the result as JSON.")] = False,
    wait: Annotated[
        bool,
        typer.Option(
            "--wait",
            help="Return once every live node has applied the revocation (exit 1 with the "
            "nodes that had not, on timeout).",
        ),
    ] = False,
    timeout: Annotated[
        float, typer.Option(help="Seconds --wait waits at most.", min=0.0, max=300.0)
    ] = 5.0,
    batch_size: Annotated[
        int,
        typer.Option(
            min=1,
            max=MAX_LISTED_IDS,
            help="Cohort filters alone (any size): users per transaction, each with its "
            "audit row and one event; progress is shown per batch.",
        ),
    ] = MAX_LISTED_IDS,
    database_url: DatabaseUrl = None,
) -> None:
    """Revoke every token of some users at once (their keys rotate). KEK from SJTI_KEK."""
    with cli_errors():
        filters = Cohort(
            tenant=tenant,
            role=role,
            created_before=parse_when(created_before, "--created-before"),
            last_login_before=parse_when(last_login_before, "--last-login-before"),
            rotated_before=parse_when(rotated_before, "--rotated-before"),
        )
        outcome = revoke_users(
            database_url,
            users=user or [],
            file=file,
            filters=filters,
            dry_run=dry_run,
            reason=reason,
            actor=actor or _default_actor(),
            show_progress=not as_json,
            wait=timeout if wait else None,
            batch_size=batch_size,
        )
    _print(outcome, as_json)
    with cli_errors():
        _check_acknowledged(outcome)


def revoke_users(
    database_url: str | None,
    *,
    users: Sequence[str] = (),
    file: Path | None = None,
    filters: Cohort = _NO_FILTER,
    dry_run: bool = False,
    reason: str | None = None,
    actor: str | None = None,
    show_progress: bool = False,
    wait: float | None = None,
    batch_size: int = MAX_LISTED_IDS,
) -> RevokeOutcome:
    """Revoke by ids (``users`` or ``file``), or by cohort ``filters`` (AND ``users``;
    ``filters`` alone: in batches of ``batch_size``).

    ``wait``: seconds to wait until every live node applied the last event (events are
    ordered: applying the last means applying them all)."""
    if file is not None and (users or not filters.is_empty()):
        raise CliError("--file cannot be combined with --user or cohort filters")
    if not (users or file is not None or not filters.is_empty()):
        raise CliError(
            "say whom to revoke: --user, --file, --tenant, --role, --created-before, "
            "--last-login-before or --rotated-before"
        )
    if any(not u.strip() for u in users):
        raise CliError("--user must not be empty")
    ids = read_ids(file) if file is not None else list(dict.fromkeys(users))
    if file is not None and not ids:
        raise CliError(f"{file} holds no user ids")

    with open_store(database_url) as store:
        if is_service_store(store):
            ids = _service_ids(store, ids)
        how = _How(dry_run, reason, actor, show_progress, batch_size)
        outcome = _revoke_with(store, ids, file, filters, how)
        if wait is not None and not dry_run and outcome.event_ids:
            ack = store.wait_applied(max(outcome.event_ids), timeout=wait)
            outcome = replace(outcome, acknowledgement=ack)
        return outcome


@dataclass(frozen=True, slots=True)
class _How:
    """The options every kind of selection shares."""

    dry_run: bool
    reason: str | None
    actor: str | None
    show_progress: bool
    batch_size: int  # cohort filters alone


def _revoke_with(
    store: SqlSecretStore, ids: list[str], file: Path | None, filters: Cohort, how: _How
) -> RevokeOutcome:
    dry_run, reason, actor = how.dry_run, how.reason, how.actor
    if not filters.is_empty():
        try:
            return _revoke_criteria(store, ids, filters, how)
        except CohortError as exc:
            raise CliError(
                f"{exc}: selecting by tenant, role, created or last-login date needs the "
                "store configured with cohort columns (the app's users table); "
                "--user, --file and --rotated-before work without"
            ) from None
    if len(ids) == 1 and file is None:
        return _revoke_one(store, ids[0], actor=actor, reason=reason, dry_run=dry_run)

    def run(advance: Callable[[int], None]) -> RevokeOutcome:
        return revoke_ids(store, ids, actor=actor, reason=reason, dry_run=dry_run, advance=advance)

    if how.show_progress and len(ids) > BATCH_SIZE:
        return _with_progress(len(ids), run)
    return run(lambda n: None)


def _revoke_criteria(
    store: SqlSecretStore, ids: list[str], filters: Cohort, how: _How
) -> RevokeOutcome:
    """Criteria AND ids: one transaction (the ids bound it). Criteria alone: any size,
    so in batches, previewed first (the dry run, and the progress's total)."""
    dry_run, reason, actor, batch_size = how.dry_run, how.reason, how.actor, how.batch_size
    if ids:
        cohort = replace(filters, user_ids=frozenset(ids))
        result = store.revoke_cohort(
            cohort, actor=actor, reason=reason, dry_run=dry_run, also=_also(store)
        )
        return RevokeOutcome.of([result], dry_run)
    preview = store.preview_batches(filters)
    if dry_run:
        return RevokeOutcome.of([preview], dry_run)

    def run(advance: Callable[[RevokeOutcome], None]) -> RevokeOutcome:
        return revoke_cohort_batches(
            store, filters, actor=actor, reason=reason, batch_size=batch_size, advance=advance
        )

    if how.show_progress and preview.count > batch_size:
        return _cohort_progress(preview.count, run)
    return run(lambda outcome: None)


def _revoke_one(
    store: SqlSecretStore, user_id: str, *, actor: str | None, reason: str | None, dry_run: bool
) -> RevokeOutcome:
    if dry_run:
        result = store.revoke_many([user_id], actor=actor, reason=reason, dry_run=True)
        if result.count == 0:
            raise CliError(f"unknown user {user_id!r}")
    else:
        try:
            result = store.revoke(user_id, actor=actor, reason=reason, also=_also(store))
        except UnknownUserError:
            raise CliError(f"unknown user {user_id!r}") from None
    return RevokeOutcome.of([result], dry_run)
