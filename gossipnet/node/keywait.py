"""The keys a peer has learned from the seeds, and the gossip waiting for an origin's key.

A gossip message is verified against its origin's key.  Keys come with the
peer lists; a message whose origin has no key here yet (it joined later), or
whose signature fails against the keys held (it may have restarted with a new
key), waits until the seeds have been asked.  ``KeyWait`` owns the key ring
(address -> every key the seeds bound to it: a restart makes a new one, so
older messages still verify), the waiting messages, the bound on how many of
them one neighbour may have waiting (MAX_UNVERIFIED_PER_NEIGHBOUR), and the
event that wakes the key lookup.  One lock of its own guards it all, so that
holding a message and settling a lookup exclude each other: a message held
just as a lookup settles is still there for the next lookup, which the hold
asks for.

Not here: asking the seeds, verifying signatures, judging a message and
cutting its sender (peergossip.py, auth.py); whether a message is new (the
Message List, messagelist.py).
"""

from __future__ import annotations

import threading
from collections.abc import Iterable

from gossipnet.config import MAX_UNVERIFIED_PER_NEIGHBOUR
from gossipnet.protocol.wire import Address, GossipMessage, ProtocolError

# A message waiting for its origin's key, with the neighbour that sent it.
Held = tuple[GossipMessage, Address]


class KeyWait:
    """Origins' keys, and the messages held until the seeds tell them; thread-safe."""

    def __init__(self) -> None:
        self._keys: dict[Address, set[str]] = {}
        # origin -> its messages waiting, oldest first; an empty list asks for a key before any message.
        self._waiting: dict[Address, list[Held]] = {}
        self._held_from: dict[Address, int] = {}  # neighbour -> its messages waiting
        # Set when a key is wanted: the key lookup loop waits on it.
        self.wanted = threading.Event()
        # Guards _keys, _waiting and _held_from.
        self._lock = threading.Lock()

    def learn(self, keys: Iterable[tuple[Address, str]]) -> None:
        """Add keys the seeds gave."""
        with self._lock:
            for address, key in keys:
                self._keys.setdefault(address, set()).add(key)

    def keys_of(self, address: Address) -> frozenset[str] | None:
        """Every key learned for ``address``, or None if none is."""
        with self._lock:
            keys = self._keys.get(address)
            return None if keys is None else frozenset(keys)

    def want(self, origin: Address) -> None:
        """Fetch ``origin``'s key ahead of its messages, unless it is known."""
        with self._lock:
            if origin in self._keys:
                return
            self._waiting.setdefault(origin, [])
        self.wanted.set()

    def keys_or_hold(self, message: GossipMessage, sender: Address) -> frozenset[str] | None:
        """The keys of the message's origin; or, when none is known, None with the message held.

        Raises ProtocolError (cutting the sender's link) when that neighbour
        already has too many messages waiting.
        """
        with self._lock:
            keys = self._keys.get(message.origin)
            if keys is not None:
                return frozenset(keys)
            self._hold(message, sender)
        self.wanted.set()
        return None

    def hold(self, message: GossipMessage, sender: Address) -> None:
        """Keep ``message`` until the seeds have been asked for its origin's keys.

        Raises ProtocolError as keys_or_hold does.
        """
        with self._lock:
            self._hold(message, sender)
        self.wanted.set()

    def origins(self, limit: int) -> list[Address]:
        """Up to ``limit`` origins whose keys are wanted, longest waiting first."""
        with self._lock:
            return list(self._waiting)[:limit]

    def settle(self, wanted: list[Address], found: Iterable[tuple[Address, str]],
               every_seed_answered: bool) -> tuple[list[tuple[GossipMessage, Address, frozenset[str] | None]], bool]:
        """A lookup for ``wanted`` ended with ``found``: learn those keys and release the messages to judge.

        Each released message comes with its sender and its origin's keys
        (None: the seeds hold none).  When a seed did not answer, it may hold
        a missing key: the messages of origins still without one keep waiting
        (within the per-neighbour bound) for a later lookup.  Also returns
        whether messages still wait (the caller asks for another lookup).
        """
        released: list[tuple[GossipMessage, Address, frozenset[str] | None]] = []
        with self._lock:
            for address, key in found:
                self._keys.setdefault(address, set()).add(key)
            for origin in wanted:
                keys = self._keys.get(origin)
                if keys is None and not every_seed_answered:
                    continue
                frozen = None if keys is None else frozenset(keys)
                for message, sender in self._waiting.pop(origin, []):
                    self._held_from[sender] -= 1
                    if not self._held_from[sender]:
                        del self._held_from[sender]
                    released.append((message, sender, frozen))
            return released, bool(self._waiting)

    def _hold(self, message: GossipMessage, sender: Address) -> None:
        waiting = self._held_from.get(sender, 0)
        if waiting >= MAX_UNVERIFIED_PER_NEIGHBOUR:
            raise ProtocolError(f"more than {MAX_UNVERIFIED_PER_NEIGHBOUR} messages waiting for their origin's key")
        self._held_from[sender] = waiting + 1
        self._waiting.setdefault(message.origin, []).append((message, sender))
