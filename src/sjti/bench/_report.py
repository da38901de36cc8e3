"""The bench table: rich when it is installed (the ``cli`` extra), plain text otherwise."""

from __future__ import annotations

from typing import TextIO

from ._result import BenchResult, Ratio, Row

__all__ = ["render", "render_plain"]

_HEADERS = ("case", "ns/op", "µs/op", "ops/s", "vs sjti")
_REL_NOTE = (
    "vs sjti = time ÷ time of the sjti row it competes with: "
    "verify_boundary (same alg) for verify rows, issue for encode rows"
)


def _reference(row: Row) -> str:
    if row.kind == "sign":
        return "sjti.issue.HS256"
    if row.name == "floor.ed25519_verify":
        return "sjti.verify_boundary.EdDSA"
    if row.name.startswith("sjti.verify_boundary."):
        return row.name
    return "sjti.verify_boundary.HS256"


def _cells(result: BenchResult) -> list[tuple[str, str, str, str, str]]:
    ns = result.ns_per_op()
    cells = []
    for row in result.rows:
        ref = ns.get(_reference(row))
        rel = f"{row.ns_per_op / ref:.2f}x" if ref else "-"
        cells.append(
            (
                row.name,
                f"{row.ns_per_op:,.0f}",
                f"{row.us_per_op:,.2f}",
                f"{row.ops_per_s:,.0f}",
                rel,
            )
        )
    return cells


def _ratio_cells(ratio: Ratio) -> tuple[str, str, str, str]:
    against = ratio.baseline or "no baseline row"
    label = f"{ratio.description} ({against})"
    if ratio.value is None:
        value = "-"
    elif ratio.op == ">=":
        value = f"{ratio.value:.2f}x faster"
    else:
        value = f"{ratio.value:.2f}x its time"
    target = f"{'≥' if ratio.op == '>=' else '≤'} {ratio.target:g}x"
    verdict = {True: "PASS", False: "MISS", None: "n/a"}[ratio.passed]
    return label, value, target, verdict


def _header_lines(result: BenchResult) -> list[str]:
    machine = result.machine
    params = result.params
    versions = ", ".join(f"{name} {version}" for name, version in result.versions.items())
    return [
        f"machine: {machine['cpu']} ({machine['cpus']} CPUs), {machine['platform']}",
        f"python:  {machine['python']}",
        f"libs:    {versions}",
        (
            f"method:  {params['rounds']} interleaved rounds of ~{params['target_ms']:g} ms "
            f"per case, gc off, {params['stat']} of rounds; "
            f"loop overhead {params['loop_overhead_ns']:.0f} ns/op (not subtracted)"
        ),
    ]


def render_plain(result: BenchResult, out: TextIO) -> None:
    """The report as plain text."""
    for line in _header_lines(result):
        print(line, file=out)
    print(file=out)
    rows = [_HEADERS, *_cells(result)]
    widths = [max(len(r[i]) for r in rows) for i in range(len(_HEADERS))]
    for n, cells in enumerate(rows):
        first = cells[0].ljust(widths[0])
        rest = (cell.rjust(width) for cell, width in zip(cells[1:], widths[1:], strict=True))
        print("  ".join((first, *rest)), file=out)
        if n == 0:
            print("  ".join("-" * w for w in widths), file=out)
    print(_REL_NOTE, file=out)
    print(file=out)
    ratio_rows = [("target", "value", "wanted", "result"), *map(_ratio_cells, result.ratios)]
    rwidths = [max(len(r[i]) for r in ratio_rows) for i in range(4)]
    for ratio_cells in ratio_rows:
        line = "  ".join(c.ljust(w) for c, w in zip(ratio_cells, rwidths, strict=True))
        print(line.rstrip(), file=out)
    for note in result.notes:
        print(f"note: {note}", file=out)


def render(result: BenchResult, out: TextIO, *, plain: bool = False) -> None:
    """The report, with rich tables when rich is importable and ``plain`` is false."""
    if not plain:
        try:
            from rich.console import Console
            from rich.table import Table
        except ImportError:
            plain = True
    if plain:
        render_plain(result, out)
        return

    console = Console(file=out, width=None if out.isatty() else 120, highlight=False)
    for line in _header_lines(result):
        console.print(line, markup=False)
    table = Table(title="sjti bench (lower ns/op is faster)")
    table.add_column(_HEADERS[0])
    for header in _HEADERS[1:]:
        table.add_column(header, justify="right")
    for cells in _cells(result):
        table.add_row(*cells)
    console.print(table)
    console.print(_REL_NOTE, markup=False)
    ratios = Table(title="targets")
    for header in ("target", "value", "wanted", "result"):
        ratios.add_column(header)
    styles = {"PASS": "green", "MISS": "bold red", "n/a": "yellow"}
    for ratio in result.ratios:
        label, value, wanted, verdict = _ratio_cells(ratio)
        ratios.add_row(label, value, wanted, f"[{styles[verdict]}]{verdict}[/]")
    console.print(ratios)
    for note in result.notes:
        console.print(f"note: {note}", markup=False)
