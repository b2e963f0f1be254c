"""A peer node: joins through the seeds, gossips, and watches its neighbours.

Joining: register with a random majority of the seeds, take the union of the
peer lists they return, and open links chosen by topology.py.  The connection
a peer registers on with a seed stays open (seedlink.py): link reports,
dead-node reports and key lookups to that seed go over it, and when it is
lost the peer registers there again and sends that seed its current links.
Liveness: every ping interval each neighbour is sent a LIVENESS_REQUEST (or,
with --liveness icmp or both, is pinged by the system ping: icmp.py); one that
misses ping-misses in a row (liveness.py) is dropped and reported dead to the
seeds.  Link and dead-node reports go to the seeds from one thread, off the
gossip path.  With authentication on (the default), the peer signs them and
its liveness replies with its Ed25519 key (auth.py).

``Peer`` is this module's class with its state, joining, the ping loop and
dead-node reports, talking to the seeds, start and stop; ``main`` is the
command line.  The rest of the peer is in the modules beside it, each a part
(mixin) of ``Peer``:

- peerlinks.py: dialling, the link handshake, serving a link, redial, cutting
  off a misbehaving neighbour (a link itself, its queue and writer: link.py);
- peergossip.py: creating, verifying (keys fetched from the seeds) and
  forwarding gossip;
- peerrepair.py: overlay repair rounds (on by default; ``--no-repair``).

Two parts of the state have an owner with its own lock, handed to the parts
that use them: the link table (linktable.py: the links and dials, the
simultaneous-dial rule, every link's liveness) and the key wait (keywait.py:
the keys learned from the seeds, the gossip waiting for them).

Decisions are made by messagelist.py (ML and forwarding), liveness.py (missed
pings) and topology.py (whom to link to, when to repair); these modules wire
them to sockets.
"""

from __future__ import annotations

import functools
import queue
import random
import sys
import threading
import time
from collections.abc import Callable

from gossipnet.config import (
    CONNECT_TIMEOUT,
    LEAVE_TIMEOUT,
    MAX_CONNECTIONS,
    REGISTER_ATTEMPTS,
    REGISTER_BACKOFF,
    REGISTER_TIMEOUT,
    SEED_REPORT_TIMEOUT,
    PeerSettings,
    majority,
)
from gossipnet.logs import logformat
from gossipnet.logs.logformat import NodeLog
from gossipnet.node import icmp, transport
from gossipnet.node.keywait import KeyWait
from gossipnet.node.link import Link
from gossipnet.node.linktable import LinkTable
from gossipnet.node.peergossip import Gossiping
from gossipnet.node.peerlinks import Linking
from gossipnet.node.peerrepair import Repairing
from gossipnet.node.seedlink import SeedLink
from gossipnet.node.transport import NodeServer, NodeStartError, describe
from gossipnet.protocol import auth, handout, liveness, topology
from gossipnet.protocol.messagelist import MessageList
from gossipnet.protocol.wire import (
    NOT_LISTED,
    Address,
    DeadNodeReport,
    Error,
    GossipMessage,
    Leave,
    LinkReport,
    LivenessRequest,
    Message,
    Ok,
    PeerList,
    ProtocolError,
    Register,
    Vouched,
    VouchRequest,
)


