"""simulate.py --replay on a small real run, made by bench.py as its README figures are.

A real network of 12 peers (bench.py's dissemination run: real processes and
sockets on 127.0.0.1, each message alone in the network) gives the log and
the one-hop floor; the simulator replays it and must reach, for every
message, exactly the peers that really got it.

Timing is this machine's, so the hop and time criteria are not asserted at
their thresholds here (the README states what they came to, and
``simulate.py --replay`` gives the verdict); what is checked is that the
comparison is computed over every receipt and lands in a sane range: a
simulator that ignored the log's links or timings would not.
"""

from __future__ import annotations

import json
import random
import subprocess

import networkx as nx
import pytest

import synthlog
from gossipnet.logs import logformat, runlog
from gossipnet.protocol import topology
from gossipnet.run import launch
from gossipnet.sim import replay as simreplay
from scripted import free_ports, run, write_config

PEERS = 12


@pytest.fixture(scope="module")
def real_run(tmp_path_factory):
    """A bench.py dissemination run: (its log, its JSON)."""
    work = tmp_path_factory.mktemp("bench")
    report = work / "bench.json"
    done = subprocess.run([*launch.module_command("gossipnet.bench"), "--only", "floor,dissemination",
                           "--sizes", str(PEERS), "--keep", str(work / "runs"), "--json", str(report)],
                          env=launch.module_env(),
                          cwd=work, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    [log] = (work / "runs").glob(f"dissemination-{PEERS}/outputfile.txt")
    return log, report


def test_replay_reaches_exactly_the_real_receivers(real_run, tmp_path):
    log, report = real_run
    done = subprocess.run([*launch.module_command("gossipnet.sim"), "--replay", str(log), "--bench", str(report),
                           "--out", str(tmp_path)], cwd=tmp_path, capture_output=True, text=True, timeout=120,
                          env=launch.module_env())
    assert done.returncode in (0, 1), done.stderr  # 1: a timing criterion missed on this machine
    assert "Traceback" not in done.stderr
    result = json.loads((tmp_path / "replay.json").read_text())
    run = runlog.Run.load(log)
    assert result["messages"] == len(run.messages) >= PEERS * 2
    assert result["checks"]["receivers"] and result["receivers_exact"] == result["messages"]
    # Every receipt of the real run is compared (each peer gets each message once).
    assert result["receipts"] == sum(len(receivers) for receivers in run.receipts.values())
    bench = json.loads(report.read_text())["sections"]
    assert result["timing"]["one_hop_s"] == bench["floor"]["one_way_s"]
    # Loose bounds only (see the module docstring): most receipts take the real hop count, and the
    # medians are within a factor of 3 of each other.
    assert result["hops_share"] >= 0.4
    # The simulator takes the shortest paths: it agrees with the real run where the real run took one.
    assert abs(result["hops_share"] - result["real_shortest_share"]) < 0.05
    assert 1 / 3 <= result["sim_median_s"] / result["real_median_s"] <= 3
    assert f"{result['receivers_exact']} of {result['messages']} messages" in done.stdout


def test_simulated_hops_are_the_shortest_paths_of_the_real_overlay(real_run):
    """With one latency and one processing time, a copy's first arrival follows a shortest path."""
    log, report = real_run
    run = runlog.Run.load(log)
    timing = simreplay.Timing(one_hop_s=0.001, processing_s=0.0001, cores=0, source="test")
    simulation, peers, keys = simreplay.replay(run, timing)
    graph = nx.DiGraph()
    for event in run.events:
        if event.event == logformat.LINK_OPENED:
            graph.add_edge(event.node, event.address("neighbour"))
    for number, key in enumerate(keys):
        distances = nx.single_source_shortest_path_length(graph, key[0])
        record = simulation.messages[number]
        for index, peer in enumerate(peers):
            if peer != key[0]:
                assert record.hops[index] == distances[peer], (key, peer)


def test_replay_of_a_log_without_messages_is_a_clear_error(tmp_path):
    log = tmp_path / "empty.txt"
    log.write_text("")
    done = subprocess.run([*launch.module_command("gossipnet.sim"), "--replay", str(log), "--bench", "none.json",
                           "--out", str(tmp_path)], cwd=tmp_path, capture_output=True, text=True, timeout=60,
                          env=launch.module_env())
    assert done.returncode == 2
    assert done.stderr.startswith("python -m gossipnet.sim: error:") and "Traceback" not in done.stderr


def test_replay_needs_a_readable_log(tmp_path):
    done = subprocess.run([*launch.module_command("gossipnet.sim"), "--replay", str(tmp_path / "missing.txt"),
                           "--out", str(tmp_path)], cwd=tmp_path, capture_output=True, text=True, timeout=60,
                          env=launch.module_env())
    assert done.returncode == 2
    assert "missing.txt" in done.stderr and "Traceback" not in done.stderr


def test_a_log_made_under_the_simulators_own_model_replays_exactly(tmp_path):
    """A synthetic log whose copies take one fixed latency and no processing: every criterion at 100%."""
    edges = topology.grow(60, topology.PREFERENTIAL, random.Random(3))
    latency = 0.004
    synthetic = synthlog.synthesize(synthlog.Scenario(peers=60, edges=edges, messages_per_peer=2, dead=(7,),
                                                      link_latency=(latency, latency), jitter=0.0))
    run = runlog.Run.load(synthetic.write(tmp_path / "log.txt"))
    simulation, peers, keys = simreplay.replay(run, simreplay.Timing(latency, 0.0, 0, "test"))
    comparison = simreplay.compare(run, simulation, peers, keys)
    assert comparison.messages == 120
    assert comparison.receivers_exact == 120 and comparison.mismatched == []
    assert comparison.hops_equal == comparison.receipts == sum(len(got) for got in run.receipts.values())
    assert comparison.median_error < 1e-3  # the log keeps microseconds
    assert comparison.real_shortest == comparison.real_reachable == comparison.receipts  # one latency: shortest paths
    assert comparison.passed
    # A replay that got the latency wrong keeps the receivers and hops but not the times.
    slower = simreplay.compare(run, *simreplay.replay(run, simreplay.Timing(2 * latency, 0.0, 0, "test")))
    assert slower.receivers_exact == 120 and slower.hops_share == 1.0
    assert not slower.checks["time"] and slower.median_error == pytest.approx(1.0, abs=0.01)


def test_replay_of_a_run_with_a_killed_peer_gives_it_exactly_the_messages_it_got(tmp_path):
    """runner.py kills a peer mid-run; the log has no kill time, yet the replay's receivers match."""
    config = write_config(tmp_path, free_ports(3))
    log = tmp_path / "outputfile.txt"
    result = run("runner.py", "--peers", "8", "--fast", "--kill", "1", "--rng-seed", "4", "--config", str(config),
                 "--log", str(log), cwd=tmp_path, log=log)
    assert result.returncode == 0, result.stdout + result.stderr
    real = runlog.Run.load(log)
    [victim] = [peer for peer, node in real.peers.items() if node.stopped is None]
    simulation, peers, keys = simreplay.replay(real, simreplay.Timing(4e-5, 0.0008, 2, "test"))
    comparison = simreplay.compare(real, simulation, peers, keys)
    assert comparison.receivers_exact == comparison.messages == len(real.messages), comparison.mismatched
    got = [key for key in keys if victim in real.receipts.get(key, {})]
    missed = [key for key in keys if key[0] != victim and victim not in real.receipts.get(key, {})]
    assert got and missed  # it died mid-run: the replay had both sides of its death to get right
