"""``sjti users``: operate the reference service's users, with the service's own settings.

Run it where the service runs (same ``SJTI_*`` environment, same working directory: the
database URL, the key file and its development KEK, or ``SJTI_KEK``). This is how the
first admin is made: no request can grant a role (``POST /users`` always creates a plain
user), so an admin exists only because an operator said so here.

    sjti users create alice --admin --password-stdin < password.txt
    sjti users set-role bob admin
    sjti users disable mallory --reason "left the company"
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.markup import escape
from rich.table import Table

from ._keys_cmds import CliError, cli_errors, console
from ._settings import cli_settings

if TYPE_CHECKING:
    from ..server.services import Database
    from ..server.users import User

__all__ = ["app", "open_service"]

app = typer.Typer(help="Users of the reference service (its database, its settings).")


@contextmanager
def open_service() -> Iterator[Database]:
    """The service's database, store and keys, from the service's settings."""
    from ..server.services import Database

    database = Database.open(cli_settings())
    try:
        yield database
    finally:
        database.close()


def _user_or_fail(database: Database, name_or_id: str) -> User:
    from ..server.users import find_user

    user = find_user(database.engine, name_or_id)
    if user is None:
        raise CliError(f"no user {name_or_id!r}")
    return user


def _as_dict(user: User) -> dict[str, Any]:
    return {
        "id": user.id,
        "username": user.username,
        "role": user.role,
        "tenant": user.tenant,
        "created_at": user.created_at.isoformat(),
        "last_login_at": None if user.last_login_at is None else user.last_login_at.isoformat(),
        "disabled": user.disabled_at is not None,
    }


def _read_password(from_stdin: bool, username: str) -> str:
    from ..server.passwords import password_problem

    if from_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
    else:
        password = typer.prompt("password", hide_input=True, confirmation_prompt=True)
    problem = password_problem(password, username)
    if problem is not None:
        raise CliError(problem)
    return password


@app.command("create")
def create(
    username: Annotated[
        str, typer.Argument(help="3-64 of A-Z a-z 0-9 . _ @ - (stored lower-case).")
    ],
    admin: Annotated[bool, typer.Option("--admin", help="Give the admin role.")] = False,
    tenant: Annotated[str | None, typer.Option(help="The user's tenant (for cohorts).")] = None,
    password_stdin: Annotated[
        bool, typer.Option("--password-stdin", help="Read the password from standard input.")
    ] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print the user as JSON.")] = False,
) -> None:
    """Create a user (argon2id password hash); the only way to make the first admin."""
    from pydantic import ValidationError

    from ..server.models import NewUser
    from ..server.passwords import Passwords
    from ..server.users import DuplicateUserError, create_user

    with cli_errors():
        password = _read_password(password_stdin, username.lower())
        try:
            body = NewUser(username=username, password=password)
        except ValidationError as exc:
            raise CliError(f"invalid user: {exc.errors()[0]['msg']}") from None
        with open_service() as database:
            try:
                user = create_user(
                    database.engine,
                    body.username,
                    Passwords().hash(body.password),
                    role="admin" if admin else "user",
                    tenant=tenant,
                )
            except DuplicateUserError:
                raise CliError(f"username {body.username!r} is taken") from None
    _print_user(user, as_json)


@app.command("list")
def list_(
    limit: Annotated[int, typer.Option(help="How many users.", min=1, max=10_000)] = 100,
    offset: Annotated[int, typer.Option(help="Skip this many (oldest first).", min=0)] = 0,
    as_json: Annotated[bool, typer.Option("--json", help="Print as JSON.")] = False,
) -> None:
    """Users, oldest first."""
    from ..server.users import list_users

    with cli_errors(), open_service() as database:
        found = list_users(database.engine, limit=limit, offset=offset)
    if as_json:
        typer.echo(json.dumps([_as_dict(u) for u in found], indent=2))
        return
    table = Table("id", "username", "role", "tenant", "created", "disabled")
    for user in found:
        table.add_row(
            user.id,
            escape(user.username),
            user.role,
            escape(user.tenant or ""),
            user.created_at.isoformat(timespec="seconds"),
            "yes" if user.disabled_at else "",
        )
    console.print(table)


@app.command("show")
def show(
    user: Annotated[str, typer.Argument(help="Username or id.")],
    as_json: Annotated[bool, typer.Option("--json", help="Print as JSON.")] = False,
) -> None:
    """One user: id, role, tenant, dates, disabled."""
    with cli_errors(), open_service() as database:
        found = _user_or_fail(database, user)
    _print_user(found, as_json)


@app.command("set-role")
def set_role(
    user: Annotated[str, typer.Argument(help="Username or id.")],
    role: Annotated[str, typer.Argument(help="user or admin.")],
) -> None:
    """Change a user's role. Their current tokens keep the old ``roles`` claim until they
    refresh; revoke them (``sjti revoke --user``) to apply it at once."""
    from ..server.users import ROLES
    from ..server.users import set_role as store_role

    with cli_errors():
        if role not in ROLES:
            raise CliError(f"role must be one of: {', '.join(ROLES)}")
        with open_service() as database:
            found = _user_or_fail(database, user)
            store_role(database.engine, found.id, role)
    console.print(f"{escape(found.username)} is now {role}")


@app.command("disable")
def disable(
    user: Annotated[str, typer.Argument(help="Username or id.")],
    reason: Annotated[str | None, typer.Option(help="Kept in the audit trail.")] = None,
    actor: Annotated[
        str, typer.Option(envvar="SJTI_ACTOR", help="Who disables, for the audit.")
    ] = "cli",
) -> None:
    """Disable a user: no more logins or refreshes, every token revoked at once (key,
    refresh sessions and the flag in one transaction, audited)."""
    from ..server.sessions import disable_users_too

    with cli_errors(), open_service() as database:
        found = _user_or_fail(database, user)
        if found.disabled_at is not None:
            raise CliError(f"{found.username!r} is already disabled")
        counted: list[int] = []
        if database.store.load_secret(found.id) is None:
            database.store.ensure(found.id)  # a key to rotate: the revocation is the record
        database.store.revoke(
            found.id,
            actor=actor,
            reason=reason or "user disabled",
            also=disable_users_too(counted),
        )
    console.print(
        f"{escape(found.username)} disabled; {sum(counted)} refresh session(s) ended, "
        "every access token refused"
    )


def _print_user(user: User, as_json: bool) -> None:
    if as_json:
        typer.echo(json.dumps(_as_dict(user), indent=2))
        return
    state = " (disabled)" if user.disabled_at else ""
    console.print(f"{escape(user.username)}  id={user.id}  role={user.role}{state}")
