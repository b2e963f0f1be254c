"""A seed node: keeps the Peer List (PL), hands it out, removes dead peers.

    python seed.py IP PORT [--config FILE] [--log FILE] [--probe-timeout S]

Each peer that registers is added to the PL; the reply to its registration is
the PL as it stood just before, which is what keeps the overlay connected
(see topology.py).  Peers report the links they open, so the seed knows each
peer's degree.  A dead-node report is acted on only when the reporter is a
known peer (registered here, or a neighbour of the accused by the accused's
own link reports) and the seed's own liveness check of the accused fails.
"""

from __future__ import annotations

import argparse
import os
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

import logformat
import transport
from config import (
    HANDSHAKE_TIMEOUT,
    MAX_LINKS_PER_PEER,
    SEED_IDLE_TIMEOUT,
    ConfigError,
    SeedSettings,
    listen_address,
    load_seeds,
    node_address_arguments,
    positive_float,
)
from logformat import NodeLog
from transport import Connection, NodeServer
from wire import (
    Address,
    DeadNodeReport,
    Error,
    LinkReport,
    LivenessReply,
    LivenessRequest,
    Message,
    Ok,
    PeerList,
    PeerListRequest,
    ProtocolError,
    Register,
)


@dataclass
class PeerRecord:
    """What a seed knows of one registered peer."""

    address: Address
    # Bumped on every (re-)registration, so a decision taken about an earlier
    # incarnation of an address never removes a later one.
    incarnation: int


class PeerTable:
    """The PL and the links reported between peers.  Thread-safe; no I/O."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._peers: dict[Address, PeerRecord] = {}
        # Links as an adjacency map (both directions), for degrees.
        self._links: dict[Address, set[Address]] = {}
        # The links each registered peer reported itself, for vetting reporters.
        self._claims: dict[Address, set[Address]] = {}
        self._incarnations = 0

    def register(self, peer: Address) -> tuple[PeerList, int, bool]:
        """Add ``peer``; return the PL as it was before, the PL's new size, and whether the peer is new."""
        with self._lock:
            before = self._snapshot(exclude=peer)
            known = peer in self._peers
            if known:
                self._drop_links(peer)  # a restarted peer starts with no links
            self._incarnations += 1
            self._peers[peer] = PeerRecord(peer, self._incarnations)
            return before, len(self._peers), not known

    def peer_list(self) -> PeerList:
        with self._lock:
            return self._snapshot()

    def record_link(self, reporter: Address, neighbour: Address) -> bool | None:
        """Store the link ``reporter`` says it opened.

        True if the link is new, False if known, None if the reporter is not in the PL.
        """
        with self._lock:
            if reporter not in self._peers:
                return None
            claims = self._claims.setdefault(reporter, set())
            if neighbour not in claims and len(claims) >= MAX_LINKS_PER_PEER:
                raise ProtocolError(f"more than {MAX_LINKS_PER_PEER} links reported by {reporter}")
            claims.add(neighbour)
            if neighbour in self._links.get(reporter, ()):
                return False
            self._links.setdefault(reporter, set()).add(neighbour)
            self._links.setdefault(neighbour, set()).add(reporter)
            return True

    def get(self, peer: Address) -> PeerRecord | None:
        with self._lock:
            return self._peers.get(peer)

    def claimed_neighbours(self, peer: Address) -> set[Address]:
        """The neighbours ``peer`` itself reported linking to."""
        with self._lock:
            return set(self._claims.get(peer, ()))

    def remove(self, record: PeerRecord) -> int | None:
        """Remove the peer if ``record`` is still its current incarnation; the new PL size."""
        with self._lock:
            if self._peers.get(record.address) is not record:
                return None
            del self._peers[record.address]
            self._drop_links(record.address)
            return len(self._peers)

    def _drop_links(self, peer: Address) -> None:
        self._claims.pop(peer, None)
        for other in self._links.pop(peer, ()):
            self._links.get(other, set()).discard(peer)
            self._claims.get(other, set()).discard(peer)

    def _snapshot(self, exclude: Address | None = None) -> PeerList:
        return PeerList(tuple(
            (address, len(self._links.get(address, ())))
            for address in sorted(self._peers) if address != exclude
        ))


