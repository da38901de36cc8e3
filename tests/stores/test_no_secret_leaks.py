"""A failing database statement must not carry wrapped secrets into errors or logs."""

from __future__ import annotations

import secrets
import traceback

import pytest
import sqlalchemy as sa

from sjti import BackendError, Kek, KekRing
from sjti.stores.sql import OwnedTable, SqlSecretStore, upgrade

pytestmark = pytest.mark.service


def test_backend_error_from_a_failed_update_shows_no_parameters(postgres_url: str) -> None:
    """SQLAlchemy's own message lists bound parameters (the new wrapped secret): not ours."""
    suffix = secrets.token_hex(3)
    layout = OwnedTable(f"leak_secrets_{suffix}", audit_table=f"leak_audit_{suffix}")
    engine = sa.create_engine(postgres_url)
    try:
        upgrade(engine, layout)
        ring = KekRing([Kek.generate("leak")])
        store = SqlSecretStore(engine, ring, layout)
        store.ensure("alice")
        with engine.begin() as conn:
            conn.exec_driver_sql(
                "CREATE OR REPLACE FUNCTION sjti_test_fail() RETURNS trigger AS "
                "$$ BEGIN RAISE EXCEPTION 'update refused by test trigger'; END $$ "
                "LANGUAGE plpgsql"
            )
            conn.exec_driver_sql(
                f"CREATE TRIGGER fail_{suffix} BEFORE UPDATE ON leak_secrets_{suffix} "
                "FOR EACH ROW EXECUTE FUNCTION sjti_test_fail()"
            )
        with pytest.raises(BackendError) as caught:
            store.revoke("alice")
        rendered = "".join(traceback.format_exception(caught.value))
        assert "update refused by test trigger" in rendered  # the cause is still there
        assert "[parameters:" not in rendered
        assert "v1.leak." not in rendered  # no wrapped secret, old or new
    finally:
        engine.dispose()
