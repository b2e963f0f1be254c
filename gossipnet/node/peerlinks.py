"""Links to neighbours: dialling, the link handshake, serving a link, redial.

A link is one TCP connection used both ways (link.py).  Either end may dial:
it sends HELLO and the other answers HELLO, ERROR when it is already
linked, or FULL at its link limit (MAX_CONNECTIONS links), naming its
neighbours for the dialler to try instead (``referrals``, read by repair).
When both ends dial at once, the link the smaller address opened is
kept.  When a link opens, each side replays its Message List (ML) to the
other, so a peer that joins late still receives every message created
before it arrived; the ML drops what a peer already has.  An incoming
connection that starts with LIVENESS_REQUEST is a seed's liveness check.

A neighbour that sends bad input is cut off, not reported dead: it is alive.
A neighbour that closes a link this peer still holds is dialled again at
once and then every ping interval (with repair on), until a new link
replaces the old one or the liveness rule (liveness.py) removes it: so a
peer that comes back after its neighbours reported it dead links to them
again instead of reporting them.

``Linking`` is a part of peer.Peer, whose __init__ holds the state it uses:
the link table (``link_table``, linktable.py: which link is current, the
dials under way, the simultaneous-dial rule), the Message List it replays
under the peer's lock (``_lock``), ...  Not here: whom to link to
(topology.py, via peer.py and peerrepair.py), what a link's gossip means
(peergossip.py), the missed-ping rule (liveness.py) and the ping loop (peer.py).
"""

from __future__ import annotations

from gossipnet.config import HANDSHAKE_TIMEOUT, MAX_CONNECTIONS, SEED_IDLE_TIMEOUT
from gossipnet.logs import logformat
from gossipnet.node import transport
from gossipnet.node.link import Link
from gossipnet.node.transport import Connection, describe
from gossipnet.protocol.repairplan import LINKED, REFUSED, UNREACHABLE, referrals  # how a dial ended: repair reads it
from gossipnet.protocol.wire import (
    Address,
    Error,
    Full,
    GossipMessage,
    Hello,
    KeyBinding,
    LinkReport,
    LivenessReply,
    LivenessRequest,
    ProtocolError,
    parse,
)


