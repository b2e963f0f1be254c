"""A seed past what one line can carry: thousands of registrations over real sockets, and newcomers still join.

Before seeds handed out samples (protocol/handout.py), a seed refused
registrations past 800 peers, since its whole Peer List had to fit one
64 KiB line.  Here one seed (a process, --no-auth) lists a few real peers
and 4,000 registered addresses where nothing listens, far more than one
line holds; newcomers get a sample with the anchors, link to the live peers
among them and receive all the gossip.  The 100,000-peer table is tested in
tests/pure/test_handout.py.
"""

from __future__ import annotations

import socket

from gossipnet.config import ANCHOR_CANDIDATES, PEER_SAMPLE
from gossipnet.logs import logformat
from gossipnet.node.framing import LineReader
from gossipnet.protocol.wire import MAX_LINE_BYTES, Address, PeerList, PeerListRequest, Register, encode

ADDRESSES = 4000
GOSSIP_COUNT = 10
PEER = ("--no-auth", "--gossip-interval", "0.2", "--gossip-count", str(GOSSIP_COUNT), "--ping-interval", "2",
        "--ping-misses", "5")


def absent(number: int) -> Address:
    """An address where nothing listens (all of 127/8 is loopback), above every 127.0.0.1 peer."""
    return Address(f"127.0.{1 + number // 200}.{1 + number % 200}", 20000 + number)


def register_absent(seed: Address, count: int) -> PeerList:
    """Register ``count`` absent addresses on one connection, as many registrations in a row; the last reply."""
    with socket.create_connection((seed.ip, seed.port), timeout=30) as sock:
        reader = LineReader(sock)
        reply = None
        for number in range(count):
            sock.sendall(encode(Register(absent(number), None)))
            reply = reader.read_message()
            assert isinstance(reply, PeerList), reply
        sock.sendall(encode(PeerListRequest()))
        return reader.read_message()


def test_a_seed_lists_more_peers_than_one_line_holds_and_newcomers_still_join(network):
    [seed] = network.start_seeds(1, "--no-auth")
    early = network.start_peers(3, *PEER)
    network.wait_until(lambda: len(network.links()) >= 2, 60, "the early peers' links")

    reply = register_absent(seed.address, ADDRESSES)
    sizes = [int(event.fields["size"]) for event in network.events(logformat.PL_ADDED, node=seed.address)]
    assert max(sizes) == ADDRESSES + len(early)
    whole = PeerList(tuple((absent(number), 0) for number in range(ADDRESSES)))
    assert len(whole.encode()) > MAX_LINE_BYTES  # the Peer List would not fit one line
    assert PEER_SAMPLE < len(reply.peers) <= PEER_SAMPLE + ANCHOR_CANDIDATES
    # The anchors are the smallest addresses: the early peers among them.
    assert {peer.address for peer in early} <= dict(reply.peers).keys()

    # Newcomers listen on 127.0.0.2: above the early peers, so that an early peer is the anchor
    # their repair reaches.  One that sorted below every live anchor and drew no live peer from its
    # sample (here all 4,000 are absent) would anchor on itself and stay apart with the peers that
    # anchor on it: a limit of samples (docs/LIMITS.md), seen here with ports drawn below the early ones.
    newcomers = [network.spawn("peer", "127.0.0.2", "0", "--log", str(network.log_path), "--quiet",
                               "--config", str(network.config_path), *PEER) for _ in range(2)]
    network.wait_started(newcomers)
    peers = [*early, *newcomers]
    network.wait_until(lambda: network.all_delivered(peers, GOSSIP_COUNT), 120, "every message at every peer")
    for newcomer in newcomers:
        [listed] = [event for event in network.events(logformat.PEER_LIST, node=newcomer.address)][:1]
        named = [peer for peer in listed.fields["peers"].split(",") if peer]
        assert PEER_SAMPLE < len(named) <= PEER_SAMPLE + ANCHOR_CANDIDATES
        linked = {event.address("neighbour") for event in network.events(logformat.LINK_OPENED,
                                                                            node=newcomer.address)}
        assert linked and linked <= {peer.address for peer in peers}
