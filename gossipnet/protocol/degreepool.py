"""A peer list (peer -> degree) kept as Fenwick trees, for overlays of 100,000 peers and more.

topology.py's choices draw from a :class:`DegreePool` in O(log N) per pick
and pick exactly what they pick from the equivalent dict for the same
``rng`` state; the simulator (sim/network.py) keeps each seed's list as one.
Real peers pass plain dicts and never touch this module's trees.
"""

from __future__ import annotations

import bisect
import contextlib
import itertools
from collections.abc import Iterable, Iterator, Mapping, Sequence


class DegreePool(Mapping[int, int]):
    """Peers numbered ``0 .. capacity - 1`` with their degrees: a dict (peer -> degree) for large overlays.

    :func:`preferential_choice` and :func:`uniform_choice` draw from a pool
    in O(log capacity) per pick where a dict costs a sort and a sum over all
    peers, and pick exactly what they pick from ``dict(pool)`` for the same
    ``rng`` state: that is what lets a simulator grow 10^5 peers by the rule
    real peers run.  Two Fenwick (binary indexed) trees over the ids hold
    each member's weight (degree + 1) and its count (1); a non-member holds
    0 in both, so cumulative weights over the ids are those over the sorted
    members.  Members iterate in ascending order, the order ``sorted`` gives
    the dict path; changing the pool while iterating over it is not
    supported.

    ``add`` of a member and ``remove`` of a non-member raise (ValueError,
    KeyError), as a peer joins and leaves once: a simulator's slip shows.
    """

    def __init__(self, capacity: int) -> None:
        if capacity < 0:
            raise ValueError("capacity must be >= 0")
        self.capacity = capacity
        self._present = bytearray(capacity)
        self._degrees = [0] * capacity
        # Fenwick trees, 1-based: node i sits at position i + 1.
        self._weights = [0] * (capacity + 1)
        self._counts = [0] * (capacity + 1)
        self._top = 1 << (capacity.bit_length() - 1) if capacity else 0  # largest power of two <= capacity
        self._count = 0
        self._total = 0
        # The members in no order, and where each is in it: uniform draws in O(1) (handout.py).
        self._bag: list[int] = []
        self._bag_at = [0] * capacity

    def __repr__(self) -> str:
        return f"DegreePool({self.capacity}, {dict(self)!r})"

    def __getitem__(self, node: int) -> int:
        if node in self:
            return self._degrees[node]
        raise KeyError(node)

    def __contains__(self, node: object) -> bool:
        return isinstance(node, int) and 0 <= node < self.capacity and self._present[node] == 1

    def __iter__(self) -> Iterator[int]:
        return itertools.compress(range(self.capacity), self._present)

    def __len__(self) -> int:
        return self._count

    def add(self, node: int, degree: int = 0) -> None:
        """Make ``node`` a member with ``degree``."""
        if not (isinstance(node, int) and 0 <= node < self.capacity):
            raise IndexError(f"node {node!r} is not in range({self.capacity})")
        if self._present[node]:
            raise ValueError(f"node {node} is a member already")
        if degree < 0:
            raise ValueError("degree must be >= 0")
        self._present[node] = 1
        self._degrees[node] = degree
        self._shift(node, degree + 1, 1)
        self._bag_at[node] = len(self._bag)
        self._bag.append(node)

    def remove(self, node: int) -> int:
        """Take ``node`` out of the pool; returns its degree."""
        degree = self[node]
        self._present[node] = 0
        self._shift(node, -(degree + 1), -1)
        last = self._bag.pop()
        if last != node:
            self._bag[self._bag_at[node]] = last
            self._bag_at[last] = self._bag_at[node]
        return degree

    def set_degree(self, node: int, degree: int) -> None:
        if degree < 0:
            raise ValueError("degree must be >= 0")
        self._shift(node, degree - self[node], 0)
        self._degrees[node] = degree

    def add_degree(self, node: int, delta: int = 1) -> None:
        self.set_degree(node, self[node] + delta)

    def _shift(self, node: int, weight: int, count: int) -> None:
        weights, counts, end = self._weights, self._counts, self.capacity
        position = node + 1
        if count:
            while position <= end:
                weights[position] += weight
                counts[position] += count
                position += position & -position
        else:  # a degree change: the count tree is untouched, so skip it
            while position <= end:
                weights[position] += weight
                position += position & -position
        self._total += weight
        self._count += count

    def total_weight(self) -> int:
        """Sum of degree + 1 over the members."""
        return self._total

    def find_weight(self, r: float) -> int:
        """The first member, in ascending order, whose running total of weight exceeds ``r``.

        That is ``pool[bisect_right(cumulative, r)]`` on the sorted members,
        on a boundary too: Python compares an int with a float exactly, and
        the running totals here are ints.  IndexError when ``r`` is not below
        :meth:`total_weight`, as the list would raise.
        """
        if not r < self._total:
            raise IndexError("r is not below the total weight")
        # Walk down to the last position whose running total is <= r: the
        # member at the next position is the one sought.  A negative r would
        # stop at position 0, which need not hold a member, hence the clamp.
        r = max(r, 0)
        weights, end = self._weights, self.capacity
        position = below = 0
        step = self._top
        while step:
            following = position + step
            if following <= end and below + weights[following] <= r:
                position, below = following, below + weights[following]
            step >>= 1
        return position  # the member at position + 1, whose id is position

    def kth(self, k: int) -> int:
        """The member with ``k`` members below it."""
        if not 0 <= k < self._count:
            raise IndexError(f"no member of rank {k} among {self._count}")
        counts, end = self._counts, self.capacity
        position = 0
        step = self._top
        while step:
            following = position + step
            if following <= end and counts[following] <= k:
                position, k = following, k - counts[following]
            step >>= 1
        return position

    def members(self) -> _Members:
        """The members in ascending order as a Sequence, without a copy: what ``rng.sample`` takes."""
        return _Members(self)

    def degrees_of(self, nodes: Iterable[int]) -> dict[int, int]:
        """Members of ``nodes`` with their degrees, without a check each (handout.py's reply)."""
        degrees = self._degrees
        return {node: degrees[node] for node in nodes}

    def unordered(self) -> Sequence[int]:
        """The members in no particular order, indexed in O(1) (the list itself: do not change it)."""
        return self._bag

    @contextlib.contextmanager
    def excluding(self, nodes: Iterable[object]) -> Iterator[DegreePool]:
        """The pool without those of ``nodes`` that are members, for the ``with`` block.

        They are put back with the degrees they had, even if the block
        raises; the block must not add them itself.  Costs O(log capacity)
        per node, where a filtered copy costs O(members).
        """
        removed = {node: self[node] for node in nodes if node in self}
        for node in removed:
            self.remove(node)
        try:
            yield self
        finally:
            for node, degree in removed.items():
                self.add(node, degree)


