"""What a run's log says happened: nodes, links, messages, receipts, deaths.

:func:`logformat.parse_log` turns lines into events; this module turns events
into the facts every tool reports on (the runners' verdict, the visualizer,
the grader, the benchmarks), so that they all count the same way:

- a peer is *dead* if any seed removed it from its Peer List or any peer
  reported it dead; every other peer that started is *live*;
- a message is *delivered* to a peer when the peer logs its first receipt;
  each generated message is expected at every live peer except its origin;
- a message's *dissemination time* runs from its creation to its first
  receipt at the last live peer; it is undefined until every live peer has it.

This module does no I/O beyond reading the log and draws nothing.
"""

from __future__ import annotations

import math
import statistics
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import logformat
from logformat import LogEvent, LogFormatError
from wire import Address


@dataclass
class Node:
    """One node as the log shows it."""

    role: str
    address: Address
    started: float | None = None  # STARTED time
    stopped: float | None = None  # STOPPED time (a clean exit); None if killed or still running
    last_seen: float = 0.0  # time of its last log line
    settings: dict[str, str] = field(default_factory=dict)  # the STARTED line's fields
    first_line: int = 0


@dataclass(frozen=True)
class Message:
    """One generated gossip message."""

    origin: Address
    text: str
    number: int
    created: float
    line: int


@dataclass(frozen=True)
class Receipt:
    """A peer's log of receiving a message."""

    peer: Address
    sender: Address
    time: float
    line: int


@dataclass(frozen=True)
class Death:
    """A peer that was reported dead or removed, and when."""

    peer: Address
    last_seen: float  # its last own log line: the latest it was known alive
    first_report: float | None  # first DEAD_NODE_REPORTED about it
    reporters: tuple[Address, ...]
    removed: dict[Address, float]  # seed -> PL_REMOVED time


def percentile(values: Iterable[float], fraction: float) -> float:
    """Nearest-rank percentile (``fraction`` in 0..1) of a non-empty collection."""
    ordered = sorted(values)
    rank = math.ceil(fraction * len(ordered))
    return ordered[min(max(rank, 1), len(ordered)) - 1]


@dataclass(frozen=True)
class Summary:
    """The headline numbers of a run."""

    peers: int
    live_peers: int
    seeds: int
    links: int
    degree_min: int
    degree_median: float
    degree_max: int
    expected: int  # receipts expected at live peers
    delivered: int  # of those, received
    duplicates: int  # receipts logged more than once
    dissemination_median: float | None
    dissemination_p99: float | None
    false_reports: int  # reports about peers that were still alive

    @property
    def delivery(self) -> float:
        return 1.0 if self.expected == 0 else self.delivered / self.expected


