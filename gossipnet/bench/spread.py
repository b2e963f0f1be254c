"""How one message spreads: the one-hop floor, dissemination time, copies per message.

Sections 1-3 of bench.py.  The floor is timed against a bare echo process
(relay.py).  A dissemination run starts its peers through gossipnet/bench/peer.py
so that gossip begins once every peer has joined, each message in a slot of
its own; the same run gives the copies per message, derived from the log
with the forwarding rule (runlog.forwarded_copies) and checked against the
bytes the kernel counted on every peer-to-peer socket.
"""

from __future__ import annotations

import os
import random
import socket
import statistics
import time
from pathlib import Path

import networkx as nx

from gossipnet.bench.network import (
    NO_PINGS,
    BenchError,
    Network,
    check,
    pause,
    progress,
    spawn_helper,
    stop_processes,
)
from gossipnet.config import PeerSettings, peer_argv
from gossipnet.logs import logformat, runlog
from gossipnet.logs.runlog import spread
from gossipnet.protocol import auth
from gossipnet.protocol.wire import KEY_CHARS, SIGNATURE_CHARS, Address, GossipMessage

# Ping-pongs before the timed ones (connection and caches warm up).
FLOOR_WARMUP = 200

# Shortest slot between two messages of a dissemination run, in seconds.
MIN_SLOT = 0.1

# Seconds over which an idle network's CPU use is sampled, to take it out of the CPU per message.
IDLE_SAMPLE = 2.0

# Messages a dissemination run aims for in all: enough for a p99, while a
# large network's run stays short (each peer still makes at least 2).
MESSAGES_PER_RUN = 300


def gossip_line_bytes(origin: Address, text: str, signed: bool) -> int:
    """Bytes of the GOSSIP line that carries a message over a link, newline included."""
    body = GossipMessage.from_text(text, origin).body()
    return len(body) + (1 + len(auth.Identity().sign(body)) if signed else 0) + 1


def binding_line_bytes(origin: Address, seeds: list[Address]) -> int:
    """Bytes of the KEY line that carries ``origin``'s binding, vouched for by ``seeds``, newline included."""
    vouches = sum(1 + len(str(seed)) + 1 + len(f"{time.time():.6f}") + 1 + SIGNATURE_CHARS for seed in seeds)
    return len(f"KEY {origin} ") + KEY_CHARS + vouches + 1


def typical_line_bytes(signed: bool = True) -> int:
    """Bytes of a GOSSIP line with a 5-digit port and a message number of one digit."""
    return gossip_line_bytes(Address("127.0.0.1", 40000), f"{time.time():.6f}:127.0.0.1:1", signed)


def measure_floor(rounds: int) -> dict:
    """Median one-way time of one line between two Python processes: RTT/2 of ping-pongs."""
    line_bytes = typical_line_bytes()
    line = b"x" * (line_bytes - 1) + b"\n"
    echo = spawn_helper(["echo"])
    try:
        port = int(echo.stdout.readline())
        rtts = []
        with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
            buffer = bytearray()
            for index in range(FLOOR_WARMUP + rounds):
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
    one_way = spread([rtt / 2 for rtt in rtts[FLOOR_WARMUP:]])
    return {"one_way_s": one_way["median"], "one_way_p99_s": one_way["p99"],
            "rounds": rounds, "line_bytes": line_bytes, "load": os.getloadavg()[0]}


def overlay(run: runlog.Run) -> nx.Graph:
    """The overlay as a graph of peers: every link the log shows opened."""
    graph = nx.Graph()
    graph.add_nodes_from(run.peers)
    graph.add_edges_from(tuple(link) for link in run.links)
    return graph


def run_dissemination(n: int, most_messages: int, slot_per_peer: float, workdir: Path,
                      floor_s: float) -> tuple[dict, dict]:
    """One network of ``n`` peers, each message alone in it: (dissemination, cost) results."""
    if floor_s is None:
        raise BenchError("no one-hop floor to compare with (the floor failed)")
    slot = max(MIN_SLOT, n * slot_per_peer)
    messages = max(2, min(most_messages, MESSAGES_PER_RUN // n))
    interval = n * slot
    flags = peer_argv(PeerSettings(gossip_interval=interval, gossip_count=messages, ping_interval=NO_PINGS))
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
        "time_s": spread(took), "floor_s": spread(floors), "one_hop_s": floor_s,
        "first_message_time_s": spread([times[key] for key, message in run.messages.items()
                                         if message.number == 1 and key in times]),
        "eccentricity": spread([eccentricity[message.origin] for message in steady.values()]),
        "diameter": nx.diameter(graph),
        "p99_over_median_floor": (spread(took)["p99"] / spread(floors)["median"]) if took else None,
        "ratio": spread(ratios),
        "depth": spread(depths),  # hops to the last peer reached, by the first receipts' path
        # The network's CPU time per message spread over every core: the time a message
        # would take if its work were perfectly parallel.  Above the hop floor on few cores.
        "cpu_per_message_s": cpu / len(run.messages) if run.messages else None,
        "cpu_floor_s": cpu / len(run.messages) / (os.cpu_count() or 1) if run.messages else None,
        "slot_s": slot, "load": load,
    }
    copies = runlog.forwarded_copies(run)
    derived = [copies.get(key, 0) for key in run.messages]
    predicted_bytes = sum(copies.get(key, 0) * gossip_line_bytes(key[0], key[1], net.auth) for key in run.messages)
    # With authentication, each origin's binding goes over each link ahead of the first of its messages there.
    bindings = runlog.binding_copies(run) if net.auth else {}
    registered = {}
    for event in run.events:
        if event.event == logformat.REGISTERED:
            registered.setdefault(event.node, []).append(event.address("seed"))
    binding_bytes = sum(count * binding_line_bytes(origin, registered.get(origin, []))
                        for origin, count in bindings.items())
    predicted_bytes += binding_bytes
    measured_bytes = sum(count - before.get(socket_, 0) for socket_, count in after.items())
    mean_line = statistics.mean(gossip_line_bytes(key[0], key[1], net.auth) for key in run.messages)
    cost = {
        "peers": n, "links": links, "messages": len(run.messages),
        "derived_per_message": spread(derived), "derived_mean": statistics.mean(derived) if derived else None,
        "measured_per_message": measured_bytes / mean_line / len(run.messages) if run.messages else None,
        "measured_bytes": measured_bytes, "derived_bytes": predicted_bytes, "binding_lines": sum(bindings.values()),
        "binding_bytes": binding_bytes,
        "rule_per_message": 2 * links - (n - 1),
        "duplicates_logged": len(run.duplicates),
        "duplicates_dropped_per_message": (statistics.mean(derived) - (n - 1)) if derived else None,
        "catch_up_copies": runlog.catch_up_copies(run), "load": load,
    }
    return dissemination, cost
