"""Adaptive connections: the overlay repairs itself after deaths, and a peer that comes back rejoins.

The pure parts (the repair schedule, the anchor order, when a round falls
short) are tested with a fake clock; the seed's handling of neighbours that
die together with an in-process seed; the whole path with real processes on
127.0.0.1 (port 0, fast timings), waiting on log conditions with deadlines.
Every process is ended by PID by the ``network`` fixture, even on failure.
"""

from __future__ import annotations

import queue
import random
import signal
import socket
import time
from collections import defaultdict

import networkx as nx
import pytest

from gossipnet.config import PeerSettings
from gossipnet.logs import logformat
from gossipnet.node import transport
from gossipnet.node.framing import LineReader
from gossipnet.node.peer import Peer
from gossipnet.node.seed import Seed
from gossipnet.node.transport import NodeServer
from gossipnet.protocol import topology
from gossipnet.protocol.wire import (
    Address,
    DeadNodeReport,
    Hello,
    LinkReport,
    LivenessRequest,
    Ok,
    PeerList,
    PeerListRequest,
    Register,
    encode,
)
from netharness import Network, unused_address

PING_INTERVAL = 1.0
PING_MISSES = 3
GOSSIP_INTERVAL = 0.5
GOSSIP_COUNT = 60  # 30 s of gossip: still flowing after the faults


def peer_flags(*extra: str) -> tuple[str, ...]:
    return ("--gossip-interval", str(GOSSIP_INTERVAL), "--gossip-count", str(GOSSIP_COUNT),
            "--ping-interval", str(PING_INTERVAL), "--ping-misses", str(PING_MISSES), *extra)


# --- The repair schedule and choices, with no network ------------------------------------


def test_the_schedule_paces_rounds_backs_off_and_goes_idle():
    schedule = topology.RepairSchedule(interval=2.0, cap=4)
    assert schedule.wait(0.0) is None  # nothing lost, no round
    schedule.lost(10.0)
    assert schedule.wait(10.0) == 0  # the first loss: a round at once
    schedule.finished(11.0, complete=False, changed=False)
    schedule.lost(11.5)  # another loss right after: still one interval apart
    assert schedule.due == 13.0
    pauses = []
    now = 13.0
    for _ in range(5):  # the seeds stay unreachable: 1, 2, 4, 4, 4 intervals (capped)
        schedule.finished(now, complete=False, changed=False)
        pauses.append(schedule.pause)
        now = schedule.due
    assert pauses == [4.0, 8.0, 8.0, 8.0, 8.0]
    assert schedule.shortfalls == 6
    schedule.finished(now, complete=True, changed=True)  # it worked: confirm once
    assert (schedule.pause, schedule.shortfalls) == (2.0, 0)
    schedule.finished(now + 2, complete=True, changed=False)  # nothing left to do
    assert schedule.wait(now + 2) is None and schedule.pause is None


def test_the_anchor_is_the_smallest_listed_peer_the_same_for_everyone():
    a, b, c, d = (Address("127.0.0.1", port) for port in (9001, 9002, 9010, 10000))
    listed = [d, b, a, c]
    # Address order: IP as a string, then port as a number.
    assert list(topology.anchor_candidates(listed, c)) == [a, b]
    assert list(topology.anchor_candidates(listed, a)) == []  # the smallest is its own anchor
    assert list(topology.anchor_candidates(listed + [Address("127.0.0.10", 1)], Address("127.0.0.2", 1))) == [
        a, b, c, d, Address("127.0.0.10", 1)]


def test_a_round_falls_short_only_of_what_the_lists_allow():
    lists = [{1: 0, 2: 0, 3: 0}, {3: 0, 4: 0}]
    assert topology.repair_short(lists, target=2, linked={1})  # below the target, peers left to link
    assert topology.repair_short(lists, target=2, linked={1, 2})  # the second list is not covered
    assert not topology.repair_short(lists, target=2, linked={1, 4})
    assert not topology.repair_short([{1: 0}], target=2, linked={1})  # nobody else to link to
    assert not topology.repair_short(lists, target=2, linked={1}, refused={2, 3, 4})  # the rest declined
    assert not topology.repair_short([], target=2, linked=set())


# --- Seeds: neighbours that die together ----------------------------------------------



