"""The liveness rule across its three modes (--liveness app, icmp, both): misses counted from the
system ping's results and the application's replies; and which neighbours ICMP alone cannot see.

The app mode's own cases (one miss per unanswered tick, any line resets) are in test_rules.py.
"""

from __future__ import annotations

import pytest

from gossipnet.protocol.liveness import (
    APP,
    BOTH,
    ICMP,
    LIVENESS_MODES,
    LivenessTracker,
    blind_to_processes,
    uses_app,
    uses_icmp,
)


def ticks(tracker: LivenessTracker, rounds: list[tuple[bool, bool]]) -> list[tuple[bool, int, tuple[str, ...]]]:
    """Tick once, then for each (app reply, echo reply) of a round: the answers, then the tick closing it."""
    tracker.tick()
    seen = []
    for app, echo in rounds:
        if app:
            tracker.replied()
        tracker.icmp_result(tracker.round, echo)
        dead = tracker.tick()
        seen.append((dead, tracker.misses, tracker.failed))
    return seen


def test_the_modes_and_their_checks():
    assert LIVENESS_MODES == ("app", "icmp", "both")
    assert [(uses_app(mode), uses_icmp(mode)) for mode in LIVENESS_MODES] == [(True, False), (False, True),
                                                                            (True, True)]


@pytest.mark.parametrize("misses", [1, 3])
def test_icmp_counts_pings_without_an_echo_reply_and_ignores_the_link(misses):
    tracker = LivenessTracker(misses, ICMP)
    # The neighbour's process talks (a reply on the link) but its host gives no echo reply:
    # in icmp mode only the echo counts.
    seen = ticks(tracker, [(True, False)] * misses)
    assert [dead for dead, _, _ in seen] == [False] * (misses - 1) + [True]
    assert [count for _, count, _ in seen] == list(range(1, misses + 1))
    assert {failed for _, _, failed in seen} == {(ICMP,)}


def test_icmp_an_echo_reply_resets_the_count_and_a_silent_process_goes_unseen():
    tracker = LivenessTracker(3, ICMP)
    seen = ticks(tracker, [(False, False), (False, False), (False, True), (False, False)])
    assert [(dead, count) for dead, count, _ in seen] == [(False, 1), (False, 2), (False, 0), (False, 1)]
    # A crashed or hung process on a host that still answers: never a miss, however long.
    assert ticks(LivenessTracker(1, ICMP), [(False, True)] * 20) == [(False, 0, ())] * 20


def test_app_ignores_icmp_results():
    tracker = LivenessTracker(2, APP)
    # The host answers every ping, the process nothing: the app mode sees a dead peer.
    assert ticks(tracker, [(False, True), (False, True)]) == [(False, 1, (APP,)), (True, 2, (APP,))]
    assert ticks(LivenessTracker(2, APP), [(True, False)] * 5) == [(False, 0, ())] * 5


def test_both_misses_when_either_check_fails():
    tracker = LivenessTracker(3, BOTH)
    seen = ticks(tracker, [(True, False), (False, True), (False, False), (True, True), (True, False)])
    assert seen == [(False, 1, (ICMP,)), (False, 2, (APP,)), (True, 3, (APP, ICMP)), (False, 0, ()),
                    (False, 1, (ICMP,))]


def test_both_a_reply_alone_does_not_undo_the_misses_the_pings_counted():
    tracker = LivenessTracker(3, BOTH)
    ticks(tracker, [(True, False), (True, False)])
    assert tracker.misses == 2
    tracker.replied()
    assert tracker.misses == 2  # the echo of this round is still owed
    tracker.icmp_result(tracker.round, True)
    assert tracker.misses == 0  # both checks of the round passed
    assert tracker.tick() is False and tracker.failed == ()


def test_an_echo_reply_counts_only_for_the_round_its_ping_was_run_for():
    tracker = LivenessTracker(1, ICMP)
    tracker.tick()
    late = tracker.round
    tracker.tick()  # the ping of round `late` had not ended: a miss, and dead with one miss allowed
    assert tracker.dead
    tracker.icmp_result(late, True)  # it ends now, a round too late
    assert tracker.dead and tracker.misses == 1
    assert tracker.tick() is True
    tracker.icmp_result(tracker.round, True)  # this round's own answer does count
    assert not tracker.dead


def test_icmp_results_before_any_tick_or_without_an_answer_change_nothing():
    tracker = LivenessTracker(2, ICMP)
    tracker.icmp_result(0, True)
    tracker.icmp_result(0, False)
    assert [tracker.tick() for _ in range(3)] == [False, False, True]


def test_a_mode_must_be_known():
    with pytest.raises(ValueError, match="app, icmp, both"):
        LivenessTracker(3, "ping")


@pytest.mark.parametrize(("mode", "ip", "blind"), [
    (ICMP, "127.0.0.1", True), (ICMP, "127.3.2.1", True), (ICMP, "10.213.0.5", False),
    (BOTH, "127.0.0.1", False), (APP, "127.0.0.1", False),
])
def test_icmp_alone_is_blind_to_processes_on_loopback(mode, ip, blind):
    assert blind_to_processes(mode, ip) is blind
