"""Liveness, readiness and Prometheus metrics."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from ..auth import ServicesDep

router = APIRouter(tags=["ops"])


@router.get("/healthz")
async def healthz() -> dict[str, str]:
    """The process answers (on the event loop: a liveness probe needs no worker thread)."""
    return {"status": "ok"}


@router.get("/readyz", responses={503: {}})
def readyz(services: ServicesDep, response: Response) -> dict[str, Any]:
    """Ready: the database answers and the KEK ring opens the stored keys (``problem``
    says why not). The node is then correct whatever the bus does.

    ``cache``: ``trusted`` (a bus or the log poll proves it current) or ``bypassed``
    (every user key is read from the database: correct, slower). A lost bus makes the
    cache bypassed, not the node unready: pulling every node out of a load balancer
    because Redis died would turn a hint's outage into the service's. ``degraded`` says
    a configured bus is not connected. ``watermark``: the last revocation event this
    process applied; ``node``: its id in the node registry.
    """
    database = services.database_ok()
    stats = services.keys.stats()
    bus = services.bus
    ready = database and services.problem is None
    if not ready:
        response.status_code = 503
    return {
        "ready": ready,
        "database": database,
        "problem": services.problem if database else "database unavailable",
        "bus": stats.bus_state,
        "degraded": bus is not None and stats.bus_state != "connected",
        "bus_kind": None if bus is None else bus.name.partition(":")[0],
        "cache": "trusted" if stats.trusted else "bypassed",
        "watermark": None if bus is None else bus.watermark,
        "node": None if bus is None else bus.node_id,
    }


@router.get("/metrics", response_class=Response)
def metrics(services: ServicesDep) -> Response:
    """Prometheus text format (this process only)."""
    return Response(generate_latest(services.metrics.registry), media_type=CONTENT_TYPE_LATEST)
