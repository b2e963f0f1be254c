"""The simulator (simcore, simnet, simreport, simulate) against cases worked out by hand.

Small overlays with a constant latency L and processing time P give receipt
times and hop counts that can be written down: a peer d hops from the origin
has a message at created + P + d * (L + P).  When every peer gets a message
and forwards it once (the origin to all its neighbours, any other peer to all
but the sender), the copies sent are sum(degree) - (N - 1) = 2|E| - (N - 1).
"""

from __future__ import annotations

import json
import math
import random
import subprocess
from pathlib import Path

import networkx as nx
import numpy as np
import pytest

from gossipnet.protocol.topology import LINKS_PER_JOIN, PREFERENTIAL
from gossipnet.run import launch
from gossipnet.sim import cli as simulate
from gossipnet.sim import report as simreport
from gossipnet.sim.cli import Scenario
from gossipnet.sim.engine import DIE, OPEN, Simulation
from gossipnet.sim.network import Latency, Network, SimulationError

ROOT = Path(__file__).resolve().parents[2]

# Distinct, non-round values, so that a formula that swaps or drops one shows.
L = 0.010  # one-way link latency, s
P = 0.003  # processing of a message new to a peer, s


def bare_network(peers: int, capacity: int | None = None) -> Network:
    """``peers`` peers registered nowhere and linked to nothing: the tests lay the links."""
    network = Network(capacity or peers, 1, PREFERENTIAL, Latency("const:10", np.random.default_rng(0)),
                      random.Random(0), ping_misses=3, probe_timeout=0.1)
    for _ in range(peers):
        network.new_peer()
    return network


def overlay(peers: int, edges: list[tuple[int, int]], capacity: int | None = None) -> Network:
    network = bare_network(peers, capacity)
    for a, b in edges:
        network.link(a, b, L)
    return network


def line(peers: int) -> list[tuple[int, int]]:
    return [(k, k + 1) for k in range(peers - 1)]


def star(leaves: int) -> list[tuple[int, int]]:
    return [(0, leaf) for leaf in range(1, leaves + 1)]


def ring(peers: int) -> list[tuple[int, int]]:
    return [(k, (k + 1) % peers) for k in range(peers)]


def gossip(network: Network, origins: list[tuple[int, float]], processing: float = P, cores: int = 0,
           events: tuple[tuple, ...] = (), end: float = math.inf):
    """Messages from ``origins`` (peer, created) plus raw ``events``, run to the end: (outcome, simulation)."""
    simulation = Simulation(network, random.Random(0), processing, cores, liveness=False)
    for origin, created in origins:
        simulation.add_message(origin, created)
    for event in events:
        simulation.at(*event)
    return simulation.run(end), simulation


def at_distance(created: float, hops: int) -> float:
    return created + P + hops * (L + P)


def copies_when_all_forward(network: Network) -> int:
    edges = sum(len(neighbours) for neighbours in network.neighbours[:network.peers]) // 2
    return 2 * edges - (network.peers - 1)


# --- Hand-computed spreading -----------------------------------------------------------


@pytest.mark.parametrize("origin", [0, 2])
def test_line_times_hops_and_copies(origin):
    network = overlay(6, line(6))
    created = 0.25
    outcome, _ = gossip(network, [(origin, created)])
    record = outcome.messages[0]
    distance = [abs(peer - origin) for peer in range(6)]
    assert list(record.received) == pytest.approx([at_distance(created, d) for d in distance])
    assert list(record.hops) == distance
    # The origin sends to each neighbour, every other peer to all but its sender:
    # 5 copies on a line of 6 from either place, none of them wasted.
    assert record.transmissions == 5 == copies_when_all_forward(network)
    assert record.catch_up == 0 and record.made
    assert outcome.lost == 0


def test_star_from_a_leaf_and_from_the_hub():
    network = overlay(9, star(8))
    outcome, _ = gossip(network, [(3, 0.0), (0, 1.0)])
    from_leaf, from_hub = outcome.messages
    leaf_hops = [1] + [2] * 8
    leaf_hops[3] = 0
    assert list(from_leaf.hops) == leaf_hops
    assert list(from_leaf.received) == pytest.approx([at_distance(0.0, d) for d in leaf_hops])
    assert list(from_hub.hops) == [0] + [1] * 8
    assert list(from_hub.received) == pytest.approx([at_distance(1.0, d) for d in [0] + [1] * 8])
    # By hand: from a leaf, 1 copy to the hub and 7 from it; from the hub, 8.  2|E| - (N-1) = 16 - 8.
    assert from_leaf.transmissions == 8
    assert from_hub.transmissions == 8
    assert copies_when_all_forward(network) == 8


