"""A readable device label from a User-Agent header ("Firefox 128 on Linux").

Deliberately small: the common browsers, the operating systems they run on, and the HTTP
clients people script with. Anything else shows its first word. The result is text for a
template (escaped there), never markup.
"""

from __future__ import annotations

import re
from typing import Final

__all__ = ["device_label"]

# Order matters: Edge and Opera say "Chrome" too, Chrome says "Safari".
_BROWSERS: Final = (
    ("Edge", re.compile(r"Edg(?:e|A|iOS)?/(\d+)")),
    ("Opera", re.compile(r"OPR/(\d+)")),
    ("Firefox", re.compile(r"(?:Firefox|FxiOS)/(\d+)")),
    ("Chrome", re.compile(r"(?:Chrome|CriOS)/(\d+)")),
    ("Safari", re.compile(r"Version/(\d+)[.\d]* (?:Mobile/\S+ )?Safari/")),
    ("curl", re.compile(r"^curl/(\d+)")),
    ("httpx", re.compile(r"^python-httpx/(\d+)")),
    ("Python requests", re.compile(r"^python-requests/(\d+)")),
    ("okhttp", re.compile(r"^okhttp/(\d+)")),
)
_SYSTEMS: Final = (
    ("Android", re.compile(r"Android")),
    ("iOS", re.compile(r"iPhone|iPad|iPod")),
    ("Windows", re.compile(r"Windows")),
    ("macOS", re.compile(r"Mac OS X|Macintosh")),
    ("ChromeOS", re.compile(r"CrOS")),
    ("Linux", re.compile(r"Linux|X11")),
)


def device_label(user_agent: str | None) -> str:
    """``"Chrome 126 on Android"``, ``"curl 8"``, ``"unknown device"``."""
    if not user_agent or not user_agent.strip():
        return "unknown device"
    ua = user_agent[:256]
    browser = next(
        (f"{name} {m.group(1)}" for name, pattern in _BROWSERS if (m := pattern.search(ua))),
        None,
    )
    system = next((name for name, pattern in _SYSTEMS if pattern.search(ua)), None)
    if browser is None:
        browser = ua.split()[0].split("/")[0][:40] or "unknown device"
    return f"{browser} on {system}" if system else browser
