"""Replay a real run's log in the simulator and compare: is the simulator to be trusted?

The log gives the scenario: every link as each end opened (and closed) it,
each message with its origin and creation time (the timestamp in its text,
taken before it was signed and sent), and each peer killed (it dies just
after the last message its log shows it got, see :func:`replay`; one that
logged STOPPED lived to the end).  The simulator then runs the
project's forwarding rule over exactly that, with measured timings:

- link latency: the one-hop floor of bench.py (one line between two Python
  processes, RTT/2), from ``--bench`` JSON or measured now the same way;
- processing: the CPU a real peer spends per message, from bench.py's CPU per
  message (``--bench``) or the simulator's default, which is that figure;
- cores: this machine's, shared by every peer, as they were in the real run.

Criteria (all must hold):

- receivers: per message, the set of peers that got it is exactly the real one;
- hops: each receiver's hop count (real: by the ``from=`` chain of first
  receipts) matches for at least 95% of receipts;
- time: the median dissemination time (creation to the last receipt) is
  within 25% of the real median.
"""

from __future__ import annotations

import json
import os
import random
import statistics
import sys
from dataclasses import dataclass
from pathlib import Path

import networkx as nx
import numpy as np

from gossipnet.logs import runlog
from gossipnet.sim.engine import CLOSE, DIE, OPEN, Simulation
from gossipnet.sim.network import Latency, Network, SimulationError

HOPS_NEEDED = 0.95
MEDIAN_TOLERANCE = 0.25

# Ping-pongs timed for the one-hop floor when no bench.py JSON is given (as bench.py --quick).
FLOOR_ROUNDS = 1000


@dataclass(frozen=True)
class Timing:
    """The measured timings a replay runs with."""

    one_hop_s: float  # link latency: bench.py's one-hop floor
    processing_s: float  # per message new to a peer
    cores: int
    source: str  # where the figures came from


@dataclass
class Comparison:
    messages: int
    receivers_exact: int  # messages whose receivers match exactly
    receipts: int  # receipts compared for hops
    hops_equal: int
    real_median_s: float | None
    sim_median_s: float | None
    mismatched: list[str]  # a few messages whose receivers differ, for the report
    # Of the real receipts whose peer a path reached when the message was made, those whose
    # hop count is that shortest path's: how often the real network itself took one.
    real_shortest: int = 0
    real_reachable: int = 0

    @property
    def real_shortest_share(self) -> float | None:
        return self.real_shortest / self.real_reachable if self.real_reachable else None

    @property
    def hops_share(self) -> float:
        return self.hops_equal / self.receipts if self.receipts else 1.0

    @property
    def median_error(self) -> float | None:
        if not self.real_median_s or self.sim_median_s is None:
            return None
        return abs(self.sim_median_s - self.real_median_s) / self.real_median_s

    @property
    def checks(self) -> dict[str, bool]:
        error = self.median_error
        return {"receivers": self.receivers_exact == self.messages,
                "hops": self.hops_share >= HOPS_NEEDED,
                "time": error is not None and error <= MEDIAN_TOLERANCE}

    @property
    def passed(self) -> bool:
        return all(self.checks.values())

    def text(self) -> str:
        error = self.median_error
        lines = [
            f"receivers  {self.receivers_exact} of {self.messages} messages reached exactly the real receivers "
            f"[{'ok' if self.checks['receivers'] else 'FAIL'}]",
            f"hops       {self.hops_equal} of {self.receipts} receipts ({100 * self.hops_share:.1f}%) have the real "
            f"hop count; need {100 * HOPS_NEEDED:.0f}% [{'ok' if self.checks['hops'] else 'FAIL'}]",
            f"           (the real run itself took a shortest path of the overlay for "
            f"{'-' if self.real_shortest_share is None else f'{100 * self.real_shortest_share:.1f}%'} of its "
            f"receipts; where copies race, the simulator's first copy is the one on the shortest path)",
            f"time       dissemination median {_ms(self.sim_median_s)} simulated vs {_ms(self.real_median_s)} real"
            f" ({'-' if error is None else f'{100 * error:.0f}%'} apart; need <= {100 * MEDIAN_TOLERANCE:.0f}%)"
            f" [{'ok' if self.checks['time'] else 'FAIL'}]",
        ]
        lines += [f"  differs: {item}" for item in self.mismatched]
        return "\n".join(lines)


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{1000 * value:.2f} ms"