def test_ring_spreads_both_ways_and_ties_on_the_far_side():
    network = overlay(7, ring(7))
    outcome, _ = gossip(network, [(0, 0.5)])
    record = outcome.messages[0]
    distance = [min(k, 7 - k) for k in range(7)]
    assert list(record.hops) == distance == [0, 1, 2, 3, 3, 2, 1]
    assert list(record.received) == pytest.approx([at_distance(0.5, d) for d in distance])
    # Peers 3 and 4 tie: each has it from its own side at the same moment, then
    # sends it to the other, which already has it.
    assert record.received[3] == record.received[4]
    assert record.transmissions == 8 == copies_when_all_forward(network)


def test_a_busy_peer_handles_one_message_at_a_time():
    network = overlay(9, star(8))
    outcome, _ = gossip(network, [(0, 0.0), (0, 0.0)])
    first, second = outcome.messages
    assert first.received[0] == pytest.approx(P)
    assert second.received[0] == pytest.approx(2 * P)  # waited for the first
    for leaf in range(1, 9):
        assert first.received[leaf] == pytest.approx(2 * P + L)
        # Arrives P later, just as the leaf finishes the first.
        assert second.received[leaf] == pytest.approx(3 * P + L)
    assert list(second.hops) == list(first.hops)


def test_one_shared_core_serialises_every_peer():
    # Processing longer than latency, so the core, not the links, sets the pace.
    latency, processing = 0.001, 0.004
    network = bare_network(3)
    network.link(0, 1, latency)
    network.link(1, 2, latency)
    outcome, _ = gossip(network, [(0, 0.0), (2, 0.0)], processing=processing, cores=1)
    a, b = outcome.messages
    # By hand, one core: A@0 [0, 4] ms, B@2 [4, 8], A@1 arrives 5, core free at 8 -> [8, 12],
    # B@1 arrives 9, waits -> [12, 16], A@2 arrives 13 -> [16, 20], B@0 arrives 17 -> [20, 24].
    assert list(a.received) == pytest.approx([0.004, 0.012, 0.020])
    assert list(b.received) == pytest.approx([0.024, 0.016, 0.008])

    # Every peer on its own core: A@0 [0, 4], B@2 [0, 4]; both arrive at 1 at 5:
    # A [5, 9], B [9, 13]; A@2 arrives 10 -> 14, B@0 arrives 14 -> 18.
    for cores in (0, 2):  # two cores are never short here: at most two peers work at once
        network = bare_network(3)
        network.link(0, 1, latency)
        network.link(1, 2, latency)
        outcome, _ = gossip(network, [(0, 0.0), (2, 0.0)], processing=processing, cores=cores)
        a, b = outcome.messages
        assert list(a.received) == pytest.approx([0.004, 0.009, 0.014])
        assert list(b.received) == pytest.approx([0.018, 0.013, 0.004])


def test_a_crashed_peer_stops_the_message_on_a_line():
    network = overlay(6, line(6))
    reaches_3 = at_distance(0.0, 3) - P  # when the copy for peer 3 arrives
    outcome, simulation = gossip(network, [(0, 0.0)], events=((reaches_3 / 2, DIE, 3),))
    record = outcome.messages[0]
    assert list(record.received[:3]) == pytest.approx([at_distance(0.0, d) for d in range(3)])
    assert all(math.isnan(record.received[peer]) for peer in (3, 4, 5))
    assert record.transmissions == 3  # 0, 1 and 2 sent one each; 3 never forwarded
    assert outcome.lost == 1  # the copy from 2 reached a crashed peer
    assert outcome.deaths == {3: pytest.approx(reaches_3 / 2)}
    result = simreport.summarise(outcome, network)
    # Expected: the live peers other than the origin (1, 2, 4, 5); 1 and 2 got it.
    assert result["reach"]["mean"] == pytest.approx(0.5)
    assert result["reach"]["complete"] == 0
    assert result["dissemination_s"]["median"] is None


