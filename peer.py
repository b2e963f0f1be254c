"""A peer node: joins through the seeds, gossips, and watches its neighbours.

    python peer.py IP PORT [--config FILE] [--log FILE] [--gossip-interval 5]
                   [--gossip-count 10] [--ping-interval 13] [--ping-misses 3]
                   [--degree-model preferential|report] [--rng-seed N]
                   [--repair-interval S] [--no-repair]

Joining: register with a random majority of the seeds, take the union of the
peer lists they return, and open links chosen by topology.py.  A link is one
TCP connection used both ways; each side runs a reader (its connection
thread) and a writer thread fed by a bounded queue, so a slow neighbour never
holds up gossip to the others.  When a link opens, each side replays its
Message List (ML) to the other, so a peer that joins late still receives
every message created before it arrived; the ML drops what a peer already has.

With authentication on (the default), the peer signs its gossip, link and
dead-node reports and its liveness replies with its Ed25519 key (auth.py).
A gossip message from a neighbour is verified against its origin's key
before it is accepted, logged or forwarded; keys come with the peer lists,
and a key this peer lacks (an origin that joined later) is fetched from the
seeds while the message waits.  A neighbour that sends a message whose
signature fails is cut off: honest peers never forward one.

Repair (on by default; ``--no-repair`` turns it off).  When a link is lost
(the neighbour is reported dead, cut off, or closed the connection and cannot
be dialled again), the peer asks a majority of the seeds for their current
lists (GET_PEERS), registers again with any that no longer list it (it was
removed, for instance while it was hung or cut off), and opens links as
topology.py's Repair section decides: to the smallest listed peer (the
anchor, which keeps the live overlay connected), into each list, and up to
its join target.  Rounds repeat on topology.RepairSchedule while they fall
short.  A neighbour that closes a link this peer still holds is dialled
again at once and then every ping interval, until a new link replaces the
old one or the liveness rule removes it: so a peer that comes back after its
neighbours reported it dead links to them again instead of reporting them.

Decisions are made by gossip.py (ML and forwarding), liveness.py (missed
pings) and topology.py (whom to link to, when to repair); this module wires
them to sockets.
"""

from __future__ import annotations

import argparse
import collections
import os
import queue
import random
import sys
import threading
import time
from collections.abc import Callable, Iterable

import auth
import logformat
import topology
import transport
from config import (
    CONNECT_TIMEOUT,
    HANDSHAKE_TIMEOUT,
    KEY_LOOKUP_ATTEMPTS,
    KEY_LOOKUP_BACKOFF,
    MAX_UNVERIFIED_PER_NEIGHBOUR,
    REGISTER_ATTEMPTS,
    REGISTER_BACKOFF,
    REGISTER_TIMEOUT,
    REPAIR_BACKOFF_CAP,
    REPAIR_DIALS,
    SEED_IDLE_TIMEOUT,
    SEED_REPORT_TIMEOUT,
    SEND_QUEUE_LINES,
    ConfigError,
    PeerSettings,
    listen_address,
    load_seeds,
    node_address_arguments,
    positive_float,
    positive_int,
)
from gossip import MessageList, forward_targets
from liveness import LivenessTracker
from logformat import NodeLog
from transport import Connection, NodeServer, NodeStartError, describe
from wire import (
    MAX_KEYS_PER_REQUEST,
    MAX_NUMBER_DIGITS,
    Address,
    DeadNodeReport,
    Error,
    GossipMessage,
    Hello,
    Keys,
    KeysRequest,
    LinkReport,
    LivenessReply,
    LivenessRequest,
    Message,
    PeerList,
    PeerListRequest,
    ProtocolError,
    Register,
    encode,
)

# Lines a writer sends in one system call when its queue has a backlog.
WRITE_BATCH = 64

# How a dial ended (Peer._link_to).  REFUSED: something answered and declined
# (an ERROR, or a close without a word): alive, but not to be linked to now.
# UNREACHABLE: no connection, or no answer in time: dead, hung or cut off.
LINKED, REFUSED, UNREACHABLE = "linked", "refused", "unreachable"

# A seed's answer to a LINK report from a peer it does not list (seed.Seed.vet):
# the seed removed this peer, which must register there again.
NOT_LISTED = "reporter is not a registered live peer here"


