"""The bench table: rich when it is installed (the ``cli`` extra), plain text otherwise."""

from __future__ import annotations

import io
from collections.abc import Sequence
from typing import TextIO

from ._result import BenchResult, Measure, Ratio, Row

__all__ = ["render", "render_markdown", "render_plain"]

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


def _amount(value: float, unit: str) -> str:
    """Milliseconds, percentages and megabytes with two decimals; counts and rates whole."""
    two_decimals = unit in ("ms", "%", "MB", "s", "% of users")
    return f"{value:,.2f} {unit}" if two_decimals else f"{value:,.0f} {unit}"


def _ratio_cells(ratio: Ratio) -> tuple[str, str, str, str]:
    sign = "≥" if ratio.op == ">=" else "≤"
    if ratio.unit != "x":  # an absolute bound on the subject's own value
        label = f"{ratio.description} ({ratio.subject})"
        value = "-" if ratio.value is None else _amount(ratio.value, ratio.unit)
        target = f"{sign} {ratio.target:,g} {ratio.unit}"
    else:
        label = f"{ratio.description} ({ratio.baseline or 'no baseline row'})"
        if ratio.value is None:
            value = "-"
        elif ratio.op == ">=":
            value = f"{ratio.value:.2f}x faster"
        else:
            value = f"{ratio.value:.2f}x its time"
        target = f"{sign} {ratio.target:g}x"
    verdict = {True: "PASS", False: "MISS", None: "n/a"}[ratio.passed]
    return label, value, target, verdict


def _header_lines(result: BenchResult) -> list[str]:
    machine = result.machine
    params = result.params
    versions = ", ".join(f"{name} {version}" for name, version in result.versions.items())
    lines = [
        f"machine: {machine['cpu']} ({machine['cpus']} CPUs), {machine['platform']}",
        f"python:  {machine['python']}",
        f"libs:    {versions}",
        (
            f"method:  {params['rounds']} interleaved rounds of ~{params['target_ms']:g} ms "
            f"per case, gc off, {params['stat']} of rounds; "
            f"loop overhead {params['loop_overhead_ns']:.0f} ns/op (not subtracted)"
        ),
    ]
    used = [
        f"{label} {params[key]}"
        for key, label in (("postgres", "PostgreSQL"), ("redis", "Redis"))
        if params.get(key)
    ]
    if "postgres" in params:  # a run that knew about services (not a hand-made result)
        lines.append(f"services: {', '.join(used) if used else 'none'}")
    return lines


_MEASURE_TITLE = "revocation across nodes"
_CATCHUP_TITLE = "catch-up after a bus outage"
_BULK_TITLE = "bulk revocation"
_SCALE_TITLE = "scale"
_MEASURE_HEADERS = ("row", "value", "what")


def _measure_note(result: BenchResult) -> str:
    details = result.propagation or {}
    count = details.get("revocations")
    note = (
        f"{details.get('nodes', 3)} node processes, each with its own cache and a Redis bus "
        f"following the event log, sharing PostgreSQL and Redis; {count} revocations"
    )
    if isinstance(count, int) and count < 100:
        note += f" (so p99 is about the slowest of the {count})"
    acked = result.acknowledgement
    if acked:
        note += (
            f', then {acked.get("revocations")} with wait="all" (timeout '
            f"{acked.get('timeout_s', 0):g} s; after each complete acknowledgement every node "
            "is checked to refuse the token)"
        )
    return (
        f"{note}. Measured once after the timed loop, not per op: these rows are "
        "milliseconds (or a count), and the JSON keeps them in the ns_per_op field (see its "
        '"units")'
    )


def _trials(count: object) -> str:
    return "One trial each" if count == 1 else f"Median of {count} trials each"


def _catchup_note(result: BenchResult) -> str:
    d = result.catchup or {}
    replay, clear = d.get("replay", {}), d.get("clear", {})
    return (
        f"One node in this process, on {d.get('database')} with the {d.get('bus')} bus: "
        f"{d.get('users', 0):,} users' keys cached, then its bus is down while "
        f"{d.get('events', 0):,} revocation events commit from another store (round robin "
        f"over {d.get('revoked_users')} of those users; {d.get('outage_s', 0):.1f} s). Timed "
        "from the reconnection until the node is current again and has verified one token "
        "of every user: replay reads the events after its watermark from the log (only the "
        "revoked users then miss the cache); clear empties the cache (every user misses "
        f"and reads the store). {_trials(d.get('trials'))}, alternating, the watermark "
        f"rewound before each replay. Replay: {_split(replay)}; clear: {_split(clear)}. "
        "Milliseconds, measured once"
    )


