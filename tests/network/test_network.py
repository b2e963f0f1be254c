"""End to end: seeds and peers as separate processes over real sockets."""

from __future__ import annotations

import signal
import socket

import networkx as nx

from gossipnet.grading.rules import grade
from gossipnet.logs import logformat
from gossipnet.protocol.wire import Address
from netharness import FAST_PEER

GOSSIP_COUNT = 10


def test_every_peer_receives_every_message_exactly_once(network):
    network.start_seeds(3)
    # All at once: concurrent joins are the hard case for connectivity.
    peers = network.start_peers(12)
    network.wait_until(lambda: network.all_delivered(peers, GOSSIP_COUNT), 90, "every message at every peer")

    addresses = {peer.address for peer in peers}
    seeds_of = {address: set() for address in addresses}
    for event in network.events(logformat.REGISTERED):
        seeds_of[event.node].add(event.address("seed"))
    assert all(len(seeds) >= 2 for seeds in seeds_of.values()), seeds_of

    generated = network.generated()
    assert all(len(generated[address]) == GOSSIP_COUNT for address in addresses)
    for address, counts in network.receipts().items():
        expected = set().union(*(generated[other] for other in addresses - {address}))
        assert set(counts) == expected, f"{address} received the wrong set"
        assert max(counts.values()) == 1, f"{address} logged a message twice"

    overlay = nx.Graph(list(tuple(link) for link in network.links()))
    overlay.add_nodes_from(addresses)
    assert nx.is_connected(overlay)
    # Links are symmetric: both ends log every link.
    opened = {(event.node, event.address("neighbour")) for event in network.events(logformat.LINK_OPENED)}
    assert all((b, a) in opened for a, b in opened)
    assert network.events(logformat.DEAD_NODE_REPORTED) == []


def test_killed_peer_is_reported_by_each_neighbour_and_removed(network):
    interval, misses = 0.5, 3
    seeds = network.start_seeds(3)
    peers = network.start_peers(6, "--gossip-interval", "0.2", "--ping-interval", str(interval),
                                "--ping-misses", str(misses))
    network.wait_until(lambda: network.all_delivered(peers, GOSSIP_COUNT), 60, "gossip to finish")

    victim = max(peers, key=lambda peer: sum(peer.address in link for link in network.links()))
    neighbours = {other for link in network.links() if victim.address in link for other in link} - {victim.address}
    holders = {event.node for event in network.events(logformat.PL_ADDED) if event.address("peer") == victim.address}
    assert neighbours and holders
    killed_at = network.kill(victim, signal.SIGKILL)

    def reports():
        return {event.node: event for event in network.events(logformat.DEAD_NODE_REPORTED)
                if event.address("dead") == victim.address}

    def removed_by():
        return {event.node for event in network.events(logformat.PL_REMOVED)
                if event.address("peer") == victim.address}

    network.wait_until(lambda: set(reports()) == neighbours, misses * interval + 20, "every neighbour's report")
    network.wait_until(lambda: removed_by() == holders, 20, "every seed holding the peer to remove it")

    for reporter, event in reports().items():
        delay = event.timestamp - killed_at
        # The rule gives [misses, misses + 1) intervals after the death, less the reply
        # latency when the kill lands between a request and its reply, which a loaded
        # machine can stretch: a full interval of slack below, generous slack above.
        # (tests/test_rules.py pins the exact miss count.)
        assert (misses - 1) * interval <= delay <= (misses + 1) * interval + 5, (reporter, delay)
        assert event.fields["msg"] == (f"Dead Node:{victim.address.ip}:{victim.address.port}:"
                                       f"{event.fields['msg'].split(':')[3]}:{reporter.ip}")
    dead_reported = {event.address("dead") for event in network.events(logformat.DEAD_NODE_REPORTED)}
    assert dead_reported == {victim.address}, "a live peer was reported dead"
    assert {event.address("peer") for event in network.events(logformat.PL_REMOVED)} == {victim.address}
    assert len(seeds) == 3


def test_peer_without_a_seed_majority_exits_with_a_clear_error(network, tmp_path):
    # Ports that refuse connections: bound, never listening.
    holders = [socket.socket() for _ in range(3)]
    try:
        for holder in holders:
            holder.bind(("127.0.0.1", 0))
        network.config_path.write_text("".join(f"127.0.0.1:{h.getsockname()[1]}\n" for h in holders))
        peer = network.start_node("peer", *FAST_PEER)
        assert peer.process.wait(timeout=60) == 1
    finally:
        for holder in holders:
            holder.close()
    error = peer.stderr()
    assert "registered with 0 of 3 seeds; a majority needs 2" in error
    assert "Traceback" not in error