class Link:
    """One neighbour: its connection, its send queue and writer, its liveness.

    ``send`` never blocks.  When the writer is idle and nothing is queued, the
    line goes straight to the socket without blocking (the common case: no
    thread hand-off); whatever the socket does not take is queued, in order,
    for the writer thread, so a slow neighbour never holds up the others.
    """

    def __init__(self, neighbour: Address, conn: Connection, initiator: bool, ping_misses: int) -> None:
        self.neighbour = neighbour
        self.conn = conn
        self.initiator = initiator
        self.liveness = LivenessTracker(ping_misses)
        self._queue: collections.deque[bytes | None] = collections.deque()
        # Guards the queue and _writing; the writer waits on it for work.
        self._ready = threading.Condition(threading.Lock())
        self._writing = True  # the writer holds lines not yet sent (True until it first waits)
        self.writer = threading.Thread(target=self._write_loop, name=f"write {neighbour}", daemon=True)

    def send(self, message: Message | bytes) -> bool:
        """Send ``message`` (or its encoded line) to the neighbour; False if the link cannot take it."""
        if self.conn.closed:
            return False
        data = message if isinstance(message, bytes) else encode(message)
        with self._ready:
            if not self._writing and not self._queue:
                try:
                    data = data[self.conn.send_nowait(data):]
                except OSError:
                    self.conn.close()
                    return False
                if not data:
                    return True
            if len(self._queue) >= SEND_QUEUE_LINES:
                overflow = True
            else:
                overflow = False
                self._queue.append(data)
                self._ready.notify()
        if overflow:
            self.conn.close()  # it stopped reading; liveness will tell whether it is dead
            return False
        return True

    def close(self) -> None:
        self.conn.close()
        self.stop_writer()

    def stop_writer(self) -> None:
        """Let the writer finish what is queued and end, leaving the socket open."""
        with self._ready:
            self._queue.append(None)
            self._ready.notify()

    def _write_loop(self) -> None:
        """Send queued lines, several per system call when there is a backlog; end at None."""
        while True:
            with self._ready:
                self._writing = False
                while not self._queue:
                    self._ready.wait()
                self._writing = True
                batch = []
                while self._queue and len(batch) < WRITE_BATCH:
                    batch.append(self._queue.popleft())
                    if batch[-1] is None:
                        break
            ending = batch[-1] is None
            data = b"".join(item for item in batch if item is not None)
            try:
                if data:
                    self.conn.send_bytes(data)
            except OSError:
                self.conn.close()
                return
            if ending:
                return