def _split(mode: dict[str, float]) -> str:
    catchup, serve = mode.get("catchup_ms", 0.0), mode.get("serve_ms", 0.0)
    return f"catch-up {catchup:,.1f} ms + serving {serve:,.1f} ms"


def _bulk_note(result: BenchResult) -> str:
    d = result.bulk or {}
    return (
        f"{d.get('users', 0):,} users seeded in an app users table (id, tenant, the secret "
        "columns; an index on (tenant, id); PostgreSQL: fillfactor "
        f"{d.get('postgres_fillfactor')}), on a SQLite file and the scratch PostgreSQL "
        "database. The tenant holding 10% of them, then everyone, revoked with "
        f"revoke_batches (batches of {d.get('batch', 0):,}: each one transaction with its "
        "key rotations, audit row and one event listing its users, relayed as one bus "
        "message), previewed first with preview_batches; then a new KEK put first and every "
        "secret re-wrapped (rewrap, the same batches). RSS: the process's peak growth during "
        "a step, sampled every 10 ms. Measured once, after the timed loop; the JSON's "
        '"bulk" has every step'
    )


def _scale_note(result: BenchResult) -> str:
    d = result.scale or {}
    sizes = d.get("sizes", {})
    return (
        f"Disk: {sizes.get('disk_users', 0):,} users seeded per table (sjti's own table with "
        "UUID ids; the secret columns of an app users table, minus the same table without "
        "them), read back by a real store, sized after VACUUM ANALYZE (PostgreSQL) or from "
        "dbstat (SQLite). Cache: tracemalloc over a full KeyCache of "
        f"{sizes.get('cache_entries', 0):,} entries. Hot set: a real KeyCache (clock "
        "frozen: only eviction misses) driven with Zipf streams over "
        f"{' and '.join(f'{u:,}' for u in sizes.get('zipf_users', ()))} users, the smallest "
        "max_size reaching a 99% hit rate found by bisection, next to the model of the "
        "policy; the 100M rows are derived (the model, scaled by the worst measured/model "
        f"ratio). Revocations: {sizes.get('revoke_seconds', 0):g} s per thread count. "
        "Rows marked derived are arithmetic on measured rows; docs/scale.md has the "
        'arithmetic to 100M users; the JSON\'s "scale" has every table and run'
    )


def _note(result: BenchResult, section: str) -> str:
    """The paragraph under a section's rows ('' for a section that needs none)."""
    notes = {
        _MEASURE_TITLE: _measure_note,
        _CATCHUP_TITLE: _catchup_note,
        _BULK_TITLE: _bulk_note,
        _SCALE_TITLE: _scale_note,
    }
    write = notes.get(section)
    return write(result) if write is not None else ""


def _sections(result: BenchResult) -> dict[str, list[Measure]]:
    """The measures grouped by section, in order of first appearance."""
    sections: dict[str, list[Measure]] = {}
    for measure in result.measures:
        sections.setdefault(measure.section, []).append(measure)
    return sections


def _measure_cells(measure: Measure) -> tuple[str, str, str]:
    return measure.name, _amount(measure.value, measure.unit), measure.description


def _print_columns(rows: Sequence[Sequence[str]], out: TextIO, *, underline: bool) -> None:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    for n, cells in enumerate(rows):
        line = "  ".join(c.ljust(w) for c, w in zip(cells, widths, strict=True))
        print(line.rstrip(), file=out)
        if underline and n == 0:
            print("  ".join("-" * w for w in widths), file=out)


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
    for section, measures in _sections(result).items():
        print(f"{section}:", file=out)
        _print_columns([_MEASURE_HEADERS, *map(_measure_cells, measures)], out, underline=True)
        if note := _note(result, section):
            print(note, file=out)
        print(file=out)
    ratio_rows = [("target", "value", "wanted", "result"), *map(_ratio_cells, result.ratios)]
    _print_columns(ratio_rows, out, underline=False)
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
    for section, rows in _sections(result).items():
        measures = Table(title=section)
        measures.add_column(_MEASURE_HEADERS[0])
        measures.add_column(_MEASURE_HEADERS[1], justify="right")
        measures.add_column(_MEASURE_HEADERS[2])
        for measure in rows:
            measures.add_row(*_measure_cells(measure))
        console.print(measures)
        if note := _note(result, section):
            console.print(note, markup=False)
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


