"""The compiled lookup's parameters: the id and at most one more, each bound once, in the
order the driver expects; anything else is refused when the store is built."""

from __future__ import annotations

import pytest
import sqlalchemy as sa
from sqlalchemy import bindparam
from sqlalchemy.dialects import sqlite
from sqlalchemy.engine import Dialect

from sjti import Kek, KekRing
from sjti.errors import ConfigurationError
from sjti.stores import _lookup as lookups
from sjti.stores import _statements as st
from sjti.stores._replica import compile_replica_lookup
from sjti.stores._revocation import utc_now
from sjti.stores.layouts import OwnedTable


def _ctx(dialect: str) -> st.Context:
    ring = KekRing([Kek.generate("k")])
    return st.build_context(dialect, ring, OwnedTable(), None, None, utc_now)


def _psycopg() -> Dialect:
    """psycopg's dialect (named parameters); the engine never connects."""
    return sa.create_engine("postgresql+psycopg://nobody@127.0.0.1/none").dialect


def test_the_replica_lookup_binds_the_id_then_the_event() -> None:
    """Named (psycopg) parameters carry both values; the proof column comes last."""
    lookup = compile_replica_lookup(_ctx("postgresql"), _psycopg())
    assert lookup.names == ("b_id", "b_need")
    assert lookup.params("u1", 7) == {"b_id": "u1", "b_need": 7}
    assert lookup.sql.count("%(b_need)s") == 2
    assert lookup.sql.rstrip().endswith("= %(b_id)s::VARCHAR")


def test_the_plain_lookup_takes_the_id_alone() -> None:
    """Positional (sqlite3) and named parameters, one value each."""
    assert lookups.compile_lookup(_ctx("sqlite"), sqlite.dialect()).params("u1") == ("u1",)
    named = lookups.compile_lookup(_ctx("postgresql"), _psycopg())
    assert named.params("u1") == {"b_id": "u1"}


def test_a_parameter_bound_twice_on_a_positional_driver_is_refused() -> None:
    """The replica's proof binds its event twice: fine by name, refused by position."""
    with pytest.raises(ConfigurationError, match="each once"):
        compile_replica_lookup(_ctx("sqlite"), sqlite.dialect())


def test_a_statement_with_other_parameters_is_refused() -> None:
    """A lookup binds exactly the names it declares."""
    ctx = _ctx("sqlite")
    statement = st.select_secret(ctx, bindparam(lookups.ID)).where(sa.literal(1) == 1)
    with pytest.raises(ConfigurationError, match="exactly its parameters"):
        lookups.compile_statement(ctx, sqlite.dialect(), statement, (lookups.ID,))
