"""The socket-free protocol rules: the Message List, forwarding, and liveness."""

from __future__ import annotations

import pytest

from gossipnet.protocol.liveness import LivenessTracker
from gossipnet.protocol.messagelist import MessageList, forward_targets
from gossipnet.protocol.wire import Address, GossipMessage

A = Address("10.0.0.1", 9001)
B = Address("10.0.0.2", 9002)
C = Address("10.0.0.3", 9003)
D = Address("10.0.0.4", 9004)


def message(number: int, origin: Address = A) -> GossipMessage:
    return GossipMessage(origin, "1732406400.5", number)


# --- MessageList ---------------------------------------------------------------------


def test_message_list_accepts_once_and_rejects_duplicates():
    message_list: MessageList[GossipMessage, Address] = MessageList()
    assert message_list.accept(message(1), B) is True
    assert message_list.accept(message(1), C) is False
    assert message_list.accept(message(1), B) is False
    assert message_list.accept(message(1), None) is False
    assert len(message_list) == 1
    assert message(1) in message_list
    assert message(2) not in message_list


def test_duplicate_by_value_not_identity():
    message_list: MessageList[GossipMessage, Address] = MessageList()
    assert message_list.accept(GossipMessage(Address("127.0.0.1", 9001), "5", 1), B)
    assert not message_list.accept(GossipMessage(Address("127.0.0.1", 9001), "5", 1), C)
    # same report text, other origin port: another peer's message
    assert message_list.accept(GossipMessage(Address("127.0.0.1", 9002), "5", 1), C)
    assert len(message_list) == 2


def test_message_list_keeps_order_and_first_sender():
    message_list: MessageList[GossipMessage, Address] = MessageList()
    arrivals = [(message(3), B), (message(1, C), None), (message(3), C), (message(2), D), (message(1, C), B)]
    accepted = [message_list.accept(m, sender) for m, sender in arrivals]
    assert accepted == [True, True, False, True, False]
    assert message_list.messages() == [message(3), message(1, C), message(2)]
    assert message_list.first_sender(message(3)) == B
    assert message_list.first_sender(message(1, C)) is None  # the peer's own message
    assert message_list.first_sender(message(2)) == D
    with pytest.raises(KeyError):
        message_list.first_sender(message(9))


def test_messages_returns_a_copy():
    message_list: MessageList[GossipMessage, Address] = MessageList()
    message_list.accept(message(1), B)
    snapshot = message_list.messages()
    snapshot.append(message(2))
    assert message_list.messages() == [message(1)]


def test_empty_message_list():
    message_list: MessageList[str, str] = MessageList()
    assert len(message_list) == 0
    assert message_list.messages() == []
    assert "x" not in message_list


# --- forward_targets -------------------------------------------------------------------


def test_forward_targets_excludes_the_sender_only():
    assert forward_targets([A, B, C, D], B) == [A, C, D]
    assert forward_targets([A], A) == []


def test_forward_targets_of_own_message_is_every_neighbour():
    assert forward_targets([A, B, C], None) == [A, B, C]


def test_forward_targets_from_a_non_neighbour():
    # e.g. the sender's link closed meanwhile: everyone still gets it
    assert forward_targets([A, B], C) == [A, B]
    assert forward_targets([], C) == []


def test_forward_targets_compares_by_value():
    assert forward_targets({A: 1, B: 2, C: 3}, Address("10.0.0.2", 9002)) == [A, C]
    # same IP, other port: a different node
    assert forward_targets([A, Address("10.0.0.1", 9009)], A) == [Address("10.0.0.1", 9009)]


# --- LivenessTracker ------------------------------------------------------------------------


@pytest.mark.parametrize("misses", [1, 2, 3, 5])
def test_dead_exactly_after_ping_misses_unanswered_ticks(misses):
    tracker = LivenessTracker(misses)
    # the first tick only sends a request: nothing was owed yet
    assert tracker.tick() is False
    assert tracker.misses == 0
    for missed in range(1, misses):
        assert tracker.tick() is False
        assert tracker.misses == missed
        assert not tracker.dead
    assert tracker.tick() is True
    assert tracker.misses == misses
    assert tracker.dead
    # and stays dead
    assert tracker.tick() is True


def test_report_defaults_three_misses():
    tracker = LivenessTracker(3)
    assert [tracker.tick() for _ in range(4)] == [False, False, False, True]


def test_single_miss_case():
    tracker = LivenessTracker(1)
    assert tracker.tick() is False
    assert tracker.tick() is True


def test_any_reply_resets_the_count():
    tracker = LivenessTracker(3)
    tracker.tick()
    tracker.tick()
    tracker.tick()
    assert tracker.misses == 2
    tracker.replied()
    assert tracker.misses == 0
    # the reply answered the outstanding request, so the next tick is no miss
    assert tracker.tick() is False
    assert tracker.misses == 0
    assert [tracker.tick() for _ in range(3)] == [False, False, True]


def test_replies_every_interval_keep_it_alive_forever():
    tracker = LivenessTracker(1)
    for _ in range(100):
        assert tracker.tick() is False
        tracker.replied()
    assert tracker.misses == 0


def test_misses_must_be_consecutive():
    tracker = LivenessTracker(3)
    pattern = []
    for _ in range(10):
        tracker.tick()
        tracker.tick()
        tracker.tick()  # two misses
        pattern.append(tracker.dead)
        tracker.replied()
    assert pattern == [False] * 10


def test_reply_before_any_tick_is_harmless():
    tracker = LivenessTracker(2)
    tracker.replied()
    assert [tracker.tick() for _ in range(3)] == [False, False, True]


@pytest.mark.parametrize("misses", [0, -1])
def test_ping_misses_must_be_positive(misses):
    with pytest.raises(ValueError):
        LivenessTracker(misses)