_MARKDOWN_INTRO = """\
# Benchmark

Generated by `sjti bench --markdown docs/benchmark.md` (`make bench-docs`); run it on your
machine to get your own numbers. Every case runs in one process, interleaved round-robin
with the others, on the same token (9 claims: iss, sub, aud, exp, iat, jti, scope,
client_id, sjti) and the same HS256 secret. Peers decode with the claim checks they offer
(issuer, audience, expiry). Floors are hand-written lower bounds: one HMAC, one Ed25519
verify, and a minimal split-HMAC-compare-decode-parse verify with no checks at all.

What to read: `sjti.verify_boundary` is the gateway check (signature, header, claims);
`sjti.verify_full` adds the user layer (sjti recomputed with the user key in hand);
`sjti.issue` signs a token including its sjti.

Where the user key comes from: `sjti.verify_full_cached` takes it from a per-process
`KeyCache` hit (target: within 1.2x of the key in hand); `sjti.verify_full_sqlite` and
`sjti.verify_full_postgres` miss every time and run one `SELECT` through `SqlSecretStore`
(a SQLite file; a scratch PostgreSQL database on loopback), `sjti.verify_full_postgres_async`
the same through `AsyncSqlSecretStore` (each call driven to completion on an event loop,
`run_until_complete` included). `floor.sqlite_select_pk` and `floor.pg_select_pk` are the
same primary-key `SELECT` on the same table through the raw driver (sqlite3 with its
statement cache; psycopg in autocommit, prepared): what a miss adds above the key in hand
is compared with them (targets: at most 2 SQLite floors, 1.3 PostgreSQL floors).
"Revocation across nodes" is measured once, not per op: three node processes with their
own caches share PostgreSQL and Redis; a user is revoked on one node and the time until
both others refuse the old token is recorded (target: p99 at most 50 ms). On the same
cluster, `revoke(wait="all")` is timed until every live node has acknowledged the event
(heartbeated a watermark at or above its id; target: p99 at most 20 ms), and calls that
came back incomplete at the timeout are counted (target: none). Those rows are
milliseconds (and a count). Rows that need PostgreSQL or Redis are left out, with a
note, when the services do not answer.

"Catch-up after a bus outage" is one node, driven in the bench process: its cache holds a
working set of users, its bus goes down while revocation events commit, then it
reconnects and verifies one token of every user. Replaying the events after its
watermark (only the revoked users miss) is timed against clearing the cache, as the
first-generation bus did (every user misses and reads the store); target: replay takes
at most the clear's time. On PostgreSQL and Redis when they answer, else SQLite and the
log-polling bus; the note under the rows says how it ran.

"Bulk revocation" (`python -m sjti.bench.bulk` runs it alone) seeds a million users (20 000
with `--quick`) on SQLite and PostgreSQL, previews and revokes the tenant holding 10% of
them and then everyone with `revoke_batches` (batches of 10 000, each one transaction with
one event), and re-wraps every secret under a new KEK. Targets: at least 100 000 users/s on
SQLite and 50 000 on PostgreSQL, a peak RSS growth of at most 100 MB, a dry run costing at
most 5% of its revocation, and at least 50 000 re-wrapped rows/s. The quick size is for
the test suite: its rates and dry-run shares are dominated by fixed costs.

"Scale" (`python -m sjti.bench._scale` runs it alone; `--no-scale` leaves it out) measures
the constants of docs/scale.md: bytes per user on disk (sjti's table, the app-table
columns, with and without devices, indexes) and in a node's `KeyCache`, the smallest cache
that keeps a 99% hit rate under a Zipf load (measured on a real `KeyCache` at small user
counts, next to a model of its policy that the 100-million rows are derived from),
single-user revocations per second, what a node applies per second, and the time to revoke
a 10-million-user tenant at the bulk rate. Rows marked "derived" are arithmetic on
measured ones.
"""


def render_markdown(result: BenchResult) -> str:
    """The plain report inside a Markdown page, for docs/benchmark.md."""
    buffer = io.StringIO()
    render_plain(result, buffer)
    return f"{_MARKDOWN_INTRO}\n```text\n{buffer.getvalue().rstrip()}\n```\n"
