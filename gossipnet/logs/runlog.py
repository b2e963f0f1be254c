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

import bisect
import contextlib
import gc
import io
import math
import os
import statistics
from collections import Counter, defaultdict
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from operator import attrgetter
from pathlib import Path
from typing import NamedTuple

from gossipnet.logs import logformat, textlines
from gossipnet.logs.logformat import LogEvent, LogFormatError
from gossipnet.protocol.wire import Address


@contextlib.contextmanager
def collector_paused() -> Iterator[None]:
    """Pause the cyclic garbage collector while a big run is read and used; free it inside.

    A 500-peer log makes some ten million small objects and no cycles:
    reference counting frees them, and the collector would only rescan them
    as they pile up (a quarter of the visualizer's time).  Objects made while
    it is paused stay young, so its first pass after would scan them all
    once: free the run before leaving the block.
    """
    collecting = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if collecting:
            gc.enable()


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


class Receipt(NamedTuple):
    """A peer's log of receiving a message.

    A named tuple rather than a frozen dataclass: a 500-peer run holds 2.5
    million of them, and a named tuple is as immutable at a fifth of the cost.
    """

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


def nearest_rank(count: int, fraction: float) -> int:
    """The rank (from 1) of the ``fraction`` (0..1) percentile of ``count`` sorted values: ⌈fraction·count⌉.

    The nearest-rank definition, the same as numpy's ``method="inverted_cdf"``.
    """
    return min(max(math.ceil(fraction * count), 1), count)


def percentile(values: Iterable[float], fraction: float) -> float:
    """Nearest-rank percentile (``fraction`` in 0..1) of a non-empty collection."""
    ordered = sorted(values)
    return ordered[nearest_rank(len(ordered), fraction) - 1]


def spread(values: Sequence[float]) -> dict[str, float | None]:
    """Median, p99 (nearest rank) and max of ``values``; None for each when there are none.

    ``values`` is a list or a numpy array: either sorts a copy of itself, so a
    simulator's millions of delays sort in numpy, and the numbers come back
    as the values' own type.
    """
    if not len(values):
        return dict.fromkeys(("median", "p99", "max"))
    ordered = values.copy()
    ordered.sort()
    middle = len(ordered) // 2
    # As statistics.median (and numpy.median): the middle value, or the mean of the middle two.
    median = ordered[middle] if len(ordered) % 2 else (ordered[middle - 1] + ordered[middle]) / 2
    return {"median": median, "p99": ordered[nearest_rank(len(ordered), 0.99) - 1], "max": ordered[-1]}


