"""A seed's Peer List (PL), the links its peers reported, and the keys bound to their addresses.

Plain data with no I/O, shared by the real seed (gossipnet.node.seed) and the
simulator's seeds (gossipnet.sim.network).  What a report about a dead peer
means is deadnode.py's rule; this table only holds the facts it reads
(:meth:`PeerTable.neighbours`) and counts a report (:meth:`PeerTable.count`).

A seed that keeps its state on disk (``seed.py --state``) gives the table a
:class:`Journal`, told of each change before the table makes it, and starts
it from what the journal held (:meth:`PeerTable.restore`).  Restored peers
are held out of the PL until the seed's own liveness check lists them again
(:meth:`PeerTable.list_restored`) or drops them (:meth:`PeerTable.drop_restored`).
The simulator passes no journal.
"""

from __future__ import annotations

from collections.abc import Mapping
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field
from random import Random
from typing import Protocol

from gossipnet.config import MAX_CONNECTIONS, MAX_LINKS_PER_PEER, MAX_PEERS
from gossipnet.protocol import deadnode
from gossipnet.protocol.degreepool import AddressPool
from gossipnet.protocol.handout import hand_out
from gossipnet.protocol.wire import KEY_HISTORY, Address, DeadNodeReport, Keys, PeerList, ProtocolError


@dataclass
class PeerRecord:
    """What a seed knows of one registered peer."""

    address: Address
    # Bumped on every (re-)registration, so a decision taken about an earlier
    # incarnation of an address never removes a later one.
    incarnation: int
    # Reporters whose dead-node report about this incarnation counted.
    reports: set[Address] = field(default_factory=set)
    # Reporters that counted and are no longer eligible (deadnode.Neighbours.lost).
    lost: set[Address] = field(default_factory=set)
    # The last report that counted: a decision taken later, without a new
    # report (Seed.reconsider), is logged with it.
    last_report: DeadNodeReport | None = None
    # The connection this incarnation registered on, while it lasts: the
    # seed's own token (a real seed's Connection), opaque here.
    holder: object | None = None
    # That connection ended after the peer had kept it open (connection_ended).
    disconnected: bool = False


class Journal(Protocol):
    """Where a table's changes are written before it makes them (a seed's state file, gossipnet.node.seedstate).

    Each method is called under the table's lock, before the change, so the
    journal sees the changes in the table's order.  An exception raised
    leaves the table unchanged and reaches the caller.
    """

    def registered(self, peer: Address, forget_links: bool, keys: tuple[str, ...] | None) -> None:
        """``peer`` is listed; ``forget_links``: drop its claims and those naming it (it registered
        again); ``keys``: the keys bound to it now, oldest first (None: unchanged)."""

    def linked(self, reporter: Address, neighbour: Address) -> None:
        """``reporter`` claims a link to ``neighbour``."""

    def removed(self, peer: Address) -> None:
        """``peer`` leaves the PL, with its claims and those naming it; its keys stay."""


@dataclass(frozen=True)
class Saved:
    """What a journal held: the table to start from (:meth:`PeerTable.restore`)."""

    peers: tuple[Address, ...]
    keys: Mapping[Address, tuple[str, ...]]  # oldest first, the current key last
    claims: Mapping[Address, frozenset[Address]]  # reporter -> the neighbours it claimed


