"""What a seed hands out: the whole Peer List while it is small, a sample and the anchors past PEER_SAMPLE."""

import random
from collections import Counter

import pytest

from gossipnet.config import ANCHOR_CANDIDATES, MAX_CONNECTIONS, PEER_SAMPLE
from gossipnet.protocol.degreepool import AddressPool, DegreePool
from gossipnet.protocol.handout import drawable, hand_out, is_sample
from gossipnet.protocol.peertable import PeerTable
from gossipnet.protocol.repairplan import REFUSED, RepairRound, referrals
from gossipnet.protocol.wire import MAX_LINE_BYTES, Address, PeerList, encode

KEY = "4dvkdXVMjUPSiZySgoXT88_VJ5bFLKaKp8WiWLDkdes"


def pool_of(degrees: dict[int, int]) -> DegreePool:
    pool = DegreePool(max(degrees, default=0) + 1)
    for peer, degree in degrees.items():
        pool.add(peer, degree)
    return pool


@pytest.mark.parametrize("make", [dict, pool_of])
def test_a_small_list_is_handed_out_whole_without_the_requester(make):
    listed = make({peer: peer % 3 for peer in range(PEER_SAMPLE + 1)})
    reply = hand_out(listed, random.Random(1), requester=5)
    assert reply == {peer: peer % 3 for peer in range(PEER_SAMPLE + 1) if peer != 5}
    assert not is_sample(reply)


@pytest.mark.parametrize("make", [dict, pool_of])
def test_a_large_list_gives_a_sample_and_the_smallest_peers_as_anchors(make):
    degrees = {peer: peer % 7 for peer in range(10, 5000)}
    reply = hand_out(make(degrees), random.Random(2), requester=10)
    anchors = list(range(11, 11 + ANCHOR_CANDIDATES))
    assert set(anchors) <= set(reply)
    assert 10 not in reply
    assert len(reply) == PEER_SAMPLE + ANCHOR_CANDIDATES and is_sample(reply)
    assert all(reply[peer] == degrees[peer] for peer in reply)


def test_full_peers_are_left_out_of_the_sample_but_not_of_the_anchors():
    degrees = {peer: MAX_CONNECTIONS if peer % 2 == 0 else 1 for peer in range(1000)}
    full = {peer for peer, degree in degrees.items() if degree >= MAX_CONNECTIONS}
    reply = hand_out(pool_of(degrees), random.Random(3), full=full)
    anchors = set(range(ANCHOR_CANDIDATES))
    assert anchors <= set(reply)
    assert all(peer % 2 == 1 for peer in set(reply) - anchors)


def test_when_every_peer_is_full_the_sample_names_full_peers():
    degrees = {peer: MAX_CONNECTIONS for peer in range(500)}
    reply = hand_out(degrees, random.Random(4), full=set(degrees))
    assert len(reply) == PEER_SAMPLE + ANCHOR_CANDIDATES


def test_the_sample_is_uniform_so_a_newcomer_s_own_degree_draw_keeps_the_model():
    # Each non-anchor peer should be sampled about equally often, hubs included.
    degrees = {peer: (200 if peer < 20 else 1) for peer in range(300)}
    counts = Counter()
    rng = random.Random(5)
    for _ in range(2000):
        counts.update(set(hand_out(degrees, rng)) - set(range(ANCHOR_CANDIDATES)))
    expected = 2000 * PEER_SAMPLE / (300 - ANCHOR_CANDIDATES)
    assert all(0.7 * expected < counts[peer] < 1.3 * expected for peer in range(ANCHOR_CANDIDATES, 300))


def test_pools_and_dicts_hand_out_from_the_same_law_in_ascending_address_order():
    pool = AddressPool(capacity=2)  # grows as peers come
    degrees = {Address("127.0.0.1", 1000 + i): i % 5 for i in range(300)}
    for address, degree in degrees.items():
        pool.add(address, degree)
    pool.remove(Address("127.0.0.1", 1000))
    assert list(pool) == sorted(degrees)[1:]
    assert pool[Address("127.0.0.1", 1007)] == 2
    reply = hand_out(pool, random.Random(6))
    assert list(reply)[-ANCHOR_CANDIDATES:] == sorted(degrees)[1:1 + ANCHOR_CANDIDATES]