def created_at(message: runlog.Message) -> float:
    """When the origin made the message: the timestamp its text starts with, else its log line's time."""
    try:
        return float(message.text.split(":", 1)[0])
    except ValueError:
        return message.created


def measured_timing(bench_json: str | None, peers: int) -> Timing:
    """The one-hop floor and processing time: from bench.py's JSON, or measured now as bench.py does.

    The processing time is the CPU per message per peer of the JSON's
    dissemination run whose size is nearest ``peers`` (it grows with N).
    """
    from gossipnet.sim.cli import DEFAULT_PROCESSING_MS

    cores = os.cpu_count() or 1
    if bench_json:
        try:
            sections = json.loads(Path(bench_json).read_text())["sections"]
            one_hop = float(sections["floor"]["one_way_s"])
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise SimulationError(f"{bench_json}: no one-hop floor in it ({exc})") from None
        processing = DEFAULT_PROCESSING_MS / 1000
        rows = sections.get("dissemination")
        rows = [row for row in (rows if isinstance(rows, list) else [])
                if isinstance(row, dict) and row.get("cpu_per_message_s") and row.get("peers")]
        if rows:
            nearest = min(rows, key=lambda row: abs(int(row["peers"]) - peers))
            processing = float(nearest["cpu_per_message_s"]) / int(nearest["peers"])
        return Timing(one_hop, processing, cores, f"bench.py JSON {bench_json}")
    from gossipnet.bench.spread import measure_floor

    floor = measure_floor(FLOOR_ROUNDS)
    return Timing(floor["one_way_s"], DEFAULT_PROCESSING_MS / 1000, cores,
                  f"one-hop floor measured now ({FLOOR_ROUNDS} ping-pongs, as bench.py)")


def replay(run: runlog.Run, timing: Timing, rng_seed: int = 1) -> tuple[Simulation, list[runlog.Address],
                                                                          list[tuple[runlog.Address, str]]]:
    """Simulate the run's scenario; (simulation after running, peers by index, message keys by index).

    The log has no kill time, only each killed peer's last lines, so a killed
    peer dies just after it has handled, in the simulation, the last of the
    messages its log shows it got: a first pass with every peer alive tells
    when that is, and the second pass is the replay.  The messages it missed
    must still reach it later than that for the receivers to match.
    """
    peers = sorted(run.peers)
    if not peers or not run.messages:
        raise SimulationError("the log has no peers or no gossip messages to replay")
    keys = sorted(run.messages, key=lambda key: created_at(run.messages[key]))
    killed = [peer for peer, node in run.peers.items() if node.stopped is None]
    alive_throughout = _simulate(run, timing, rng_seed, peers, keys, {})
    deaths = {}
    for peer in killed:
        index = peers.index(peer)
        got = [alive_throughout.messages[number].received[index] for number, key in enumerate(keys)
               if peer in run.receipts.get(key, {}) or key[0] == peer]
        got = [time for time in got if time == time]  # not NaN
        # Just after it handled its last message (a microsecond: the log's resolution).
        deaths[index] = max(got) + 1e-6 if got else run.peers[peer].last_seen
    return _simulate(run, timing, rng_seed, peers, keys, deaths), peers, keys


def _simulate(run: runlog.Run, timing: Timing, rng_seed: int, peers: list[runlog.Address],
              keys: list[tuple[runlog.Address, str]], deaths: dict[int, float]) -> Simulation:
    index = {peer: number for number, peer in enumerate(peers)}
    rng = random.Random(rng_seed)
    network = Network(len(peers), 1, "preferential", Latency("const:0", np.random.default_rng(rng_seed)), rng,
                      ping_misses=3, probe_timeout=0.0)
    for _ in peers:
        network.new_peer()
    simulation = Simulation(network, rng, timing.processing_s, timing.cores, liveness=False)
    for change in runlog.link_changes(run):
        if change.neighbour not in index:
            continue  # a neighbour that never logged a line of its own
        a, b = index[change.node], index[change.neighbour]
        if change.opened:
            simulation.at(change.time, OPEN, a, b, timing.one_hop_s)
        else:
            simulation.at(change.time, CLOSE, a, b)
    for peer, died in deaths.items():
        simulation.at(died, DIE, peer)
    for key in keys:
        simulation.add_message(index[key[0]], created_at(run.messages[key]))
    simulation.run()
    return simulation


