"""A loopback TCP proxy whose server-to-client direction a test can hold: the connection
stays open and what the server sends waits in the proxy (a partitioned or congested path
that TCP would deliver later), while the client-to-server direction keeps flowing."""

from __future__ import annotations

import contextlib
import socket
import threading

__all__ = ["TcpProxy"]


class TcpProxy:
    def __init__(self, upstream_port: int) -> None:
        self.upstream_port = upstream_port
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port: int = self._listener.getsockname()[1]
        self._lock = threading.Lock()
        self._held = False
        self.held: list[tuple[socket.socket, bytes]] = []  # server bytes not yet forwarded
        self.to_client = 0  # bytes forwarded from the server
        self._sockets: list[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def url(self, db: int = 0) -> str:
        return f"redis://127.0.0.1:{self.port}/{db}"

    def hold(self) -> None:
        with self._lock:
            self._held = True

    def release(self) -> None:
        with self._lock:  # in order: nothing new overtakes what was held
            self._held = False
            held, self.held = self.held, []
            for client, data in held:
                with contextlib.suppress(OSError):
                    client.sendall(data)

    def close(self) -> None:
        self.release()
        for sock in [self._listener, *self._sockets]:
            with contextlib.suppress(OSError):
                sock.close()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            server = socket.create_connection(("127.0.0.1", self.upstream_port))
            self._sockets += [client, server]
            threading.Thread(target=self._pump, args=(client, server, False), daemon=True).start()
            threading.Thread(target=self._pump, args=(server, client, True), daemon=True).start()

    def _pump(self, source: socket.socket, sink: socket.socket, from_server: bool) -> None:
        while True:
            try:
                data = source.recv(65536)
            except OSError:
                data = b""
            if not data:
                with contextlib.suppress(OSError):
                    sink.shutdown(socket.SHUT_WR)
                return
            if not from_server:
                with contextlib.suppress(OSError):
                    sink.sendall(data)
                continue
            with self._lock:
                if self._held:
                    self.held.append((sink, data))
                    continue
                with contextlib.suppress(OSError):
                    sink.sendall(data)
                self.to_client += len(data)
