"""How fast a death is known: kill -9 peers and time their reports and removals.

Section 6 of bench.py.  Delays run from the moment the bench sent SIGKILL,
not from the dead peer's last log line.
"""

from __future__ import annotations

import os
import random
from pathlib import Path

import networkx as nx

from gossipnet.bench.network import BenchError, Network, pause, progress
from gossipnet.bench.spread import overlay
from gossipnet.config import PeerSettings, peer_argv
from gossipnet.logs import logformat, runlog
from gossipnet.protocol.wire import Address

# Ping every second; dead after the default 3 misses.
PING_INTERVAL = 1.0
PING_MISSES = 3


def pick_victims(graph: nx.Graph, count: int, rng: random.Random) -> list[Address]:
    """Peers to kill: no two adjacent, and the rest of the overlay stays connected,
    so each death is seen by live neighbours and nobody else is cut off."""
    chosen: list[Address] = []
    candidates = sorted(graph)
    rng.shuffle(candidates)
    for peer in candidates:
        if len(chosen) == count:
            break
        if any(graph.has_edge(peer, other) for other in chosen):
            continue
        rest = graph.subgraph(set(graph) - {*chosen, peer})
        if nx.is_connected(rest):
            chosen.append(peer)
    if len(chosen) < count:
        raise BenchError(f"only {len(chosen)} of {count} peers can die without splitting the overlay")
    return chosen


def run_detection(n: int, kills: int, workdir: Path) -> dict:
    """Kill ``kills`` of ``n`` peers: time to the first report and to removal at every seed that held each."""
    bound = (PING_MISSES + 1) * PING_INTERVAL
    flags = peer_argv(PeerSettings(gossip_interval=1.0, gossip_count=1, ping_interval=PING_INTERVAL,
                                   ping_misses=PING_MISSES))
    with Network(workdir / "detection") as net:
        progress(f"detection: starting {n} peers, pings every {PING_INTERVAL:g} s")
        net.start_seeds()
        net.start_peers(n, flags)
        net.wait_joined()
        pause(PING_MISSES * PING_INTERVAL)  # liveness in its steady state
        net.tail.poll()
        graph = overlay(net.tail.run)
        victims = pick_victims(graph, kills, random.Random(n))
        by_address = {node.address: node for node in net.peers}
        killed = {victim: net.kill(by_address[victim]) for victim in victims}
        progress(f"detection: killed {', '.join(map(str, victims))} (kill -9); waiting for reports and removals")

        def held(victim: Address) -> set[Address]:
            return {event.node for event in net.tail.run.events
                    if event.event == logformat.PL_ADDED and event.fields.get("peer") == str(victim)}

        def all_removed() -> bool:
            return all(held(victim) <= set(net.tail.run.removals.get(victim, {})) for victim in victims)

        try:
            net.wait_for(all_removed, 10 * bound + 20, "every killed peer to be removed at every seed that held it")
        except BenchError as exc:
            progress(f"detection: {exc}")
        pause(bound)  # a false report, if any, would come with the real ones
        holders = {victim: held(victim) for victim in victims}
        load = os.getloadavg()[0]
    run = runlog.Run.load(net.log_path)
    deaths = {death.peer: death for death in run.deaths()}
    reported, removed, missing = [], [], []
    for victim, kill_time in killed.items():
        death = deaths.get(victim)
        if death is None or death.first_report is None:
            missing.append(f"{victim} never reported")
            continue
        reported.append(death.first_report - kill_time)
        times = [death.removed[seed] for seed in holders[victim] if seed in death.removed]
        if len(times) < len(holders[victim]):
            missing.append(f"{victim} removed at {len(times)} of {len(holders[victim])} seeds")
        if times:
            removed.append(max(times) - kill_time)
    false = [event for event in run.reports if event.address("dead") not in killed]
    false += [event for event in run.false_reports() if event not in false]
    rule = PING_MISSES * PING_INTERVAL
    return {"peers": n, "kills": len(killed), "ping_interval_s": PING_INTERVAL, "ping_misses": PING_MISSES,
            "rule_s": rule, "bound_s": bound, "report_s": runlog.spread(reported), "removal_s": runlog.spread(removed),
            "report_over_rule": runlog.spread([value / rule for value in reported]),
            "removal_over_rule": runlog.spread([value / rule for value in removed]),
            "false_reports": len(false), "missing": missing, "load": load}