def components(nodes: Iterable[Address], links: Iterable[Iterable[Address]] | Mapping[Address, Iterable[Address]]
               ) -> list[set[Address]]:
    """The connected parts of the overlay among ``nodes``, in the order of their least node.

    ``links`` are node pairs, or an adjacency (node -> neighbours); a link
    with an end outside ``nodes`` is left out.
    """
    import networkx as nx  # here: half a second to import, which the tools that never ask need not pay

    # The graph is built on indexes: an Address hashes in Python, an int in C.
    ordered = sorted(set(nodes))
    index = {node: number for number, node in enumerate(ordered)}
    pairs = ((a, b) for a, neighbours in links.items() for b in neighbours) if isinstance(links, Mapping) else links
    ends = ((index.get(a, -1), index.get(b, -1)) for a, b in pairs)
    graph = nx.Graph()
    graph.add_nodes_from(range(len(ordered)))
    graph.add_edges_from((i, j) for i, j in ends if i >= 0 and j >= 0)
    return [{ordered[number] for number in part} for part in nx.connected_components(graph)]


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
        # Lookups by the text of a field, each text read once: a big run repeats a
        # few hundred addresses and each message's key in millions of receipts.
        self._addresses: dict[str, Address] = {}
        self._receivers: dict[tuple[str, str], dict[Address, Receipt]] = {}  # (origin=, msg=) -> receipts[key]
        for event in events:
            self._add(event)

    @classmethod
    def load(cls, path: str | Path) -> Run:
        parsed = logformat.parse_log(path)
        return cls(parsed.events, parsed.errors)

    def add(self, events: Iterable[LogEvent], errors: Iterable[tuple[int, str, str]] = ()) -> None:
        """Fold in more of the log (events in log order), as when following a log that grows."""
        self.errors.extend(errors)
        for event in events:
            self._add(event)

    def _add(self, event: LogEvent) -> None:
        self.events.append(event)
        nodes = self.seeds if event.role == "seed" else self.peers
        node = nodes.get(event.node)
        if node is None:
            node = nodes[event.node] = Node(event.role, event.node, first_line=event.line)
        if event.timestamp > node.last_seen:
            node.last_seen = event.timestamp
        try:
            self._record(event, node)
        except (LogFormatError, KeyError, ValueError) as exc:
            self.errors.append((event.line, f"bad {event.event} line: {exc}", ""))

    def _address(self, event: LogEvent, key: str) -> Address:
        """``event.address(key)``, each distinct text parsed once."""
        address = self._addresses.get(event.fields.get(key))  # type: ignore[arg-type]
        if address is None:
            address = self._addresses[event.fields[key]] = event.address(key)
        return address

    def _record(self, event: LogEvent, node: Node) -> None:
        name = event.event
        if name == logformat.GOSSIP_RECEIVED:  # nearly every line of a big run
            fields = event.fields
            receivers = self._receivers.get((fields.get("origin"), fields.get("msg")))  # type: ignore[arg-type]
            if receivers is None:
                key = (self._address(event, "origin"), fields["msg"])
                receivers = self._receivers[fields["origin"], fields["msg"]] = self.receipts[key]
            sender = self._addresses.get(fields.get("from"))  # type: ignore[arg-type]
            receipt = Receipt(event.node, sender, event.timestamp, event.line)  # type: ignore[arg-type]
            if receivers.setdefault(event.node, receipt) is not receipt:
                self.duplicates.append(event)  # a duplicate's from= is never read
            elif sender is None:  # a from= not seen before: read it now, and no receipt if it is bad
                del receivers[event.node]
                receivers[event.node] = receipt._replace(sender=self._address(event, "from"))
        elif name == logformat.STARTED:
            node.started = event.timestamp
            node.settings = dict(event.fields)
        elif name == logformat.STOPPED:
            node.stopped = event.timestamp
        elif name == logformat.LINK_OPENED:
            self.links.add(frozenset((event.node, self._address(event, "neighbour"))))
        elif name == logformat.GOSSIP_GENERATED:
            text = event.fields["msg"]
            self.messages[(event.node, text)] = Message(event.node, text, int(event.fields["number"]),
                                                        event.timestamp, event.line)
        elif name == logformat.DEAD_NODE_REPORTED:
            self._address(event, "dead")
            self.reports.append(event)
        elif name == logformat.PL_REMOVED:
            self.removals[self._address(event, "peer")].setdefault(event.node, event.timestamp)

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

    def expected_receivers(self, message: Message, live: list[Address] | None = None) -> list[Address]:
        """Live peers other than the origin (``live``: self.live, computed once by a caller looping)."""
        return [peer for peer in (self.live if live is None else live) if peer != message.origin]

    def missing(self) -> list[tuple[Message, Address]]:
        """(message, live peer) pairs with no receipt yet."""
        gaps = []
        live = self.live
        for key, message in self.messages.items():
            got = self.receipts.get(key, {})
            gaps.extend((message, peer) for peer in self.expected_receivers(message, live) if peer not in got)
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
        live = self.live
        for key, message in self.messages.items():
            got = self.receipts.get(key, {})
            receivers = self.expected_receivers(message, live)
            if all(peer in got for peer in receivers):
                last = max((got[peer].time for peer in receivers), default=message.created)
                times[key] = max(0.0, last - message.created)
        return times

    def receipt_delays(self) -> dict[tuple[Address, str], list[float]]:
        """For each generated message, the sorted delays (s since its creation) of its first
        receipts at the live peers expected to get it; fewer than expected while it spreads."""
        live = set(self.live)
        delays = {}
        for key, message in self.messages.items():
            got = self.receipts.get(key, {})
            delays[key] = sorted(max(0.0, got[peer].time - message.created)
                                 for peer in live - {message.origin} if peer in got)
        return delays

    def hop_counts(self) -> dict[tuple[Address, str], dict[Address, int]]:
        """For each message received, each peer's hop count (:meth:`message_hops`)."""
        return {key: self.message_hops(key) for key in self.receipts}

    def message_hops(self, key: tuple[Address, str]) -> dict[Address, int]:
        """One message's hop counts: the origin is at 0, and a first receipt is one hop more
        than the first receipt of the neighbour it came from (``from=``).

        A peer whose chain of first receipts does not lead back to the origin
        (its sender's receipt is missing from the log, or a damaged log makes
        the chain loop) gets no count.
        """
        receivers = self.receipts.get(key, {})
        hops = {key[0]: 0}
        broken: set[Address] = set()
        for peer in receivers:
            chain: list[Address] = []
            node = peer
            while node not in hops and node not in broken:
                receipt = receivers.get(node)
                if receipt is None or node in chain:
                    break
                chain.append(node)
                node = receipt.sender
            if node in hops:
                for distance, link in enumerate(reversed(chain), start=hops[node] + 1):
                    hops[link] = distance
            else:
                broken.update(chain)
        return hops

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


