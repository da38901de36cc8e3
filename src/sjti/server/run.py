"""Run the service under uvicorn (what ``sjti serve`` calls).

With several workers uvicorn binds the listening socket itself as ``socket(AF_INET)``:
protocol 0, so every accepted socket reports protocol 0 too and asyncio, which sets
TCP_NODELAY only on sockets whose protocol is IPPROTO_TCP, leaves Nagle on. A response
written in two segments then waits for the client's delayed ACK (40 ms on Linux) and a
trivial route drops to ~25 requests/s per connection. We bind the socket here instead, as
TCP, with TCP_NODELAY set on the listener (Linux copies it to every accepted socket).
"""

from __future__ import annotations

import logging
import os
import socket

import uvicorn
from uvicorn.supervisors import Multiprocess

from .._engine import make_engine
from .._keyfile import load_key_material
from .db import migrate
from .settings import Settings

__all__ = ["SERVE_LOG_LEVEL", "listening_socket", "prepare", "run_app", "serve"]

APP = "sjti.server.app:app_from_env"
SERVE_LOG_LEVEL = "info"  # uvicorn's default: an access-log line per request


def prepare(settings: Settings) -> None:
    """Create the key file and migrate once, before any worker starts (they would cope
    with racing, this just makes start-up quieter)."""
    load_key_material(settings)
    engine = make_engine(settings.database_url)
    try:
        migrate(engine)
    finally:
        engine.dispose()


def listening_socket(host: str, port: int) -> socket.socket:
    """A TCP listening socket whose accepted connections have TCP_NODELAY (bound, not yet
    listening: uvicorn's workers call ``listen``)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sock.bind((host, port))
    except OSError:
        sock.close()
        raise
    sock.set_inheritable(True)
    return sock


def run_app(factory: str, *, host: str, port: int, workers: int, log_level: str) -> None:
    """Serve the app ``factory`` (an import string) with ``workers`` processes, every
    connection with TCP_NODELAY. One worker is plain ``uvicorn.run`` (it binds as TCP)."""
    if workers == 1:
        uvicorn.run(
            factory, factory=True, host=host, port=port, log_level=log_level, proxy_headers=False
        )
        return
    config = uvicorn.Config(
        factory,
        factory=True,
        host=host,
        port=port,
        workers=workers,
        log_level=log_level,
        proxy_headers=False,
    )
    sock = listening_socket(host, port)
    logging.getLogger("uvicorn.error").info(
        "Uvicorn running on http://%s:%d with %d workers", host, sock.getsockname()[1], workers
    )
    try:
        Multiprocess(config, sockets=[sock]).run()
    finally:
        sock.close()


def serve(settings: Settings, *, log_level: str = SERVE_LOG_LEVEL) -> None:
    """Start uvicorn with ``settings.workers`` processes; every worker reads ``SJTI_*``."""
    prepare(settings)
    os.environ["SJTI_WORKERS"] = str(settings.workers)  # workers must know they share
    run_app(
        APP,
        host=settings.host,
        port=settings.port,
        workers=settings.workers,
        log_level=log_level,
    )