class Seed:
    """Serves registrations, peer-list requests, link reports and dead-node reports."""

    def __init__(self, server: NodeServer, log: NodeLog, settings: SeedSettings,
                 clock: Callable[[], float] = time.time) -> None:
        self.server = server
        self.address = server.address
        self.log = log
        self.settings = settings
        self.clock = clock
        self.table = PeerTable()
        server.handler = self.handle

    def handle(self, conn: Connection) -> None:
        """One client connection: any number of request lines, one reply each."""
        conn.set_timeout(HANDSHAKE_TIMEOUT)
        while (message := conn.read()) is not None:
            conn.set_timeout(SEED_IDLE_TIMEOUT)
            conn.send(self.answer(message))

    def answer(self, message: Message) -> Message:
        if isinstance(message, Register):
            return self.on_register(message)
        if isinstance(message, PeerListRequest):
            return self.table.peer_list()
        if isinstance(message, LinkReport):
            return self.on_link(message)
        if isinstance(message, DeadNodeReport):
            return self.on_dead_node(message)
        if isinstance(message, LivenessRequest):
            return message.reply(self.address)
        raise ProtocolError(f"a seed does not serve {message.VERB}")

    def on_register(self, message: Register) -> PeerList:
        before, size, new = self.table.register(message.peer)
        self.log.event(logformat.PEER_REGISTERED, peer=message.peer, returned=len(before.peers),
                       again="no" if new else "yes")
        if new:
            self.log.event(logformat.PL_ADDED, peer=message.peer, size=size)
        return before

    def on_link(self, message: LinkReport) -> Message:
        outcome = self.table.record_link(message.reporter, message.neighbour)
        if outcome is None:
            return Error("the reporter is not registered here")
        if outcome:
            a, b = sorted((message.reporter, message.neighbour))
            self.log.event(logformat.LINK_RECORDED, a=a, b=b, reporter=message.reporter)
        return Ok()

    def on_dead_node(self, report: DeadNodeReport) -> Message:
        decision, reason = self.decide(report)
        self.log.event(logformat.DEAD_NODE_DECISION, dead=report.dead, reporter=report.reporter,
                       msg=report.text, decision=decision, reason=reason)
        return Ok(f"{decision}: {reason}")

    def decide(self, report: DeadNodeReport) -> tuple[str, str]:
        """Act on one dead-node report; returns (decision, reason)."""
        record = self.table.get(report.dead)
        if record is None:
            return "ignored", "not in the peer list"
        if report.reporter == report.dead:
            return "rejected", "a peer cannot report itself"
        if (self.table.get(report.reporter) is None
                and report.reporter not in self.table.claimed_neighbours(report.dead)):
            return "rejected", "reporter is neither registered here nor a neighbour of the accused"
        if self.probe(report.dead):
            return "rejected", "accused answered the seed's liveness check"
        size = self.table.remove(record)
        if size is None:
            return "ignored", "already removed or re-registered"
        self.log.event(logformat.PL_REMOVED, peer=report.dead, size=size, reason="dead, confirmed by probe")
        return "removed", f"reported by {report.reporter} and the seed's liveness check failed"

    def probe(self, peer: Address) -> bool:
        """The seed's own liveness check: does ``peer`` answer a liveness request?"""
        ask = LivenessRequest(self.address, f"{self.clock():.6f}")
        try:
            reply = transport.request(peer, ask, timeout=self.settings.probe_timeout)
        except (OSError, ProtocolError):
            return False
        # ERROR (busy: too many connections) still means something answers there.
        return isinstance(reply, Error) or (isinstance(reply, LivenessReply) and reply.replier == peer)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description="Seed node of the gossip network: keeps the Peer List and removes dead peers.")
    node_address_arguments(parser, "seed")
    parser.add_argument("--probe-timeout", type=positive_float, default=SeedSettings.probe_timeout,
                        metavar="S", help="seconds an accused peer has to answer the seed's own "
                        f"liveness check (default: {SeedSettings.probe_timeout:g})")
    args = parser.parse_args(argv)
    ip, port = listen_address(parser, args.ip, args.port)
    # A seed's own work does not need the seed list; it checks that peers can
    # find it there.  A seed on PORT 0 (tests, tools) cannot be listed in advance.
    seeds: list[Address] = []
    if port != 0:
        try:
            seeds = load_seeds(args.config)
        except ConfigError as exc:
            parser.exit(2, f"seed: error: {exc}\n")
    server, log = transport.open_node(parser, "seed", ip, port, args.log, args.quiet)
    seed = Seed(server, log, SeedSettings(probe_timeout=args.probe_timeout))
    log.event(logformat.STARTED, listen=seed.address, pid=os.getpid(), probe_timeout=args.probe_timeout,
              listed="yes" if seed.address in seeds else "no" if seeds else "unchecked")
    if seeds and seed.address not in seeds:
        print(f"seed: warning: {seed.address} is not listed in {args.config}; peers will not find it",
              file=sys.stderr)
    return transport.run_until_signalled(threading.Event(), server.start, server.stop, log, "seed")


if __name__ == "__main__":
    sys.exit(main())
