"""A peer's link table: its current link to each neighbour, and its dials in progress.

The table owns which link is current for each neighbour (a closed link stays
current until a new one replaces it or the liveness rule removes it), the
dials this peer has under way, the rule for two links opened at once (keep
the one the smaller address opened), and every link's liveness tracker
(liveness.py), which the ping loop ticks and any line received resets.  One
lock of its own guards all of it.

Not here: opening connections, the handshake and the Message List replay
(peerlinks.py), forwarding gossip (peergossip.py), sending pings and reporting
the dead (peer.py), closing the links it hands back (their callers do, outside
its lock).  It opens, reads and closes no connection: it reads a link's
``conn.closed``, and only a caller's ``greet`` sends, through the link's
non-blocking ``send``.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import NamedTuple

from gossipnet.node.link import Link
from gossipnet.protocol.wire import Address


class Tick(NamedTuple):
    """One link at a tick of the ping loop (liveness.LivenessTracker.tick)."""

    link: Link
    dead: bool
    misses: int  # consecutive misses, this one included
    failed: tuple[str, ...]  # the checks the closed round failed (app, icmp), if it missed
    round: int  # the round just begun: a ping run for it reports with this number


class LinkTable:
    """Neighbour -> its current Link, and the neighbours being dialled; thread-safe."""

    def __init__(self, address: Address) -> None:
        self.address = address  # this peer's own: the simultaneous-dial rule compares it
        self._links: dict[Address, Link] = {}
        self._dialing: set[Address] = set()
        self._closed = False  # the peer is stopping: no link is installed any more
        # Guards _links, _dialing, _closed and every link's liveness tracker.
        self._lock = threading.Lock()

    # --- Looking -------------------------------------------------------------------

    def get(self, neighbour: Address) -> Link | None:
        """The neighbour's current link (working or closed), or None."""
        with self._lock:
            return self._links.get(neighbour)

    def is_current(self, link: Link) -> bool:
        """``link`` is still its neighbour's link: not removed, not replaced."""
        with self._lock:
            return self._links.get(link.neighbour) is link

    def linked(self, neighbour: Address) -> bool:
        """A working link to ``neighbour`` exists."""
        with self._lock:
            return self._linked(neighbour)

    def neighbours(self) -> set[Address]:
        """Every neighbour with a link in the table, working or closed."""
        with self._lock:
            return set(self._links)

    def working(self) -> set[Address]:
        """Neighbours with a working link."""
        with self._lock:
            return {neighbour for neighbour, link in self._links.items() if not link.conn.closed}

    def stale(self) -> set[Address]:
        """Neighbours whose link has closed but is still in the table (its redial and the liveness rule decide it)."""
        with self._lock:
            return {neighbour for neighbour, link in self._links.items() if link.conn.closed}

    def current(self) -> dict[Address, Link]:
        """A copy of the table: neighbour -> link."""
        with self._lock:
            return dict(self._links)

    # --- Dialling and installing ---------------------------------------------------

    def start_dial(self, neighbour: Address) -> bool:
        """Note a dial to ``neighbour``; False (and nothing noted) when a working link already exists."""
        with self._lock:
            if self._linked(neighbour):
                return False
            self._dialing.add(neighbour)
            return True

    def end_dial(self, neighbour: Address) -> bool:
        """The dial to ``neighbour`` is over; True if a working link to it exists now."""
        with self._lock:
            self._dialing.discard(neighbour)
            return self._linked(neighbour)

    def install(self, link: Link, greet: Callable[[], None]) -> tuple[bool, Link | None]:
        """Make ``link`` its neighbour's link, unless a working one stands or the other dial wins.

        When both ends dial at once, the link the smaller address opened is
        kept: this peer refuses the neighbour's link while dialling it, if
        this peer's address is the smaller.  ``greet`` runs under the table's
        lock once the link is admitted and before it is in the table, so its
        lines (HELLO, the ML replay) go out before anyone who finds the link
        here sends on it: a liveness request first would break the handshake.
        Returns whether it was installed, and the stale (closed) link it
        replaced, for the caller to close.
        """
        neighbour = link.neighbour
        with self._lock:
            if self._closed or self._linked(neighbour):
                return False, None
            if not link.initiator and neighbour in self._dialing and self.address < neighbour:
                return False, None
            greet()
            stale = self._links.get(neighbour)
            self._links[neighbour] = link
            return True, stale

    # --- Removing ------------------------------------------------------------------

    def remove(self, link: Link) -> bool:
        """Take ``link`` out of the table; False if a newer link had replaced it (or it was gone)."""
        with self._lock:
            if self._links.get(link.neighbour) is not link:
                return False
            del self._links[link.neighbour]
            return True

    def cut(self, neighbour: Address) -> Link | None:
        """Take the neighbour's current link out of the table and return it (None if there was none)."""
        with self._lock:
            return self._links.pop(neighbour, None)

    def close(self) -> list[Link]:
        """The peer is stopping: install nothing more; every link, for the caller to close."""
        with self._lock:
            self._closed = True
            return list(self._links.values())

    # --- Liveness ------------------------------------------------------------------

    def tick(self) -> list[Tick]:
        """A ping interval passed: for each link, whether its neighbour is now dead, and why."""
        with self._lock:
            return [Tick(link, link.liveness.tick(), link.liveness.misses, link.liveness.failed, link.liveness.round)
                    for link in self._links.values()]

    def replied(self, link: Link) -> None:
        """A line arrived on ``link``: any line is a sign of life, a reply or not."""
        with self._lock:
            link.liveness.replied()

    def icmp_result(self, link: Link, round: int, answered: bool) -> None:
        """The system ping run for ``link`` after tick ``round`` ended (the peer's --liveness icmp or both)."""
        with self._lock:
            link.liveness.icmp_result(round, answered)

    def _linked(self, neighbour: Address) -> bool:
        link = self._links.get(neighbour)
        return link is not None and not link.conn.closed
