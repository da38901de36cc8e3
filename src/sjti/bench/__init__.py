"""``sjti bench``: sjti against its peers on the same token, in one process, interleaved.

Every case (sjti, PyJWT, joserfc, Authlib, python-jose and hand-written floors) works on
one token that the sjti :class:`~sjti.Issuer` made, with the same HS256 secret. Each case
runs once and is checked before timing (:func:`precheck`); then all cases are timed
round-robin over several rounds with the collector off, and the median of rounds is
reported. Peers that are not installed are skipped with a note.

Speed claims in the docs come from here, never from timed asserts in tests. The bench
only fails on speed when asked to (``--check``).
"""

from ._cases import Case, CaseError, expect_claims, minimal_verify, precheck
from ._cli import main
from ._result import BenchResult, Ratio, Row, compute_ratios
from ._run import run

__all__ = [
    "BenchResult",
    "Case",
    "CaseError",
    "Ratio",
    "Row",
    "compute_ratios",
    "expect_claims",
    "main",
    "minimal_verify",
    "precheck",
    "run",
]
