"""Device lists, with no I/O: what a sign-in or a sign-out does to a user's record.

A user's devices live on the user's key record (the ``token_devices`` column next to the
wrapped secret, or the in-memory row), in sign-in order, oldest first. The list holds only
signed-in devices, at most ``max_devices``: a sign-in past the limit signs the oldest out.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final

from .._core.binding import device_id_bytes
from ..errors import ConfigurationError

__all__ = [
    "DEFAULT_MAX_DEVICES",
    "DeviceChange",
    "column_text",
    "describe_device",
    "describe_limit",
    "parse_column",
    "sign_in",
    "sign_out",
]

DEFAULT_MAX_DEVICES: Final = 32
MAX_DEVICES_LIMIT: Final = 1000  # a record of 16 KB: beyond this a device list is misuse


@dataclass(frozen=True, slots=True)
class DeviceChange:
    """The list after the change and the devices it signed out (oldest first)."""

    devices: tuple[str, ...]
    signed_out: tuple[str, ...]


def check_max(max_devices: int) -> None:
    if isinstance(max_devices, bool) or not isinstance(max_devices, int):
        raise ConfigurationError("max_devices must be an integer")
    if not 1 <= max_devices <= MAX_DEVICES_LIMIT:
        raise ConfigurationError(f"max_devices must be between 1 and {MAX_DEVICES_LIMIT}")


def sign_in(current: Sequence[str] | None, sid: str, max_devices: int) -> DeviceChange:
    """``sid`` added as the newest device; the oldest signed out past ``max_devices``."""
    check_max(max_devices)
    device_id_bytes(sid)  # refuses anything that is not a device id
    devices = [d for d in (current or ()) if d != sid]
    devices.append(sid)
    cut = max(0, len(devices) - max_devices)
    return DeviceChange(tuple(devices[cut:]), tuple(devices[:cut]))


def sign_out(current: Sequence[str] | None, sid: str) -> DeviceChange:
    """``sid`` removed (nothing changes if it is not listed, or devices are not tracked)."""
    if current is None or sid not in current:
        return DeviceChange(tuple(current or ()), ())
    return DeviceChange(tuple(d for d in current if d != sid), (sid,))


def parse_column(text: str | None) -> list[str] | None:
    """The stored form: ``None`` (not tracked), or device ids separated by spaces."""
    if text is None:
        return None
    return text.split()


def column_text(devices: Sequence[str]) -> str:
    return " ".join(devices)


def describe_limit(user_id: str, count: int) -> str:
    """For the audit trail: a sign-in past ``max_devices`` signed the oldest out."""
    return f"user_id={user_id}, {count} oldest device(s) signed out at the device limit"


def describe_device(user_id: str, sid: str) -> str:
    """For the audit trail: which user and which device (the id is not a secret: it is
    in every token of the device, and alone it can mint nothing)."""
    return f"user_id={user_id}, sid={sid}"