# LINK_CLOSED reasons of a dial that never opened a link (peerlinks.Linking.dial).
_DIAL_FAILURES = ("cannot connect", "refused")


class LinkChange(NamedTuple):
    """A peer's link to a neighbour opened (or closed) at ``time``, as that peer logged it."""

    time: float
    node: Address
    neighbour: Address
    opened: bool


def link_changes(run: Run) -> list[LinkChange]:
    """Every LINK_OPENED, and every LINK_CLOSED of a link that was open (not a failed dial), in log order."""
    return [change for event in run.events if (change := link_change(run, event)) is not None]


def link_change(run: Run, event: LogEvent) -> LinkChange | None:
    """The link change a LINK_OPENED or LINK_CLOSED line of ``run`` records; None for any other line,
    a failed dial, or a damaged line (which Run already listed in run.errors)."""
    if event.role != "peer" or event.event not in (logformat.LINK_OPENED, logformat.LINK_CLOSED):
        return None
    opened = event.event == logformat.LINK_OPENED
    if not opened and event.fields.get("reason", "").startswith(_DIAL_FAILURES):
        return None
    try:
        return LinkChange(event.timestamp, event.node, run._address(event, "neighbour"), opened)
    except (LogFormatError, KeyError):
        return None


def _first_receipt(run: Run, event: LogEvent) -> tuple[Address, str] | None:
    """The message a GOSSIP_RECEIVED event is the peer's first receipt of, else None."""
    key = (event.address("origin"), event.fields["msg"])
    receipt = run.receipts.get(key, {}).get(event.node)
    return key if receipt is not None and receipt.line == event.line else None


def _forwards(run: Run) -> Iterator[tuple[LogEvent, set[Address]]]:
    """Each forwarding the rule makes, as the event and the neighbours it goes to.

    Senders do not log what they send, so this is derived: the origin sends
    the message to every neighbour it has when it logs GOSSIP_GENERATED; a
    peer that accepts it sends it to every neighbour it has when it logs the
    first receipt, except the one it came from.  A peer's neighbours at a
    moment are its LINK_OPENED less its LINK_CLOSED lines up to then (a
    closed link takes no more lines).
    """
    linked: dict[Address, set[Address]] = defaultdict(set)
    for event in run.events:
        name = event.event
        targets: set[Address] | None = None
        try:
            if name == logformat.LINK_OPENED:
                linked[event.node].add(event.address("neighbour"))
            elif name == logformat.LINK_CLOSED and not event.fields.get("reason", "").startswith(_DIAL_FAILURES):
                linked[event.node].discard(event.address("neighbour"))
            elif name == logformat.GOSSIP_GENERATED:
                targets = set(linked[event.node])
            elif name == logformat.GOSSIP_RECEIVED and _first_receipt(run, event) is not None:
                targets = linked[event.node] - {event.address("from")}
        except (LogFormatError, KeyError):
            continue  # Run already listed the damaged line in run.errors
        if targets is not None:
            yield event, targets