def test_a_seed_s_table_holds_100000_peers_and_each_reply_fits_one_line():
    # Without keys (a --no-auth network), so that 100,000 registrations take seconds; the
    # longest reply, every peer with a key, is checked on its own below.
    table = PeerTable(rng=random.Random(7))
    peers = [Address(f"10.{i // 65000}.{(i // 250) % 256}.{i % 250 + 1}", 1000 + i % 60000)
             for i in range(100_000)]
    replies = []
    for number, peer in enumerate(peers):
        registered = table.register(peer, None)
        assert registered is not None, f"registration {number} refused"
        if number % 10_000 == 9_999:
            replies.append(registered[0])
    for reporter, neighbour in zip(peers[:2000], peers[1:2001], strict=True):
        table.record_link(reporter, neighbour)
    assert len(table.all_peers().peers) == 100_000
    assert len(table.all_peers().encode()) > MAX_LINE_BYTES  # the whole list would not fit one line
    listed = set(peers)
    for reply in [*replies, table.peer_list()]:
        assert PEER_SAMPLE < len(reply.peers) <= PEER_SAMPLE + ANCHOR_CANDIDATES
        assert {address for address, _ in reply.peers} <= listed
    # The anchors: the smallest addresses listed.
    assert set(sorted(listed)[:ANCHOR_CANDIDATES]) <= dict(table.peer_list().peers).keys()
    assert table.remove(table.get(peers[0])) is not None
    assert peers[0] not in dict(table.peer_list().peers)
    longest = PeerList(tuple((Address("255.255.255.254", 65535 - i), 999_999) for i in range(PEER_SAMPLE
                                                                                            + ANCHOR_CANDIDATES)),
                       {Address("255.255.255.254", 65535 - i): KEY for i in range(PEER_SAMPLE + ANCHOR_CANDIDATES)})
    assert len(encode(longest)) < MAX_LINE_BYTES // 8


def test_the_table_counts_reported_links_toward_full():
    table = PeerTable(rng=random.Random(8), full_at=3)
    hub = Address("127.0.0.1", 1)
    others = [Address("127.0.0.1", 100 + i) for i in range(PEER_SAMPLE + 20)]
    table.register(hub, None)
    for peer in others:
        table.register(peer, None)
    for peer in others[:3]:
        table.record_link(peer, hub)
    for _ in range(20):
        sampled = {address for address, _ in table.peer_list().peers} - set(sorted([hub, *others])[:ANCHOR_CANDIDATES])
        assert hub not in sampled


def test_referrals_name_every_neighbour_those_with_room_first():
    degrees = {1: 5, 2: None, 3: 300, 4: 0, 5: 256}
    named = referrals(degrees, 256, random.Random(9))
    assert sorted(named) == [1, 2, 3, 4, 5]
    assert set(named[:2]) == {1, 4} and named[2] == 2 and set(named[3:]) == {3, 5}


def test_a_full_anchor_is_reached_through_a_neighbour_it_names():
    plan = RepairRound(50, [{10: 256, 20: 3, 30: 3}], [], 1, "preferential", random.Random(10))
    assert plan.next_dials() == [10]
    plan.dialled(10, REFUSED, [40, 45])
    assert plan.next_dials() == [40]
    plan.dialled(40, "linked")
    assert plan.anchor == 10
    while dials := plan.next_dials():
        for peer in dials:
            plan.dialled(peer, "linked")
    assert plan.complete and plan.opened[0] == 40


def test_a_link_to_a_neighbour_of_a_full_anchor_settles_it_with_no_new_link():
    plan = RepairRound(50, [{10: 256, 45: 3}], [45], 1, "preferential", random.Random(11))
    assert plan.next_dials() == [10]
    plan.dialled(10, REFUSED, [40, 45])
    assert plan.next_dials() == []
    assert plan.anchor == 10 and plan.complete and plan.opened == []


def test_a_full_anchor_whose_neighbours_all_refuse_leaves_the_round_short():
    plan = RepairRound(50, [{10: 256}], [], 1, "preferential", random.Random(12))
    assert plan.next_dials() == [10]
    plan.dialled(10, REFUSED, [40])
    assert plan.next_dials() == [40]
    plan.dialled(40, "unreachable")
    while dials := plan.next_dials():
        for peer in dials:
            plan.dialled(peer, REFUSED)
    assert not plan.complete


def test_fill_skips_listed_full_peers_while_one_has_room():
    lists = [{60: 256, 70: 256, 80: 1}]
    for seed in range(30):
        plan = RepairRound(50, lists, [], 1, "preferential", random.Random(seed))
        assert plan.next_dials() == [80]


def test_a_newcomer_draws_from_a_sample_without_its_anchors_but_from_a_whole_list_whole():
    whole = {peer: 1 for peer in range(PEER_SAMPLE)}
    assert drawable(whole) == whole
    degrees = {peer: (250 if peer < ANCHOR_CANDIDATES else 1) for peer in range(5000)}
    reply = hand_out(degrees, random.Random(13))
    drawn = drawable(reply)
    assert set(drawn) == set(reply) - set(range(ANCHOR_CANDIDATES)) and len(drawn) == PEER_SAMPLE