class Peer(Linking, Gossiping, Repairing):
    """A peer node: its state, joining, liveness, talking to the seeds, start and stop."""

    def __init__(self, server: NodeServer, log: NodeLog, seeds: list[Address], settings: PeerSettings,
                 rng: random.Random, clock: Callable[[], float] = time.time,
                 identity: auth.Identity | None = None) -> None:
        self.server = server
        self.address = server.address
        self.log = log
        self.seeds = seeds
        self.settings = settings
        self.rng = rng
        self.clock = clock
        self.stopped = threading.Event()
        # Set when a background loop cannot go on: the node then stops with an error.
        self.failure = transport.NodeFailure(self.stopped)
        self.message_list: MessageList[GossipMessage, Address] = MessageList()
        # The line of every message in the ML, as this peer sends it on (peerlinks.py).
        self.accepted_lines: set[str] = set()
        # The links to the neighbours, and the dials under way (linktable.py).
        self.link_table = LinkTable(self.address)
        self.registered_seeds: list[Address] = []
        # The connection held to each seed this peer registered with, or tried to (seedlink.py).
        self._seed_links: dict[Address, SeedLink] = {}
        self._refusals: dict[Address, str] = {}  # seed -> the reason of its last refused registration
        # Links this peer aims for (topology.join_target, drawn when it joins).
        self.target = 0
        # For each seed, the peers its reply to this peer's (latest)
        # registration listed: those registered there earlier.  Repair keeps a
        # link into each (topology.py, Repair), as the join did.  A neighbour
        # reported dead leaves them: if it comes back, it registers anew, after
        # this peer.
        self._join_lists: dict[Address, set[Address]] = {}
        self._repair_wanted = threading.Event()
        self._repair_reasons: list[str] = []  # why, since the last round (a few)
        # The neighbours a full peer named when it refused this peer's dial (peerlinks.py), by that peer.
        self.referrals: dict[Address, tuple[Address, ...]] = {}
        # This peer's key pair; None runs the report's plain format.
        self.identity = identity if identity is not None or not settings.auth else auth.Identity()
        # Other peers' keys as the seeds bound them, and the gossip waiting for one (keywait.py).
        self.key_wait = KeyWait()
        self.rejected = 0  # gossip messages dropped as unverifiable
        # Guards message_list and forwarding (installing a link holds it too, see
        # Linking._open_link), rejected, registered_seeds, _seed_links, _join_lists,
        # _repair_reasons and _threads; accepted_lines is written under it and read without it (a set
        # lookup is atomic).  Lock order: this lock, then the link table's or the key
        # wait's, then a link's own; never the other way.
        self._lock = threading.Lock()
        self._threads: list[threading.Thread] = []
        # (audience, report): audience "all" (the config), "registered", or a tuple of seeds.
        self._to_seeds: queue.Queue[tuple[str | tuple[Address, ...], Message] | None] = queue.Queue()
        server.handler = self.handle

    # --- Joining -------------------------------------------------------------------

    def join(self) -> None:
        """Register, link to neighbours, then start gossip and liveness checks."""
        lists = self.register()
        with self._lock:
            self._join_lists = {seed: set(handout.drawable(peers)) for seed, peers in lists.items()}
        if self.identity is not None:
            # Before any link opens, so that the first line on each can be this peer's binding.
            for seed in lists:
                self.on_vouched(seed, self._ask_vouch(seed))
        self._start(self._seed_report_loop, "seed reports")
        if self.identity is not None:
            self._start(self._key_lookup_loop, "key lookup")
        self.connect(lists)
        self._start(self._gossip_loop, "gossip")
        self._start(self._ping_loop, "liveness")
        if self.settings.repair:
            if not self.link_table.working():
                # The first peer, or one whose seeds restarted and lost their lists:
                # one round asks every seed, in case another knows some peers.
                self._want_repair("no links after joining")
            self._start(self._repair_loop, "repair")

    def register(self) -> dict[Address, dict[Address, int]]:
        """Register with a random majority of the seeds; their peer lists by seed.

        Unreachable seeds are replaced by others; passes over the unreached
        seeds repeat with a doubling pause.  Raises NodeStartError when no
        majority can be reached.
        """
        need = majority(len(self.seeds))
        pending = self.rng.sample(self.seeds, len(self.seeds))
        lists: dict[Address, dict[Address, int]] = {}
        for attempt in range(REGISTER_ATTEMPTS):
            for seed in list(pending):
                if len(lists) == need or self.stopped.is_set():
                    break
                peers = self._register_at(seed, attempt + 1, vouch_later=False)  # join() asks
                if peers is not None:
                    pending.remove(seed)
                    lists[seed] = peers
            if len(lists) == need or attempt == REGISTER_ATTEMPTS - 1:
                break
            if self.stopped.wait(REGISTER_BACKOFF * 2 ** attempt):
                break
        if len(lists) < need:
            # A seed's refusal says what to change; without one, the seeds did not answer.
            refusals = [f"{seed} refused: {reason}" for seed, reason in self._refusals.items() if seed in pending]
            why = refusals[0] if refusals else "Are the seeds in the config running?"
            raise NodeStartError(f"registered with {len(lists)} of {len(self.seeds)} seeds; "
                                 f"a majority needs {need}. {why}")
        with self._lock:
            self.registered_seeds = list(lists)
        union = sorted(set().union(*lists.values()))
        self.log.event(logformat.PEER_LIST_UNION, count=len(union), peers=",".join(map(str, union)))
        return lists

    def _register_at(self, seed: Address, attempt: int, vouch_later: bool = True) -> dict[Address, int] | None:
        """Register with one seed on the connection held to it (opened if need be, then kept and
        served); its peer list (peer -> degree, without this peer), or None if it failed.

        With ``vouch_later``, the seed is then asked to vouch for this peer's key
        binding from the seed-report thread: this may be the seed connection's
        own thread (a registration again), which cannot wait for its own reply.
        """
        link = self._seed_link(seed)
        try:
            reply = link.register(Register(self.address, self._key()), REGISTER_TIMEOUT)
            if isinstance(reply, Error):
                self._refusals[seed] = reply.reason
            if not isinstance(reply, PeerList):
                raise ProtocolError(f"expected PEER_LIST, got {reply.encode()[:100]!r}")
        except (OSError, ProtocolError) as exc:
            self.log.event(logformat.REGISTER_FAILED, seed=seed, attempt=attempt, reason=describe(exc))
            return None
        link.start(self._start)
        if self.identity is not None and vouch_later:
            self._to_seeds.put(((seed,), VouchRequest(self.address)))
        peers = {address: degree for address, degree in reply.peers if address != self.address}
        self.key_wait.learn(reply.keys.items())
        self.log.event(logformat.REGISTERED, seed=seed)
        self.log.event(logformat.PEER_LIST, seed=seed, peers=",".join(map(str, peers)))
        return peers

    def _seed_link(self, seed: Address) -> SeedLink:
        """The connection held to ``seed`` (seedlink.py), made the first time it is asked for."""
        with self._lock:
            link = self._seed_links.get(seed)
            if link is None:
                link = self._seed_links[seed] = SeedLink(
                    seed, self.settings.seed_keepalive, lambda: LivenessRequest(self.address, self._timestamp()),
                    self._rejoin_seed, self.log, random.Random(self.rng.random()))
            return link

    def _rejoin_seed(self, link: SeedLink, attempt: int) -> bool:
        """The connection to a seed was lost: register there again and send it this peer's links.

        A seed that restarted lost its Peer List, and relearns it this way; one
        that only lost the connection keeps this peer as it was (PROTOCOL.md §3.7).
        """
        if self.stopped.is_set() or self._register_at(link.seed, attempt) is None:
            return False
        for neighbour in sorted(self.link_table.working()):
            self._to_seeds.put(((link.seed,), self._sign(LinkReport(self.address, neighbour))))
        return True

    def connect(self, lists: dict[Address, dict[Address, int]]) -> None:
        """Open links as topology.py chooses, replacing peers that cannot be reached."""
        seed_lists = [handout.drawable(peers) for peers in lists.values()]  # a sample's anchors are for repair
        target = self.target = topology.join_target(self.settings.degree_model, self.rng)
        # Peers listed at the link limit would refuse: left out while a listed peer has room.
        unreachable = topology.known_full({peer: degree for peers in seed_lists for peer, degree in peers.items()},
                                          MAX_CONNECTIONS)
        while not self.stopped.is_set():
            linked = self.link_table.neighbours()
            picks = topology.next_neighbours(seed_lists, self.settings.degree_model, target, self.rng,
                                             linked=linked, unreachable=unreachable)
            if not picks:
                return
            for neighbour in picks:
                if not self.dial(neighbour):
                    unreachable.add(neighbour)


    # --- Liveness ------------------------------------------------------------------

    def _ping_loop(self) -> None:
        """Every ping interval, tick each link's liveness rule and check each live neighbour again.

        How (liveness.py, --liveness): a liveness request over the link, the
        system ping (icmp.Pinger, off this thread), or both.
        """
        mode = self.settings.liveness
        pinger = icmp.Pinger(self.settings.ping_interval) if liveness.uses_icmp(mode) else None
        warned = mode != liveness.ICMP  # both sees a crash through its app half: nothing to warn of
        try:
            while True:
                if not warned:
                    warned = self._warn_if_blind()
                if self.stopped.wait(self.settings.ping_interval):
                    return
                request = LivenessRequest(self.address, self._timestamp())
                for tick in self.link_table.tick():
                    if tick.misses:
                        failed = {} if mode == liveness.APP else {"failed": ",".join(tick.failed)}
                        self.log.event(logformat.PING_MISSED, neighbour=tick.link.neighbour, misses=tick.misses,
                                       **failed)
                    if tick.dead:
                        self.report_dead(tick.link)
                        continue
                    if liveness.uses_app(mode):
                        tick.link.send(request)
                    if pinger is not None:
                        pinger.ping(tick.link.neighbour, functools.partial(self.link_table.icmp_result, tick.link,
                                                                           tick.round))
        finally:
            if pinger is not None:
                pinger.stop()

    def _warn_if_blind(self) -> bool:
        """Warn, once, of the first neighbour whose death --liveness icmp can never see; True once warned.

        Checked at each tick (the first right after joining), so the warning
        comes as soon as such a neighbour is linked: on one host that is the first.
        """
        blind = sorted(neighbour for neighbour in self.link_table.neighbours()
                       if liveness.blind_to_processes(self.settings.liveness, neighbour.ip))
        if not blind:
            return False
        reason = (f"neighbour {blind[0]} is on a loopback address, which this host always answers: ICMP alone "
                  "cannot detect a crashed or hung peer here (use --liveness app or both)")
        self.log.event(logformat.LIVENESS_WARNING, neighbour=blind[0], reason=reason)
        print(f"peer: warning: --liveness icmp: {reason}", file=sys.stderr, flush=True)
        return True

    def report_dead(self, link: Link) -> None:
        """Drop a neighbour that missed ping-misses requests and tell the seeds."""
        if not self.link_table.remove(link):
            return  # replaced by a new link meanwhile: the neighbour is back
        link.close()
        with self._lock:
            for members in self._join_lists.values():
                members.discard(link.neighbour)
        report = self._sign(DeadNodeReport(link.neighbour, self._timestamp(), self.address))
        self.log.event(logformat.DEAD_NODE_REPORTED, dead=link.neighbour, msg=report.text)
        self._to_seeds.put(("all", report))
        self._want_repair(f"reported {link.neighbour} dead")

    # --- Talking to seeds ------------------------------------------------------------

    def ask_seed(self, seed: Address, message: Message, timeout: float) -> Message:
        """Ask one seed: over the connection held to it, or on a connection of its own when this peer
        holds none (a seed it did not register with) or it was lost meanwhile.

        Raises OSError or ProtocolError, as transport.request does.
        """
        with self._lock:
            link = self._seed_links.get(seed)
        if link is not None and link.connected:
            reply = link.ask(message, timeout)
            if reply is not None:
                return reply
        return transport.request(seed, message, timeout=timeout)

    def _ask_vouch(self, seed: Address) -> Message:
        """Ask ``seed`` to vouch for this peer's key binding: its VOUCHED, or an Error saying why not."""
        try:
            return self.ask_seed(seed, VouchRequest(self.address), SEED_REPORT_TIMEOUT)
        except (OSError, ProtocolError) as exc:
            return Error(describe(exc))

    def _seed_report_loop(self) -> None:
        """Deliver link and dead-node reports to the seeds, off the gossip path."""
        while (item := self._to_seeds.get()) is not None:
            audience, message = item
            with self._lock:
                if audience == "all":
                    seeds = list(self.seeds)
                elif audience == "registered":
                    seeds = list(self.registered_seeds)
                else:  # the seeds named
                    seeds = list(audience)
                links = dict(self._seed_links)
            for seed in seeds:
                if self.stopped.is_set():
                    return
                if isinstance(message, LinkReport) and seed in links and not links[seed].connected:
                    continue  # the seed connection is being made again, and then gets every link
                try:
                    reply = self.ask_seed(seed, message, SEED_REPORT_TIMEOUT)
                except (OSError, ProtocolError) as exc:
                    reply = Error(describe(exc))
                if isinstance(message, VouchRequest) and isinstance(reply, (Vouched, Error)):
                    self.on_vouched(seed, reply)
                elif isinstance(reply, Error):
                    self.log.event(logformat.SEED_ERROR, seed=seed, request=message.VERB, reason=reply.reason)
                    # The seed removed this peer (wire.NOT_LISTED): a repair round registers it there again.
                    if isinstance(message, LinkReport) and reply.code == NOT_LISTED:
                        self._want_repair(f"seed {seed} no longer lists this peer")

    # --- Lifecycle -----------------------------------------------------------------

    def _start(self, target: Callable[[], None], name: str) -> None:
        """Run ``target`` on a thread of its own, guarded (transport.run_loop) and joined on stop."""
        thread = threading.Thread(target=transport.run_loop, args=(name, target, self.log, self.failure),
                                  name=name, daemon=True)
        with self._lock:
            self._threads.append(thread)
        thread.start()

    def leave(self, seed_links: list[SeedLink]) -> None:
        """Send LEAVE to every seed this peer holds a connection to, all at once, and wait for their
        answers up to LEAVE_TIMEOUT in all (PROTOCOL.md §3.7)."""
        took: list[Address] = []
        asks = []
        for seed_link in seed_links:
            if seed_link.connected:
                ask = threading.Thread(target=self._leave_one, args=(seed_link, took), name="leave", daemon=True)
                ask.start()
                asks.append((seed_link.seed, ask))
        if not asks:
            return
        deadline = time.monotonic() + LEAVE_TIMEOUT
        for _, ask in asks:
            ask.join(timeout=max(0.0, deadline - time.monotonic()))
        missed = sorted(seed for seed, _ in asks if seed not in took)
        self.log.event(logformat.LEFT, seeds=",".join(map(str, sorted(took))), missed=",".join(map(str, missed)))

    def _leave_one(self, seed_link: SeedLink, took: list[Address]) -> None:
        if isinstance(seed_link.ask(Leave(self.address), LEAVE_TIMEOUT), Ok):
            took.append(seed_link.seed)  # list.append is atomic

    def _timestamp(self) -> str:
        return f"{self.clock():.6f}"

    def _key(self) -> str | None:
        return None if self.identity is None else self.identity.key

    def _sign(self, message):  # -> the same Signable type, signed when authentication is on
        return message if self.identity is None else message.signed(self.identity)

    def start(self) -> None:
        self.server.start()
        self.join()

    def stop(self, leave: bool = False) -> None:
        """Close every connection and join every thread.  Safe to call twice.

        With ``leave`` (a process that stops, peer.py), first tell the seeds,
        once nothing answers here any more; without it the peer goes as if it
        had crashed, which is what the in-process tests mean by stopping one.
        """
        self.stopped.set()
        self.key_wait.wanted.set()
        self._repair_wanted.set()
        self.server.stop()
        links = self.link_table.close()
        with self._lock:
            threads = list(self._threads)
            seed_links = list(self._seed_links.values())
        for link in links:
            link.close()
        if leave:
            self.leave(seed_links)
        for seed_link in seed_links:
            seed_link.close()
        self._to_seeds.put(None)
        # One deadline for them all: a blocked connect or request ends within
        # CONNECT_TIMEOUT, and the process must stop in bounded time however
        # many threads it has.
        deadline = time.monotonic() + CONNECT_TIMEOUT + 1
        for thread in threads + [link.writer for link in links if link.writer.ident]:
            thread.join(timeout=max(0.0, deadline - time.monotonic()))
