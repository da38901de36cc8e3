"""Prometheus metrics, on a registry per app (per process: each worker reports its own)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

from prometheus_client import CollectorRegistry, Counter
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from ..cache import CacheStats

__all__ = ["Metrics"]

_BUS_STATES = ("none", "connecting", "connected", "disconnected", "closed")


class _CacheCollector(Collector):
    """Reads the key cache's counters at scrape time."""

    def __init__(self, stats: Callable[[], CacheStats]) -> None:
        self._stats = stats

    def collect(self) -> Iterator[Metric]:
        stats = self._stats()
        lookups = GaugeMetricFamily(
            "sjti_key_cache_lookups", "User-key cache lookups by result", labels=["result"]
        )
        for result, value in (
            ("hit", stats.hits),
            ("negative_hit", stats.negative_hits),
            ("miss", stats.misses),
            ("bypass", stats.bypasses),
        ):
            lookups.add_metric([result], value)
        yield lookups
        yield GaugeMetricFamily("sjti_key_cache_size", "Entries in the user-key cache", stats.size)
        yield GaugeMetricFamily(
            "sjti_key_cache_trusted", "1 while the cache is trusted", int(stats.trusted)
        )
        bus = GaugeMetricFamily("sjti_bus_state", "Invalidation bus state", labels=["state"])
        for state in _BUS_STATES:
            bus.add_metric([state], int(stats.bus_state == state))
        yield bus
        yield GaugeMetricFamily(
            "sjti_bus_disconnects", "Times the bus was lost", stats.bus_disconnects
        )


class _BusCollector(Collector):
    """The event log as this node follows it: watermark, replays, publish failures."""

    def __init__(self, bus: Any) -> None:
        self._bus = bus

    def collect(self) -> Iterator[Metric]:
        bus = self._bus
        yield GaugeMetricFamily(
            "sjti_event_watermark", "Last revocation event applied", bus.watermark or 0
        )
        yield GaugeMetricFamily(
            "sjti_events_replayed", "Events applied from the log", bus.follower.replayed
        )
        yield GaugeMetricFamily(
            "sjti_event_log_clears",
            "Cache clears: first sync or a pruned gap",
            bus.follower.cleared,
        )
        yield GaugeMetricFamily(
            "sjti_event_publish_failures",
            "Revocation events this node could not publish (relayed later)",
            bus.publish_failures,
        )


class Metrics:
    """The service's counters."""

    def __init__(self, cache_stats: Callable[[], CacheStats], bus: Any = None) -> None:
        self.registry = CollectorRegistry()
        self.verifications = Counter(
            "sjti_verifications",
            "Access-token verifications (both layers) by outcome",
            ["outcome"],
            registry=self.registry,
        )
        self.revocations = Counter(
            "sjti_revocations",
            "Revocations by kind (logout, device, admin, reuse, rfc7009)",
            ["kind"],
            registry=self.registry,
        )
        self.revoked_users = Counter(
            "sjti_revoked_users", "Users whose key was rotated", registry=self.registry
        )
        self.logins = Counter(
            "sjti_logins",
            "Token requests by grant and outcome",
            ["grant", "outcome"],
            registry=self.registry,
        )
        self.registry.register(_CacheCollector(cache_stats))
        if bus is not None:
            self.registry.register(_BusCollector(bus))
