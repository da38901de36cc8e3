"""``sjti bench --markdown`` regenerates its tables and keeps the hand-written notes."""

from __future__ import annotations

from pathlib import Path

from sjti.bench._cli import KEPT_MARK, _write_page


def test_regenerating_keeps_what_follows_the_mark(tmp_path: Path) -> None:
    page = tmp_path / "benchmark.md"
    page.write_text(f"# old tables\n\n{KEPT_MARK}\n\n## About this run\nnotes\n", "utf-8")
    _write_page(str(page), "# new tables\n")
    text = page.read_text("utf-8")
    assert text.startswith("# new tables\n")
    assert "old tables" not in text
    assert text.endswith(f"{KEPT_MARK}\n\n## About this run\nnotes\n")
    _write_page(str(page), "# newer\n")  # twice: still one mark, notes once
    assert page.read_text("utf-8").count(KEPT_MARK) == 1
    assert page.read_text("utf-8").count("notes") == 1


def test_a_page_without_the_mark_is_replaced_whole(tmp_path: Path) -> None:
    page = tmp_path / "benchmark.md"
    page.write_text("# old\nhand-written but unmarked\n", "utf-8")
    _write_page(str(page), "# new\n")
    assert page.read_text("utf-8") == "# new\n"
    fresh = tmp_path / "fresh.md"
    _write_page(str(fresh), "# first\n")
    assert fresh.read_text("utf-8") == "# first\n"