class Linking:
    """Opening, accepting and serving the links of a peer.Peer."""

    # --- Dialling --------------------------------------------------------------------

    def dial(self, neighbour: Address) -> bool:
        """Open a link to ``neighbour``; True if a link to it exists afterwards."""
        outcome = self._link_to(neighbour)
        self.referrals.pop(neighbour, None)  # only a repair round follows them (peerrepair.py)
        return outcome == LINKED

    def _link_to(self, neighbour: Address) -> str:
        """Open a link to ``neighbour``: LINKED (a link exists afterwards), REFUSED or UNREACHABLE."""
        if not self.link_table.start_dial(neighbour):
            return LINKED
        try:
            conn = Connection.open(neighbour)
        except OSError as exc:
            self.log.event(logformat.LINK_CLOSED, neighbour=neighbour,
                           reason=f"cannot connect: {describe(exc)}")
            self.link_table.end_dial(neighbour)
            return UNREACHABLE
        outcome = REFUSED
        try:
            conn.send(Hello(self.address))
            reply = conn.read()
        except OSError as exc:  # reset, or no answer in time (a hung peer's kernel still accepts)
            reply, outcome = Error(describe(exc)), UNREACHABLE
        except ProtocolError as exc:
            reply = Error(describe(exc))
        if isinstance(reply, Full) and reply.peer == neighbour:
            self.referrals[neighbour] = reply.neighbours  # for the repair round that dialled (peerrepair.py)
            reply = Error(f"full, naming {len(reply.neighbours)} neighbours")
        if isinstance(reply, Hello) and reply.peer == neighbour:
            link = self._open_link(neighbour, conn, initiator=True)
            if link is not None:
                self._start(lambda: transport.guarded(conn, lambda _: self._serve_link(link), self.log,
                                                      self.stopped), f"read {neighbour}")
                self.link_table.end_dial(neighbour)
                return LINKED
        conn.close()
        if self.link_table.end_dial(neighbour):  # it dialled us meanwhile; that link stands
            return LINKED
        if reply is None:
            reason = "closed without a reply"
        else:
            reason = reply.reason if isinstance(reply, Error) else f"unexpected reply {reply!r}"
        self.log.event(logformat.LINK_CLOSED, neighbour=neighbour, reason=f"refused: {reason}")
        return outcome

    # --- Connections ---------------------------------------------------------------

    def handle(self, conn: Connection) -> None:
        """An incoming connection: a neighbour's link, or a seed's liveness check."""
        conn.set_timeout(HANDSHAKE_TIMEOUT)
        first = conn.read()
        if first is None:
            return
        if isinstance(first, LivenessRequest):
            self._answer_liveness(conn, first)
        elif isinstance(first, Hello):
            self._accept_link(conn, first.peer)
        else:
            raise ProtocolError(f"expected HELLO or LIVENESS_REQUEST, got {first.VERB}")

    def _answer_liveness(self, conn: Connection, request: LivenessRequest) -> None:
        conn.set_timeout(SEED_IDLE_TIMEOUT)
        while isinstance(request, LivenessRequest):
            conn.send(self._sign(request.reply(self.address)))
            request = conn.read()
        if request is not None:
            raise ProtocolError(f"expected LIVENESS_REQUEST, got {request.VERB}")

    def _accept_link(self, conn: Connection, neighbour: Address) -> None:
        conn.remote = str(neighbour)
        if neighbour == self.address:
            raise ProtocolError("HELLO names this peer itself")
        working = self.link_table.working()
        if len(working) >= MAX_CONNECTIONS and neighbour not in working:
            # Their degrees are not known here: referrals shuffles them, spreading the diallers.
            conn.send(Full(self.address, tuple(referrals(dict.fromkeys(working), MAX_CONNECTIONS, self.rng))))
            return
        link = self._open_link(neighbour, conn, initiator=False)
        if link is None:
            conn.send(Error("stopping" if self.stopped.is_set() else "already linked"))
            return
        conn.set_timeout(None)
        self._serve_link(link)

    def _open_link(self, neighbour: Address, conn: Connection, initiator: bool) -> Link | None:
        """Make ``neighbour`` a neighbour: greet it, replay the ML to it, report the link."""
        conn.set_timeout(None)
        link = Link(neighbour, conn, initiator, self.settings.ping_misses, self.settings.liveness)

        def greet() -> None:  # once the table admits the link, before it is in the table
            if not initiator:
                link.send(Hello(self.address))
            # This peer's binding (once its seeds vouched for it), then the ML, each origin's
            # binding before its first message (peergossip.Gossiping._send_vouched).
            if (own := self.key_wait.binding_line(self.address)) is not None:
                link.bindings_sent[self.address] = own
                link.send(own)
            for message in self.message_list.messages():
                self._send_vouched(link, message.origin, message)

        # Under the peer's lock, as forwarding is (peergossip.py): each message either
        # is in this replay or is forwarded later, never both, never neither.
        with self._lock:
            if self.stopped.is_set():
                return None
            # Refused when a working link stands, or both ends dialled at once and
            # the other link is the one kept (linktable.py).
            installed, stale = self.link_table.install(link, greet)
        if not installed:
            return None
        if stale is not None:  # its connection had closed: the neighbour came back
            stale.close()
        link.writer.start()
        self.log.event(logformat.LINK_OPENED, neighbour=neighbour,
                       initiator=self.address if initiator else neighbour)
        self._to_seeds.put(("registered", self._sign(LinkReport(self.address, neighbour))))
        return link

    def _serve_link(self, link: Link) -> None:
        """Read a neighbour's lines until the connection ends."""
        ended = "closed by neighbour"
        try:
            while (line := link.conn.read_line()) is not None:
                self.link_table.replied(link)  # any line is a sign of life, a reply or not
                if line in self.accepted_lines:
                    continue  # a copy of a message already accepted: the ML would drop it, unparsed here
                message = parse(line)
                if isinstance(message, GossipMessage):
                    self.receive(message, link.neighbour)
                elif isinstance(message, KeyBinding):
                    self.on_binding(message, line)
                elif isinstance(message, LivenessRequest):
                    link.send(self._sign(message.reply(self.address)))
                elif not isinstance(message, LivenessReply):
                    raise ProtocolError(f"{message.VERB} is not sent over a link")
        except ProtocolError as exc:
            # A misbehaving neighbour is cut off, not reported dead: it is alive.
            # guarded() then answers ERROR and closes the connection.
            removed = self.link_table.remove(link)
            link.stop_writer()
            self.log.event(logformat.LINK_CLOSED, neighbour=link.neighbour,
                           reason=f"bad input: {describe(exc)}")
            if removed:
                self._want_repair(f"cut off {link.neighbour}")
            raise
        except OSError as exc:  # reset by the other end, for one: that is no bad input
            ended = f"connection error: {describe(exc)}"
        if self.stopped.is_set():
            return
        with self._lock:
            # Under the peer's lock, which every install holds (_open_link), so that a
            # new link replacing this one is logged after this line.
            current = self.link_table.is_current(link)
            if current:
                # Kept in the table: the liveness rule decides whether it is dead.  (Closed but
                # current: a send failed, or the neighbour fell too far behind, see Link.send.)
                self.log.event(logformat.LINK_CLOSED, neighbour=link.neighbour,
                               reason="send failed" if link.conn.closed else ended)
            redial = current and self.settings.repair
        link.conn.close()
        if redial:
            self._start(lambda: self._redial(link), f"redial {link.neighbour}")

    def _redial(self, link: Link) -> None:
        """Dial again a neighbour whose connection ended while its link was still in the table.

        The connection of a crashed peer ends, but so does that of a live
        neighbour that reported this peer dead (this peer was hung or cut off)
        and closed the link: dialling tells them apart.  If the neighbour
        answers, the new link replaces this one and nothing is reported.  If
        not, the loss asks for a repair round, and the dial is tried again
        every ping interval (a neighbour restarting on the same address comes
        back) until the liveness rule removes the link.  So a revived peer
        does not report its live former neighbours, and a crashed neighbour
        is still reported on the rule's timing.
        """
        lost = False
        while not self.stopped.is_set():
            if not self.link_table.is_current(link):
                return  # replaced by a new link, or removed by the liveness rule
            if self.dial(link.neighbour):
                return
            if not lost:
                lost = True
                self._want_repair(f"lost link to {link.neighbour}")
            if self.stopped.wait(self.settings.ping_interval):
                return

    def _cut(self, neighbour: Address, reason: str) -> None:
        """Close the link to a neighbour that misbehaved (it is alive: not reported dead)."""
        link = self.link_table.cut(neighbour)
        if link is not None:
            link.close()
            self.log.event(logformat.LINK_CLOSED, neighbour=neighbour, reason=reason)
            self._want_repair(f"cut off {neighbour}")
