"""Synthetic logs: the lines a run of a known overlay would write, without running it.

Tools that read logs (the visualizer, the grader) need runs whose facts are
known in advance and whose size no machine could run as processes.  A
:class:`Scenario` describes one: the overlay (e.g. ``topology.grow(500, ...)``),
how many messages each peer makes, which peers die.  :func:`synthesize` plays
it out on a simulated clock and returns the log lines, in the exact format
nodes write (``logformat.format_time`` / ``format_fields``), together with the
facts a reader should recover from them (:class:`SynthRun`).

What is played out, in the nodes' own order:

- seeds start; peers start one after another, each registering with a
  majority of the seeds, then opening its links to earlier peers (both ends
  log ``LINK_OPENED``);
- after every peer has joined, each origin creates its messages; a message
  floods the overlay, and each peer's first receipt comes over the path that
  reaches it first (per-link latency plus per-peer jitter), so ``from=`` and
  hop counts follow a real first-arrival tree;
- the dead peers then stop logging; each live neighbour misses pings, reports
  the death, and every seed holding the peer removes it after its probe.

Times are rounded to microseconds, as the log stores them.
"""

from __future__ import annotations

import heapq
import random
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from gossipnet.config import majority
from gossipnet.logs.logformat import format_fields, format_time
from gossipnet.protocol.wire import Address

EPOCH = 1_790_000_000.0  # a fixed start, so a scenario always writes the same bytes


@dataclass(frozen=True)
class Scenario:
    """A run to synthesize.  Peers are numbered 0..peers-1, as topology.grow numbers them."""

    peers: int
    edges: Sequence[tuple[int, int]]
    seeds: int = 3
    messages_per_peer: int = 1
    origins: Sequence[int] | None = None  # peers that create messages; None: every peer
    dead: Sequence[int] = ()  # peers killed after the gossip
    join_gap: float = 0.02  # s between two peers' starts
    gossip_interval: float = 0.2
    ping_interval: float = 0.5
    ping_misses: int = 3
    link_latency: tuple[float, float] = (0.001, 0.010)  # s, per link, drawn once
    jitter: float = 0.002  # s, at most, added per receipt
    rng_seed: int = 1
    # Peers log the list each seed returned (PEER_LIST) and their union
    # (PEER_LIST_UNION), as real peers do: each list holds the peers
    # registered at that seed earlier.
    peer_lists: bool = False
    start: float = EPOCH


@dataclass
class SynthRun:
    """The lines of a synthetic run and the facts a log reader should find in them."""

    lines: list[str]
    seeds: list[Address]
    peers: list[Address]  # index i is peer i of the scenario
    links: set[frozenset[Address]]
    dead: set[Address]
    messages: dict[tuple[Address, str], float] = field(default_factory=dict)  # (origin, text) -> created
    # (origin, text) -> receiver -> (time, sender, hops); first receipts only
    receipts: dict[tuple[Address, str], dict[Address, tuple[float, Address, int]]] = field(default_factory=dict)
    last_seen: dict[Address, float] = field(default_factory=dict)  # every node's last line
    first_report: dict[Address, float] = field(default_factory=dict)  # dead peer -> first DEAD_NODE_REPORTED
    removed: dict[Address, dict[Address, float]] = field(default_factory=dict)  # dead peer -> seed -> time

    def degrees(self) -> dict[Address, int]:
        counts = dict.fromkeys(self.peers, 0)
        for link in self.links:
            for end in link:
                counts[end] += 1
        return counts

    def write(self, path: str | Path) -> Path:
        path = Path(path)
        path.write_text("".join(line + "\n" for line in self.lines), encoding="utf-8")
        return path


def peer_address(index: int) -> Address:
    return Address("127.0.0.1", 9001 + index)


def seed_address(index: int) -> Address:
    return Address("127.0.0.1", 8080 + index)