def test_a_peer_that_crashes_while_working_does_count_the_copy_it_got():
    network = overlay(6, line(6))
    arrives = at_distance(0.0, 3) - P
    outcome, _ = gossip(network, [(0, 0.0)], events=((arrives + P / 2, DIE, 3),))
    assert outcome.lost == 0  # the copy reached 3 while it was alive
    assert outcome.deaths == {3: pytest.approx(arrives + P / 2)}


def test_a_peer_that_crashes_while_working_does_not_forward():
    network = overlay(6, line(6))
    arrives = at_distance(0.0, 3) - P
    outcome, _ = gossip(network, [(0, 0.0)], events=((arrives + P / 2, DIE, 3),))
    record = outcome.messages[0]
    assert math.isnan(record.received[4]) and math.isnan(record.received[5])
    assert record.transmissions == 3


def test_a_peer_that_crashes_while_working_never_has_the_message():
    network = overlay(6, line(6))
    arrives = at_distance(0.0, 3) - P
    outcome, _ = gossip(network, [(0, 0.0)], events=((arrives + P / 2, DIE, 3),))
    assert math.isnan(outcome.messages[0].received[3])


def test_lost_counts_the_first_copy_to_reach_a_crashed_peer():
    network = overlay(7, ring(7))
    outcome, _ = gossip(network, [(0, 0.0)], events=((0.001, DIE, 3),))
    record = outcome.messages[0]
    assert list(record.hops[4:]) == [3, 2, 1]  # 4 got it the long way round, then sent it on to 3
    assert outcome.lost == 1  # from 2; the later copy from 4 is pruned (Outcome.lost)


def test_catch_up_on_new_links_both_ways():
    # A line 0-1-2 has message 0; peer 3, alone, makes message 1; then 2 and 3 link.
    network = overlay(4, line(3))
    opened = 1.0
    outcome, _ = gossip(network, [(0, 0.0), (3, 0.5)],
                        events=((opened, OPEN, 2, 3, L), (opened, OPEN, 3, 2, L)))
    old, new = outcome.messages
    assert old.received[3] == pytest.approx(opened + L + P)
    assert old.hops[3] == old.hops[2] + 1 == 3
    assert old.catch_up == 1  # 2 replayed it to 3
    assert old.transmissions == 2  # the line's copies; 3 has nobody else to send it to
    assert new.received[3] == pytest.approx(0.5 + P)
    assert [new.received[peer] for peer in (2, 1, 0)] == pytest.approx(
        [opened + L + P, opened + 2 * (L + P), opened + 3 * (L + P)])
    assert [new.hops[peer] for peer in (2, 1, 0)] == [1, 2, 3]
    assert new.catch_up == 1  # 3 replayed it to 2
    assert new.transmissions == 2  # 2 on to 1, 1 on to 0; none at creation (no links then)
    assert simreport.summarise(outcome, network)["catch_up_copies"] == 2


def test_a_message_from_a_dead_origin_is_never_made():
    network = overlay(3, line(3))
    outcome, _ = gossip(network, [(0, 1.0)], events=((0.5, DIE, 0),))
    record = outcome.messages[0]
    assert not record.made and record.transmissions == 0
    assert all(math.isnan(time) for time in record.received)
    assert simreport.summarise(outcome, network)["messages_not_made"] == 1


# --- Liveness and seeds, by the project's rules -------------------------------------------


def joined_network(peers: int, seeds: int = 3, rng_seed: int = 5, capacity: int | None = None) -> Network:
    network = Network(capacity or peers, seeds, PREFERENTIAL, Latency("const:20", np.random.default_rng(rng_seed)),
                      random.Random(rng_seed), ping_misses=3, probe_timeout=0.1)
    for _ in range(peers):
        network.join(network.new_peer())
    return network


def liveness_run(dead: int | None, end: float = 10.0):
    network = joined_network(30)
    simulation = Simulation(network, random.Random(1), processing=0.0, ping_interval=1.0, liveness=True)
    for peer in range(network.peers):
        simulation.start_ticks(peer, 0.0)
    if dead is not None:
        simulation.at(1.0, DIE, dead)
    return simulation.run(end), network