class Run:
    """The facts of one run, built from its events in log order."""

    def __init__(self, events: Iterable[LogEvent], errors: list[tuple[int, str, str]] | None = None) -> None:
        self.errors = list(errors or [])
        self.seeds: dict[Address, Node] = {}
        self.peers: dict[Address, Node] = {}
        self.links: set[frozenset[Address]] = set()  # every link ever opened
        self.messages: dict[tuple[Address, str], Message] = {}
        self.receipts: dict[tuple[Address, str], dict[Address, Receipt]] = defaultdict(dict)
        self.duplicates: list[LogEvent] = []
        self.reports: list[LogEvent] = []  # DEAD_NODE_REPORTED
        self.removals: dict[Address, dict[Address, float]] = defaultdict(dict)  # dead -> seed -> time
        self.events: list[LogEvent] = []
        for event in events:
            self._add(event)

    @classmethod
    def load(cls, path: str | Path) -> Run:
        parsed = logformat.parse_log(path)
        return cls(parsed.events, parsed.errors)

    def _add(self, event: LogEvent) -> None:
        self.events.append(event)
        nodes = self.seeds if event.role == "seed" else self.peers
        node = nodes.get(event.node)
        if node is None:
            node = nodes[event.node] = Node(event.role, event.node, first_line=event.line)
        node.last_seen = max(node.last_seen, event.timestamp)
        try:
            self._record(event, node)
        except (LogFormatError, KeyError, ValueError) as exc:
            self.errors.append((event.line, f"bad {event.event} line: {exc}", ""))

    def _record(self, event: LogEvent, node: Node) -> None:
        name = event.event
        if name == logformat.STARTED:
            node.started = event.timestamp
            node.settings = dict(event.fields)
        elif name == logformat.STOPPED:
            node.stopped = event.timestamp
        elif name == logformat.LINK_OPENED:
            self.links.add(frozenset((event.node, event.address("neighbour"))))
        elif name == logformat.GOSSIP_GENERATED:
            text = event.fields["msg"]
            self.messages[(event.node, text)] = Message(event.node, text, int(event.fields["number"]),
                                                        event.timestamp, event.line)
        elif name == logformat.GOSSIP_RECEIVED:
            key = (event.address("origin"), event.fields["msg"])
            receivers = self.receipts[key]
            if event.node in receivers:
                self.duplicates.append(event)
            else:
                receivers[event.node] = Receipt(event.node, event.address("from"), event.timestamp, event.line)
        elif name == logformat.DEAD_NODE_REPORTED:
            event.address("dead")
            self.reports.append(event)
        elif name == logformat.PL_REMOVED:
            self.removals[event.address("peer")].setdefault(event.node, event.timestamp)

    # --- Derived facts ----------------------------------------------------------------

    @property
    def dead(self) -> set[Address]:
        """Peers that a seed removed or a peer reported dead."""
        return ({event.address("dead") for event in self.reports} | set(self.removals)) & set(self.peers)

    @property
    def live(self) -> list[Address]:
        dead = self.dead
        return sorted(address for address in self.peers if address not in dead)

    def adjacency(self) -> dict[Address, set[Address]]:
        neighbours: dict[Address, set[Address]] = {address: set() for address in self.peers}
        for link in self.links:
            a, b = tuple(link)
            neighbours.setdefault(a, set()).add(b)
            neighbours.setdefault(b, set()).add(a)
        return neighbours

    def degrees(self) -> dict[Address, int]:
        """Each peer's degree in the overlay built (every link ever opened)."""
        return {address: len(neighbours) for address, neighbours in self.adjacency().items()}

    def expected_receivers(self, message: Message) -> list[Address]:
        return [peer for peer in self.live if peer != message.origin]

    def missing(self) -> list[tuple[Message, Address]]:
        """(message, live peer) pairs with no receipt yet."""
        gaps = []
        for key, message in self.messages.items():
            got = self.receipts.get(key, {})
            gaps.extend((message, peer) for peer in self.expected_receivers(message) if peer not in got)
        return gaps

    def delivery_counts(self) -> tuple[int, int]:
        """(receipts at live peers, receipts expected at live peers)."""
        live = set(self.live)
        expected = delivered = 0
        for key, message in self.messages.items():
            receivers = live - {message.origin}
            expected += len(receivers)
            delivered += len(receivers & self.receipts.get(key, {}).keys())
        return delivered, expected

    def dissemination_times(self) -> dict[tuple[Address, str], float]:
        """For each message every live peer has: seconds from creation to the last first receipt."""
        times = {}
        for key, message in self.messages.items():
            got = self.receipts.get(key, {})
            receivers = self.expected_receivers(message)
            if all(peer in got for peer in receivers):
                last = max((got[peer].time for peer in receivers), default=message.created)
                times[key] = max(0.0, last - message.created)
        return times

    def deaths(self) -> list[Death]:
        by_dead: dict[Address, list[LogEvent]] = defaultdict(list)
        for event in self.reports:
            by_dead[event.address("dead")].append(event)
        result = []
        for peer in sorted(self.dead):
            reports = by_dead.get(peer, [])
            result.append(Death(
                peer=peer,
                last_seen=self.peers[peer].last_seen,
                first_report=min((event.timestamp for event in reports), default=None),
                reporters=tuple(sorted({event.node for event in reports})),
                removed=dict(self.removals.get(peer, {})),
            ))
        return result

    def false_reports(self) -> list[LogEvent]:
        """Reports about a peer that logged a line after being reported, or stopped cleanly later."""
        false = []
        for event in self.reports:
            accused = self.peers.get(event.address("dead"))
            if accused is not None and accused.last_seen > event.timestamp:
                false.append(event)
        return false

    def summary(self) -> Summary:
        degrees = sorted(self.degrees().values()) or [0]
        delivered, expected = self.delivery_counts()
        times = list(self.dissemination_times().values())
        return Summary(
            peers=len(self.peers),
            live_peers=len(self.live),
            seeds=len(self.seeds),
            links=len(self.links),
            degree_min=degrees[0],
            degree_median=statistics.median(degrees),
            degree_max=degrees[-1],
            expected=expected,
            delivered=delivered,
            duplicates=len(self.duplicates),
            dissemination_median=statistics.median(times) if times else None,
            dissemination_p99=percentile(times, 0.99) if times else None,
            false_reports=len(self.false_reports()),
        )

