"""A private 3-primary Redis Cluster on loopback ports, for the cluster bus tests.

Started by hand (CLUSTER ADDSLOTSRANGE, SET-CONFIG-EPOCH, MEET: faster than
``redis-cli --cluster create``, which sleeps between steps), no replicas, a 1 s node
timeout so a killed primary is marked failed quickly. Each node keeps its
``nodes.conf`` in its own directory, so a node killed with ``kill -9`` and started again
rejoins with its slots.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import redis

from ..services import _free_port, _wait_for

__all__ = ["LocalRedisCluster"]

_SLOTS = 16384


class LocalRedisCluster:
    def __init__(self, binary: str, size: int = 3) -> None:
        self.binary = binary
        self.root = Path(tempfile.mkdtemp(prefix="sjti-rc-"))
        self.ports = [_free_port() for _ in range(size)]
        # The cluster bus port defaults to port + 10000, which may be taken or past 65535.
        self.bus_ports = {port: _free_port() for port in self.ports}
        self.procs: dict[int, subprocess.Popen[bytes]] = {}

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.ports[0]}"

    def client(self, port: int) -> redis.Redis:
        return redis.Redis(host="127.0.0.1", port=port, socket_timeout=2)

    def start_node(self, port: int) -> None:
        workdir = self.root / str(port)
        workdir.mkdir(exist_ok=True)
        self.procs[port] = subprocess.Popen(  # noqa: S603 - fixed argv from a found binary
            [
                *(self.binary, "--port", str(port), "--bind", "127.0.0.1"),
                *("--cluster-port", str(self.bus_ports[port])),
                *("--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf"),
                *("--cluster-node-timeout", "1000", "--save", "", "--appendonly", "no"),
            ],
            cwd=workdir,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        if not _wait_for("127.0.0.1", port):
            raise RuntimeError("redis-server did not start")

    def start(self) -> None:
        for port in self.ports:
            self.start_node(port)
        share = _SLOTS // len(self.ports)
        for index, port in enumerate(self.ports):
            node = self.client(port)
            last = _SLOTS - 1 if index == len(self.ports) - 1 else (index + 1) * share - 1
            node.execute_command("CLUSTER", "ADDSLOTSRANGE", index * share, last)
            node.execute_command("CLUSTER", "SET-CONFIG-EPOCH", index + 1)
            node.close()
        first = self.client(self.ports[0])
        for port in self.ports[1:]:
            first.execute_command("CLUSTER", "MEET", "127.0.0.1", port, self.bus_ports[port])
        first.close()
        self.wait_ok()

    def wait_ok(self, timeout: float = 15.0) -> None:
        """Until every running node reports ``cluster_state:ok`` and knows every node."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if all(self._ok(port) for port in self.procs):
                return
            time.sleep(0.05)
        raise RuntimeError("the cluster did not become ok")

    def wait_failed(self, port: int, timeout: float = 10.0) -> None:
        """Until ``port`` (a running node) reports ``cluster_state:fail``: a primary is gone."""
        deadline = time.monotonic() + timeout
        while "cluster_state:fail" not in self._info(port):
            if time.monotonic() >= deadline:
                raise RuntimeError("the cluster never noticed")
            time.sleep(0.05)

    def _ok(self, port: int) -> bool:
        text = self._info(port)
        return "cluster_state:ok" in text and f"cluster_known_nodes:{len(self.ports)}" in text

    def _info(self, port: int) -> str:
        node = self.client(port)
        try:
            info = node.execute_command("CLUSTER", "INFO")
            return info.decode() if isinstance(info, bytes) else str(info)
        except redis.RedisError:
            return ""
        finally:
            node.close()

    def owner(self, channel: str) -> int:
        """The port of the primary that owns ``channel``'s hash slot."""
        node = self.client(self.ports[0])
        try:
            slot = int(node.execute_command("CLUSTER", "KEYSLOT", channel))
            for start, end, primary, *_ in node.execute_command("CLUSTER", "SLOTS"):
                if int(start) <= slot <= int(end):
                    return int(primary[1])
        finally:
            node.close()
        raise LookupError(slot)

    def shard_subscribers(self, port: int, channel: str) -> int:
        node = self.client(port)
        try:
            _, count = node.execute_command("PUBSUB", "SHARDNUMSUB", channel)
            return int(count)
        finally:
            node.close()

    def move_slot(self, channel: str, to_port: int) -> None:
        """Give ``channel``'s (empty) slot to another primary: CLUSTER SETSLOT ... NODE."""
        first = self.client(self.ports[0])
        target = self.client(to_port)
        try:
            slot = int(first.execute_command("CLUSTER", "KEYSLOT", channel))
            node_id = target.execute_command("CLUSTER", "MYID")
            # The new owner first, then the others (the old owner learns it lost the slot).
            for port in sorted(self.procs, key=lambda p: p != to_port):
                node = self.client(port)
                node.execute_command("CLUSTER", "SETSLOT", slot, "NODE", node_id)
                node.close()
        finally:
            first.close()
            target.close()
        self.wait_ok()

    def epoch(self, port: int) -> int:
        text = self._info(port)
        return int(text.split("cluster_my_epoch:")[1].split()[0])

    def claim_and_publish(self, channel: str, port: int, message: str) -> int:
        """``port`` alone takes ``channel``'s slot (the first step of a reshard, or a
        view not yet gossiped) and a publisher that already routes there sends
        ``message``: one write, so no gossip lands between the two. The receivers."""
        node = self.client(port)
        try:
            slot = int(node.execute_command("CLUSTER", "KEYSLOT", channel))
            pipe = node.pipeline(transaction=False)
            pipe.execute_command(
                "CLUSTER", "SETSLOT", slot, "NODE", node.execute_command("CLUSTER", "MYID")
            )
            pipe.execute_command("SPUBLISH", channel, message)
            return int(pipe.execute()[1])
        finally:
            node.close()

    def kill9(self, port: int) -> None:
        proc = self.procs.pop(port)
        proc.kill()
        proc.wait(10)

    def stop(self) -> None:
        for port in list(self.procs):
            proc = self.procs.pop(port)
            proc.terminate()
            proc.wait(10)
        shutil.rmtree(self.root, ignore_errors=True)
