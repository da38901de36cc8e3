"""``manage.py sjti_kek_rotate``: re-wrap every user key under the newest KEK."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from ....errors import SjtiError


class Command(BaseCommand):
    help = (
        "Re-wrap every stored user key under the first KEK of SJTI['KEK'] (put the new KEK "
        "first, keep the old ones after it until this finishes). Nobody is logged out: the "
        "user keys do not change. Safe to stop and run again."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--batch-size", type=int, default=500)
        parser.add_argument("--dry-run", action="store_true", help="count what would move")

    def handle(self, *args: Any, **options: Any) -> None:
        from ..._runtime import runtime

        store = runtime().store
        try:
            if options["dry_run"]:
                self.stdout.write(f"{store.rewrap_pending()} key(s) to re-wrap")
                return
            moved = 0
            for count in store.rewrap(options["batch_size"], actor="manage.py sjti_kek_rotate"):
                moved += count
                self.stdout.write(f"re-wrapped {moved}")
        except SjtiError as exc:
            raise CommandError(str(exc)) from None
        self.stdout.write(f"done: {moved} key(s) re-wrapped, {store.rewrap_pending()} left")
