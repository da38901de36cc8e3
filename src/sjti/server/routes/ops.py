"""Liveness, readiness and Prometheus metrics."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from ..auth import ServicesDep

router = APIRouter(tags=["ops"])


@router.get("/healthz")
def healthz() -> dict[str, str]:
    """The process answers."""
    return {"status": "ok"}


@router.get("/readyz", responses={503: {}})
def readyz(services: ServicesDep, response: Response) -> dict[str, Any]:
    """The database answers and, with Redis configured, the bus is connected."""
    database = services.database_ok()
    bus = services.bus_state()
    ready = database and (services.bus is None or bus == "connected")
    if not ready:
        response.status_code = 503
    return {"ready": ready, "database": database, "bus": bus}


@router.get("/metrics", response_class=Response)
def metrics(services: ServicesDep) -> Response:
    """Prometheus text format (this process only)."""
    return Response(generate_latest(services.metrics.registry), media_type=CONTENT_TYPE_LATEST)
