"""``manage.py sjti_keys``: the application keys (public JWKS for gateways)."""

from __future__ import annotations

import json
from typing import Any

from django.core.management.base import BaseCommand, CommandParser


class Command(BaseCommand):
    help = (
        "Show the application signing keys (kid, algorithm, active) or, with --jwks, the "
        "public JWKS to publish for gateways (no private part, ever). Key rotation: "
        "`sjti keys rotate` on SJTI['KEY_FILE']."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--jwks", action="store_true", help="print the public JWKS")

    def handle(self, *args: Any, **options: Any) -> None:
        from ..._runtime import runtime

        rt = runtime()
        keys = rt.auth.keys
        if options["jwks"]:
            self.stdout.write(json.dumps(keys.to_jwks(), indent=2, sort_keys=True))
            return
        self.stdout.write(f"key file: {rt.auth.settings.key_file}")
        for jwk in keys.to_jwks()["keys"]:
            active = " (active: signs new tokens)" if jwk["kid"] == keys.active.kid else ""
            self.stdout.write(f"{jwk['kid']}  {jwk.get('alg')}{active}")
        kek = "SJTI['KEK']" if not rt.auth.material.kek_generated else "development KEK (key file)"
        self.stdout.write(f"user keys wrapped under: {kek}")