class PeerTable:
    """The PL, the links peers reported, and the keys bound to addresses.  No I/O.

    ``lock`` guards every method: a real seed, whose handlers run on many
    threads, passes a ``threading.Lock``; the simulator, on one thread, needs none.
    ``journal`` is told of every change first (see :class:`Journal`).
    Replies name the whole PL or a sample of it (handout.hand_out), drawn
    with ``rng``; peers with ``full_at`` links or more are full.
    """

    def __init__(self, max_peers: int = MAX_PEERS, max_links: int = MAX_LINKS_PER_PEER,
                 lock: AbstractContextManager | None = None, journal: Journal | None = None,
                 rng: Random | None = None, full_at: int = MAX_CONNECTIONS) -> None:
        # Bounds of a real seed's memory (config.py); a simulator lifts them.
        self.max_peers = max_peers
        self.max_links = max_links
        self.rng = rng if rng is not None else Random()
        self.full_at = full_at
        # The PL's peers with their degrees, for samples drawn without a pass over the
        # PL, and those of them at the link limit.
        self._listing = AddressPool()
        self._full: set[Address] = set()
        self._lock = lock if lock is not None else nullcontext()
        self._journal = journal
        # Peers restored from the journal that the seed has not checked yet: not in the PL.
        self._restored: set[Address] = set()
        self._peers: dict[Address, PeerRecord] = {}
        # Links as an adjacency map (both directions), for degrees.
        self._links: dict[Address, set[Address]] = {}
        # The links each registered peer reported itself: its neighbours in
        # its own (signed) words, which decide who may report it dead.
        self._claims: dict[Address, set[Address]] = {}
        # Public keys bound to each address, oldest first, the last current.
        # Kept after a removal and across restarts (up to KEY_HISTORY), so
        # messages signed by an earlier incarnation still verify.
        self._keys: dict[Address, list[str]] = {}
        self._incarnations = 0

    def register(self, peer: Address, key: str | None, holder: object | None = None
                 ) -> tuple[PeerList, int, bool] | None:
        """Add ``peer``; return the PL as it was before, the PL's new size, and whether the peer is new.

        ``holder`` is the connection it registered on (see connection_ended).
        A listed peer registering again with its current key is the same
        process (a peer makes a new key each time it starts) that lost its
        connection and made a new one: it keeps its incarnation, links and
        claims, and the reports counted against it are void (the registration
        made it prove it is alive).  Any other registration of a listed peer
        starts a new incarnation with no links.  None, and nothing changes,
        when the PL is full and ``peer`` is not in it.
        """
        with self._lock:
            listed = peer in self._peers
            # A restarted peer starts with no links; a restored one may have restarted too.
            known = listed or peer in self._restored
            # Restored peers keep their places while the seed checks them.
            if not known and len(self._peers) + len(self._restored) >= self.max_peers:
                return None
            record = self._peers.get(peer)
            same = record is not None and key is not None and self._keys.get(peer, [])[-1:] == [key]
            history = self._keys.get(peer, ()) if key is not None else ()
            keys = None
            if key is not None and key not in history[-1:]:
                keys = (*history, key)[-KEY_HISTORY:]
            if self._journal is not None:
                # The same process registering again keeps its links (below).
                self._journal.registered(peer, known and not same, keys)
            before = self._reply(exclude=peer)
            if same:
                record.holder, record.disconnected = holder, False
                record.reports.clear()
                record.lost.clear()
                return before, len(self._peers), False
            if known:
                self._drop_links(peer)
                self._restored.discard(peer)
            self._incarnations += 1
            self._peers[peer] = PeerRecord(peer, self._incarnations, holder=holder)
            self._listed(peer)
            if keys is not None:
                self._keys[peer] = list(keys)
            return before, len(self._peers), not listed

    def peer_list(self) -> PeerList:
        """The reply to GET_PEERS: the PL, or a sample of it (handout.hand_out)."""
        with self._lock:
            return self._reply()

    def all_peers(self) -> PeerList:
        """The whole PL with degrees and keys (tests and tools; no reply carries it past PEER_SAMPLE)."""
        with self._lock:
            return self._snapshot({address: len(self._links.get(address, ())) for address in sorted(self._peers)})

    def key(self, peer: Address) -> str | None:
        """The key currently bound to ``peer``."""
        with self._lock:
            history = self._keys.get(peer)
            return history[-1] if history else None

    def keys(self, peers: tuple[Address, ...]) -> Keys:
        """Every key bound to each of ``peers``, current one last."""
        with self._lock:
            return Keys(tuple((peer, key) for peer in dict.fromkeys(peers) for key in self._keys.get(peer, ())))

    def record_link(self, reporter: Address, neighbour: Address) -> bool:
        """Store the link ``reporter`` (registered here) says it opened; True if the link is new."""
        with self._lock:
            claims = self._claims.setdefault(reporter, set())
            if neighbour not in claims:
                if len(claims) >= self.max_links:
                    raise ProtocolError(f"more than {self.max_links} links reported by {reporter}")
                if self._journal is not None:
                    self._journal.linked(reporter, neighbour)
            claims.add(neighbour)
            if neighbour in self._links.get(reporter, ()):
                return False
            self._links.setdefault(reporter, set()).add(neighbour)
            self._links.setdefault(neighbour, set()).add(reporter)
            self._degree_changed(reporter)
            self._degree_changed(neighbour)
            return True

    def get(self, peer: Address) -> PeerRecord | None:
        with self._lock:
            return self._peers.get(peer)

    def count(self, record: PeerRecord, report: DeadNodeReport) -> deadnode.Reject | deadnode.Neighbours:
        """Count ``report`` against the accused of ``record`` (deadnode.count, under the lock).

        Returns the accused's neighbours once the report counted, or why it does not.
        """
        with self._lock:
            current = self._peers.get(record.address) is record
            counted = deadnode.count(report.reporter, self._neighbours(record) if current else None,
                                     reporter_listed=report.reporter in self._peers)
            if isinstance(counted, deadnode.Neighbours):
                record.reports = set(counted.reported)
                record.last_report = report
            return counted

    def neighbours(self, record: PeerRecord) -> deadnode.Neighbours | None:
        """The accused of ``record``'s neighbours now; None if ``record`` is no longer its current incarnation."""
        with self._lock:
            if self._peers.get(record.address) is not record:
                return None
            return self._neighbours(record)

    def _neighbours(self, record: PeerRecord) -> deadnode.Neighbours:
        """The facts deadnode's rule reads; reporters no longer eligible move from reports to lost."""
        eligible = frozenset(self._claims.get(record.address, set()) & self._peers.keys())
        gone = record.reports - eligible
        if gone:
            record.reports -= gone
            record.lost |= gone
        accused = frozenset(peer for peer in eligible - record.reports if self._accused(self._peers[peer]))
        return deadnode.Neighbours(eligible, frozenset(record.reports), accused, frozenset(record.lost),
                                   record.disconnected)

    @staticmethod
    def _accused(record: PeerRecord) -> bool:
        """Under accusation here: reports counted against it, or reporters that counted and left."""
        return bool(record.reports or record.lost)

    def cleared(self, record: PeerRecord) -> None:
        """The accused answered: earlier reports about it are void."""
        with self._lock:
            record.reports.clear()
            record.lost.clear()

    def connection_ended(self, peer: Address, holder: object) -> bool | None:
        """The connection ``holder``, which ``peer`` registered on and kept open, ended.

        None if that is not the connection of ``peer``'s current incarnation
        (it registered again elsewhere, or left the PL): nothing changes.
        Otherwise the seed saw the peer's connection go (deadnode.Neighbours.disconnected);
        returns whether the peer is under accusation here, for the seed to look again.
        """
        with self._lock:
            record = self._peers.get(peer)
            if record is None or holder is None or record.holder != holder:
                return None  # (a real seed's holder is a Connection, compared by identity)
            record.holder, record.disconnected = None, True
            return self._accused(record)

    def remove(self, record: PeerRecord) -> tuple[int, list[Address]] | None:
        """Remove the peer if ``record`` is still its current incarnation.

        Returns the new PL size and the peers under accusation here that
        counted the removed one among their neighbours (their tally changed).
        """
        with self._lock:
            if self._peers.get(record.address) is not record:
                return None
            if self._journal is not None:
                self._journal.removed(record.address)
            del self._peers[record.address]
            self._unlisted(record.address)
            touched = self._drop_links(record.address)
            accused = [peer for peer in touched if peer in self._peers and self._accused(self._peers[peer])]
            return len(self._peers), accused

    # --- Restored from a journal ----------------------------------------------------------

    def restore(self, saved: Saved) -> None:
        """Start from what a journal held: keys and claims at once, peers held out of the PL until checked."""
        with self._lock:
            for peer, keys in saved.keys.items():
                self._keys[peer] = list(keys[-KEY_HISTORY:])
            for reporter, neighbours in saved.claims.items():
                self._claims.setdefault(reporter, set()).update(neighbours)
                for neighbour in neighbours:
                    self._links.setdefault(reporter, set()).add(neighbour)
                    self._links.setdefault(neighbour, set()).add(reporter)
            self._restored.update(peer for peer in saved.peers if peer not in self._peers)

    def restored(self) -> list[Address]:
        """The restored peers not yet checked, in address order."""
        with self._lock:
            return sorted(self._restored)

    def list_restored(self, peer: Address) -> int | None:
        """``peer`` passed the seed's check: list it again (the journal already holds it); the PL's new size.

        None, and nothing changes, if it is no longer waiting: it registered
        meanwhile, or was dropped.  Its place was kept (:meth:`register`).
        """
        with self._lock:
            if peer not in self._restored:
                return None
            self._restored.discard(peer)
            self._incarnations += 1
            self._peers[peer] = PeerRecord(peer, self._incarnations)
            self._listed(peer)
            return len(self._peers)

    def drop_restored(self, peer: Address) -> bool:
        """``peer`` failed the seed's check: forget it and its links (its keys stay).  False if it
        was no longer waiting."""
        with self._lock:
            if peer not in self._restored:
                return False
            if self._journal is not None:
                self._journal.removed(peer)
            self._restored.discard(peer)
            self._drop_links(peer)
            return True

    def _drop_links(self, peer: Address) -> list[Address]:
        """Forget ``peer``'s links and claims; the peers whose claims named it."""
        self._claims.pop(peer, None)
        touched = []
        gone = self._links.pop(peer, ())
        if gone:
            self._degree_changed(peer)
        for other in gone:
            self._links.get(other, set()).discard(peer)
            self._degree_changed(other)
            claims = self._claims.get(other, set())
            if peer in claims:
                claims.discard(peer)
                touched.append(other)
        return touched

    # --- The listing replies are drawn from ------------------------------------------------

    def _listed(self, peer: Address) -> None:
        """``peer`` joined the PL (new, or a new incarnation)."""
        if peer in self._listing:
            self._listing.remove(peer)
        self._listing.add(peer, 0)
        self._degree_changed(peer)

    def _unlisted(self, peer: Address) -> None:
        self._listing.remove(peer)
        self._full.discard(peer)

    def _degree_changed(self, peer: Address) -> None:
        if peer in self._listing:
            degree = len(self._links.get(peer, ()))
            self._listing.set_degree(peer, degree)
            if degree >= self.full_at:
                self._full.add(peer)
            else:
                self._full.discard(peer)

    def _reply(self, exclude: Address | None = None) -> PeerList:
        """The PL (in address order) or a sample of it, without ``exclude`` (handout.hand_out)."""
        return self._snapshot(hand_out(self._listing, self.rng, full=self._full, requester=exclude))

    def _snapshot(self, named: dict[Address, int]) -> PeerList:
        keys = self._keys
        return PeerList(tuple(named.items()), {address: keys[address][-1] for address in named if keys.get(address)})