class _Members(Sequence[int]):
    """A :class:`DegreePool`'s members in ascending order, indexed by rank in O(log capacity)."""

    def __init__(self, pool: DegreePool) -> None:
        self._pool = pool

    def __len__(self) -> int:
        return len(self._pool)

    def __getitem__(self, index: int) -> int:  # no slices: rng.sample needs none
        return self._pool.kth(index + len(self._pool) if index < 0 else index)

    def __iter__(self) -> Iterator[int]:
        return iter(self._pool)

    def __contains__(self, node: object) -> bool:
        return node in self._pool


class AddressPool(Mapping):
    """Any sortable peers (a real seed's addresses) with their degrees: a :class:`DegreePool` over slots.

    What a real seed's Peer List needs to hand out a sample at 100,000 peers
    and more without a pass over the list (handout.py): weighted draws in
    O(log N) (:meth:`total_weight`, :meth:`find_weight`), uniform ones by
    rank (:meth:`members`), and the peers in ascending order (iteration), each
    in O(log N) or less.  Each peer holds a slot of a DegreePool (slots are
    reused, and the pool doubles when full); a sorted list of the peers gives
    their order, at O(N) memmove per change, which is C-fast up to millions.
    Weighted draws walk the slots, not the sorted order: the same law as
    topology.preferential_choice over a dict, though not the same picks.
    """

    def __init__(self, capacity: int = 1024) -> None:
        self._pool = DegreePool(max(capacity, 1))
        self._slot: dict = {}
        self._at: list = [None] * self._pool.capacity
        self._free: list[int] = []
        self._sorted: list = []

    def __getitem__(self, node) -> int:
        return self._pool[self._slot[node]]

    def __contains__(self, node: object) -> bool:
        return node in self._slot

    def __iter__(self) -> Iterator:
        return iter(self._sorted)

    def __len__(self) -> int:
        return len(self._slot)

    def add(self, node, degree: int = 0) -> None:
        if node in self._slot:
            raise ValueError(f"{node!r} is a member already")
        if not self._free and len(self._slot) == self._pool.capacity:
            self._grow()
        slot = self._free.pop() if self._free else len(self._slot)
        self._pool.add(slot, degree)
        self._slot[node], self._at[slot] = slot, node
        bisect.insort(self._sorted, node)

    def remove(self, node) -> int:
        slot = self._slot.pop(node)
        self._at[slot] = None
        self._free.append(slot)
        del self._sorted[bisect.bisect_left(self._sorted, node)]
        return self._pool.remove(slot)

    def set_degree(self, node, degree: int) -> None:
        self._pool.set_degree(self._slot[node], degree)

    def total_weight(self) -> int:
        return self._pool.total_weight()

    def find_weight(self, r: float):
        """The member whose slot's running total of weight first exceeds ``r`` (DegreePool.find_weight)."""
        return self._at[self._pool.find_weight(r)]

    def kth(self, k: int):
        """The member with ``k`` members below it, in the peers' own order."""
        return self._sorted[k]

    def members(self) -> Sequence:
        """The members in ascending order: what ``rng.sample`` takes (the list itself, not a copy)."""
        return self._sorted

    unordered = members  # indexed in O(1) already

    def degrees_of(self, nodes: Iterable) -> dict:
        """Members of ``nodes`` with their degrees."""
        slot, degrees = self._slot, self._pool._degrees
        return {node: degrees[slot[node]] for node in nodes}

    excluding = DegreePool.excluding  # the same: remove, yield, put back

    def _grow(self) -> None:
        old = self._pool
        self._pool = DegreePool(2 * old.capacity)
        for slot in old:
            self._pool.add(slot, old[slot])
        self._at.extend([None] * old.capacity)


# Pools topology.py's choices draw from without a pass over the members.
POOLS = (DegreePool, AddressPool)
