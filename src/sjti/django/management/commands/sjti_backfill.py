"""``manage.py sjti_backfill``: give every user a key now (keys are otherwise made on a
user's first token, so this is optional)."""

from __future__ import annotations

from typing import Any

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError, CommandParser

from ....errors import SjtiError


class Command(BaseCommand):
    help = (
        "Give a key to every user that has none (lazy secrets make this optional: a user "
        "gets a key on their first token). Idempotent; logs nobody out."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--batch-size", type=int, default=500)

    def handle(self, *args: Any, **options: Any) -> None:
        from ...keys import ensure_key, user_queryset

        size = max(1, int(options["batch_size"]))
        made = last = 0
        pk_name = get_user_model()._meta.pk.name
        last_pk: Any = None
        try:
            while True:
                batch = user_queryset().order_by(pk_name)
                if last_pk is not None:
                    batch = batch.filter(pk__gt=last_pk)
                users = list(batch[:size])
                if not users:
                    break
                for user in users:
                    before = user.pk
                    from ...keys import key_from_user

                    if key_from_user(user) is None:
                        ensure_key(user)
                        made += 1
                    last_pk = before
                last += len(users)
                self.stdout.write(f"checked {last} user(s), {made} key(s) made")
        except SjtiError as exc:
            raise CommandError(str(exc)) from None
        self.stdout.write(f"done: {made} key(s) made")