def test_a_peer_the_seeds_refuse_exits_saying_why(network):
    network.start_seeds(3)  # they sign: a --no-auth peer is refused
    peer = network.start_node("peer", *FAST_PEER, "--no-auth")
    assert peer.process.wait(timeout=60) == 1
    error = peer.stderr()
    assert error.count("\n") == 1, error
    assert "registered with 0 of 3 seeds; a majority needs 2. 127.0.0.1:" in error
    assert "refused: this network signs its messages" in error and "--no-auth" in error


def test_peer_replaces_an_unreachable_seed(network):
    seeds = network.start_seeds(2)
    dead = socket.socket()
    dead.bind(("127.0.0.1", 0))
    try:
        config = network.config_path.read_text() + f"127.0.0.1:{dead.getsockname()[1]}\n"
        network.config_path.write_text(config)
        peers = network.start_peers(2)
        network.wait_until(lambda: len(network.events(logformat.PEER_LIST_UNION)) == 2, 30, "both peers to join")
    finally:
        dead.close()
    registered = {(event.node, event.address("seed")) for event in network.events(logformat.REGISTERED)}
    assert registered == {(peer.address, seed.address) for peer in peers for seed in seeds}


def test_sigint_and_sigterm_stop_nodes_cleanly(network):
    seeds = network.start_seeds(1)
    peers = network.start_peers(2)
    network.wait_until(lambda: len(network.links()) == 1, 30, "the two peers to link")
    for node, sig in ((peers[0], signal.SIGINT), (peers[1], signal.SIGTERM), (seeds[0], signal.SIGINT)):
        network.kill(node, sig)
        assert node.process.wait(timeout=15) == 0, node.stderr()
        assert "Traceback" not in node.stderr()
    stopped = {event.node for event in network.events(logformat.STOPPED)}
    assert stopped == {node.address for node in seeds + peers}


def test_peers_that_stop_leave_their_seeds_so_the_next_run_starts_from_an_empty_list(network):
    """A second PeerRunner.py against the same seeds used to find the first run's peers listed."""
    network.start_seeds(3)
    first = network.start_peers(4)
    network.wait_until(lambda: len(network.events(logformat.GOSSIP_GENERATED)) >= 4, 60, "every peer joined")
    for peer in first:
        network.kill(peer, signal.SIGTERM)
    for peer in first:
        assert peer.process.wait(timeout=60) == 0
    for peer in first:
        [left] = network.events(logformat.LEFT, node=peer.address)
        took = {Address.parse(seed) for seed in left.fields["seeds"].split(",")}
        # The majority it registered with, or every seed (repair registers a first peer with no link everywhere).
        assert len(took) >= 2 and left.fields["missed"] == ""
        assert took == {event.node for event in network.events(logformat.PEER_LEFT)
                        if event.address("peer") == peer.address}
    assert not network.events(logformat.PL_REMOVED)  # leaving is not dying
    [newcomer] = network.start_peers(1)
    network.wait_until(lambda: network.events(logformat.PEER_LIST_UNION, node=newcomer.address), 60,
                       "the newcomer's peer list")
    [union] = network.events(logformat.PEER_LIST_UNION, node=newcomer.address)
    assert union.fields["count"] == "0"
    # The grader rebuilds the same lists: only the newcomer, at the majority of seeds it registered with.
    def holding_newcomer() -> set:
        return {event.node for event in network.events(logformat.PL_ADDED) if event.address("peer") == newcomer.address}

    network.wait_until(lambda: len(holding_newcomer()) >= 2, 60, "the newcomer listed")
    network.kill(newcomer, signal.SIGSTOP)  # frozen: the log holds still
    try:
        _, verdicts = grade([str(network.log_path)])
    finally:
        network.kill(newcomer, signal.SIGCONT)
    [peer_lists] = [verdict for verdict in verdicts if verdict.number == 8]
    assert peer_lists.checked and not peer_lists.offences
    assert peer_lists.detail.startswith("final Peer List sizes ")
    sizes = peer_lists.detail.removeprefix("final Peer List sizes ").split(";")[0].split(", ")
    assert sorted(sizes) == sorted(["1"] * len(holding_newcomer()) + ["0"] * (3 - len(holding_newcomer())))
