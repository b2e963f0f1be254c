"""The simulator's event calendar: timestamped events out in time order, fast at 10^5+ pending.

No simulation here: sim/engine.py puts tuples ``(time, sequence, kind, ...)`` in
and takes them out in exactly the order a heap of them would give.
"""

from __future__ import annotations

import heapq

# Width of a bucket of the event calendar, in seconds: a few hundred events
# each at 100,000 peers with link latencies of milliseconds.  Any width gives
# the same order of events; this one only sets the speed.
EVENT_BUCKET = 0.001


class EventQueue:
    """Timestamped events, taken out in the order a heap of them would give (tuple order).

    A calendar: each event is appended to its bucket's list, and a bucket is
    sorted once, when its time comes; events for the bucket under way go to a
    small heap beside it.  A plain heap of 100,000+ events spends most of
    each pop chasing pointers to tuples scattered in memory.
    """

    def __init__(self, width: float = EVENT_BUCKET) -> None:
        self.inverse = 1.0 / width
        self.current = -1  # the bucket under way
        self.sorted: list[tuple] = []  # its events, latest first
        self.side: list[tuple] = []  # a heap of events pushed into it (or earlier) once under way
        self.buckets: dict[int, list[tuple]] = {}
        self.order: list[int] = []  # a heap of the buckets' numbers

    def push(self, entry: tuple) -> None:
        index = int(entry[0] * self.inverse)
        if index <= self.current:
            heapq.heappush(self.side, entry)
            return
        bucket = self.buckets.get(index)
        if bucket is None:
            self.buckets[index] = [entry]
            heapq.heappush(self.order, index)
        else:
            bucket.append(entry)

    def advance(self) -> bool:
        """The under-way bucket is spent: take the next; False if there is none."""
        if not self.order:
            return False
        self.current = heapq.heappop(self.order)
        bucket = self.buckets.pop(self.current)
        bucket.sort(reverse=True)
        self.sorted = bucket
        return True

    def pop(self) -> tuple:
        """The earliest event (IndexError if none).  sim.engine.Simulation.run inlines this."""
        while True:
            if self.sorted:
                if self.side and self.side[0] < self.sorted[-1]:
                    return heapq.heappop(self.side)
                return self.sorted.pop()
            if self.side:
                return heapq.heappop(self.side)
            if not self.advance():
                raise IndexError("pop from an empty EventQueue")

    def __len__(self) -> int:
        return len(self.sorted) + len(self.side) + sum(map(len, self.buckets.values()))
