"""PostgreSQL and Redis for the comparison, found like ``sjti bench`` finds them.

PostgreSQL is only used through scratch databases (``CREATE DATABASE
sjti_compare_<hex>``, one per contender and purpose, all dropped at the end). Redis keys
live under a per-run prefix, deleted at the end. A service that does not answer is a
:class:`CompareError` (``--sqlite-only`` leaves them out).
"""

from __future__ import annotations

import contextlib
import secrets
import sys
from collections.abc import Callable
from typing import Final, cast

from sqlalchemy import Engine, create_engine, text
from sqlalchemy.engine import make_url

from ..bench._backends import (
    DEFAULT_POSTGRES_URL,
    DEFAULT_REDIS_URL,
    POSTGRES_ENV,
    REDIS_ENV,
    redact,
)
from ._cells import CompareError
from ._redis_contender import CountingRedis, delete_prefix

__all__ = [
    "DEFAULT_POSTGRES_URL",
    "DEFAULT_REDIS_URL",
    "POSTGRES_ENV",
    "REDIS_ENV",
    "postgres_databases",
    "redis_client",
]

_CONNECT_TIMEOUT_S: Final = 5


def _first_line(exc: BaseException) -> str:
    lines = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {lines[0]}" if lines else type(exc).__name__


def postgres_databases(
    stack: contextlib.ExitStack, server_url: str, info: dict[str, str]
) -> Callable[[str], Engine]:
    """A factory of engines, each on a fresh scratch database of ``server_url``'s server;
    every database is dropped (and every engine disposed) when ``stack`` closes."""
    import psycopg
    from psycopg import sql

    parsed = make_url(server_url)
    if parsed.drivername == "postgresql":  # SQLAlchemy would pick psycopg2 for this
        parsed = parsed.set(drivername="postgresql+psycopg")
    libpq = parsed.set(drivername="postgresql").render_as_string(hide_password=False)
    shown = redact(parsed.render_as_string(hide_password=True))
    try:
        with psycopg.connect(libpq, autocommit=True, connect_timeout=_CONNECT_TIMEOUT_S) as conn:
            row = conn.execute("SHOW server_version").fetchone()
    except psycopg.Error as exc:
        raise CompareError(
            f"PostgreSQL at {shown}: {_first_line(exc)} (--postgres-url, or --sqlite-only)"
        ) from exc
    info["postgresql"] = str(row[0]) if row else "?"
    run = secrets.token_hex(3)

    def drop(name: str) -> None:
        try:
            with psycopg.connect(libpq, autocommit=True, connect_timeout=10) as conn:
                conn.execute(
                    sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
                )
        except psycopg.Error as exc:
            print(f"sjti compare: could not drop {name}: {_first_line(exc)}", file=sys.stderr)

    def new(purpose: str) -> Engine:
        name = f"sjti_compare_{run}_{purpose}".replace("-", "_")
        with psycopg.connect(libpq, autocommit=True, connect_timeout=_CONNECT_TIMEOUT_S) as conn:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        stack.callback(drop, name)
        engine = create_engine(parsed.set(database=name).render_as_string(hide_password=False))
        stack.callback(engine.dispose)
        with engine.connect() as conn:  # fail here, not in the middle of a scenario
            conn.execute(text("SELECT 1"))
        return engine

    return new


def redis_client(
    stack: contextlib.ExitStack, url: str, info: dict[str, str]
) -> tuple[CountingRedis, str]:
    """A counting client and this run's key prefix (its keys deleted when ``stack`` closes)."""
    import redis

    try:
        client = cast(  # from_url builds ``cls``
            CountingRedis,
            CountingRedis.from_url(
                url, socket_timeout=_CONNECT_TIMEOUT_S, socket_connect_timeout=_CONNECT_TIMEOUT_S
            ),
        )
        version = client.info("server").get("redis_version", "?")
    except (redis.RedisError, ValueError) as exc:
        raise CompareError(
            f"Redis at {redact(url)}: {_first_line(exc)} (--redis-url, or --sqlite-only)"
        ) from exc
    info["redis"] = str(version)
    prefix = f"sjti_compare:{secrets.token_hex(4)}:"
    stack.callback(client.close)
    stack.callback(delete_prefix, client, prefix)
    return client, prefix
