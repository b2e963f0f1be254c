"""Run seeds and peers as real processes on 127.0.0.1 for the tests.

Every node listens on port 0 and is found through its STARTED line in the
shared log; the test waits on log conditions with deadlines, never on sleeps.
The harness ends only the processes it started, by PID, and always does so.
Starting, finding and stopping processes go through launch.py, as in the runners.
"""

from __future__ import annotations

import os
import signal
import socket
import time
from collections import Counter, defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from gossipnet.logs import logformat
from gossipnet.logs.runlog import LogTail
from gossipnet.protocol.wire import Address
from gossipnet.run import launch
from gossipnet.run.launch import NodeProcess as Node

ROOT = launch.ROOT

# The seed's own liveness check gives a peer this long to answer in the
# in-process seeds of tests/sockets.  A deadline for their live stand-ins on a
# loaded machine, never waited out for a dead one: an address where nothing
# listens refuses at once.
PROBE_TIMEOUT = 5.0

# Timings that make a whole run take seconds, not minutes.
FAST_PEER = ("--gossip-interval", "0.2", "--gossip-count", "10", "--ping-interval", "1.0", "--ping-misses", "3")


@dataclass
class Network:
    directory: Path
    nodes: list[Node] = field(default_factory=list)
    _tail: LogTail | None = None

    @property
    def log_path(self) -> Path:
        return self.directory / "outputfile.txt"

    @property
    def config_path(self) -> Path:
        return self.directory / "config.txt"

    # --- Starting -------------------------------------------------------------------

    def spawn(self, role: str, *args: str) -> Node:
        node = launch.spawn(role, args, self.directory / f"{role}-{len(self.nodes)}.err", cwd=self.directory)
        self.nodes.append(node)
        return node

    def start_node(self, role: str, *flags: str) -> Node:
        return self.spawn(role, "127.0.0.1", "0", "--log", str(self.log_path), "--quiet",
                          "--config", str(self.config_path), *flags)

    def start_seeds(self, count: int, *flags: str) -> list[Node]:
        """Start seeds on free ports and write the config listing them."""
        seeds = [self.start_node("seed", "--probe-timeout", "1", *flags) for _ in range(count)]
        self.wait_started(seeds)
        self.config_path.write_text("".join(f"{seed.address}\n" for seed in seeds))
        return seeds

    def start_peers(self, count: int, *flags: str, wait: bool = True) -> list[Node]:
        peers = [self.start_node("peer", *(flags or FAST_PEER)) for _ in range(count)]
        if wait:
            self.wait_started(peers)
        return peers

    def wait_started(self, nodes: list[Node], timeout: float = 30) -> None:
        """Wait for each node's STARTED line (by pid); fail with its error if one exits first."""
        if self._tail is None:
            self._tail = LogTail(self.log_path)
        launch.wait_started(nodes, self._tail, timeout)

    # --- Observing ------------------------------------------------------------------

    def parsed(self) -> logformat.ParsedLog:
        if not self.log_path.exists():
            return logformat.ParsedLog([], [])
        return logformat.parse_log(self.log_path)

    def events(self, name: str | None = None, node: Address | None = None) -> list[logformat.LogEvent]:
        return [event for event in self.parsed().events
                if (name is None or event.event == name) and (node is None or event.node == node)]

    def wait_until(self, condition: Callable[[], bool], timeout: float, what: str) -> None:
        """Poll ``condition`` until true; fail after ``timeout`` seconds saying ``what``."""
        deadline = time.monotonic() + timeout
        while not condition():
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out after {timeout:g} s waiting for {what}")
            time.sleep(0.1)  # polling interval, not synchronisation

    def receipts(self) -> dict[Address, Counter]:
        """For each peer, how many times it logged each (origin, message text) as received."""
        counts: dict[Address, Counter] = defaultdict(Counter)
        for event in self.events(logformat.GOSSIP_RECEIVED):
            counts[event.node][(event.address("origin"), event.fields["msg"])] += 1
        return counts

    def generated(self) -> dict[Address, set]:
        made: dict[Address, set] = defaultdict(set)
        for event in self.events(logformat.GOSSIP_GENERATED):
            made[event.node].add((event.node, event.fields["msg"]))
        return made

    def links(self) -> set[frozenset[Address]]:
        return {frozenset((event.node, event.address("neighbour")))
                for event in self.events(logformat.LINK_OPENED)}

    def all_delivered(self, peers: list[Node], per_peer: int) -> bool:
        """Every peer has logged receipt of every other peer's ``per_peer`` messages."""
        counts = self.receipts()
        expected = per_peer * (len(peers) - 1)
        return all(sum(counts[peer.address].values()) >= expected for peer in peers)

    # --- Stopping -------------------------------------------------------------------

    def kill(self, node: Node, sig: int = signal.SIGKILL) -> float:
        """Send ``sig`` to one node; returns the wall-clock time it was sent."""
        sent = time.time()
        os.kill(node.pid, sig)
        return sent

    def close(self) -> None:
        """End every process this harness started: SIGTERM, then SIGKILL if it lingers."""
        launch.stop(self.nodes)


def wait_for(condition, what: str, timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.02)  # polling interval, not synchronisation


def unused_address() -> Address:
    """An address on 127.0.0.1 where nothing listens: bound, never listening, then released."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return Address("127.0.0.1", sock.getsockname()[1])
