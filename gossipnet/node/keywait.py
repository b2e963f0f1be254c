"""The keys a peer has learned from the seeds, and the gossip waiting for an origin's key.

A gossip message is verified against its origin's key.  Keys come with the
peer lists, and over the links as bindings the seeds vouched for (KEY lines,
PROTOCOL.md §4.3): ``KeyWait`` also holds the keys of the seeds this peer
registered with, which check those vouches, and the latest binding it
accepted for each origin, which it forwards.  A message whose origin has no key here yet (it joined later), or
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
from gossipnet.protocol import auth
from gossipnet.protocol.wire import Address, GossipMessage, KeyBinding, ProtocolError, Vouch, encode

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
        # Keys of the seeds this peer registered with, as each told it (VOUCHED): they check bindings.
        self._seed_keys: dict[Address, set[str]] = {}
        # origin -> the latest binding accepted for it, as the line that forwards it.
        self._bindings: dict[Address, tuple[KeyBinding, bytes]] = {}
        # Guards _keys, _waiting, _held_from, _seed_keys and _bindings.
        self._lock = threading.Lock()

    def learn(self, keys: Iterable[tuple[Address, str]]) -> None:
        """Add keys the seeds gave."""
        with self._lock:
            for address, key in keys:
                self._keys.setdefault(address, set()).add(key)

    def learn_seed(self, seed: Address, key: str) -> None:
        """A seed this peer registered with told its own key (over the connection held to it)."""
        with self._lock:
            self._seed_keys.setdefault(seed, set()).add(key)

    def vouch_for_self(self, peer: Address, key: str, vouch: Vouch) -> KeyBinding:
        """Add a seed's vouch for this peer's own binding; the binding as it now stands (its line forwarded)."""
        with self._lock:
            held = self._bindings.get(peer)
            others = tuple(v for v in held[0].vouches if v.seed != vouch.seed) if held and held[0].key == key else ()
            binding = KeyBinding(peer, key, tuple(sorted((*others, vouch), key=lambda v: v.seed)))
            self._bindings[peer] = (binding, encode(binding))
            return binding

    def accept_binding(self, binding: KeyBinding) -> bool:
        """A neighbour sent ``binding``: learn its key if a seed this peer knows vouches for it (auth.vouched).

        Returns whether it was accepted; one no known seed vouches for is ignored
        (it may be honest: signed by seeds this peer does not know, or by a seed's
        earlier key), and its messages then wait for the seed lookup as before.
        """
        with self._lock:
            seed_keys = {seed: frozenset(keys) for seed, keys in self._seed_keys.items()}
        if not auth.vouched(binding, seed_keys):
            return False
        with self._lock:
            self._keys.setdefault(binding.peer, set()).add(binding.key)
            held = self._bindings.get(binding.peer)
            # The same binding from a second neighbour (its copy raced the first past the raw-line
            # check) keeps the line held, so that no link carries it twice.
            if held is None or (binding != held[0] and _latest(binding) >= _latest(held[0])):
                self._bindings[binding.peer] = (binding, encode(binding))
        return True

    def binding_line(self, origin: Address) -> bytes | None:
        """The line that forwards ``origin``'s latest accepted binding, or None if this peer holds none."""
        held = self._bindings.get(origin)  # one dict lookup: atomic, no lock (the forwarding path)
        return None if held is None else held[1]

    def keys_of(self, address: Address) -> frozenset[str] | None:
        """Every key learned for ``address``, or None if none is."""
        with self._lock:
            keys = self._keys.get(address)
            return None if keys is None else frozenset(keys)

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


def _latest(binding: KeyBinding) -> float:
    """When the last seed vouched for ``binding``: a restarted peer's new binding is the later one."""
    return max(float(vouch.when) for vouch in binding.vouches)
