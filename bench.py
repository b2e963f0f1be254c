"""Benchmarks of the real network, each figure beside the limit it could reach.

    python bench.py [--quick] [--json PATH] [--only NAME,...] [--sizes N,...] [--keep DIR]

Seeds and peers run as separate processes on 127.0.0.1 with real sockets
(benchnet.py).  Each section measures one figure and, in the same run, the
limit it is judged against:

- ``floor``: one newline-framed line between two Python processes (RTT/2);
- ``dissemination``: creation to last first receipt, beside the origin's
  eccentricity in the overlay times the one-hop floor;
- ``cost``: copies sent per message, beside |E| and N-1 (from the
  dissemination runs);
- ``throughput``: first receipts per second with every peer gossiping flat
  out, beside minimal relays (benchrelay.py) on the same overlay;
- ``auth``: the same throughput without signatures;
- ``scale``: the largest network that runs on the report's timings, and the
  peers' peak memory;
- ``detection``: time from ``kill -9`` to the report and the removals, beside
  the ping rule's own bound.

A section that fails is reported as an error and the others still run; every
process started is stopped by PID whatever happens.  The table goes to
stdout, the same figures as JSON to ``--json``; progress goes to stderr.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import shutil
import socket
import statistics
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import networkx as nx

import auth
import benchnet
import launch
import logformat
import runlog
from benchnet import NO_PINGS, ROOT, BenchError, Network, check, pause, progress, spawn_helper, stop_processes
from benchreport import render_table
from runlog import percentile
from wire import Address, GossipMessage

SECTIONS = ("floor", "dissemination", "cost", "throughput", "auth", "scale", "detection")


@dataclass(frozen=True)
class Plan:
    """How big and how long each section runs."""

    floor_rounds: int  # ping-pongs timed for the one-hop floor
    sizes: tuple[int, ...]  # dissemination network sizes
    messages: int  # most messages per peer in a dissemination run (see messages_for)
    # Seconds between two messages anywhere in the network during a
    # dissemination run, per peer in it: each message has the network to
    # itself for N times this (a peer's interval is N slots).  A message's
    # work grows with N (it crosses ~2|E| ~ 4N links); 1.5 ms per peer keeps
    # the slot above the p99 dissemination time measured on 2 cores, so
    # messages do not overlap.
    slot_per_peer: float
    throughput_peers: int
    throughput_seconds: float
    relay_log: bool  # also run the relays writing a log line per receipt
    scale_sizes: tuple[int, ...]
    detection_peers: int
    kills: int


FULL = Plan(floor_rounds=3000, sizes=(50, 100, 200), messages=3, slot_per_peer=0.0015, throughput_peers=50,
            throughput_seconds=20.0, relay_log=True, scale_sizes=(100, 200, 300), detection_peers=30, kills=5)
QUICK = Plan(floor_rounds=1000, sizes=(30, 60), messages=3, slot_per_peer=0.0015, throughput_peers=20,
             throughput_seconds=8.0, relay_log=False, scale_sizes=(60,), detection_peers=12, kills=2)

# Shortest slot between two messages of a dissemination run, in seconds.
MIN_SLOT = 0.1

# Seconds over which an idle network's CPU use is sampled, to take it out of the CPU per message.
IDLE_SAMPLE = 2.0

# Messages a dissemination run aims for in all: enough for a p99, while a
# large network's run stays short (each peer still makes at least 2).
MESSAGES_PER_RUN = 300

# Pings timed before the first one counts (connection and caches warm up).
FLOOR_WARMUP = 200

# Gossip flat out: the smallest interval a peer takes and more messages than
# it can make in a run (each peer makes at most ~1,000 a second).
FLAT_OUT = ("--gossip-interval", "0.001", "--gossip-count", "100000", "--ping-interval", NO_PINGS)

# The report's timings (the peer's defaults): 5 s, 10 messages, 13 s pings.
REPORT_MESSAGES = 10
REPORT_INTERVAL = 5.0

# Detection: ping every second, dead after the default 3 misses.
PING_INTERVAL = 1.0
PING_MISSES = 3


def gossip_line_bytes(origin: Address, text: str, signed: bool) -> int:
    """Bytes of the GOSSIP line that carries a message over a link, newline included."""
    body = GossipMessage.from_text(text, origin).body()
    return len(body) + (1 + len(auth.Identity().sign(body)) if signed else 0) + 1


def typical_line_bytes(signed: bool = True) -> int:
    return gossip_line_bytes(Address("127.0.0.1", 40000), f"{time.time():.6f}:127.0.0.1:1", signed)


def _stats(values: list[float]) -> dict[str, float | None]:
    if not values:
        return {"median": None, "p99": None, "max": None}
    return {"median": statistics.median(values), "p99": percentile(values, 0.99), "max": max(values)}


# --- 1. One-hop floor ------------------------------------------------------------


def measure_floor(plan: Plan) -> dict:
    """Median one-way time of one line between two Python processes: RTT/2 of ping-pongs."""
    line_bytes = typical_line_bytes()
    line = b"x" * (line_bytes - 1) + b"\n"
    echo = spawn_helper([str(ROOT / "benchrelay.py"), "echo"])
    try:
        port = int(echo.stdout.readline())
        rtts = []
        with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
            buffer = bytearray()
            for index in range(FLOOR_WARMUP + plan.floor_rounds):
                if index % 200 == 0:
                    check()
                started = time.perf_counter()
                sock.sendall(line)
                while (end := buffer.find(b"\n")) < 0:
                    chunk = sock.recv(65536)
                    if not chunk:
                        raise BenchError("the echo process closed the connection")
                    buffer += chunk
                del buffer[: end + 1]
                rtts.append(time.perf_counter() - started)
    finally:
        stop_processes([echo])
    one_way = [rtt / 2 for rtt in rtts[FLOOR_WARMUP:]]
    return {"one_way_s": statistics.median(one_way), "one_way_p99_s": percentile(one_way, 0.99),
            "rounds": plan.floor_rounds, "line_bytes": line_bytes, "load": os.getloadavg()[0]}


# --- 2 and 3. Dissemination and cost per message ----------------------------------


def overlay(run: runlog.Run) -> nx.Graph:
    graph = nx.Graph()
    graph.add_nodes_from(run.peers)
    graph.add_edges_from(tuple(link) for link in run.links)
    return graph


def run_dissemination(n: int, plan: Plan, workdir: Path, floor_s: float) -> tuple[dict, dict]:
    """One network of ``n`` peers, each message alone in it: (dissemination, cost) results."""
    slot = max(MIN_SLOT, n * plan.slot_per_peer)
    messages = max(2, min(plan.messages, MESSAGES_PER_RUN // n))
    interval = n * slot
    flags = ["--gossip-interval", f"{interval:g}", "--gossip-count", str(messages), "--ping-interval", NO_PINGS]
    offsets = [index * slot for index in range(n)]
    random.Random(n).shuffle(offsets)  # message slots not in join order
    with Network(workdir / f"dissemination-{n}") as net:
        progress(f"dissemination N={n}: starting {n} peers")
        net.start_seeds()
        net.start_peers(n, flags, offsets=offsets)
        net.wait_joined()
        idle = -net.cpu_seconds(), -time.monotonic()
        pause(IDLE_SAMPLE)
        idle_rate = (idle[0] + net.cpu_seconds()) / (idle[1] + time.monotonic())
        before = net.link_bytes()
        cpu = -net.cpu_seconds(), -time.monotonic()
        start = time.time() + 1.0
        net.go(start)
        last = start + max(offsets) + (messages - 1) * interval
        progress(f"dissemination N={n}: {n * messages} messages, one every {slot:g} s, "
                 f"until {time.strftime('%H:%M:%S', time.localtime(last))}")
        total = n * messages
        try:
            net.wait_for(lambda: net.tail.counts[logformat.GOSSIP_GENERATED] >= total
                         and net.tail.counts[logformat.GOSSIP_RECEIVED] >= total * (n - 1),
                         last - time.time() + 30, "every message to reach every peer")
        except BenchError as exc:
            progress(f"dissemination N={n}: {exc}")
        after = net.link_bytes()
        elapsed = cpu[1] + time.monotonic()
        cpu = max(0.0, cpu[0] + net.cpu_seconds() - idle_rate * elapsed)  # less what an idle network costs
        load = os.getloadavg()[0]
    run = runlog.Run.load(net.log_path)
    graph = overlay(run)
    if not nx.is_connected(graph):
        raise BenchError(f"the overlay of {n} peers is not connected")
    eccentricity = nx.eccentricity(graph)
    times = run.dissemination_times()
    hops = run.hop_counts()
    # An origin's first message also waits, at every peer that joined before it and is
    # not its neighbour, for the seeds to tell its key; later ones are the steady state.
    steady = {key: message for key, message in run.messages.items() if message.number > 1}
    floors, ratios, took, depths = [], [], [], []
    for key, message in steady.items():
        floor = eccentricity[message.origin] * floor_s
        floors.append(floor)
        if key in times:
            took.append(times[key])
            ratios.append(times[key] / floor)
            depths.append(max(hops.get(key, {message.origin: 0}).values()))
    delivered, expected = run.delivery_counts()
    links = len(run.links)
    dissemination = {
        "peers": n, "links": links, "messages": len(run.messages), "steady_messages": len(steady),
        "delivery": delivered / expected if expected else 0,
        "time_s": _stats(took), "floor_s": _stats(floors), "one_hop_s": floor_s,
        "first_message_time_s": _stats([times[key] for key, message in run.messages.items()
                                        if message.number == 1 and key in times]),
        "eccentricity": _stats([eccentricity[message.origin] for message in steady.values()]),
        "diameter": nx.diameter(graph),
        "p99_over_median_floor": (percentile(took, 0.99) / statistics.median(floors)) if took else None,
        "ratio": _stats(ratios),
        "depth": _stats(depths),  # hops to the last peer reached, by the first receipts' path
        # The network's CPU time per message spread over every core: the time a message
        # would take if its work were perfectly parallel.  Above the hop floor on few cores.
        "cpu_per_message_s": cpu / len(run.messages) if run.messages else None,
        "cpu_floor_s": cpu / len(run.messages) / (os.cpu_count() or 1) if run.messages else None,
        "slot_s": slot, "load": load,
    }
    copies = runlog.forwarded_copies(run)
    derived = [copies.get(key, 0) for key in run.messages]
    predicted_bytes = sum(copies.get(key, 0) * gossip_line_bytes(key[0], key[1], net.auth) for key in run.messages)
    measured_bytes = sum(count - before.get(socket_, 0) for socket_, count in after.items())
    mean_line = statistics.mean(gossip_line_bytes(key[0], key[1], net.auth) for key in run.messages)
    cost = {
        "peers": n, "links": links, "messages": len(run.messages),
        "derived_per_message": _stats(derived), "derived_mean": statistics.mean(derived) if derived else None,
        "measured_per_message": measured_bytes / mean_line / len(run.messages) if run.messages else None,
        "measured_bytes": measured_bytes, "derived_bytes": predicted_bytes,
        "rule_per_message": 2 * links - (n - 1),
        "duplicates_logged": len(run.duplicates),
        "duplicates_dropped_per_message": (statistics.mean(derived) - (n - 1)) if derived else None,
        "catch_up_copies": runlog.catch_up_copies(run), "load": load,
    }
    return dissemination, cost


# --- 4 and 7. Throughput, and what authentication costs ----------------------------


def scan_log(path: Path, window: tuple[float, float]) -> dict:
    """Count events in the time window straight from the text (a flat-out log is too big to parse)."""
    low, high = (logformat.format_time(moment) for moment in window)
    counts: dict[str, int] = {}
    links: set[frozenset[Address]] = set()
    with open(path, encoding="utf-8", errors="replace") as handle:
        for line in handle:
            parts = line.split(" ", 4)
            if len(parts) < 4:
                continue
            if parts[3] == logformat.LINK_OPENED:
                event = logformat.parse_line(line)
                links.add(frozenset((event.node, event.address("neighbour"))))
            if low <= parts[0] < high:
                counts[parts[3]] = counts.get(parts[3], 0) + 1
    return {"counts": counts, "links": links}


def run_throughput(plan: Plan, workdir: Path, signed: bool) -> dict:
    n, seconds = plan.throughput_peers, plan.throughput_seconds
    name = "with" if signed else "without"
    with Network(workdir / f"throughput-{'auth' if signed else 'noauth'}", auth=signed) as net:
        progress(f"throughput {name} authentication: starting {n} peers")
        net.start_seeds()
        net.start_peers(n, FLAT_OUT, offsets=[0.0] * n)
        net.wait_joined()
        start = time.time() + 1.0
        net.go(start)
        warmup = max(2.0, seconds / 4)
        window = (start + warmup, start + seconds)
        progress(f"throughput {name} authentication: every peer gossiping flat out for {seconds:g} s")
        pause(window[1] + 0.2 - time.time())
        memory = net.peak_memory_kib(net.peers)
        load = os.getloadavg()[0]
        progress(f"throughput {name} authentication: stopping")
    scanned = scan_log(net.log_path, window)
    counts, span = scanned["counts"], window[1] - window[0]
    return {"peers": n, "auth": signed, "window_s": span, "warmup_s": warmup,
            "deliveries_per_s": counts.get(logformat.GOSSIP_RECEIVED, 0) / span,
            "generated_per_s": counts.get(logformat.GOSSIP_GENERATED, 0) / span,
            "links_closed": counts.get(logformat.LINK_CLOSED, 0), "links": len(scanned["links"]),
            "peak_memory_mib": max(memory) / 1024 if memory else None, "load": load,
            "topology": sorted(sorted(str(address) for address in link) for link in scanned["links"])}


def run_relays(plan: Plan, workdir: Path, topology: list[list[str]], log: bool) -> dict:
    """The same overlay as minimal relays (benchrelay.py): first receipts per second."""
    names = sorted({name for link in topology for name in link})
    if not names:
        graph = nx.barabasi_albert_graph(plan.throughput_peers, 2, seed=1)
        names, topology = [str(node) for node in graph], [[str(a), str(b)] for a, b in graph.edges]
    index = {name: position for position, name in enumerate(names)}
    seconds = plan.throughput_seconds
    progress(f"relay ceiling{' with a log' if log else ''}: {len(names)} relays, {len(topology)} links")
    relays = [spawn_helper([str(ROOT / "benchrelay.py"), "relay"], stdin=True) for _ in names]
    try:
        ports = [int(relay.stdout.readline()) for relay in relays]
        dial: list[list[int]] = [[] for _ in names]
        accept = [0] * len(names)
        for a, b in topology:
            low, high = sorted((index[a], index[b]))
            dial[low].append(ports[high])
            accept[high] += 1
        start = time.time() + 2.0
        warmup = max(2.0, seconds / 4)
        window = [start + warmup, start + seconds]
        log_path = workdir / "relay.log" if log else None
        for position, relay in enumerate(relays):
            relay.stdin.write(json.dumps({
                "dial": dial[position], "accept": accept[position], "start": start, "stop": start + seconds,
                "window": window, "period": 0.0, "line_bytes": typical_line_bytes(),
                "log": str(log_path) if log_path else None}) + "\n")
            relay.stdin.flush()
        pause(start + seconds - time.time())
        load = os.getloadavg()[0]
        results = []
        for relay in relays:
            output, _ = relay.communicate(timeout=max(1.0, start + seconds + 30 - time.time()))
            results.append(json.loads(output.strip().splitlines()[-1]))
    finally:
        stop_processes(relays)
    span = window[1] - window[0]
    return {"relays": len(names), "links": len(topology), "log": log, "window_s": span,
            "deliveries_per_s": sum(result["received_in_window"] for result in results) / span,
            "generated_per_s": sum(result["made_in_window"] for result in results) / span, "load": load}


# --- 5. Scale --------------------------------------------------------------------


def run_scale(n: int, workdir: Path) -> dict:
    """``n`` peers on the report's timings, with authentication: delivery, false reports, memory."""
    note = ""
    with Network(workdir / f"scale-{n}") as net:
        progress(f"scale N={n}: starting {n} peers on the report's timings")
        started = time.monotonic()
        net.start_seeds()
        net.start_peers(n, [])
        startup = time.monotonic() - started
        total = n * REPORT_MESSAGES
        progress(f"scale N={n}: all registered after {startup:.0f} s; waiting for {total * (n - 1)} receipts")
        try:
            net.wait_for(lambda: net.tail.counts[logformat.GOSSIP_GENERATED] >= total
                         and net.tail.counts[logformat.GOSSIP_RECEIVED] >= total * (n - 1),
                         REPORT_MESSAGES * REPORT_INTERVAL + 60, "every message to reach every peer")
        except BenchError as exc:
            note = str(exc)
        memory = net.peak_memory_kib(net.peers)
        seed_memory = net.peak_memory_kib(net.seeds)
        load = os.getloadavg()[0]
    progress(f"scale N={n}: reading the log")
    run = runlog.Run.load(net.log_path)
    summary = run.summary()
    ok = (summary.delivery == 1.0 and summary.expected == total * (n - 1) and not run.reports
          and summary.live_peers == n and len(memory) == n)
    return {"peers": n, "ok": ok, "note": note, "startup_s": startup, "delivery": summary.delivery,
            "expected": summary.expected, "delivered": summary.delivered, "reports": len(run.reports),
            "false_reports": len(run.reports),  # nobody was killed: every report is false
            "links": summary.links, "degree_max": summary.degree_max,
            "memory_mib": {key: value / 1024 if value is not None else None
                           for key, value in _stats(memory).items()},
            "seed_memory_mib_max": max(seed_memory) / 1024 if seed_memory else None,
            "dissemination_s": {"median": summary.dissemination_median, "p99": summary.dissemination_p99},
            "load": load}