class _Log:
    """Collects (time, order, line) and remembers each node's last line."""

    def __init__(self) -> None:
        self.entries: list[tuple[float, int, str]] = []
        self.last_seen: dict[Address, float] = {}

    def event(self, time: float, role: str, node: Address, name: str, **fields: object) -> float:
        time = round(time, 6)
        text = f"{format_time(time)} {role} {node} {name}"
        if fields:
            text += " " + format_fields(fields)
        self.entries.append((time, len(self.entries), text))
        self.last_seen[node] = max(time, self.last_seen.get(node, time))
        return time

    def lines(self) -> list[str]:
        return [text for _, _, text in sorted(self.entries)]


def synthesize(scenario: Scenario) -> SynthRun:
    """Play ``scenario`` out; see the module docstring for what is logged."""
    rng = random.Random(scenario.rng_seed)
    log = _Log()
    seeds = [seed_address(i) for i in range(scenario.seeds)]
    peers = [peer_address(i) for i in range(scenario.peers)]
    neighbours: list[set[int]] = [set() for _ in peers]
    for a, b in scenario.edges:
        neighbours[a].add(b)
        neighbours[b].add(a)
    run = SynthRun([], seeds, peers, {frozenset((peers[a], peers[b])) for a, b in scenario.edges},
                   {peers[i] for i in scenario.dead})

    now = scenario.start
    for number, seed in enumerate(seeds):
        log.event(now + 0.001 * number, "seed", seed, "STARTED", listen=seed, pid=1000 + number,
                  probe_timeout=1.0, listed="unchecked")
    holders: list[list[Address]] = []
    need = majority(scenario.seeds)
    joined = [0.0] * len(peers)
    registered_at: dict[Address, list[Address]] = {}  # seed -> peers registered there, in order
    for index, peer in enumerate(peers):
        now = scenario.start + 0.1 + index * scenario.join_gap
        joined[index] = now
        log.event(now, "peer", peer, "STARTED", listen=peer, pid=2000 + index, seeds=scenario.seeds,
                  gossip_interval=scenario.gossip_interval, gossip_count=scenario.messages_per_peer,
                  ping_interval=scenario.ping_interval, ping_misses=scenario.ping_misses,
                  degree_model="preferential", rng_seed=index)
        chosen = rng.sample(seeds, need)
        holders.append(chosen)
        offered: set[Address] = set()
        for step, seed in enumerate(chosen, start=1):
            at = now + 0.0005 * step
            log.event(at, "seed", seed, "PEER_REGISTERED", peer=peer, returned=0, again="no")
            log.event(at + 0.0001, "seed", seed, "PL_ADDED", peer=peer, size=1)
            log.event(at + 0.0002, "peer", peer, "REGISTERED", seed=seed)
            if scenario.peer_lists:
                earlier = registered_at.setdefault(seed, [])
                log.event(at + 0.0003, "peer", peer, "PEER_LIST", seed=seed, peers=",".join(map(str, earlier)))
                offered.update(earlier)
                earlier.append(peer)
        if scenario.peer_lists:
            log.event(now + 0.0005 * (len(chosen) + 1), "peer", peer, "PEER_LIST_UNION", count=len(offered),
                      peers=",".join(map(str, sorted(offered))))
        for step, other in enumerate(sorted(o for o in neighbours[index] if o < index), start=1):
            at = now + 0.002 + 0.0005 * step
            log.event(at, "peer", peer, "LINK_OPENED", neighbour=peers[other], initiator=peer)
            log.event(at + 0.0002, "peer", peers[other], "LINK_OPENED", neighbour=peer, initiator=peer)

    latency = {}
    for a, b in scenario.edges:
        latency[a, b] = latency[b, a] = rng.uniform(*scenario.link_latency)
    origins = range(len(peers)) if scenario.origins is None else scenario.origins
    gossip_start = scenario.start + 0.1 + len(peers) * scenario.join_gap + 0.5
    for number in range(1, scenario.messages_per_peer + 1):
        for rank, origin in enumerate(origins):
            created = round(gossip_start + (number - 1) * scenario.gossip_interval + rank * 1e-4, 6)
            text = f"{created:.6f}:127.0.0.1:{number}"
            log.event(created, "peer", peers[origin], "GOSSIP_GENERATED", msg=text, number=number)
            key = (peers[origin], text)
            run.messages[key] = created
            got = run.receipts[key] = {}
            for receiver, (time, sender, hops) in _flood(origin, created, neighbours, latency,
                                                          scenario.jitter, rng).items():
                at = log.event(time, "peer", peers[receiver], "GOSSIP_RECEIVED", msg=text, origin=peers[origin],
                               **{"from": peers[sender]})
                got[peers[receiver]] = (at, peers[sender], hops)

    killed = max(log.last_seen.values()) + 0.5
    dead = set(scenario.dead)
    probe = 0.01
    for victim in sorted(dead):
        address = peers[victim]
        reports = []
        for other in sorted(neighbours[victim] - dead):
            for misses in range(1, scenario.ping_misses + 1):
                log.event(killed + misses * scenario.ping_interval + other * 1e-5, "peer", peers[other],
                          "PING_MISSED", neighbour=address, misses=misses)
            at = log.event(killed + (scenario.ping_misses + 1) * scenario.ping_interval + rng.uniform(0, 0.1),
                           "peer", peers[other], "DEAD_NODE_REPORTED", dead=address,
                           msg=f"Dead Node:127.0.0.1:{address.port}:{killed:.6f}:127.0.0.1")
            reports.append((at, peers[other]))
        if not reports:
            continue
        reports.sort()
        run.first_report[address] = reports[0][0]
        run.removed[address] = {}
        for step, seed in enumerate(holders[victim], start=1):
            for rank, (at, reporter) in enumerate(reports):
                decided = at + probe * step
                if rank == 0:
                    run.removed[address][seed] = log.event(decided, "seed", seed, "PL_REMOVED", peer=address,
                                                           size=len(peers) - 1, reason="dead, confirmed by probe")
                    decision, reason = "removed", f"reported by {reporter} and the seed's liveness check failed"
                else:
                    decision, reason = "ignored", "not in the peer list"
                log.event(decided + 1e-5, "seed", seed, "DEAD_NODE_DECISION", dead=address, reporter=reporter,
                          msg=f"Dead Node:127.0.0.1:{address.port}:{killed:.6f}:127.0.0.1",
                          decision=decision, reason=reason)

    end = max(log.last_seen.values()) + 0.5
    for number, node in enumerate([*seeds, *(peers[i] for i in range(len(peers)) if i not in dead)]):
        log.event(end + number * 1e-5, "seed" if node in seeds else "peer", node, "STOPPED")
    run.lines = log.lines()
    run.last_seen = dict(log.last_seen)
    return run


def _flood(origin: int, created: float, neighbours: Sequence[Iterable[int]], latency: dict[tuple[int, int], float],
           jitter: float, rng: random.Random) -> dict[int, tuple[float, int, int]]:
    """First receipt of one message at each peer: receiver -> (time, sender, hops).

    Dijkstra on arrival time: a peer forwards the moment it first receives,
    so its first receipt is the earliest arrival over any path.
    """
    arrival = {origin: (created, origin, 0)}
    queue = [(created, origin)]
    done = set()
    while queue:
        time, node = heapq.heappop(queue)
        if node in done:
            continue
        done.add(node)
        for other in neighbours[node]:
            if other in done:
                continue
            at = time + latency[node, other] + rng.uniform(0, jitter)
            if other not in arrival or at < arrival[other][0]:
                arrival[other] = (at, node, arrival[node][2] + 1)
                heapq.heappush(queue, (at, other))
    del arrival[origin]
    return arrival
