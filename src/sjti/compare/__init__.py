"""``sjti compare``: the revocation designs side by side, measured and attacked.

Five strategies (``sjti``, ``epoch``, ``denylist``, ``session``, ``plain``) run the same
scenarios on real stores (SQLite files, scratch PostgreSQL databases, and Redis for the
deny-list; ``--sqlite-only`` for the smaller run): log out everywhere, revoke one token,
revoke one device (of a user signed in on two), revoke a 10% cohort, executed attacks
with leaked material (read-only DB copy, app signing key, both, and both plus the KEK),
the database going away, state size for U users x T tokens, counted round trips and
per-call cost, next to PyJWT and joserfc decoding the same token.

``main(argv)`` is the command; :func:`run` returns the :class:`Cell` values.
"""

from ._cells import SCENARIOS, Cell, CompareError
from ._cli import main
from ._run import CONTENDERS, FULL, QUICK, Comparison, run
from ._scenarios import Size

__all__ = [
    "CONTENDERS",
    "FULL",
    "QUICK",
    "SCENARIOS",
    "Cell",
    "CompareError",
    "Comparison",
    "Size",
    "main",
    "run",
]