def forwarded_copies(run: Run) -> dict[tuple[Address, str], int]:
    """For each message, the copies the forwarding rule sent over links (derived: :func:`_forwards`).

    Catch-up replays when a link opens are not counted here (see :func:`catch_up_copies`).
    """
    copies: dict[tuple[Address, str], int] = {}
    for event, targets in _forwards(run):
        origin = event.node if event.event == logformat.GOSSIP_GENERATED else event.address("origin")
        key = (origin, event.fields["msg"])
        copies[key] = copies.get(key, 0) + len(targets)
    return copies


def binding_copies(run: Run) -> dict[Address, int]:
    """For each origin, the binding lines (KEY, PROTOCOL.md §4.3) forwarding sent ahead of its messages.

    A peer sends an origin's binding before the first message of that origin
    it forwards over each link (derived as in :func:`forwarded_copies`: once
    per sender, neighbour and origin).  A peer's own binding, which goes when
    a link opens, and bindings in catch-up replays are not counted here.
    """
    sent: set[tuple[Address, Address, Address]] = set()  # (sender, neighbour, origin)
    for event, targets in _forwards(run):
        if event.event == logformat.GOSSIP_RECEIVED:
            origin = event.address("origin")
            sent.update((event.node, neighbour, origin) for neighbour in targets)
    counts: dict[Address, int] = defaultdict(int)
    for _, _, origin in sent:
        counts[origin] += 1
    return dict(counts)


def catch_up_copies(run: Run) -> int:
    """Messages sent over links as catch-up replays: when a link opens, each end sends
    the other its whole Message List (what it had generated or accepted until then)."""
    held: dict[Address, int] = defaultdict(int)
    total = 0
    for event in run.events:
        name = event.event
        try:
            if name == logformat.GOSSIP_GENERATED or (
                    name == logformat.GOSSIP_RECEIVED and _first_receipt(run, event) is not None):
                held[event.node] += 1
            elif name == logformat.LINK_OPENED:
                total += held[event.node]
        except (LogFormatError, KeyError):
            continue
    return total



@dataclass(frozen=True)
class LogFiles:
    """Where the lines of a run read by :func:`read_logs` came from.

    Lines are numbered as if the files were one file, so every event and
    error keeps a single number; :meth:`locate` maps it back to its file.
    """

    paths: tuple[Path, ...]
    ends: tuple[int, ...]  # each file's last line number, counted across the files

    def locate(self, line: int) -> tuple[Path, int]:
        """(file, line number in that file) of a line number counted across the files."""
        index = min(bisect.bisect_left(self.ends, line), len(self.ends) - 1)
        return self.paths[index], line - (self.ends[index - 1] if index else 0)

    def describe(self, line: int) -> str:
        """``line 12`` when the run is one file, ``FILE:12`` when it is several."""
        path, number = self.locate(line)
        return f"line {number}" if len(self.paths) == 1 else f"{path}:{number}"


def read_logs(paths: Sequence[str | Path]) -> tuple[Run, LogFiles]:
    """One run from one or more log files (e.g. one per node), their events merged by time.

    Each file is read as :func:`logformat.parse_log` reads it, but a line
    longer than textlines.MAX_LINE_BYTES is skipped, not kept (a damaged log
    may hold a gigabyte without a line break), and listed as malformed.  Ties
    in time keep the files' order.  Raises ``OSError`` for a file that cannot be read.
    """
    files = tuple(Path(path) for path in paths)
    ends: list[int] = []
    long_lines: list[tuple[int, str, str]] = []

    def lines() -> Iterable[str]:
        count = 0
        for path in files:
            cuts: list[tuple[int, int]] = []
            for text in textlines.read_lines(path, textlines.REPLACE, cuts):
                count += 1
                if cuts and cuts[-1][0] == count - (ends[-1] if ends else 0):
                    long_lines.append((count, f"a line of {cuts[-1][1]:,} characters, longer than the "
                                              f"bound of {textlines.MAX_LINE_BYTES:,}: skipped", text[:80]))
                    text = ""
                yield text
            ends.append(count)

    parsed = logformat.parse_lines(lines())
    if long_lines:
        parsed.errors.extend(long_lines)
        parsed.errors.sort()
    if len(files) > 1:
        parsed.events.sort(key=attrgetter("timestamp"))
    return Run(parsed.events, parsed.errors), LogFiles(files, tuple(ends))


