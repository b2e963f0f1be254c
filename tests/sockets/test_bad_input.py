"""Garbage, half lines, huge lines, junk addresses, silence and a lying report
against a live seed and a live peer: both keep serving everyone else."""

from __future__ import annotations

import contextlib
import socket

from gossipnet.logs import logformat
from gossipnet.node import transport
from gossipnet.protocol.wire import Address, DeadNodeReport, Ok, PeerList, PeerListRequest

GOSSIP_COUNT = 10
HUGE = b"A" * (1024 * 1024)


def attack(address: Address, payload: bytes, half_close: bool = False) -> tuple[bytes, str]:
    """Send ``payload``; return all the node answered before closing, and our own address."""
    sock = socket.create_connection((address.ip, address.port), timeout=20)
    ours = "{}:{}".format(*sock.getsockname())
    received = b""
    with sock:
        with contextlib.suppress(OSError):  # the node may close before it has read it all
            sock.sendall(payload)
            if half_close:
                sock.shutdown(socket.SHUT_WR)
        with contextlib.suppress(ConnectionResetError):
            while chunk := sock.recv(4096):
                received += chunk
    return received, ours


# (payload, half_close, words expected in the BAD_INPUT reason)
COMMON = [
    (b"\x00\xff\xfe garbage\n", False, "not valid UTF-8"),
    (b"FROBNICATE now\n", False, "unknown verb"),
    (b"REGISTER 127.0.0.1:9", True, "closed inside a line"),
    (HUGE, False, "longer than"),
]
AGAINST_SEED = COMMON + [
    (b"REGISTER 999.1.1.1:80\n", False, "not an IPv4 address"),
    (b"REGISTER 127.0.0.1:0\n", False, "not a port"),
    (b"REGISTER 0.0.0.0:8000\n", False, "cannot be a node's address"),
    (b"GOSSIP 127.0.0.1:5 1.0:127.0.0.1:1\n", False, "does not serve GOSSIP"),
]
AGAINST_PEER = COMMON + [
    (b"HELLO not-an-address\n", False, "is not IP:port"),
    (b"GOSSIP 127.0.0.1:5 1.0:127.0.0.1:1\n", False, "expected HELLO or LIVENESS_REQUEST"),
    (b"REGISTER 127.0.0.1:5000\n", False, "expected HELLO or LIVENESS_REQUEST"),
]


def test_hostile_input_leaves_seed_and_peer_serving(network):
    seeds = network.start_seeds(3)
    first = network.start_peers(3)
    network.wait_until(lambda: network.all_delivered(first, GOSSIP_COUNT), 60, "the first peers' gossip")
    seed, peer = seeds[0].address, first[0].address

    silent = socket.create_connection((peer.ip, peer.port))
    silent_seed = socket.create_connection((seed.ip, seed.port))
    expected = []
    for target, cases in ((seed, AGAINST_SEED), (peer, AGAINST_PEER)):
        for payload, half_close, words in cases:
            reply, ours = attack(target, payload, half_close)
            # Answered with at most an ERROR line, then closed.
            assert reply == b"" or reply.startswith(b"ERROR "), (payload[:40], reply[:80])
            expected.append((target, ours, words))

    # A report forged in a registered peer's name carries no signature of its.
    holder = next(e.node for e in network.events(logformat.PL_ADDED) if e.address("peer") == first[2].address)
    lie = DeadNodeReport(first[2].address, "1700000000.0", first[1].address)
    assert transport.request(holder, lie) in (Ok("rejected: unsigned, but the reporter has a key"),
                                              Ok("rejected: reporter is not a registered live peer here"))

    # Later peers still join, and everyone still receives everything.
    later = network.start_peers(3)
    everyone = first + later
    network.wait_until(lambda: network.all_delivered(everyone, GOSSIP_COUNT), 60, "gossip among all six peers")

    # Each bad connection was logged once, by the node it hit, with its remote address.
    bad = [(event.node, event.fields["remote"], event.fields["reason"])
           for event in network.events(logformat.BAD_INPUT)]
    for target, ours, words in expected:
        hits = [reason for node, remote, reason in bad if node == target and remote == ours]
        assert len(hits) == 1 and words in hits[0], (target, ours, words, hits)

    # The silent connections are closed by the nodes after the handshake timeout.
    for sock in (silent, silent_seed):
        with sock:
            sock.settimeout(30)
            assert sock.recv(100) == b""

    # No junk ever entered a peer list, and nobody was removed.
    real = {node.address for node in everyone}
    for event in network.events(logformat.PEER_LIST_UNION):
        listed = {Address.parse(text) for text in event.fields["peers"].split(",") if text}
        assert listed <= real
    for node in seeds:
        reply = transport.request(node.address, PeerListRequest())
        assert isinstance(reply, PeerList) and {address for address, _ in reply.peers} <= real
    assert network.events(logformat.PL_REMOVED) == []
    assert network.events(logformat.DEAD_NODE_REPORTED) == []