# --- 6. Detection ----------------------------------------------------------------


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


def run_detection(plan: Plan, workdir: Path) -> dict:
    n, bound = plan.detection_peers, (PING_MISSES + 1) * PING_INTERVAL
    flags = ["--gossip-interval", "1", "--gossip-count", "1", "--ping-interval", f"{PING_INTERVAL:g}",
             "--ping-misses", str(PING_MISSES)]
    with Network(workdir / "detection") as net:
        progress(f"detection: starting {n} peers, pings every {PING_INTERVAL:g} s")
        net.start_seeds()
        net.start_peers(n, flags)
        net.wait_joined()
        pause(PING_MISSES * PING_INTERVAL)  # liveness in its steady state
        net.tail.poll()
        graph = overlay(net.tail.run)
        victims = pick_victims(graph, plan.kills, random.Random(n))
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
            "rule_s": rule, "bound_s": bound, "report_s": _stats(reported), "removal_s": _stats(removed),
            "report_over_rule": _stats([value / rule for value in reported]),
            "removal_over_rule": _stats([value / rule for value in removed]),
            "false_reports": len(false), "missing": missing, "load": load}


# --- Running the sections ----------------------------------------------------------


def machine() -> dict:
    cpu = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {"nproc": os.cpu_count(), "cpu": cpu or platform.processor(), "python": platform.python_version(),
            "system": f"{platform.system()} {platform.release()}"}


