"""docs/testing.md's FastAPI example is a test module users copy: it must run and pass."""

from __future__ import annotations

from pathlib import Path

import pytest

pytest_plugins = ["pytester"]

DOC = Path(__file__).resolve().parents[2] / "docs" / "testing.md"


def _example() -> str:
    text = DOC.read_text(encoding="utf-8")
    start = text.index("```python\n# test_attacks.py\n") + len("```python\n")
    return text[start : text.index("```", start)]


def test_the_fastapi_example_runs_every_attack_in_a_fresh_pytest(
    pytester: pytest.Pytester,
) -> None:
    """In a new interpreter, the installed plugin alone runs the pack on the example app:
    every case passes, the device case included (the kit's store tracks devices)."""
    pytester.makepyfile(test_attacks=_example())
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "-v")
    result.assert_outcomes(passed=17)
    out = result.stdout.str()
    for line in (
        "test_attacks.py::test_me_refuses_every_attack[revoked-user] PASSED",
        "test_attacks.py::test_me_refuses_every_attack[alg-none] PASSED",
        "test_attacks.py::test_me_refuses_every_attack[revoked-device] PASSED",
        "test_attacks.py::test_logout_everywhere PASSED",
    ):
        assert line in out
