"""Several workers keep TCP_NODELAY: no response waits 40 ms for a delayed ACK.

The option lives on the server's socket, out of a client's sight, so the test borrows
that socket: it finds the accepted connection in the worker processes (``/proc``) and
duplicates its descriptor with ``pidfd_getfd`` (Linux 5.6+, allowed on our own children).
"""

from __future__ import annotations

import ctypes
import http.client
import os
import socket
from pathlib import Path

from sjti.server.run import listening_socket

from .harness import Server

_PIDFD_GETFD = 438  # the same number on every Linux architecture


def _descendants(pid: int) -> list[int]:
    """``pid`` and every process below it."""
    parents: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = Path(f"/proc/{entry}/stat").read_text()
            except OSError:
                continue
            ppid = int(stat.rsplit(")", 1)[1].split()[1])
            parents.setdefault(ppid, []).append(int(entry))
    found, todo = [], [pid]
    while todo:
        current = todo.pop()
        found.append(current)
        todo.extend(parents.get(current, []))
    return found


def _server_side_inode(server_port: int, client_port: int) -> str:
    """The inode of the server's end of the loopback connection from ``client_port``."""
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        local, remote = fields[1], fields[2]
        if int(local.split(":")[1], 16) == server_port and (
            int(remote.split(":")[1], 16) == client_port
        ):
            return fields[9]
    raise AssertionError("the server's end of the connection is not in /proc/net/tcp")


def _borrow(pids: list[int], inode: str) -> socket.socket:
    """A duplicate of the descriptor some process in ``pids`` holds for socket ``inode``."""
    libc = ctypes.CDLL(None, use_errno=True)
    for pid in pids:
        try:
            fds = os.listdir(f"/proc/{pid}/fd")
        except OSError:
            continue
        for fd in fds:
            try:
                target = os.readlink(f"/proc/{pid}/fd/{fd}")
            except OSError:
                continue
            if target == f"socket:[{inode}]":
                pidfd = os.pidfd_open(pid)
                try:
                    duplicate = libc.syscall(_PIDFD_GETFD, pidfd, int(fd), 0)
                finally:
                    os.close(pidfd)
                assert duplicate >= 0, f"pidfd_getfd failed: errno {ctypes.get_errno()}"
                return socket.socket(fileno=duplicate)
    raise AssertionError("no worker holds the accepted socket")


def _nodelay_of_accepted(server: Server, pid: int) -> int:
    connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
    try:
        connection.request("GET", "/healthz")
        response = connection.getresponse()
        assert response.status == 200
        response.read()  # keep-alive: the server's socket stays open
        assert connection.sock is not None
        inode = _server_side_inode(server.port, connection.sock.getsockname()[1])
        with _borrow(_descendants(pid), inode) as borrowed:
            return borrowed.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY)
    finally:
        connection.close()


def test_two_workers_accept_connections_with_tcp_nodelay(tmp_path: Path) -> None:
    """``sjti serve --workers 2`` on SQLite: the worker's end of a keep-alive connection
    has TCP_NODELAY set (uvicorn's multi-worker socket used to lose it; one worker binds
    through asyncio, which sets it)."""
    server = Server(tmp_path, {}, workers=2)
    try:
        for _ in range(3):  # new connections, possibly on different workers
            assert _nodelay_of_accepted(server, server._proc.pid) != 0
    finally:
        server.stop()


def test_listening_socket_is_tcp_with_nodelay() -> None:
    """What the workers inherit: a TCP socket (asyncio sets TCP_NODELAY on what it
    accepts only for IPPROTO_TCP) with the option on the listener too."""
    with listening_socket("127.0.0.1", 0) as sock:
        assert sock.proto == socket.IPPROTO_TCP
        assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) != 0
