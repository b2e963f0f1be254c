"""simqueue.EventQueue gives events in exactly the order a heap would, however they are pushed."""

from __future__ import annotations

import heapq
import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gossipnet.sim.calendar import EventQueue

# (delay, tie) pairs: delays from 0 (same time as now) to several buckets on, with ties.
steps = st.lists(st.tuples(st.sampled_from([0.0, 0.0001, 0.0005, 0.001, 0.0015, 0.003, 0.02]),
                           st.integers(0, 3), st.booleans()), max_size=200)


@settings(max_examples=300, deadline=None)
@given(steps)
def test_pops_come_out_as_from_a_heap(plan):
    """Interleave pushes (each at now + delay, as simulation events are) and pops; compare with heapq."""
    queue, heap = EventQueue(width=0.001), []
    now = 0.0
    for number, (delay, tie, pop_after) in enumerate(plan):
        entry = (now + delay, tie, number)
        queue.push(entry)
        heapq.heappush(heap, entry)
        if pop_after:
            expected = heapq.heappop(heap)
            assert queue.pop() == expected
            now = expected[0]
    while heap:
        assert queue.pop() == heapq.heappop(heap)
    assert len(queue) == 0
    with pytest.raises(IndexError):
        queue.pop()


def test_many_events_across_many_buckets():
    rng = random.Random(5)
    queue, heap = EventQueue(width=0.001), []
    now = 0.0
    for number in range(20_000):
        entry = (now + rng.expovariate(200.0), rng.randrange(3), number)
        queue.push(entry)
        heapq.heappush(heap, entry)
        if rng.random() < 0.6:
            expected = heapq.heappop(heap)
            assert queue.pop() == expected
            now = expected[0]
    assert len(queue) == len(heap)
    while heap:
        assert queue.pop() == heapq.heappop(heap)