class LogTail:
    """A log still being written, read as it grows into one :class:`Run` (the live view).

    Each :meth:`poll` reads only the complete lines added since the last one
    (a half-written last line waits for the next poll) and numbers lines as
    :func:`logformat.parse_log` does.  A file that shrinks was replaced by a
    new run's log: reading starts over with a fresh :class:`Run`.

    With ``events``, only lines of those events are parsed into the Run; every
    line's event is still counted in ``counts``.  A reader beside a busy
    network (the benchmarks) then spends little of the CPU the network runs on.
    """

    def __init__(self, path: str | Path, events: Iterable[str] | None = None) -> None:
        self.path = Path(path)
        self.events = None if events is None else frozenset(events)
        self._start_over()

    def _start_over(self) -> None:
        self.run = Run([])
        self.counts: Counter[str] = Counter()  # lines per event name (filled when ``events`` is given)
        self.lines = 0  # lines read so far, blank ones included
        self._offset = 0
        self._partial = b""
        self._skipping = False  # inside a line longer than the bound, until its end

    @property
    def offset(self) -> int:
        """Bytes of the file read so far (a half-written last line included)."""
        return self._offset

    @classmethod
    def from_end(cls, path: str | Path) -> LogTail:
        """Follow only what is appended from now on: the runners' view of a log that
        already holds earlier runs.  Line numbers still count from the file's start."""
        tail = cls(path)
        try:
            with open(tail.path, "rb") as handle:
                while chunk := handle.read(1 << 20):
                    if (newline := chunk.rfind(b"\n")) >= 0:
                        tail.lines += chunk.count(b"\n")
                        tail._offset = handle.tell() - len(chunk) + newline + 1
        except FileNotFoundError:
            pass
        return tail  # a half-written last line is read again, whole, by the next poll

    def poll(self, max_bytes: int | None = None) -> int:
        """Read what was appended since the last poll, or its first ``max_bytes`` (a reader
        that must answer meanwhile, the dashboard, reads a big log a slice at a time);
        returns how many lines were added.

        A line longer than textlines.MAX_LINE_BYTES is skipped as it comes, not
        kept until it ends, and listed as malformed: a log without line breaks
        costs bounded memory.
        """
        try:
            with open(self.path, "rb") as handle:
                if os.fstat(handle.fileno()).st_size < self._offset:
                    self._start_over()
                handle.seek(self._offset)
                data = handle.read(-1 if max_bytes is None else max_bytes)
        except FileNotFoundError:
            return 0
        self._offset += len(data)
        data = self._partial + data
        if self._skipping:  # the rest of a line too long to keep
            end = data.find(b"\n")
            if end < 0:
                self._partial = b""
                return 0
            data, self._skipping = data[end + 1:], False
            self.lines += 1
        complete, newline, self._partial = data.rpartition(b"\n")
        events, errors = [], []
        # StringIO with newline=None splits lines exactly as parse_log's text-mode file does.
        for text in io.StringIO(complete.decode("utf-8", errors="replace") + "\n" if newline else "", newline=None):
            self.lines += 1
            if not text.strip():
                continue
            if self.events is not None:
                name = text.split(" ", 4)[3:4]
                if not name:
                    continue
                self.counts[name[0]] += 1
                if name[0] not in self.events:
                    continue
            try:
                events.append(logformat.parse_line(text, self.lines))
            except LogFormatError as exc:
                errors.append((self.lines, str(exc), text.rstrip("\n")))
        if len(self._partial) > textlines.MAX_LINE_BYTES:
            errors.append((self.lines + 1, f"a line longer than the bound of {textlines.MAX_LINE_BYTES:,} bytes: "
                                           "skipped", self._partial[:80].decode("utf-8", errors="replace")))
            self._partial, self._skipping = b"", True
        self.run.add(events, errors)
        return len(events) + len(errors)