def run_sections(selected: set[str], plan: Plan, workdir: Path) -> dict:
    """Every selected section (and what it needs); each one's failure is its own error."""
    results: dict = {}

    def attempt(name: str, action):
        try:
            return action()
        except launch.Interrupted:
            raise
        except Exception as exc:  # one section's failure must not stop the others
            progress(f"{name}: error: {type(exc).__name__}: {exc}")
            return {"error": f"{type(exc).__name__}: {' '.join(str(exc).split())[:300]}"}

    if selected & {"floor", "dissemination", "cost"}:
        progress("floor: timing one-hop ping-pongs")
        results["floor"] = attempt("floor", lambda: measure_floor(plan))
    if selected & {"dissemination", "cost"}:
        results["dissemination"], results["cost"] = [], []
        floor_s = results["floor"].get("one_way_s")
        for n in plan.sizes:
            outcome = attempt(f"dissemination N={n}", lambda n=n: run_dissemination(n, plan, workdir, floor_s))
            pair = outcome if isinstance(outcome, tuple) else ({"peers": n, **outcome}, {"peers": n, **outcome})
            results["dissemination"].append(pair[0])
            results["cost"].append(pair[1])
    if selected & {"throughput", "auth"}:
        results["throughput"] = {"auth": attempt("throughput", lambda: run_throughput(plan, workdir, True))}
        if "auth" in selected:
            results["throughput"]["no_auth"] = attempt("throughput", lambda: run_throughput(plan, workdir, False))
        if "throughput" in selected:
            topology = results["throughput"]["auth"].get("topology", [])
            results["throughput"]["relay"] = attempt("relay", lambda: run_relays(plan, workdir, topology, False))
            if plan.relay_log:
                results["throughput"]["relay_log"] = attempt(
                    "relay", lambda: run_relays(plan, workdir, topology, True))
        for entry in results["throughput"].values():
            entry.pop("topology", None)
    if "scale" in selected:
        results["scale"] = []
        for n in plan.scale_sizes:
            outcome = attempt(f"scale N={n}", lambda n=n: run_scale(n, workdir))
            results["scale"].append({"peers": n, **outcome})
            if not outcome.get("ok"):
                break  # the largest N that runs is the one before
    if "detection" in selected:
        results["detection"] = attempt("detection", lambda: run_detection(plan, workdir))
    return results


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        description="Benchmark the real gossip network (processes and sockets on 127.0.0.1) and print each "
                    "figure beside the limit it could reach, measured in the same run. About 15 minutes; "
                    "--quick about 3.")
    parser.add_argument("--quick", action="store_true", help="smaller networks and shorter runs")
    parser.add_argument("--json", type=Path, default=Path("bench.json"), metavar="PATH",
                        help="where to write the figures as JSON (default: bench.json)")
    parser.add_argument("--only", metavar="NAME,...",
                        help=f"run only these sections: {', '.join(SECTIONS)} (default: all)")
    parser.add_argument("--sizes", metavar="N,...",
                        help="network sizes of the dissemination runs (default: 50,100,200; --quick: 30,60)")
    parser.add_argument("--keep", type=Path, metavar="DIR",
                        help="keep every run's log and files under DIR (default: a temporary directory, removed)")
    return parser


