"""The README's example is code users copy: it must run and mean what it says."""

from __future__ import annotations

from pathlib import Path

import pytest

from sjti import RevokedTokenError, UserKey

README = Path(__file__).resolve().parents[1] / "README.md"


def _example() -> str:
    text = README.read_text(encoding="utf-8")
    start = text.index("```python") + len("```python")
    return text[start : text.index("```", start)]


def test_readme_example_verifies_and_a_new_key_revokes() -> None:
    """Both layers accept the example token; a new user key refuses it, as the comment says."""
    namespace: dict[str, object] = {}
    exec(_example(), namespace)  # noqa: S102 - our own README, the point of the test
    assert namespace["claims"]["sub"] == "alice"  # type: ignore[index]
    verifier, token = namespace["verifier"], namespace["token"]
    with pytest.raises(RevokedTokenError):
        verifier.verify(token, UserKey.generate())  # type: ignore[attr-defined]


def test_readme_example_is_five_lines_of_code() -> None:
    """The brief asks for a 5-line example; keep it that short."""
    lines = [line for line in _example().splitlines() if line.strip()]
    assert len(lines) <= 6  # the import line + five
