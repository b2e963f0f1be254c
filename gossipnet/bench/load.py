"""How much the network carries: throughput beside bare relays, with and without
signatures, and the largest network that runs on the report's timings.

Sections 4, 5 and 7 of bench.py.  A flat-out log is too big to parse, so
throughput is counted straight from its text; the relays (relay.py) run
the overlay the peers built.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import networkx as nx

from gossipnet.bench.network import NO_PINGS, BenchError, Network, pause, progress, spawn_helper, stop_processes
from gossipnet.bench.spread import typical_line_bytes
from gossipnet.config import PeerSettings, peer_argv
from gossipnet.logs import logformat, runlog
from gossipnet.protocol import auth
from gossipnet.protocol.wire import Address

# Gossip flat out: the smallest interval a peer takes and more messages than
# it can make in a run (each peer makes at most ~1,000 a second).
FLAT_OUT = peer_argv(PeerSettings(gossip_interval=0.001, gossip_count=100_000, ping_interval=NO_PINGS))

# The report's timings (the peer's defaults): 5 s, 10 messages, 13 s pings.
REPORT_MESSAGES = 10
REPORT_INTERVAL = 5.0


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


def verify_seconds(count: int = 2000) -> float:
    """Seconds one signature check of a gossip line takes here (auth.verify, the peers' own)."""
    identity = auth.Identity()
    body = f"GOSSIP 127.0.0.1:40000 {time.time():.6f}:127.0.0.1:1"
    signature = identity.sign(body)
    started = time.perf_counter()
    for _ in range(count):
        auth.verify(identity.key, body, signature)
    return (time.perf_counter() - started) / count


def run_throughput(n: int, seconds: float, workdir: Path, signed: bool) -> dict:
    """``n`` peers each making a message every 1 ms: first receipts per second, after a warm-up."""
    name = "with" if signed else "without"
    verify = verify_seconds()  # before the network loads the machine
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
            # Every first receipt costs one signature check: with all cores checking
            # and doing nothing else, no more receipts than this a second.
            "verify_s": verify, "signature_bound_per_s": (os.cpu_count() or 1) / verify if signed else None,
            "peak_memory_mib": max(memory) / 1024 if memory else None, "load": load,
            "topology": sorted(sorted(str(address) for address in link) for link in scanned["links"])}


def run_relays(n: int, seconds: float, workdir: Path, topology: list[list[str]], log: bool) -> dict:
    """The same overlay as minimal relays (relay.py): first receipts per second."""
    names = sorted({name for link in topology for name in link})
    if not names:
        graph = nx.barabasi_albert_graph(n, 2, seed=1)
        names, topology = [str(node) for node in graph], [[str(a), str(b)] for a, b in graph.edges]
    index = {name: position for position, name in enumerate(names)}
    progress(f"relay ceiling{' with a log' if log else ''}: {len(names)} relays, {len(topology)} links")
    relays = [spawn_helper(["relay"], stdin=True) for _ in names]
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
                           for key, value in runlog.spread(memory).items()},
            "seed_memory_mib_max": max(seed_memory) / 1024 if seed_memory else None,
            "dissemination_s": {"median": summary.dissemination_median, "p99": summary.dissemination_p99},
            "load": load}