def parse_sizes(parser: argparse.ArgumentParser, text: str) -> tuple[int, ...]:
    try:
        sizes = tuple(int(part) for part in text.split(","))
    except ValueError:
        parser.error(f"--sizes {text!r}: expected whole numbers separated by commas")
    if any(size < 2 for size in sizes):
        parser.error("--sizes: a network needs at least 2 peers")
    return sizes


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    selected = set(SECTIONS)
    if args.only:
        selected = {name.strip() for name in args.only.split(",") if name.strip()}
        if unknown := selected - set(SECTIONS):
            parser.error(f"--only: unknown section {', '.join(sorted(unknown))} (choose from {', '.join(SECTIONS)})")
    plan = QUICK if args.quick else FULL
    if args.sizes:
        plan = replace(plan, sizes=parse_sizes(parser, args.sizes))
    benchnet.STOP.install()
    workdir = args.keep or Path(tempfile.mkdtemp(prefix="bench-"))
    workdir.mkdir(parents=True, exist_ok=True)
    report = {"mode": "quick" if args.quick else "full", "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
              "machine": machine(), "plan": asdict(plan), "load_average": {"start": os.getloadavg()},
              "sections": {}}
    status = 0
    began = time.monotonic()
    try:
        report["sections"] = run_sections(selected, plan, workdir)
    except launch.Interrupted:
        progress("interrupted: stopping every process started")
        report["interrupted"] = True
        status = 130
    finally:
        benchnet.stop_everything()
        if args.keep is None:
            shutil.rmtree(workdir, ignore_errors=True)
    report["load_average"]["end"] = os.getloadavg()
    report["seconds"] = time.monotonic() - began
    report["table"] = render_table(report)
    print(report["table"])
    args.json.write_text(json.dumps(report, indent=2, default=str) + "\n")
    progress(f"done in {report['seconds']:.0f} s; figures in {args.json}")
    return status


if __name__ == "__main__":
    sys.exit(main())
