"""No dead peer stays listed (PROTOCOL.md §6.3): chain deaths, against seed processes.

The peers here are scripted (rogue.Rogue, used honestly): each really listens,
holds a key and proves its address, and the test decides whom each claims as
a neighbour and when each reports or dies, so that a dead peer's only counting
reporter dies next.  They register one request per connection, as other
implementations may: no seed sees their connections end, and only the seed's
own look at the accusation can remove the dead peer.  Churn with real peers,
where neighbours die together, is test_faults.py's.
"""

from __future__ import annotations

import pytest

from gossipnet.logs import logformat
from gossipnet.node import transport
from gossipnet.protocol.wire import Address, Ok, PeerList, PeerListRequest
from rogue import Rogue

WAITING = Ok("accepted: waiting for confirmation: 1 of 2 neighbours reported")


@pytest.fixture
def scripted():
    """Scripted peers, each closed after the test (a second close is harmless)."""
    made: list[Rogue] = []

    def make() -> Rogue:
        made.append(Rogue())
        return made[-1]

    try:
        yield make
    finally:
        for peer in made:
            peer.close()


def listed(seed: Address) -> set[Address]:
    reply = transport.request(seed, PeerListRequest())
    assert isinstance(reply, PeerList)
    return {address for address, _ in reply.peers}


def test_a_dead_peer_whose_only_counting_reporter_dies_next_is_removed_everywhere(network, scripted):
    seeds = [seed.address for seed in network.start_seeds(3)]
    accused, reporter, silent, last = (scripted() for _ in range(4))
    for seed in seeds:
        for peer in (accused, silent, last):
            peer.register(seed)
    for seed in seeds[:2]:  # the reporter is not registered with the third seed: it counts there for nothing
        reporter.register(seed)
    for seed in seeds:
        # The accused names two neighbours: the reporter, and a live one that never reports
        # (its link to the accused closed, say, without either dying).
        for neighbour in (reporter, silent):
            assert accused.claim_link(seed, neighbour.address) == Ok()
    for seed in seeds[:2]:
        assert reporter.claim_link(seed, last.address) == Ok()

    accused.close()  # dies
    for seed in seeds[:2]:
        assert reporter.report_dead(seed, accused.address) == WAITING
    reporter.close()  # dies next, before anyone else reports the accused
    # Its one neighbour reports it to the first seed, which removes it and tells the others.
    assert last.report_dead(seeds[0], reporter.address).detail.startswith("removed: 1 of 1 neighbours")

    def removed_everywhere() -> bool:
        return {e.node for e in network.events(logformat.PL_REMOVED)
                if e.address("peer") == accused.address} == set(seeds)

    network.wait_until(removed_everywhere, 30, "every seed to remove the dead peer")
    # The first seed checked the accused itself once its reporter left.  The second counted the
    # same lost report (it removed the reporter on the first one's notice): it did the same,
    # unless the first one's notice about the accused came first.  The third followed a notice.
    removed = {(e.node, e.fields["reason"]) for e in network.events(logformat.DEAD_NODE_DECISION)
               if e.address("dead") == accused.address and e.fields["decision"] == "removed"}
    followed = {e.node for e in network.events(logformat.REMOVAL_NOTICE)
                if e.address("dead") == accused.address and e.fields["decision"] == "removed"}
    checked = "0 of 1 neighbours reported, 1 more reported and then left, and the seed's liveness check failed"
    assert (seeds[0], checked) in removed
    assert (seeds[1], checked) in removed or seeds[1] in followed
    assert seeds[2] in followed and not {node for node, _ in removed} & {seeds[2]}
    for seed in seeds:
        assert listed(seed) == {silent.address, last.address}  # the dead are gone, the live stay