class Peer:
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
        self.message_list: MessageList[GossipMessage, Address] = MessageList()
        self.links: dict[Address, Link] = {}
        self.registered_seeds: list[Address] = []
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
        # This peer's key pair; None runs the report's plain format.
        self.identity = identity if identity is not None or not settings.auth else auth.Identity()
        # Public keys of other peers as the seeds bound them: every key an
        # address has had (a restart makes a new one), so older messages verify.
        self.keys: dict[Address, set[str]] = {}
        # Gossip waiting for its origin's key: origin -> [(message, sender)].
        self._unverified: dict[Address, list[tuple[GossipMessage, Address]]] = {}
        self._held_from: dict[Address, int] = {}  # neighbour -> its messages waiting
        self._keys_wanted = threading.Event()
        self.rejected = 0  # gossip messages dropped as unverifiable
        self._dialing: set[Address] = set()
        # Guards links, _dialing, message_list, keys, _unverified, registered_seeds,
        # _join_lists, _repair_reasons and every link's liveness.
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
            self._join_lists = {seed: set(peers) for seed, peers in lists.items()}
        self._start(self._seed_report_loop, "seed reports")
        if self.identity is not None:
            self._start(self._key_lookup_loop, "key lookup")
        self.connect(lists)
        self._start(self._gossip_loop, "gossip")
        self._start(self._ping_loop, "liveness")
        if self.settings.repair:
            with self._lock:
                alone = not self._working()
            if alone:
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
        need = len(self.seeds) // 2 + 1
        pending = self.rng.sample(self.seeds, len(self.seeds))
        lists: dict[Address, dict[Address, int]] = {}
        for attempt in range(REGISTER_ATTEMPTS):
            for seed in list(pending):
                if len(lists) == need or self.stopped.is_set():
                    break
                peers = self._register_at(seed, attempt + 1)
                if peers is not None:
                    pending.remove(seed)
                    lists[seed] = peers
            if len(lists) == need or attempt == REGISTER_ATTEMPTS - 1:
                break
            if self.stopped.wait(REGISTER_BACKOFF * 2 ** attempt):
                break
        if len(lists) < need:
            raise NodeStartError(f"registered with {len(lists)} of {len(self.seeds)} seeds; "
                                 f"a majority needs {need}. Are the seeds in the config running?")
        with self._lock:
            self.registered_seeds = list(lists)
        union = sorted(set().union(*lists.values()))
        self.log.event(logformat.PEER_LIST_UNION, count=len(union), peers=",".join(map(str, union)))
        return lists

    def _register_at(self, seed: Address, attempt: int) -> dict[Address, int] | None:
        """Register with one seed; its peer list (peer -> degree, without this peer), or None if it failed."""
        try:
            reply = transport.request(seed, Register(self.address, self._key()), timeout=REGISTER_TIMEOUT)
            if not isinstance(reply, PeerList):
                raise ProtocolError(f"expected PEER_LIST, got {reply.encode()[:100]!r}")
        except (OSError, ProtocolError) as exc:
            self.log.event(logformat.REGISTER_FAILED, seed=seed, attempt=attempt, reason=describe(exc))
            return None
        peers = {address: degree for address, degree in reply.peers if address != self.address}
        with self._lock:
            self._learn(reply.keys.items())
        self.log.event(logformat.REGISTERED, seed=seed)
        self.log.event(logformat.PEER_LIST, seed=seed, peers=",".join(map(str, peers)))
        return peers

    def connect(self, lists: dict[Address, dict[Address, int]]) -> None:
        """Open links as topology.py chooses, replacing peers that cannot be reached."""
        seed_lists = list(lists.values())
        target = self.target = topology.join_target(self.settings.degree_model, self.rng)
        unreachable: set[Address] = set()
        while not self.stopped.is_set():
            with self._lock:
                linked = set(self.links)
            picks = topology.next_neighbours(seed_lists, self.settings.degree_model, target, self.rng,
                                             linked=linked, unreachable=unreachable)
            if not picks:
                return
            for neighbour in picks:
                if not self.dial(neighbour):
                    unreachable.add(neighbour)

    def dial(self, neighbour: Address) -> bool:
        """Open a link to ``neighbour``; True if a link to it exists afterwards."""
        return self._link_to(neighbour) == LINKED

    def _link_to(self, neighbour: Address) -> str:
        """Open a link to ``neighbour``: LINKED (a link exists afterwards), REFUSED or UNREACHABLE."""
        with self._lock:
            if self._linked(neighbour):
                return LINKED
            self._dialing.add(neighbour)
        try:
            conn = Connection.open(neighbour)
        except OSError as exc:
            self.log.event(logformat.LINK_CLOSED, neighbour=neighbour,
                           reason=f"cannot connect: {describe(exc)}")
            self._forget_dial(neighbour)
            return UNREACHABLE
        outcome = REFUSED
        try:
            conn.send(Hello(self.address))
            reply = conn.read()
        except OSError as exc:  # reset, or no answer in time (a hung peer's kernel still accepts)
            reply, outcome = Error(describe(exc)), UNREACHABLE
        except ProtocolError as exc:
            reply = Error(describe(exc))
        if isinstance(reply, Hello) and reply.peer == neighbour:
            link = self._open_link(neighbour, conn, initiator=True)
            if link is not None:
                self._start(lambda: transport.guarded(conn, lambda _: self._serve_link(link), self.log,
                                                      self.stopped), f"read {neighbour}")
                self._forget_dial(neighbour)
                return LINKED
        conn.close()
        with self._lock:
            self._dialing.discard(neighbour)
            if self._linked(neighbour):  # it dialled us meanwhile; that link stands
                return LINKED
        if reply is None:
            reason = "closed without a reply"
        else:
            reason = reply.reason if isinstance(reply, Error) else f"unexpected reply {reply!r}"
        self.log.event(logformat.LINK_CLOSED, neighbour=neighbour, reason=f"refused: {reason}")
        return outcome

    def _forget_dial(self, neighbour: Address) -> None:
        with self._lock:
            self._dialing.discard(neighbour)

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
        link = self._open_link(neighbour, conn, initiator=False)
        if link is None:
            conn.send(Error("already linked"))
            return
        conn.set_timeout(None)
        self._serve_link(link)

    def _open_link(self, neighbour: Address, conn: Connection, initiator: bool) -> Link | None:
        """Make ``neighbour`` a neighbour: greet it, replay the ML to it, report the link."""
        conn.set_timeout(None)
        link = Link(neighbour, conn, initiator, self.settings.ping_misses)
        with self._lock:
            if self._linked(neighbour) or self.stopped.is_set():
                return None
            # Both ends dialling at once: keep the link the smaller address opened.
            if not initiator and neighbour in self._dialing and self.address < neighbour:
                return None
            if not initiator:
                link.send(Hello(self.address))
            # Same critical section as forwarding: each message either is in
            # this replay or is forwarded later, never both, never neither.
            for message in self.message_list.messages():
                link.send(message)
            stale = self.links.get(neighbour)
            self.links[neighbour] = link
            if self.identity is not None and neighbour not in self.keys:
                # A newcomer's own messages come next: fetch its key before they do.
                self._unverified.setdefault(neighbour, [])
                self._keys_wanted.set()
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
            while (message := link.conn.read()) is not None:
                with self._lock:  # any line is a sign of life, a reply or not
                    link.liveness.replied()
                if isinstance(message, GossipMessage):
                    self.receive(message, link.neighbour)
                elif isinstance(message, LivenessRequest):
                    link.send(self._sign(message.reply(self.address)))
                elif not isinstance(message, LivenessReply):
                    raise ProtocolError(f"{message.VERB} is not sent over a link")
        except ProtocolError as exc:
            # A misbehaving neighbour is cut off, not reported dead: it is alive.
            # guarded() then answers ERROR and closes the connection.
            removed = self._remove_link(link)
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
            # Under the lock, so that a new link replacing this one is logged after this line.
            current = self.links.get(link.neighbour) is link
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
            with self._lock:
                if self.links.get(link.neighbour) is not link:
                    return  # replaced by a new link, or removed by the liveness rule
            if self.dial(link.neighbour):
                return
            if not lost:
                lost = True
                self._want_repair(f"lost link to {link.neighbour}")
            if self.stopped.wait(self.settings.ping_interval):
                return

    def _linked(self, neighbour: Address) -> bool:
        """A working link to ``neighbour`` exists.  Call with the lock held."""
        link = self.links.get(neighbour)
        return link is not None and not link.conn.closed

    def _remove_link(self, link: Link) -> bool:
        """Take ``link`` out of the table; False if a newer link had replaced it."""
        with self._lock:
            if self.links.get(link.neighbour) is not link:
                return False
            del self.links[link.neighbour]
            return True

    # --- Gossip --------------------------------------------------------------------

    def receive(self, message: GossipMessage, sender: Address) -> None:
        """A neighbour sent a message: verify it, then accept it.

        A message whose signature fails is judged once the seeds confirm the
        origin's key; then it is dropped and the neighbour cut off.  A message
        already in the ML is dropped before any verification: its
        identity is taken, and a forgery cannot displace it.
        """
        if self.identity is None:
            self.on_gossip(message, sender)
            return
        with self._lock:
            if message in self.message_list:
                return
            keys = self.keys.get(message.origin)
            if keys is None:
                self._hold(message, sender)
                return
        if _verify(keys, message):
            self.on_gossip(message, sender)
            return
        # It fails against the key held.  The origin may have restarted with a
        # new key: ask the seeds before judging the neighbour that sent it.
        with self._lock:
            self._hold(message, sender)

    def _reject(self, message: GossipMessage, sender: Address, reason: str) -> None:
        with self._lock:
            self.rejected += 1
            count = self.rejected
        self.log.event(logformat.GOSSIP_REJECTED, msg=message.text, origin=message.origin, reason=reason,
                       count=count, **{"from": sender})

    def _hold(self, message: GossipMessage, sender: Address) -> None:
        """Keep a message until the seeds tell its origin's key.  Call with the lock held.

        Raises ProtocolError (cutting the sender's link) when that neighbour
        already has too many messages waiting.
        """
        waiting = self._held_from.get(sender, 0)
        if waiting >= MAX_UNVERIFIED_PER_NEIGHBOUR:
            raise ProtocolError(f"more than {MAX_UNVERIFIED_PER_NEIGHBOUR} messages waiting for their origin's key")
        self._held_from[sender] = waiting + 1
        self._unverified.setdefault(message.origin, []).append((message, sender))
        self._keys_wanted.set()

    def _key_lookup_loop(self) -> None:
        """Fetch keys of origins whose messages wait, then verify and accept those messages."""
        while not self.stopped.is_set():
            self._keys_wanted.wait()
            if self.stopped.is_set():
                return
            self._keys_wanted.clear()
            with self._lock:
                wanted = list(self._unverified)[:MAX_KEYS_PER_REQUEST]
                seeds = list(self.registered_seeds)
            found, every_seed_answered = self._lookup_keys(wanted, seeds)
            with self._lock:
                self._learn(found)
                keys = {origin: set(self.keys[origin]) if origin in self.keys else None for origin in wanted}
                if not every_seed_answered:
                    # A seed that did not answer may hold the key: those messages
                    # keep waiting (within the per-neighbour bound) for a later pass.
                    wanted = [origin for origin in wanted if keys[origin] is not None]
                held = {origin: self._unverified.pop(origin, []) for origin in wanted}
                for messages in held.values():
                    for _, sender in messages:
                        self._held_from[sender] -= 1
                        if not self._held_from[sender]:
                            del self._held_from[sender]
                retry = bool(self._unverified)
            if retry and not every_seed_answered:
                self.stopped.wait(KEY_LOOKUP_BACKOFF)  # the seeds are busy: do not hammer them
            if retry:
                self._keys_wanted.set()
            for origin, messages in held.items():
                for message, sender in messages:
                    self._judge(message, sender, keys[origin])

    def _learn(self, keys: Iterable[tuple[Address, str]]) -> None:
        """Add keys the seeds gave.  Call with the lock held."""
        for address, key in keys:
            self.keys.setdefault(address, set()).add(key)

    def _judge(self, message: GossipMessage, sender: Address, keys: set[str] | None) -> None:
        """Accept a waiting message, or drop it; a bad signature also cuts off its sender."""
        if keys is None:
            self._reject(message, sender, "origin has no key at the seeds")
        elif _verify(keys, message):
            self.on_gossip(message, sender)
        else:
            reason = "bad signature" if message.signature else "unsigned"
            self._reject(message, sender, reason)
            self._cut(sender, f"bad input: gossip from origin {message.origin} with a {reason}")

    def _lookup_keys(self, wanted: list[Address], seeds: list[Address]) -> tuple[list[tuple[Address, str]], bool]:
        """Every key the seeds this peer registered with hold for ``wanted``.

        Any two majorities share a seed, so together they hold every live
        origin's keys; all are asked, since a restarted origin re-registered
        its new key with only some of them.  Passes repeat a few times for
        origins no seed answered for, to ride out a busy seed.  Also returns
        whether every seed answered the last pass: only then does a missing
        key mean that the origin has none.
        """
        found: list[tuple[Address, str]] = []
        missing = list(wanted)
        every_seed_answered = False
        for attempt in range(KEY_LOOKUP_ATTEMPTS):
            every_seed_answered = True
            for seed in seeds:
                if self.stopped.is_set():
                    return found, False
                try:
                    reply = transport.request(seed, KeysRequest(tuple(missing)))
                except (OSError, ProtocolError):
                    reply = None
                if not isinstance(reply, Keys):
                    every_seed_answered = False
                    continue
                found.extend((address, key) for address, key in reply.keys if address in missing)
            answered = {address for address, _ in found}
            missing = [origin for origin in missing if origin not in answered]
            if not missing or self.stopped.wait(KEY_LOOKUP_BACKOFF * 2 ** attempt):
                break
        return found, every_seed_answered

    def _cut(self, neighbour: Address, reason: str) -> None:
        """Close the link to a neighbour that misbehaved (it is alive: not reported dead)."""
        with self._lock:
            link = self.links.get(neighbour)
        if link is not None and self._remove_link(link):
            link.close()
            self.log.event(logformat.LINK_CLOSED, neighbour=neighbour, reason=reason)
            self._want_repair(f"cut off {neighbour}")

    def on_gossip(self, message: GossipMessage, sender: Address | None) -> None:
        """A message arrived (or was created, sender None): record it, pass it on."""
        with self._lock:
            if not self.message_list.accept(message, sender):
                return
            line = encode(message)  # once, however many neighbours
            for neighbour in forward_targets(self.links, sender):
                self.links[neighbour].send(line)
        if sender is None:
            self.log.event(logformat.GOSSIP_GENERATED, msg=message.text, number=message.number)
        else:
            self.log.event(logformat.GOSSIP_RECEIVED, msg=message.text, origin=message.origin, **{"from": sender})

    def _gossip_loop(self) -> None:
        for number in range(1, self.settings.gossip_count + 1):
            if number > 1 and self.stopped.wait(self.settings.gossip_interval):
                return
            self.on_gossip(self._sign(GossipMessage(self.address, self._timestamp(), number)), None)

    # --- Liveness ------------------------------------------------------------------

    def _ping_loop(self) -> None:
        while not self.stopped.wait(self.settings.ping_interval):
            request = LivenessRequest(self.address, self._timestamp())
            with self._lock:
                links = list(self.links.values())
                verdicts = [(link, link.liveness.tick(), link.liveness.misses) for link in links]
            for link, dead, misses in verdicts:
                if misses:
                    self.log.event(logformat.PING_MISSED, neighbour=link.neighbour, misses=misses)
                if dead:
                    self.report_dead(link)
                else:
                    link.send(request)

    def report_dead(self, link: Link) -> None:
        """Drop a neighbour that missed ping-misses requests and tell the seeds."""
        if not self._remove_link(link):
            return  # replaced by a new link meanwhile: the neighbour is back
        link.close()
        with self._lock:
            for members in self._join_lists.values():
                members.discard(link.neighbour)
        report = self._sign(DeadNodeReport(link.neighbour, self._timestamp(), self.address))
        self.log.event(logformat.DEAD_NODE_REPORTED, dead=link.neighbour, msg=report.text)
        self._to_seeds.put(("all", report))
        self._want_repair(f"reported {link.neighbour} dead")

    # --- Repair ----------------------------------------------------------------------

    def _want_repair(self, reason: str) -> None:
        """A link was lost (or a seed no longer lists this peer): ask the repair loop for a round."""
        if not self.settings.repair:
            return
        with self._lock:
            if len(self._repair_reasons) < 4 and reason not in self._repair_reasons:
                self._repair_reasons.append(reason)
        self._repair_wanted.set()

    def _repair_loop(self) -> None:
        """Run repair rounds when links are lost, paced by topology.RepairSchedule."""
        schedule = topology.RepairSchedule(self.settings.repair_period, REPAIR_BACKOFF_CAP)
        while True:
            self._repair_wanted.wait(schedule.wait(time.monotonic()))
            if self.stopped.is_set():
                return
            if self._repair_wanted.is_set():
                self._repair_wanted.clear()
                schedule.lost(time.monotonic())
            if schedule.wait(time.monotonic()) != 0:
                continue  # woken early: the pace allows no round yet
            with self._lock:
                reasons, self._repair_reasons = self._repair_reasons, []
            # With no loss since the last round: a retry of one that fell short, or a confirmation.
            reason = "; ".join(reasons) or ("retry" if schedule.shortfalls else "confirm")
            outcome = self._repair(reason)
            if self.stopped.is_set():
                return
            complete, changed = outcome.pop("complete"), outcome.pop("changed")
            schedule.finished(time.monotonic(), complete, changed)
            self.log.event(logformat.REPAIR, **outcome, complete="yes" if complete else "no",
                           next="none" if schedule.pause is None else f"{schedule.pause:g}")

    def _repair(self, reason: str) -> dict[str, object]:
        """One repair round: fresh lists, registering again where removed, then anchor, cover and fill.

        Returns the round's facts for the REPAIR line, with ``complete`` (nothing
        fell short) and ``changed`` (links opened or registrations made).
        """
        need = len(self.seeds) // 2 + 1
        lists, rejoined = self._refresh_lists(need)
        listed: dict[Address, int] = {}
        for peers in lists.values():
            for address, degree in peers.items():
                listed[address] = max(degree, listed.get(address, 0))
        with self._lock:
            working = self._working()
            before = len(working)
            # A closed link still in the table has its own redial; the liveness rule decides it.
            unreachable = set(self.links) - working
            cover = [{peer: listed[peer] for peer in members if peer in listed}
                     for members in self._join_lists.values()]
        refused: set[Address] = set()
        dials = REPAIR_DIALS
        opened = 0
        short = len(lists) < need

        def attempt(peer: Address) -> bool:
            nonlocal dials, opened
            dials -= 1
            outcome = self._link_to(peer)
            if outcome == LINKED:
                opened += 1
                return True
            (unreachable if outcome == UNREACHABLE else refused).add(peer)
            return False

        # 1. The anchor: the smallest listed peer that links (topology.py, Repair).
        # A smaller peer that cannot be reached yet may be alive (hung, or across a
        # partition): the anchor is not settled, and the round falls short.
        anchor = self.address  # none smaller links: this peer is its own anchor
        for candidate in topology.anchor_candidates(listed, self.address):
            if candidate in working:
                anchor = candidate
                break
            if candidate not in unreachable:
                if not dials or self.stopped.is_set():
                    short = True
                    break
                if attempt(candidate):
                    anchor = candidate
                    break
            short = short or candidate in unreachable  # refused: alive but declining, skipped by all
        # 2. Cover and fill, by the degree model (degree-proportional by default).
        seed_lists = cover + list(lists.values())
        while dials and not self.stopped.is_set():
            with self._lock:
                linked = self._working()
            picks = topology.next_neighbours(seed_lists, self.settings.degree_model, self.target, self.rng,
                                             linked=linked, unreachable=unreachable | refused)
            if not picks:
                break
            for pick in picks[:dials]:
                attempt(pick)
        with self._lock:
            linked = self._working()
        short = short or topology.repair_short(seed_lists, self.target, linked, refused)
        return {"reason": reason, "degree": len(linked), "before": before, "target": self.target,
                "seeds": len(lists), "rejoined": len(rejoined), "opened": opened, "anchor": anchor,
                "complete": not short, "changed": bool(opened or rejoined)}

    def _refresh_lists(self, need: int) -> tuple[dict[Address, dict[Address, int]], list[Address]]:
        """Current peer lists from ``need`` seeds, registering again with any that no longer list this peer.

        Asks the seeds this peer registered with first, then the others in
        place of those that cannot be reached, and past a majority while every
        list so far is empty.  GET_PEERS, not REGISTER, for a
        seed that still lists the peer: registering again would start a new
        incarnation there and drop the links the seed recorded for it, and
        with them its neighbours' right to report it.  Returns the lists by
        seed (without this peer) and the seeds registered with anew.
        """
        with self._lock:
            registered = list(self.registered_seeds)
        others = [seed for seed in self.seeds if seed not in registered]
        order = self.rng.sample(registered, len(registered)) + self.rng.sample(others, len(others))
        lists: dict[Address, dict[Address, int]] = {}
        rejoined: list[Address] = []
        for seed in order:
            # Past a majority only while every list is empty: seeds that restarted
            # come back empty, and another seed may still know the other peers.
            if (len(lists) >= need and any(lists.values())) or self.stopped.is_set():
                break
            try:
                reply = transport.request(seed, PeerListRequest())
            except (OSError, ProtocolError):
                reply = None
            if not isinstance(reply, PeerList):
                continue
            with self._lock:
                self._learn(reply.keys.items())
            peers = dict(reply.peers)
            if self.address in peers:
                del peers[self.address]
            elif len(lists) >= need and not peers:
                continue  # beyond the majority, a seed that knows no other peer is not worth joining
            else:
                # Removed here (it was hung or cut off), or a seed it never registered with.
                peers = self._register_at(seed, attempt=1)
                if peers is None:
                    continue
                rejoined.append(seed)
                self.log.event(logformat.REJOINED, seed=seed, again="yes" if seed in registered else "no")
                with self._lock:
                    self._join_lists[seed] = set(peers)
                    if seed not in self.registered_seeds:
                        self.registered_seeds.append(seed)
            lists[seed] = peers
        if rejoined:
            # The seed dropped this peer's links when it removed it: report the live ones again,
            # so that its neighbours may report it if it dies.
            with self._lock:
                neighbours = sorted(self._working())
            for neighbour in neighbours:
                self._to_seeds.put((tuple(rejoined), self._sign(LinkReport(self.address, neighbour))))
        return lists, rejoined

    def _working(self) -> set[Address]:
        """Neighbours with a working link.  Call with the lock held."""
        return {neighbour for neighbour, link in self.links.items() if not link.conn.closed}

    # --- Talking to seeds ------------------------------------------------------------

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
            for seed in seeds:
                if self.stopped.is_set():
                    return
                try:
                    reply = transport.request(seed, message, timeout=SEED_REPORT_TIMEOUT)
                except (OSError, ProtocolError) as exc:
                    reply = Error(describe(exc))
                if isinstance(reply, Error):
                    self.log.event(logformat.SEED_ERROR, seed=seed, request=message.VERB, reason=reply.reason)
                    if isinstance(message, LinkReport) and reply.reason == NOT_LISTED:
                        self._want_repair(f"seed {seed} no longer lists this peer")

    # --- Lifecycle -----------------------------------------------------------------

    def _start(self, target: Callable[[], None], name: str) -> None:
        thread = threading.Thread(target=target, name=name, daemon=True)
        with self._lock:
            self._threads.append(thread)
        thread.start()

    def _timestamp(self) -> str:
        return f"{self.clock():.6f}"

    def _key(self) -> str | None:
        return None if self.identity is None else self.identity.key

    def _sign(self, message):  # -> the same Signable type, signed when authentication is on
        return message if self.identity is None else message.signed(self.identity)

    def start(self) -> None:
        self.server.start()
        self.join()

    def stop(self) -> None:
        """Close every connection and join every thread.  Safe to call twice."""
        self.stopped.set()
        self._keys_wanted.set()
        self._repair_wanted.set()
        self.server.stop()
        with self._lock:
            links = list(self.links.values())
            threads = list(self._threads)
        for link in links:
            link.close()
        self._to_seeds.put(None)
        # One deadline for them all: a blocked connect or request ends within
        # CONNECT_TIMEOUT, and the process must stop in bounded time however
        # many threads it has.
        deadline = time.monotonic() + CONNECT_TIMEOUT + 1
        for thread in threads + [link.writer for link in links if link.writer.ident]:
            thread.join(timeout=max(0.0, deadline - time.monotonic()))


