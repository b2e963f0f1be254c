"""A malicious peer for the trust tests, driven from the test process.

It holds a real key pair and really listens, so it can register with the
seeds like any peer (it proves its address), link to honest peers and keep
those links alive, and then lie: report live peers dead, inject gossip in
another peer's name, or alter what it forwards.
"""

from __future__ import annotations

import contextlib
import threading
import time

from gossipnet.node import transport
from gossipnet.node.transport import Connection, NodeServer
from gossipnet.protocol.auth import Identity
from gossipnet.protocol.wire import (
    Address,
    DeadNodeReport,
    GossipMessage,
    Hello,
    LinkReport,
    LivenessRequest,
    Message,
    PeerList,
    Register,
)


class RogueLink:
    """A link the rogue opened to an honest peer; it answers pings and keeps what it hears."""

    def __init__(self, rogue: Rogue, peer: Address) -> None:
        self.conn = Connection.open(peer, timeout=10)
        self.conn.send(Hello(rogue.address))
        reply = self.conn.read()
        if reply != Hello(peer):
            raise AssertionError(f"{peer} answered HELLO with {reply!r}")
        self.conn.set_timeout(None)
        self.rogue = rogue
        self.heard: list[GossipMessage] = []
        self.closed = threading.Event()
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    def _read(self) -> None:
        with contextlib.suppress(Exception):
            while (message := self.conn.read()) is not None:
                if isinstance(message, LivenessRequest):
                    self.conn.send(message.reply(self.rogue.address).signed(self.rogue.identity))
                elif isinstance(message, GossipMessage):
                    self.heard.append(message)
        self.closed.set()

    def send(self, message: Message) -> None:
        self.conn.send(message)

    def close(self) -> None:
        self.conn.close()
        self._thread.join(timeout=5)


class Rogue:
    def __init__(self) -> None:
        self.identity = Identity()
        self.server = NodeServer("127.0.0.1", 0, handler=self._answer)
        self.server.start()
        self.links: list[RogueLink] = []

    @property
    def address(self) -> Address:
        return self.server.address

    def _answer(self, conn: Connection) -> None:
        """Prove the address at registration: sign every liveness reply."""
        while isinstance(request := conn.read(), LivenessRequest):
            conn.send(request.reply(self.address).signed(self.identity))

    def register(self, seed: Address) -> PeerList:
        reply = transport.request(seed, Register(self.address, self.identity.key), timeout=10)
        if not isinstance(reply, PeerList):
            raise AssertionError(f"{seed} refused the rogue: {reply!r}")
        return reply

    def link(self, peer: Address) -> RogueLink:
        link = RogueLink(self, peer)
        self.links.append(link)
        return link

    def claim_link(self, seed: Address, peer: Address) -> Message:
        return transport.request(seed, LinkReport(self.address, peer).signed(self.identity), timeout=10)

    def report_dead(self, seed: Address, accused: Address) -> Message:
        report = DeadNodeReport(accused, f"{time.time():.6f}", self.address).signed(self.identity)
        return transport.request(seed, report, timeout=10)

    def close(self) -> None:
        for link in self.links:
            link.close()
        self.server.stop()
