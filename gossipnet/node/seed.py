"""A seed node: keeps the Peer List (PL), hands it out, removes dead peers.

Each peer that registers is added to the PL; the reply to its registration is
the PL as it stood just before, which is what keeps the overlay connected
(see topology.py).  Peers report the links they open, so the seed knows each
peer's degree.  A dead-node report is acted on only when the reporter is a
known peer (registered here, or a neighbour of the accused by the accused's
own link reports) and the seed's own liveness check of the accused fails.

Many deaths at once (a crash of a third of the network) leave accused peers
whose other neighbours are dead too and will never report.  So a seed does
not wait forever for them: a neighbour that is itself accused here and fails
the seed's own liveness check no longer counts as one that could report,
and an accusation is looked at again whenever a removal shrinks the accused's
neighbours (see :meth:`Seed.reconsider`).  Neither lets a liar remove a live
peer: the accused must still fail the seed's own check.

A peer keeps the connection it registered on open (its *seed connection*,
docs/PROTOCOL.md §3.7).  When such a connection ends, the seed notes it
(PeerTable.connection_ended): that alone removes nobody, but a peer under
accusation here is then looked at again, and one counted report is enough
for the seed to check it.  A peer the seed removes has its seed connection
closed: if it is alive after all, it notices and registers again.

Which reports count and what the seed decides is deadnode.py's rule, plain
code that the simulator runs too.  This module carries its steps out: the
probes over the network, the table under its lock, the log, the reconsidering
thread and the announcements to the other seeds.

A seed given a state file (``seed.py --state``, node/seedstate.py) passes it
to its table as the journal of every change, so it writes each change before
it answers; started on an existing file, it lists the peers it loaded again
only as each passes its own liveness check (protocol/restore.py, on the
threads of :meth:`Seed.start`).  A change it cannot write stops the seed.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator

from gossipnet.config import (
    HANDSHAKE_TIMEOUT,
    MAX_PENDING_REGISTRATIONS,
    RESTORE_CHECKS_AT_ONCE,
    SEED_IDLE_TIMEOUT,
    SEED_REPORT_TIMEOUT,
    ConfigError,
    SeedSettings,
    load_seeds,
)
from gossipnet.logs import logformat
from gossipnet.logs.logformat import NodeLog
from gossipnet.node import transport
from gossipnet.node.seedstate import StateError
from gossipnet.node.transport import Connection, NodeServer, describe
from gossipnet.protocol import auth, deadnode, restore
from gossipnet.protocol.peertable import Journal, PeerRecord, PeerTable, Saved
from gossipnet.protocol.wire import (
    NOT_LISTED,
    Address,
    DeadNodeReport,
    Error,
    KeysRequest,
    Leave,
    LinkReport,
    LivenessReply,
    LivenessRequest,
    Message,
    Ok,
    PeerList,
    PeerListRequest,
    ProtocolError,
    Register,
    RemovalNotice,
    Vouch,
    Vouched,
    VouchRequest,
    binding_body,
)


class Seed:
    """Serves registrations, peer-list and key requests, link reports, dead-node reports, removal notices
    and leaving peers."""

    def __init__(self, server: NodeServer, log: NodeLog, settings: SeedSettings, config: str | None = None,
                 clock: Callable[[], float] = time.time, journal: Journal | None = None) -> None:
        self.server = server
        self.address = server.address
        self.log = log
        self.settings = settings
        # The seed list, read when a removal is to be announced (tests write
        # it after starting seeds on free ports).
        self.config = config
        self.clock = clock
        # Handlers run on many threads.  The journal (a state file) is written before each change.
        self.table = PeerTable(lock=threading.Lock(), journal=journal)
        # Set when a background thread cannot go on; its event stops the node (main).
        self.failure = transport.NodeFailure(threading.Event())
        self._registrations = threading.BoundedSemaphore(MAX_PENDING_REGISTRATIONS)
        # Accused peers to look at again (Seed.reconsider), and the one thread that does.
        self._to_reconsider: set[Address] = set()
        self._reconsidering: threading.Thread | None = None
        self._reconsider_lock = threading.Lock()
        # The threads checking the peers restored from the state file (start).
        self._restore_checks: list[threading.Thread] = []
        # The key this seed vouches for key bindings with (VOUCH); made at each start, like a peer's.
        self.identity = auth.Identity() if settings.auth else None
        server.handler = self.handle

    def restore(self, saved: Saved) -> dict[str, int]:
        """Start from what the state file held (before :meth:`start`); what it held, for the STARTED line."""
        self.table.restore(saved)
        return {"restored_peers": len(saved.peers), "restored_keys": sum(map(len, saved.keys.values())),
                "restored_links": sum(map(len, saved.claims.values()))}

    def start(self) -> None:
        """Serve; check the peers restored from the state file, if any, on threads of their own."""
        self.server.start()
        restored = self.table.restored()
        pending = iter(restored)
        lock = threading.Lock()
        for number in range(min(RESTORE_CHECKS_AT_ONCE, len(restored))):
            thread = threading.Thread(target=transport.run_loop, name=f"restore check {number}", daemon=True,
                                      args=("restore check", lambda: self._check_restored(pending, lock), self.log,
                                            self.failure))
            self._restore_checks.append(thread)
            thread.start()

    def stop(self) -> None:
        """Stop serving and join the restore checks (each ends within two probe timeouts).  Safe twice."""
        self.server.stop()
        for thread in self._restore_checks:
            thread.join()

    def handle(self, conn: Connection) -> None:
        """One client connection: any number of request lines, one reply each.

        A peer that registered on this connection and went on using it holds
        it as its seed connection: its end is noted (connection_ended).
        """
        conn.set_timeout(HANDSHAKE_TIMEOUT)
        registered: Address | None = None  # the peer that last registered on this connection
        held = False  # ... and sent another request on it since
        ended = "closed by the peer"
        try:
            while (message := conn.read()) is not None:
                conn.set_timeout(SEED_IDLE_TIMEOUT)
                held = registered is not None
                reply = self.answer(message, conn)
                if isinstance(message, Register) and isinstance(reply, PeerList):
                    registered, held = message.peer, False
                conn.send(reply)
        except TimeoutError:
            ended = f"silent for {SEED_IDLE_TIMEOUT:g} s"
            raise
        except (OSError, ProtocolError) as exc:
            ended = describe(exc)
            raise
        finally:
            if registered is not None and held:
                self.connection_ended(registered, conn, ended)

    def answer(self, message: Message, conn: Connection | None = None) -> Message:
        """The reply to one request; ``conn``: the connection it came on (a registration binds to it).

        A change the seed cannot write to its state file stops the seed.
        """
        try:
            return self._answer(message, conn)
        except StateError as exc:
            self.failure.fail(str(exc))
            return Error(f"the seed cannot record this: {describe(exc)}")

    def _answer(self, message: Message, conn: Connection | None) -> Message:
        if isinstance(message, Register):
            return self.on_register(message, conn)
        if isinstance(message, PeerListRequest):
            return self.table.peer_list()
        if isinstance(message, KeysRequest):
            keys = self.table.keys(message.peers)
            self.log.event(logformat.KEYS_LOOKUP, asked=len(message.peers), found=len(keys.keys))
            return keys
        if isinstance(message, VouchRequest):
            return self.vouch(message.peer)
        if isinstance(message, LinkReport):
            return self.on_link(message)
        if isinstance(message, DeadNodeReport):
            return self.on_dead_node(message)
        if isinstance(message, RemovalNotice):
            return self.on_removal_notice(message)
        if isinstance(message, LivenessRequest):
            return message.reply(self.address)
        if isinstance(message, Leave):
            return self.on_leave(message, conn)
        raise ProtocolError(f"a seed does not serve {message.VERB}")

    # --- Registration ----------------------------------------------------------------

    def on_register(self, message: Register, conn: Connection | None = None) -> Message:
        if self.settings.auth and message.key is None:
            refusal = "this network signs its messages: register with a public key (or run every node with --no-auth)"
        else:
            refusal = self.check_key(message) if message.key or self.table.key(message.peer) else None
        if refusal:
            self.log.event(logformat.REGISTER_REFUSED, peer=message.peer, reason=refusal)
            return Error(f"refused: {refusal}")
        registered = self.table.register(message.peer, message.key, holder=conn)
        if registered is None:
            refusal = f"busy: the peer list is full ({self.table.max_peers} peers)"
            self.log.event(logformat.REGISTER_REFUSED, peer=message.peer, reason=refusal)
            return Error(f"refused: {refusal}")
        before, size, new = registered
        self.log.event(logformat.PEER_REGISTERED, peer=message.peer, returned=len(before.peers),
                       again="no" if new else "yes", auth="yes" if message.key else "no")
        if new:
            self.log.event(logformat.PL_ADDED, peer=message.peer, size=size)
        return before

    def vouch(self, peer: Address) -> Message:
        """Vouch for the key this seed bound to ``peer`` (its current one): signed, with this seed's own key.

        Bindings are public (GET_KEYS tells them to anyone), so any client may ask.
        """
        if self.identity is None:
            return Error("this seed vouches for no keys (it runs with --no-auth)")
        key = self.table.key(peer)
        if key is None:
            return Error(f"no key bound to {peer}")
        when = f"{self.clock():.6f}"
        return Vouched(self.identity.key, peer, key,
                       Vouch(self.address, when, self.identity.sign(binding_body(peer, key, when))))

    def check_key(self, message: Register) -> str | None:
        """Bind a key only to an address that proves it holds it; None if the registration may go on.

        A different key for an address whose bound key still answers there
        is refused: the address is live and someone else is claiming it.
        """
        if not self._registrations.acquire(blocking=False):
            return "busy: too many registrations in progress"
        try:
            reply = self.challenge(message.peer)
        finally:
            self._registrations.release()
        bound = self.table.key(message.peer)
        if bound is not None and bound != message.key and proves(reply, bound):
            return f"{message.peer} is live with a different key"
        if message.key is not None and not proves(reply, message.key):
            return f"{message.peer} did not prove it holds the key"
        return None

    def challenge(self, peer: Address) -> LivenessReply | None:
        """Ask ``peer`` for a liveness reply to a fresh request; None if it gives none."""
        ask, reply = self._ask_liveness(peer)
        if isinstance(reply, LivenessReply) and reply.replier == peer and reply.timestamp == ask.timestamp:
            return reply
        return None

    def _ask_liveness(self, peer: Address) -> tuple[LivenessRequest, Message | None]:
        """Send ``peer`` a fresh liveness request; the request and the reply (None if none came)."""
        ask = LivenessRequest(self.address, f"{self.clock():.6f}")
        try:
            return ask, transport.request(peer, ask, timeout=self.settings.probe_timeout)
        except (OSError, ProtocolError):
            return ask, None

    # --- Peers restored from the state file: listed again once they answer ------------------

    def _check_restored(self, pending: Iterator[Address], lock: threading.Lock) -> None:
        while not self.server.stopping.is_set():
            with lock:
                peer = next(pending, None)
            if peer is None:
                return
            try:
                self.check_restored(peer)
            except StateError as exc:
                self.failure.fail(str(exc))
                return

    def check_restored(self, peer: Address) -> None:
        """The seed's own liveness check of a peer it loaded: list it again, or drop it and say why."""
        ask, reply = self._ask_liveness(peer)
        reason = restore.verdict(peer, ask, reply, self.table.key(peer))
        if reason is None:
            size = self.table.list_restored(peer)
            if size is not None:
                self.log.event(logformat.PL_ADDED, peer=peer, size=size, restored="yes")
        elif self.table.drop_restored(peer):
            self.log.event(logformat.RESTORE_DROPPED, peer=peer, reason=reason)

    def on_link(self, message: LinkReport) -> Message:
        refusal = self.vet(message.reporter, message)
        if refusal is not None and refusal.reason == deadnode.NOT_REGISTERED:
            # This seed removed the reporter (or never listed it): the code tells it to register again.
            return Error.coded(NOT_LISTED, refusal.reason)
        if refusal is not None:
            return Error(refusal.reason)
        if self.table.record_link(message.reporter, message.neighbour):
            a, b = sorted((message.reporter, message.neighbour))
            self.log.event(logformat.LINK_RECORDED, a=a, b=b, reporter=message.reporter)
        return Ok()

    def vet(self, reporter: Address, message: LinkReport | DeadNodeReport) -> deadnode.Reject | None:
        """Why a report from ``reporter`` cannot be taken as its word (deadnode.vet); None if it can."""
        listed = self.table.get(reporter) is not None
        key = self.table.key(reporter) if listed else None
        return deadnode.vet(listed, key_bound=key is not None, signed=bool(message.signature),
                            verified=key is not None and auth.verify(key, message.body(), message.signature))

    def connection_ended(self, peer: Address, conn: Connection, reason: str) -> None:
        """``peer``'s seed connection ended: note it, and look again at an accusation of it (§6.3).

        Never a removal by itself: the peer may only have lost its connection,
        and it registers again on a new one.
        """
        if self.server.stopping.is_set():
            return
        accused = self.table.connection_ended(peer, conn)
        if accused is None:
            return  # not its current connection any more (it registered again, or was removed)
        self.log.event(logformat.PEER_DISCONNECTED, peer=peer, reason=reason, accused="yes" if accused else "no")
        if accused:
            self.reconsider_later([peer])

    def on_leave(self, message: Leave, conn: Connection | None) -> Message:
        """A peer that stops says so (§3.7): out of the PL at once, not announced, not a death.

        Taken only over the connection the peer registered on: nobody else
        can take a peer out this way, so the seed need not check it first.
        """
        record = self.table.get(message.peer)
        if record is None or conn is None or record.holder is not conn:
            return Error("refused: a peer leaves only over the seed connection it registered on")
        if not self._take_out(record, lambda size: self.log.event(logformat.PEER_LEFT, peer=message.peer, size=size)):
            return Error("refused: not listed here")
        return Ok("left")

    # --- Dead nodes: deadnode.py decides, the seed probes, removes and tells --------------

    def on_dead_node(self, report: DeadNodeReport) -> Message:
        decision = self.decide(report)
        self.log.event(logformat.DEAD_NODE_DECISION, dead=report.dead, reporter=report.reporter,
                       msg=report.text, decision=decision.decision, reason=decision.reason)
        return Ok(f"{decision.decision}: {decision.reason}")

    def decide(self, report: DeadNodeReport) -> deadnode.Decision:
        """Act on one dead-node report (§6.1)."""
        record = self.table.get(report.dead)
        refusal = (deadnode.screen(report.reporter, report.dead, listed=record is not None)
                   or self.vet(report.reporter, report))
        if refusal is not None:
            return refusal
        counted = self.table.count(record, report)
        if isinstance(counted, deadnode.Reject):
            return counted
        return deadnode.carry_out(deadnode.on_report(record.address, counted), record, self)

    # --- What the seed does for the rule (deadnode.Seat) ---------------------------------

    def probe_silent(self, peer: Address) -> bool:
        return self.server.stopping.is_set() or self.probe(peer)

    def neighbours_of(self, record: PeerRecord) -> deadnode.Neighbours | None:
        return self.table.neighbours(record)

    def void_reports(self, record: PeerRecord) -> None:
        self.table.cleared(record)

    def reconsider_later(self, accused: list[Address]) -> None:
        """Look at these accusations again, on the seed's one reconsidering thread."""
        with self._reconsider_lock:
            self._to_reconsider.update(accused)
            if self._reconsidering is None:
                self._reconsidering = threading.Thread(
                    target=transport.run_loop, args=("reconsider", self._reconsider_loop, self.log, self.failure),
                    name="reconsider", daemon=True)
                self._reconsidering.start()

    def _reconsider_loop(self) -> None:
        while True:
            with self._reconsider_lock:
                if not self._to_reconsider or self.server.stopping.is_set():
                    self._reconsidering = None
                    return
                accused = min(self._to_reconsider)
                self._to_reconsider.discard(accused)
            try:
                self.reconsider(accused)
            except StateError as exc:
                self.failure.fail(str(exc))

    def reconsider(self, accused: Address) -> None:
        """Decide again about a peer already reported, without a new report (deadnode.reconsider).

        A decision is logged with the last report that counted.
        """
        if (found := deadnode.look_again(self.table, accused, self)) is not None:
            record, decision = found
            report = record.last_report
            self.log.event(logformat.DEAD_NODE_DECISION, dead=report.dead, reporter=report.reporter,
                           msg=report.text, decision=decision.decision, reason=decision.reason)

    def on_removal_notice(self, notice: RemovalNotice) -> Message:
        """Another seed removed a peer: check it here before following (§6.2)."""
        record = self.table.get(notice.dead)
        check = deadnode.on_notice(notice.seed, notice.dead, notice.seed in self.seed_list(), listed=record is not None)
        decision = deadnode.carry_out(check, record, self)
        self.log.event(logformat.REMOVAL_NOTICE, seed=notice.seed, dead=notice.dead, decision=decision.decision,
                       reason=decision.reason)
        return Ok(f"{decision.decision}: {decision.reason}")

    def remove(self, record: PeerRecord, reason: str, announce: bool = True) -> bool:
        def removed(size: int) -> None:
            self.log.event(logformat.PL_REMOVED, peer=record.address, size=size, reason=reason)
            if isinstance(record.holder, Connection):
                record.holder.close()  # a peer removed by mistake notices, and registers again
            if announce:
                self.announce_later(record.address)

        return self._take_out(record, removed)

    def _take_out(self, record: PeerRecord, then: Callable[[int], None]) -> bool:
        """Drop ``record`` from the table and call ``then`` with the PL's new size; False if it was gone."""
        removed = self.table.remove(record)
        if removed is None:
            return False
        size, accused = removed
        then(size)
        if accused:  # they lost a neighbour that could have reported them
            self.reconsider_later(accused)
        return True

    def announce_later(self, dead: Address) -> None:
        """Announce a removal on a thread of its own, off the reply path (a simulator schedules it instead)."""
        threading.Thread(target=transport.run_loop, args=("announce", lambda: self.announce(dead), self.log,
                                                          self.failure), name="announce", daemon=True).start()

    def announce(self, dead: Address) -> None:
        """Tell every other seed of the config about a removal."""
        for seed in self.seed_list():
            if seed == self.address or self.server.stopping.is_set():
                continue
            try:
                reply = transport.request(seed, RemovalNotice(self.address, dead), timeout=SEED_REPORT_TIMEOUT)
            except (OSError, ProtocolError) as exc:
                reply = Error(describe(exc))
            if isinstance(reply, Error):
                self.log.event(logformat.SEED_ERROR, seed=seed, request=RemovalNotice.VERB, reason=reply.reason)

    def seed_list(self) -> list[Address]:
        if self.config is None:
            return []
        try:
            return load_seeds(self.config)
        except ConfigError:
            return []

    def probe(self, peer: Address) -> bool:
        """The seed's own liveness check: does ``peer`` answer a liveness request?"""
        _, reply = self._ask_liveness(peer)
        # ERROR (busy: too many connections) still means something answers there.
        return isinstance(reply, Error) or (isinstance(reply, LivenessReply) and reply.replier == peer)


def proves(reply: LivenessReply | None, key: str) -> bool:
    """``reply`` is signed by the holder of ``key``."""
    return reply is not None and auth.verify(key, reply.body(), reply.signature)
