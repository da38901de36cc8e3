"""The service reads the one settings model of sjti: :class:`sjti.settings.Settings`.

Every field is ``SJTI_<NAME>`` in the environment or ``name`` in ``sjti.toml``
(docs/configuration.md lists them; ``sjti config show`` prints the values in force).
"""

from __future__ import annotations

from ..settings import MIN_CLIENT_SECRET, Settings

__all__ = ["MIN_CLIENT_SECRET", "Settings"]