def compare(run: runlog.Run, simulation: Simulation, peers: list, keys: list) -> Comparison:
    real_hops = run.hop_counts()
    exact = receipts = equal = 0
    mismatched: list[str] = []
    real_times, sim_times = [], []
    for number, key in enumerate(keys):
        record = simulation.messages[number]
        created = record.created
        real = run.receipts.get(key, {})
        real_receivers = set(real) - {key[0]}
        simulated = {peers[peer]: (record.received[peer], record.hops[peer]) for peer in range(len(peers))
                     if record.received[peer] == record.received[peer] and peers[peer] != key[0]}
        if set(simulated) == real_receivers:
            exact += 1
        elif len(mismatched) < 5:
            missing, extra = sorted(real_receivers - set(simulated)), sorted(set(simulated) - real_receivers)
            mismatched.append(f"{key[1]} from {key[0]}: only real {missing[:3]}, only simulated {extra[:3]}")
        hops = real_hops.get(key, {})
        for peer in real_receivers & set(simulated):
            if peer in hops:
                receipts += 1
                equal += hops[peer] == simulated[peer][1]
        if real_receivers:
            real_times.append(max(real[peer].time for peer in real_receivers) - created)
        if simulated:
            sim_times.append(max(time for time, _ in simulated.values()) - created)
    shortest, reachable = _shortest_paths_taken(run, keys, real_hops)
    return Comparison(len(keys), exact, receipts, equal,
                      statistics.median(real_times) if real_times else None,
                      statistics.median(sim_times) if sim_times else None, mismatched, shortest, reachable)


def _shortest_paths_taken(run: runlog.Run, keys: list, real_hops: dict) -> tuple[int, int]:
    """(real receipts whose hop count is the shortest path's, real receipts with a path), over the
    links each end had opened and not closed when the message was made."""
    overlay = nx.DiGraph()
    changes = sorted(runlog.link_changes(run), key=lambda change: change.time)
    position = shortest = reachable = 0
    for key in keys:  # by creation time
        created = created_at(run.messages[key])
        while position < len(changes) and changes[position].time <= created:
            change = changes[position]
            position += 1
            if change.opened:
                overlay.add_edge(change.node, change.neighbour)
            elif overlay.has_edge(change.node, change.neighbour):
                overlay.remove_edge(change.node, change.neighbour)
        distance = nx.single_source_shortest_path_length(overlay, key[0]) if key[0] in overlay else {key[0]: 0}
        for peer, hops in real_hops.get(key, {}).items():
            if peer != key[0] and peer in distance:
                reachable += 1
                shortest += hops == distance[peer]
    return shortest, reachable


def main(log: str, out: Path, bench_json: str | None, rng_seed: int) -> int:
    try:
        run = runlog.Run.load(log)
    except (OSError, UnicodeDecodeError) as exc:
        raise SimulationError(f"cannot read {log}: {exc}") from None
    timing = measured_timing(bench_json, len(run.peers))
    simulation, peers, keys = replay(run, timing, rng_seed)
    comparison = compare(run, simulation, peers, keys)
    print(f"replayed {log}: {len(peers)} peers, {len(run.links)} links, {len(keys)} messages; "
          f"one hop {1e6 * timing.one_hop_s:.0f} us, processing {1e3 * timing.processing_s:.2f} ms, "
          f"{timing.cores} cores ({timing.source})")
    print(comparison.text())
    result = {"log": log, "timing": timing.__dict__, "checks": comparison.checks, "passed": comparison.passed,
              **{key: value for key, value in comparison.__dict__.items()},
              "hops_share": comparison.hops_share, "median_error": comparison.median_error,
              "real_shortest_share": comparison.real_shortest_share}
    (out / "replay.json").write_text(json.dumps(result, indent=1))
    print(f"{'PASS' if comparison.passed else 'FAIL'}; wrote {out / 'replay.json'}")
    return 0 if comparison.passed else 1


if __name__ == "__main__":
    sys.exit("run it as: python simulate.py --replay LOG")
