"""The package root is the public API: keep ``__all__`` honest and the layering clean."""

from __future__ import annotations

import ast
import inspect
from pathlib import Path

import sjti
import sjti.errors

SRC = Path(sjti.__file__).parent


def test_all_is_sorted_and_unique() -> None:
    """A sorted, duplicate-free __all__ is easy to review in diffs."""
    assert list(sjti.__all__) == sorted(set(sjti.__all__))


def test_every_name_in_all_exists() -> None:
    """A name in __all__ that does not exist breaks `from sjti import *`."""
    missing = [name for name in sjti.__all__ if not hasattr(sjti, name)]
    assert missing == []


def test_every_public_error_is_exported() -> None:
    """PyJWT's drift: errors that exist but cannot be imported from the root."""
    errors = {
        name
        for name, obj in vars(sjti.errors).items()
        if inspect.isclass(obj) and issubclass(obj, sjti.SjtiError) and not name.startswith("_")
    }
    assert errors - set(sjti.__all__) == set()
    assert set(sjti.errors.__all__) == errors


def test_token_error_codes_are_stable_and_distinct_per_cause() -> None:
    """Clients key on `code`; each leaf cause keeps the documented one."""
    expected = {
        "MalformedTokenError": "malformed",
        "TokenTooLargeError": "too_large",
        "UnsupportedHeaderError": "unsupported_header",
        "BadAlgHeaderError": "bad_alg",
        "BadKidHeaderError": "bad_kid",
        "InvalidSignatureError": "bad_signature",
        "UnknownKeyError": "unknown_kid",
        "AlgorithmNotAllowedError": "alg_not_allowed",
        "ExpiredTokenError": "expired",
        "ImmatureTokenError": "not_yet_valid",
        "MissingClaimError": "missing_claim",
        "InvalidClaimError": "invalid_claim",
        "RevokedTokenError": "revoked",
    }
    assert {name: getattr(sjti, name).code for name in expected} == expected


def test_no_private_module_is_exported() -> None:
    """Everything at the root comes from a documented module, not a private helper."""
    leaked = [
        name
        for name in sjti.__all__
        if inspect.ismodule(getattr(sjti, name)) or (name.startswith("_") and name != "__version__")
    ]
    assert leaked == []


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            prefix = "." * node.level
            found.add(prefix + (node.module or ""))
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
    return found


FORBIDDEN_IN_CORE = frozenset(
    {
        # sjti's own adapters and edges
        "tokens", "cli", "bench", "demo", "stores", "cache", "server", "compare",
        "asgi", "fastapi", "flask", "testing",
        # I/O and frameworks
        "socket", "sqlalchemy", "redis", "psycopg", "starlette", "uvicorn", "httpx",
    }
)  # fmt: skip


def _roots(path: Path) -> set[str]:
    """First component of every import, relative dots stripped (``...errors`` -> errors)."""
    return {name.lstrip(".").split(".")[0] for name in _imports(path)}


def test_core_imports_no_adapter_and_no_io() -> None:
    """The core stays pure: no adapters, no sockets, no databases, no wall clock."""
    offenders = {}
    for path in (SRC / "_core").rglob("*.py"):
        bad = sorted(_roots(path) & FORBIDDEN_IN_CORE)
        if bad or "time.time(" in path.read_text():
            offenders[str(path.relative_to(SRC))] = bad or ["time.time()"]
    assert offenders == {}


def test_adapters_never_import_the_server_or_the_cli() -> None:
    """Data flows one way: stores and caches serve the server, never the reverse."""
    offenders = {}
    for package in ("stores", "cache"):
        for path in (SRC / package).rglob("*.py"):
            bad = sorted(_roots(path) & {"server", "cli", "bench", "compare"})
            if bad:
                offenders[f"{package}/{path.name}"] = bad
    assert offenders == {}