def test_a_crash_is_reported_after_three_missed_pings_and_removed_by_its_seeds():
    dead = 7
    outcome, network = liveness_run(dead)
    neighbours = {reporter for _, reporter, accused, _ in outcome.reports if accused == dead}
    assert neighbours and all(accused == dead for _, _, accused, _ in outcome.reports)
    # Every neighbour reports it once, on its own tick, 3 to 4 intervals after the death.
    assert len(outcome.reports) == len(neighbours)
    for time, _, _, alive_then in outcome.reports:
        assert not alive_then
        assert 3.0 < time - 1.0 <= 4.0
    assert all(dead not in network.neighbours[peer] for peer in neighbours)
    listed = {seed.address for seed in network.registered[dead]}
    assert len(listed) == 2  # a majority of 3
    assert set(outcome.removals[dead]) == listed
    first_report = min(time for time, *_ in outcome.reports)
    assert all(first_report < removed < 6.0 for removed in outcome.removals[dead].values())
    assert set(outcome.removals) == {dead}
    assert all(dead not in seed.pool for seed in network.seeds.values())
    detection = simreport.summarise(outcome, network)["detection"]
    assert detection["departed"] == detection["reported"] == detection["removed_everywhere"] == 1
    assert detection["false_reports"] == 0 and detection["unreported"] == 0
    assert 3.0 < detection["first_report_s"]["max"] <= 4.0
    assert network.decisions["removed"] >= 1


def test_nobody_is_reported_when_nobody_dies():
    outcome, network = liveness_run(None)
    assert outcome.reports == [] and outcome.removals == {}
    detection = simreport.summarise(outcome, network)["detection"]
    assert detection["departed"] == detection["reports"] == 0
    # The ticks ran all the while: about 10 per peer over the 10 s.
    assert outcome.events >= 30 * 9


# --- Runs of simulate.py -------------------------------------------------------------------


def small_run(rng_seed: int) -> tuple[dict, Simulation]:
    return simulate.run(Scenario(peers=300, messages=10, fail=0.1, churn=2, rng_seed=rng_seed,
                                 latency="lognormal:20:0.5"))


def edges_of(network: Network) -> set[tuple[int, int]]:
    return {(a, b) for a in range(network.peers) for b in network.neighbours[a] if a < b}


def test_same_seed_same_result_and_another_seed_another_overlay():
    first, first_sim = small_run(7)
    again, again_sim = small_run(7)
    assert first["detection"]["departed"] >= 30  # the crash and the churn happened
    assert json.dumps(first, sort_keys=True) == json.dumps(again, sort_keys=True)
    assert edges_of(first_sim.network) == edges_of(again_sim.network)
    other, other_sim = small_run(8)
    assert edges_of(other_sim.network) != edges_of(first_sim.network)
    assert json.dumps(other, sort_keys=True) != json.dumps(first, sort_keys=True)


def test_preferential_overlay_follows_the_model_and_every_peer_forwards_once():
    peers = 2000
    network = joined_network(peers, rng_seed=11)
    degrees = [len(network.neighbours[peer]) for peer in range(peers)]
    assert min(degrees[LINKS_PER_JOIN:]) >= LINKS_PER_JOIN
    assert min(degrees) >= 1
    graph = nx.Graph(edges_of(network))
    assert graph.number_of_nodes() == peers and nx.is_connected(graph)
    # Preferential attachment grows hubs; a uniform choice would not reach this.
    assert max(degrees) > 10 * np.median(degrees)
    origin = 1234
    outcome, _ = gossip(network, [(origin, 0.0)], processing=P)
    record = outcome.messages[0]
    assert record.transmissions == copies_when_all_forward(network)
    # Constant latency and processing: the first copy comes the shortest way.
    distance = nx.single_source_shortest_path_length(graph, origin)
    assert [record.hops[peer] for peer in range(peers)] == [distance[peer] for peer in range(peers)]
    # Links drawn at const:20 ms: times follow the hop counts.
    assert [record.received[peer] for peer in range(peers)] == pytest.approx(
        [P + distance[peer] * (0.020 + P) for peer in range(peers)])
    assert simreport.summarise(outcome, network)["reach"]["min"] == 1.0


def test_joins_skip_a_dead_peer_that_is_still_listed():
    network = joined_network(200, capacity=260, rng_seed=3)
    degrees = [len(network.neighbours[peer]) for peer in range(network.peers)]
    hub = degrees.index(max(degrees))  # the likeliest pick, by preferential attachment
    network.crash(hub)
    assert any(hub in seed.pool for seed in network.seeds.values())  # no seed has removed it
    for _ in range(60):
        peer = network.new_peer()
        linked = network.join(peer)
        assert hub not in linked and len(linked) >= LINKS_PER_JOIN
    assert len(network.neighbours[hub]) == max(degrees)