def listening_peer() -> NodeServer:
    """A stand-in live peer: answers every liveness request."""
    server = NodeServer("127.0.0.1", 0, handler=None)

    def answer(conn):
        while isinstance(request := conn.read(), LivenessRequest):
            conn.send(request.reply(server.address))

    server.handler = answer
    server.start()
    return server


def wait_for(condition, what: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out after {timeout:g} s waiting for {what}"
        time.sleep(0.05)  # polling interval, not synchronisation


def listed(seed: Seed) -> set[Address]:
    reply = transport.request(seed.address, PeerListRequest())
    assert isinstance(reply, PeerList)
    return {address for address, _ in reply.peers}


def test_two_dead_neighbours_with_one_live_reporter_are_both_removed(seed, tmp_path):
    # A triangle: the reporter R and two peers D and E that die together.
    # Each of D and E names the other as a neighbour, and the other never reports.
    reporter, dead, other = Address("127.0.0.1", 9001), unused_address(), unused_address()
    for peer in (reporter, dead, other):
        transport.request(seed.address, Register(peer))
    for accused, neighbours in ((dead, (reporter, other)), (other, (reporter, dead))):
        for neighbour in neighbours:
            assert transport.request(seed.address, LinkReport(accused, neighbour)) == Ok()
    waiting = Ok("accepted: waiting for confirmation: 1 of 2 neighbours reported")
    assert transport.request(seed.address, DeadNodeReport(dead, "1.0", reporter)) == waiting
    assert transport.request(seed.address, DeadNodeReport(other, "1.0", reporter)) == waiting
    wait_for(lambda: not listed(seed) & {dead, other}, "both dead peers to be removed")
    assert listed(seed) == {reporter}
    decisions = [(e.fields["dead"], e.fields["decision"], e.fields["reason"])
                 for e in logformat.parse_log(tmp_path / "log.txt").events
                 if e.event == logformat.DEAD_NODE_DECISION and e.fields["decision"] == "removed"]
    assert {dead for dead, _, _ in decisions} == {str(dead), str(other)}
    assert all(reason.endswith("and the seed's liveness check failed") for _, _, reason in decisions)


def test_a_silent_neighbour_that_answers_keeps_a_live_accused_in_the_list(seed):
    # One report against a live peer whose other neighbour is accused too but alive:
    # the seed checks that neighbour, finds it alive, and keeps waiting.
    accused, neighbour = listening_peer(), listening_peer()
    reporter = Address("127.0.0.1", 9001)
    try:
        a, n = accused.address, neighbour.address
        for peer in (reporter, a, n):
            transport.request(seed.address, Register(peer))
        for claim in ((a, reporter), (a, n), (n, reporter), (n, a)):
            transport.request(seed.address, LinkReport(*claim))
        waiting = Ok("accepted: waiting for confirmation: 1 of 2 neighbours reported")
        assert transport.request(seed.address, DeadNodeReport(n, "1.0", reporter)) == waiting
        assert transport.request(seed.address, DeadNodeReport(a, "1.0", reporter)) == waiting
        seed.reconsider(a)  # as the seed's own thread does: it finds the silent neighbour alive
        seed.reconsider(n)
        assert listed(seed) == {reporter, a, n}
    finally:
        accused.stop()
        neighbour.stop()


# --- A peer in this process: dialling back a neighbour that closed a link --------------


def test_a_neighbour_that_closes_a_link_is_dialled_back_and_the_new_link_replaces_it(tmp_path):
    # As a revived peer sees it: its neighbour reported it dead and closed the link.
    server = NodeServer("127.0.0.1", 0, handler=lambda conn: None)
    log = logformat.NodeLog("peer", server.address, tmp_path / "peer.txt", console=False)
    server.log = log
    peer = Peer(server, log, seeds=[], settings=PeerSettings(auth=False), rng=random.Random(1))
    server.start()  # serves links without joining
    dialled_back: queue.Queue = queue.Queue()

    def accept(conn):  # the neighbour's own listener
        dialled_back.put(conn.read())
        conn.send(Hello(neighbour.address))
        while conn.read() is not None:
            pass

    neighbour = NodeServer("127.0.0.1", 0, handler=accept)
    neighbour.start()
    try:
        with socket.create_connection((peer.address.ip, peer.address.port), timeout=10) as sock:
            reader = LineReader(sock)
            sock.sendall(encode(Hello(neighbour.address)))
            assert reader.read_message() == Hello(peer.address)
            wait_for(lambda: neighbour.address in peer.link_table.neighbours(), "the link")
            old = peer.link_table.get(neighbour.address)
        # Closed: the peer dials the neighbour's own address at once.
        assert dialled_back.get(timeout=30) == Hello(peer.address)

        def opened() -> list[logformat.LogEvent]:
            return [e for e in logformat.parse_log(tmp_path / "peer.txt").events if e.event == logformat.LINK_OPENED]

        wait_for(lambda: len(opened()) == 2, "the new link to replace the old one")
        new = peer.link_table.get(neighbour.address)
        assert new is not old and not new.conn.closed
        peer.report_dead(old)  # the old link's verdict no longer applies
        assert neighbour.address in peer.link_table.neighbours()
        events = logformat.parse_log(tmp_path / "peer.txt").events
        assert [e.fields["reason"] for e in events if e.event == logformat.LINK_CLOSED] == ["closed by neighbour"]
        assert [e.fields["initiator"] for e in events if e.event == logformat.LINK_OPENED] == [
            str(neighbour.address), str(peer.address)]
        assert not [e for e in events if e.event == logformat.DEAD_NODE_REPORTED]
    finally:
        peer.stop()
        neighbour.stop()
        log.close()


# --- Real processes ------------------------------------------------------------------------


def link_state(network: Network) -> dict[tuple[Address, Address], bool]:
    """For each (peer, neighbour): whether the peer's log leaves that link open."""
    state: dict[tuple[Address, Address], bool] = {}
    for event in network.events():
        if event.event == logformat.LINK_OPENED:
            state[(event.node, event.address("neighbour"))] = True
        elif event.event == logformat.LINK_CLOSED and not event.fields["reason"].startswith(
                ("cannot connect", "refused")):  # a dial that never opened a link
            state[(event.node, event.address("neighbour"))] = False
        elif event.event == logformat.DEAD_NODE_REPORTED:
            state[(event.node, event.address("dead"))] = False
    return state


def live_overlay(network: Network, live: set[Address]) -> nx.Graph:
    """The links both ends hold open, between live peers."""
    state = link_state(network)
    graph = nx.Graph()
    graph.add_nodes_from(live)
    graph.add_edges_from((a, b) for (a, b), up in state.items()
                         if up and state.get((b, a)) and a in live and b in live)
    return graph


def made_since(network: Network, origins: set[Address], since: float) -> dict[Address, set[str]]:
    """Messages each of ``origins`` created after ``since`` (wall clock, as logged)."""
    made: dict[Address, set[str]] = defaultdict(set)
    for event in network.events(logformat.GOSSIP_GENERATED):
        if event.node in origins and event.timestamp > since:
            made[event.node].add(event.fields["msg"])
    return made


def delivered(network: Network, live: set[Address], since: float) -> bool:
    """Every message a live peer created after ``since`` is at every other live peer."""
    made = made_since(network, live, since)
    receipts = network.receipts()
    return all((origin, msg) in receipts[peer]
               for origin, texts in made.items() for msg in texts for peer in live - {origin})


def done_gossiping(network: Network, peers: set[Address]) -> bool:
    counts = defaultdict(int)
    for event in network.events(logformat.GOSSIP_GENERATED):
        counts[event.node] += 1
    return all(counts[peer] >= GOSSIP_COUNT for peer in peers)


def assert_each_once(network: Network) -> None:
    for peer, counts in network.receipts().items():
        assert max(counts.values()) == 1, f"{peer} logged a message twice"


def holders(network: Network, peer: Address) -> set[Address]:
    return {e.node for e in network.events(logformat.PL_ADDED) if e.address("peer") == peer}


def removed_by(network: Network, peer: Address) -> set[Address]:
    return {e.node for e in network.events(logformat.PL_REMOVED) if e.address("peer") == peer}


def joined(network: Network, count: int) -> bool:
    return len(network.events(logformat.PEER_LIST_UNION)) >= count


def test_after_a_third_of_the_peers_crash_the_live_overlay_reconnects_and_delivers(network):
    network.start_seeds(3)
    peers = network.start_peers(10, *peer_flags())
    addresses = {peer.address for peer in peers}
    network.wait_until(lambda: joined(network, len(peers)), 60, "every peer to join")
    network.wait_until(lambda: all(len(made) >= 4 for made in made_since(network, addresses, 0).values())
                       and len(made_since(network, addresses, 0)) == len(peers), 60, "gossip to be flowing")
    # The hubs: their loss splits the overlay the peers built when they joined.
    degree = defaultdict(int)
    for link in network.links():
        for end in link:
            degree[end] += 1
    victims = sorted(peers, key=lambda peer: -degree[peer.address])[:3]
    dead = {victim.address for victim in victims}
    live = addresses - dead
    crashed_at = max(network.kill(victim, signal.SIGKILL) for victim in victims)

    def reported_and_removed() -> bool:
        reported = {e.address("dead") for e in network.events(logformat.DEAD_NODE_REPORTED)}
        return dead <= reported and all(removed_by(network, victim) >= holders(network, victim) for victim in dead)

    network.wait_until(reported_and_removed, 90, "every crashed peer to be reported and removed where it was held")
    network.wait_until(lambda: nx.is_connected(live_overlay(network, live)), 90, "the live overlay to reconnect")
    network.wait_until(lambda: done_gossiping(network, live) and delivered(network, live, crashed_at), 120,
                       "every message made after the crash at every live peer")

    assert {e.address("dead") for e in network.events(logformat.DEAD_NODE_REPORTED)} == dead, \
        "a live peer was reported dead"
    assert_each_once(network)
    assert nx.is_connected(live_overlay(network, live))
    repairs = network.events(logformat.REPAIR)
    assert any(e.fields["complete"] == "yes" and e.node in live for e in repairs)
    for seed in {e.node for e in network.events(logformat.PL_ADDED)}:
        assert not dead & {address for address, _ in transport.request(seed, PeerListRequest()).peers}


@pytest.mark.parametrize("auth", [True, False], ids=["auth", "no-auth"])
def test_a_hung_peer_is_removed_and_after_sigcont_rejoins_without_false_reports(network, auth):
    seed_flags = () if auth else ("--no-auth",)
    network.start_seeds(3, *seed_flags)
    peers = network.start_peers(6, *peer_flags(*seed_flags))
    addresses = {peer.address for peer in peers}
    network.wait_until(lambda: joined(network, len(peers)), 60, "every peer to join")
    network.wait_until(lambda: len(made_since(network, addresses, 0)) == len(peers), 60, "gossip to be flowing")
    links = network.links()
    victim = max(peers, key=lambda peer: sum(peer.address in link for link in links))
    hung = victim.address
    neighbours = {end for link in links if hung in link for end in link} - {hung}
    held_by = holders(network, hung)
    network.kill(victim, signal.SIGSTOP)

    def reports_about_victim() -> set[Address]:
        return {e.node for e in network.events(logformat.DEAD_NODE_REPORTED) if e.address("dead") == hung}

    network.wait_until(lambda: reports_about_victim() >= neighbours and removed_by(network, hung) >= held_by, 90,
                       "the hung peer to be reported by its neighbours and removed where it was held")
    resumed_at = network.kill(victim, signal.SIGCONT)

    def rejoined() -> bool:
        # The seeds that removed it closed its seed connections: it finds them closed and
        # registers there again (PROTOCOL.md §3.7), unless a repair round does it first.
        again = {e.address("seed") for e in network.events(logformat.REGISTERED, node=hung)
                 if e.timestamp > resumed_at}
        return len(again) >= 2

    network.wait_until(rejoined, 60, "the revived peer to register again with a majority of the seeds")
    network.wait_until(lambda: done_gossiping(network, addresses) and delivered(network, addresses, resumed_at), 120,
                       "every message made after SIGCONT at every peer, the revived one included")
    network.wait_until(lambda: nx.is_connected(live_overlay(network, addresses)), 60, "one overlay again")

    reports = network.events(logformat.DEAD_NODE_REPORTED)
    assert not [e for e in reports if e.node == hung], "the revived peer reported a live neighbour dead"
    assert {e.address("dead") for e in reports} == {hung}, "a live peer was reported dead"
    assert_each_once(network)
    # Every seed it registered with holds it again.
    for seed in {e.address("seed") for e in network.events(logformat.REGISTERED, node=hung)}:
        assert hung in {address for address, _ in transport.request(seed, PeerListRequest()).peers}


def test_repair_backs_off_while_the_seeds_are_unreachable_then_succeeds(network):
    seeds = network.start_seeds(3)
    peers = network.start_peers(6, *peer_flags())
    addresses = {peer.address for peer in peers}
    network.wait_until(lambda: joined(network, len(peers)), 60, "every peer to join")
    network.wait_until(lambda: len(made_since(network, addresses, 0)) == len(peers), 60, "gossip to be flowing")
    links = network.links()
    victim = max(peers, key=lambda peer: sum(peer.address in link for link in links))
    live = addresses - {victim.address}
    for seed in seeds:
        network.kill(seed, signal.SIGSTOP)
    # Hung seeds: connections are accepted by the kernel, and nothing answers.
    crashed_at = network.kill(victim, signal.SIGKILL)

    def short_rounds() -> dict[Address, list[float]]:
        """Per peer, the pauses set by the rounds that fell short for want of a majority of seeds."""
        rounds = defaultdict(list)
        for e in network.events(logformat.REPAIR):
            if e.timestamp > crashed_at and e.fields["complete"] == "no" and int(e.fields["seeds"]) < 2:
                rounds[e.node].append(float(e.fields["next"]))
        return rounds

    network.wait_until(lambda: any(len(pauses) >= 2 for pauses in short_rounds().values()), 90,
                       "repair rounds that fall short while the seeds do not answer")
    resumed_at = time.time()
    for seed in seeds:
        network.kill(seed, signal.SIGCONT)
    for pauses in short_rounds().values():
        # Each pause doubles, from one interval up to the cap: no tight loop.
        expected = [PING_INTERVAL * min(2 ** n, 4) for n in range(len(pauses))]
        assert pauses == expected

    def repaired() -> bool:
        return any(e.node in live and e.fields["complete"] == "yes" and e.timestamp > resumed_at
                   for e in network.events(logformat.REPAIR))

    network.wait_until(repaired, 90, "a repair round to complete once the seeds answer")
    network.wait_until(lambda: nx.is_connected(live_overlay(network, live)), 60, "the live overlay to reconnect")
    network.wait_until(lambda: done_gossiping(network, live) and delivered(network, live, resumed_at), 120,
                       "every message made after the seeds came back at every live peer")
    assert {e.address("dead") for e in network.events(logformat.DEAD_NODE_REPORTED)} == {victim.address}
    assert_each_once(network)


def test_a_newcomer_whose_seeds_know_nobody_asks_the_other_seeds(network):
    # Seeds that restarted come back empty.  Here the first peer is known only to the
    # third seed (its own config lists just that one); the newcomer registers with the
    # first two (rng seed 4 draws them first), gets empty lists, and must still link.
    seeds = network.start_seeds(3)
    lone_config = network.directory / "lone.txt"
    lone_config.write_text(f"{seeds[2].address}\n")
    short = ("--gossip-count", "6")
    [old] = network.start_peers(1, *peer_flags("--config", str(lone_config), *short))
    network.wait_until(lambda: joined(network, 1), 60, "the first peer to join")
    [newcomer] = network.start_peers(1, *peer_flags("--rng-seed", "4", *short))
    network.wait_until(lambda: joined(network, 2), 60, "the newcomer to join")
    union = network.events(logformat.PEER_LIST_UNION, newcomer.address)[0]
    assert union.fields["count"] == "0", "the newcomer did not register with the two empty seeds"
    at_join = [e.address("seed") for e in network.events(logformat.REGISTERED, newcomer.address)
               if e.line < union.line]
    assert set(at_join) == {seeds[0].address, seeds[1].address}
    network.wait_until(lambda: frozenset((old.address, newcomer.address)) in network.links(), 60,
                       "the newcomer to link to the peer only the third seed knows")
    both = {old.address, newcomer.address}

    def all_made_and_delivered() -> bool:
        made = made_since(network, both, 0)
        return all(len(made[peer]) == 6 for peer in both) and delivered(network, both, 0)

    network.wait_until(all_made_and_delivered, 60, "each peer's six messages at the other")
    assert_each_once(network)