def _verify(keys: set[str], message: GossipMessage) -> bool:
    """Signed by one of the keys its origin's address has had."""
    return any(auth.verify(key, message.body(), message.signature) for key in keys)


def main(argv: list[str] | None = None) -> int:
    defaults = PeerSettings()
    parser = argparse.ArgumentParser(
        description="Peer node of the gossip network: registers with the seeds, links to other "
                    "peers, gossips and reports dead neighbours.")
    node_address_arguments(parser, "peer")
    parser.add_argument("--gossip-interval", type=positive_float, default=defaults.gossip_interval, metavar="S",
                        help=f"seconds between the messages this peer creates (default: {defaults.gossip_interval:g})")
    parser.add_argument("--gossip-count", type=positive_int, default=defaults.gossip_count, metavar="N",
                        help=f"messages this peer creates in all (default: {defaults.gossip_count})")
    parser.add_argument("--ping-interval", type=positive_float, default=defaults.ping_interval, metavar="S",
                        help="seconds between liveness requests to each neighbour "
                        f"(default: {defaults.ping_interval:g})")
    parser.add_argument("--ping-misses", type=positive_int, default=defaults.ping_misses, metavar="N",
                        help="consecutive unanswered requests that make a neighbour dead "
                        f"(default: {defaults.ping_misses})")
    parser.add_argument("--degree-model", choices=topology.DEGREE_MODELS, default=defaults.degree_model,
                        help="how neighbours are chosen: preferential attachment (a true power law) or the "
                             "report's formula 40*1.5^(-k/10), which is exponential (default: preferential)")
    parser.add_argument("--no-auth", action="store_true",
                        help="run the report's plain format: no keys, no signatures (every peer of a network "
                             "must agree; default: Ed25519 signatures on)")
    parser.add_argument("--rng-seed", type=int, metavar="N",
                        help="seed for this peer's random choices, for repeatable runs (default: random)")
    parser.add_argument("--repair-interval", type=positive_float, metavar="S",
                        help="seconds between overlay repair rounds while a repair is under way (doubling while "
                             "they fall short) (default: the ping interval)")
    parser.add_argument("--no-repair", action="store_true",
                        help="do not replace lost links, dial back a neighbour that closed a link, or register "
                             "again after a removal (the report's behaviour; default: repair on)")
    args = parser.parse_args(argv)
    ip, port = listen_address(parser, args.ip, args.port)
    if args.gossip_count >= 10 ** MAX_NUMBER_DIGITS:
        parser.error(f"--gossip-count must be below 10^{MAX_NUMBER_DIGITS}")
    settings = PeerSettings(args.gossip_interval, args.gossip_count, args.ping_interval, args.ping_misses,
                            args.degree_model, auth=not args.no_auth, repair=not args.no_repair,
                            repair_interval=args.repair_interval)
    try:
        seeds = load_seeds(args.config)
    except ConfigError as exc:
        parser.exit(2, f"peer: error: {exc}\n")
    server, log = transport.open_node(parser, "peer", ip, port, args.log, args.quiet)
    peer = Peer(server, log, seeds, settings, random.Random(args.rng_seed))
    log.event(logformat.STARTED, listen=peer.address, pid=os.getpid(), seeds=len(seeds),
              gossip_interval=settings.gossip_interval, gossip_count=settings.gossip_count,
              ping_interval=settings.ping_interval, ping_misses=settings.ping_misses,
              degree_model=settings.degree_model, rng_seed=args.rng_seed, auth="yes" if settings.auth else "no",
              repair_interval=settings.repair_period if settings.repair else "off")
    return transport.run_until_signalled(peer.stopped, peer.start, peer.stop, log, "peer")


if __name__ == "__main__":
    sys.exit(main())
