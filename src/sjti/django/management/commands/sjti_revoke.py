"""``manage.py sjti_revoke``: revoke users' tokens (one transaction, audited)."""

from __future__ import annotations

from typing import Any

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError, CommandParser

from ....errors import SjtiError


class Command(BaseCommand):
    help = (
        "Revoke every access and refresh token of the given users: a new key each and their "
        "refresh families ended, in one transaction with an audit row; other processes hear "
        "of it over the bus."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("ids", nargs="*", help="user primary keys")
        parser.add_argument(
            "--username", action="append", default=[], help="a username (repeatable)"
        )
        parser.add_argument("--reason", required=True, help="recorded in the audit trail")
        parser.add_argument("--actor", default="manage.py sjti_revoke", help="who is revoking")
        parser.add_argument("--dry-run", action="store_true", help="show the impact only")

    def handle(self, *args: Any, **options: Any) -> None:
        from ..._runtime import runtime
        from ...keys import revoke

        ids = [str(i) for i in options["ids"]]
        if options["username"]:
            user = get_user_model()
            field = user.USERNAME_FIELD
            found = dict(
                user._default_manager.filter(**{f"{field}__in": options["username"]}).values_list(
                    field, "pk"
                )
            )
            missing = sorted(set(options["username"]) - set(found))
            if missing:
                raise CommandError(f"no such user: {', '.join(missing)}")
            ids += [str(pk) for pk in found.values()]
        if not ids:
            raise CommandError("name at least one user (ids or --username)")
        try:
            if options["dry_run"]:
                preview = runtime().store.revoke_many(ids, dry_run=True)
                self.stdout.write(
                    f"would revoke {len(set(ids))} user(s); {preview.count} hold a key"
                )
                return
            result = revoke(ids, actor=options["actor"], reason=options["reason"])
        except SjtiError as exc:
            raise CommandError(str(exc)) from None
        if result is None:  # inside an atomic block: runs at its commit
            self.stdout.write("revocation scheduled after the current transaction")
            return
        self.stdout.write(f"revoked {result.count} user(s) (audit #{result.audit_id})")