def test_latency_specs():
    rng = np.random.default_rng(0)
    assert Latency("const:20", rng).draw() == pytest.approx(0.020)
    uniform = Latency("uniform:5:15", rng)
    draws = [uniform.draw() for _ in range(200)]
    assert all(0.005 <= draw <= 0.015 for draw in draws) and len(set(draws)) == 200
    normal = Latency("normal:1:50", rng)  # mostly below 0 before the cut
    assert min(normal.draw() for _ in range(200)) == 0.0
    for bad in ("bogus:1", "const", "const:-1", "const:x", "uniform:9:1", "normal:1"):
        with pytest.raises(SimulationError):
            Latency(bad, rng)


# --- The command line -----------------------------------------------------------------------


def exit_code(argv: list[str]) -> int:
    try:
        return simulate.main(argv)
    except SystemExit as stop:
        return stop.code


def test_help_mentions_replay(capsys):
    with pytest.raises(SystemExit) as stop:
        simulate.main(["--help"])
    assert stop.value.code == 0
    assert "--replay" in capsys.readouterr().out


@pytest.mark.parametrize("argv", [["--latency", "bogus:1"], ["--latency", "const:-1"], ["--fail", "1.5"],
                                  ["-n", "0"], ["--scale", "1,x"], ["--scale", "1"]])
def test_bad_input_is_a_one_line_usage_error(argv, tmp_path, capsys):
    assert exit_code([*argv, "--out", str(tmp_path / "out"), "--quiet"]) == 2
    captured = capsys.readouterr()
    errors = [text for text in captured.err.splitlines() if "error:" in text]
    assert len(errors) == 1 and "Traceback" not in captured.err
    assert not (tmp_path / "out" / "result.json").exists()


@pytest.mark.parametrize("argv", [["--latency", "const:-1"], ["--scale", "1,x"]])
def test_bad_input_from_the_shell_has_no_traceback(argv, tmp_path):
    done = subprocess.run([*launch.module_command("gossipnet.sim"), *argv, "--out", str(tmp_path), "--quiet"], cwd=ROOT,
                          env=launch.module_env(),
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 2
    assert "Traceback" not in done.stderr
    assert done.stderr.strip().splitlines()[-1].startswith("python -m gossipnet.sim: error:")


def test_a_small_run_writes_its_numbers_and_figures(tmp_path, capsys):
    assert simulate.main(["-n", "200", "--messages", "5", "--out", str(tmp_path), "--quiet"]) == 0
    result = json.loads((tmp_path / "result.json").read_text())
    assert result["peers"] == 200 and result["messages"] == 5
    assert result["reach"]["mean"] == 1.0
    for figure in ("reach.png", "degrees.png"):
        assert (tmp_path / figure).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "result.json" in capsys.readouterr().out


def test_scale_writes_a_row_per_size(tmp_path):
    assert simulate.main(["--scale", "50,100", "--messages", "3", "--out", str(tmp_path), "--quiet"]) == 0
    rows = json.loads((tmp_path / "scale.json").read_text())
    assert [row["peers"] for row in rows] == [50, 100]
    assert all(row["messages"] == 3 and row["reach"]["mean"] == 1.0 for row in rows)
    assert (tmp_path / "scale.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_a_copy_never_sent_gives_way_to_the_next_one_the_pruning_left_off_the_heap():
    # A diamond 0-1-3 and 0-2-3: 1 is the faster way to 3, so 2's copy to 3 is pruned.
    # 1 crashes while working on the message: its copy was never sent, and 3 gets 2's.
    network = bare_network(4)
    network.link(0, 1, L)
    network.link(1, 3, L)
    network.link(0, 2, 2 * L)
    network.link(2, 3, 2 * L)
    reaches_1 = P + L  # the copy from 0 arrives at 1
    outcome, _ = gossip(network, [(0, 0.0)], events=((reaches_1 + P / 2, DIE, 1),))
    record = outcome.messages[0]
    assert math.isnan(record.received[1])
    assert record.received[3] == pytest.approx(P + 2 * L + P + 2 * L + P)
    assert record.hops[3] == 2
    # 0 sent 2 copies, 2 sent 1 (to 3), 3 sent 1 (to 1, dead); 1's copy to 3 was never sent.
    assert record.transmissions == 4
