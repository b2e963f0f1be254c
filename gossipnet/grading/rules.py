"""What the rules of the assignment's report say about a run: the eight checks the grader makes.

:func:`grade` reads one run (one log file, or several merged by time) through
:func:`runlog.read_logs`, indexes what the rules look up (:class:`Grading`)
and checks each rule, returning one :class:`Verdict` per rule: the offences,
each with its node, its log lines and a reason, or, when it passes, a
summary.  :data:`RULES` says what each rule means, exactly as checked.

The facts come from :class:`runlog.Run`, so runs are counted as the runners
and the visualizer count them; message texts are read by wire.py's parsers.
Settings (seeds, gossip count and interval, ping interval and misses) come
from overrides, else each peer's STARTED line, else the run's most common
value.  This module judges; it prints nothing (grader.py does).
"""

from __future__ import annotations

import bisect
import statistics
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from itertools import pairwise
from operator import attrgetter

from gossipnet.config import majority
from gossipnet.logs import logformat, runlog
from gossipnet.logs.logformat import LogEvent
from gossipnet.protocol import topology
from gossipnet.protocol.wire import Address, DeadNodeReport, GossipMessage, ProtocolError

DEFAULT_TOLERANCE = 0.5  # s a loaded machine may add to a timer; see --tolerance

# What each rule means, exactly as it is checked.
RULES = {
    1: ("format", "every line parses as a log line (with the fields its event needs); every gossip text is "
        "<timestamp>:<IP>:<Msg#> with the origin's IP and the logged number, and every dead-node text is "
        "Dead Node:<DeadNode.IP>:<DeadNode.Port>:<timestamp>:<ReportingPeer.IP> naming the accused and the "
        "reporter (wire.py's parsers)"),
    2: ("registration", "every peer logged REGISTERED with at least floor(n/2)+1 distinct seeds, n being the "
        "seeds in its config (its STARTED seeds=, or --seeds), and a PEER_LIST for each of those seeds; a peer "
        "that logged START_FAILED fails"),
    3: ("message generation", "every peer that joined created messages numbered 1, 2, ... in order, "
        "gossip-interval apart by the timestamps in their texts (no more than 1% + 10 ms early, no more than "
        "the tolerance + 10% late), and exactly gossip-count of them; a peer whose log ends before its last "
        "message could be due is exempt from the count only. A new STARTED of the same address starts over"),
    4: ("no duplicates", "no peer logged GOSSIP_RECEIVED twice for the same message (same origin and text) in "
        "one incarnation, nor received a message it created itself: the Message List works"),
    5: ("delivery", "every live peer holds every message that some live peer of its connected part of the "
        "live overlay holds (the origin holds its own), unless the peer's log ends before the message was "
        "created; and every first receipt came from a neighbour: from= is a peer with which the receiver "
        "logged LINK_OPENED at or before the receipt. Live = joined and not dead, dead = reported dead or "
        "removed by a seed with no line of its own after that"),
    6: ("overlay connected", "the overlay built (every link either end logged as opened, over the peers that "
        "joined) is one connected graph; its degree distribution is summarised with topology.fit_power_law"),
    7: ("dead-node reports", "every DEAD_NODE_REPORTED is about a peer whose own log stops before the report "
        "(or starts over with a new STARTED): no live peer is reported dead; the report comes at least "
        "ping-misses x ping-interval (the reporter's settings) less the tolerance after the accused's last "
        "line (not counting a final STOPPED, which a clean stop writes after the peer stops answering); and "
        "every seed the accused REGISTERED with logs PL_REMOVED for it after the first true report, unless "
        "that seed's log ends within its probe timeout + the tolerance of the last report"),
    8: ("peer lists agree", "each seed's final Peer List, rebuilt from its PL_ADDED/PL_REMOVED lines (empty "
        "again at its STARTED), holds no dead peer (so none that another seed removed as dead) and no peer "
        "that never logged a line; and every live peer is still held by each seed it registered with (in its "
        "latest incarnation), unless it left that seed (PEER_LEFT: a peer that stops says so). Each peer "
        "registers with a majority only, so the lists hold different subsets "
        "of the live peers: agreeing means this, not equal sets"),
}
# What each rule needs to judge anything; with none of it, the rule is NOT CHECKED.
NEEDS = {
    1: "log lines (an empty log has none)",
    2: "peers: any line of a peer",
    3: "a peer that created a message, or whose log goes on past when its messages were due",
    4: "GOSSIP_RECEIVED lines",
    5: "messages created or received while some live peer was running, or GOSSIP_RECEIVED lines",
    6: "peers that joined or logged LINK_OPENED",
    7: "DEAD_NODE_REPORTED lines (a run in which no peer died has none)",
    8: "seeds' PL_ADDED lines, or live peers that REGISTERED with a seed whose lines are in the log",
}
SETTINGS = {  # name: (STARTED field of a peer, parser, flag)
    "seeds": ("seeds", int, "--seeds"),
    "gossip_count": ("gossip_count", int, "--gossip-count"),
    "gossip_interval": ("gossip_interval", float, "--gossip-interval"),
    "ping_interval": ("ping_interval", float, "--ping-interval"),
    "ping_misses": ("ping_misses", int, "--ping-misses"),
}
# Fields each event needs for the rules to read it, and which of them are addresses.
REQUIRED: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    logformat.REGISTERED: (("seed",), ("seed",)),
    logformat.PEER_LIST: (("seed", "peers"), ("seed",)),
    logformat.PEER_LIST_UNION: (("peers",), ()),
    logformat.LINK_OPENED: (("neighbour",), ("neighbour",)),
    logformat.GOSSIP_GENERATED: (("msg", "number"), ()),
    logformat.DEAD_NODE_REPORTED: (("dead", "msg"), ("dead",)),
    logformat.PL_ADDED: (("peer",), ("peer",)),
    logformat.PL_REMOVED: (("peer",), ("peer",)),
    logformat.PEER_LEFT: (("peer",), ("peer",)),
    logformat.DEAD_NODE_DECISION: (("dead", "reporter", "msg"), ("dead", "reporter")),
}


class UsageError(Exception):
    """A problem the user can fix (a file that cannot be read, a setting to pass): one line, exit status 2."""


@dataclass(frozen=True)
class Offence:
    """One thing that breaks a rule: whose, where, and why."""

    node: Address | None
    lines: tuple[int, ...]  # line numbers as runlog.read_logs counts them
    reason: str


PASS, FAIL, NOT_CHECKED = "pass", "fail", "not checked"


@dataclass
class Verdict:
    number: int
    detail: str = ""
    offences: list[Offence] = field(default_factory=list)
    # Items the rule looked at (lines, peers, receipts, ...).  A rule that looked
    # at none and found no offence is NOT CHECKED: it passes on no evidence.
    checked: int = 0

    @property
    def name(self) -> str:
        return RULES[self.number][0]

    @property
    def status(self) -> str:
        if self.offences:
            return FAIL
        return PASS if self.checked else NOT_CHECKED

    @property
    def passed(self) -> bool:
        return self.status == PASS


# --- The facts the rules share ------------------------------------------------------------


class Grading:
    """One run and everything the rules look up in it, indexed once."""

    def __init__(self, run: runlog.Run, files: runlog.LogFiles, overrides: dict[str, float | int | None],
                 tolerance: float = DEFAULT_TOLERANCE) -> None:
        self.run = run
        self.files = files
        self.overrides = overrides
        self.tolerance = tolerance
        self._addresses: dict[str, Address | None] = {}
        # Every event but the receipts (runlog holds those), by name and by node, in run order.
        self.events: dict[str, dict[Address, list[LogEvent]]] = defaultdict(lambda: defaultdict(list))
        received = logformat.GOSSIP_RECEIVED
        for event in run.events:
            if event.event != received:
                self.events[event.event][event.node].append(event)
        # The own lines of every peer declared dead, (time, event, line) in time order.
        self.timeline: dict[Address, list[tuple[float, str, int]]] = {}
        for peer in {self.address(event, "dead") for event in run.reports} | set(run.removals):
            if peer is not None:
                self.timeline[peer] = self._lines_of(peer)
        self.failed = set(self.events[logformat.START_FAILED])
        self.joined = sorted(set(run.peers) - self.failed)
        self.dead = self._dead()
        self.live = [peer for peer in self.joined if peer not in self.dead]
        self._defaults = {name: self._common(name) for name in SETTINGS}

    def _lines_of(self, node: Address) -> list[tuple[float, str, int]]:
        lines = [(event.timestamp, event.event, event.line)
                 for per_node in self.events.values() for event in per_node.get(node, ())]
        lines += [(receipt.time, logformat.GOSSIP_RECEIVED, receipt.line)
                  for receivers in self.run.receipts.values() if (receipt := receivers.get(node)) is not None]
        lines += [(event.timestamp, event.event, event.line) for event in self.run.duplicates if event.node == node]
        lines.sort()
        return lines

    def where(self, lines: Iterable[int]) -> str:
        return ", ".join(self.files.describe(line) for line in lines)

    def address(self, event: LogEvent, key: str) -> Address | None:
        """A field holding IP:port, or None if it does not (rule 1 reports that)."""
        text = event.fields.get(key)
        return None if text is None else self.parse_address(text)

    def parse_address(self, text: str) -> Address | None:
        """``text`` as IP:port, or None if it is not; each distinct text is parsed once."""
        if text not in self._addresses:
            try:
                self._addresses[text] = Address.parse(text)
            except ProtocolError:
                self._addresses[text] = None
        return self._addresses[text]

    def of(self, name: str, node: Address) -> list[LogEvent]:
        return self.events[name].get(node, [])

    def starts(self, node: Address) -> list[float]:
        return [event.timestamp for event in self.of(logformat.STARTED, node)]

    # --- Settings: a flag, else the peer's STARTED line, else the run's most common value

    def _common(self, name: str) -> float | int | None:
        if self.overrides.get(name) is not None:
            return self.overrides[name]
        values = Counter(value for node in self.run.peers.values()
                         if (value := _setting(node.settings, name)) is not None)
        if values:
            return values.most_common(1)[0][0]
        if name == "seeds" and self.run.seeds:
            return len(self.run.seeds)
        return None

    def setting(self, peer: Address | None, name: str) -> float | int:
        value = self.overrides.get(name)
        if value is None and peer in self.run.peers:
            value = _setting(self.run.peers[peer].settings, name)
        if value is None:
            value = self._defaults[name]
        if value is None:
            field_name, _, flag = SETTINGS[name]
            raise UsageError(f"cannot tell {name.replace('_', '-')}: no peer's STARTED line gives {field_name}=; "
                             f"pass {flag}")
        return value

    def describe_settings(self) -> dict[str, float | int | None]:
        return dict(self._defaults)

    # --- Who died

    def _dead(self) -> set[Address]:
        """Peers declared dead (reported, or removed by a seed) that logged nothing after a declaration."""
        declared: dict[Address, float] = {}
        for event in self.run.reports:
            dead = self.address(event, "dead")
            if dead is not None:
                declared[dead] = max(declared.get(dead, 0.0), event.timestamp)
        for event in self.all(logformat.PL_REMOVED):
            peer = self.address(event, "peer")
            if peer is not None:
                declared[peer] = max(declared.get(peer, 0.0), event.timestamp)
        return {peer for peer, time in declared.items()
                if peer in self.run.peers and self.run.peers[peer].last_seen <= time}

    def all(self, name: str) -> list[LogEvent]:
        events = [event for per_node in self.events[name].values() for event in per_node]
        events.sort(key=attrgetter("timestamp"))
        return events


def _setting(settings: dict[str, str], name: str) -> float | int | None:
    field_name, parse, _ = SETTINGS[name]
    try:
        value = parse(settings[field_name])
    except (KeyError, ValueError):
        return None
    return value if value > 0 else None


# --- The rules --------------------------------------------------------------------------


def rule_format(g: Grading) -> Verdict:
    verdict = Verdict(1)
    for line, reason, text in g.run.errors:
        node = _node_of(text)
        verdict.offences.append(Offence(node, (line,), reason))
    for name, (required, addresses) in REQUIRED.items():
        for node, events in g.events[name].items():
            for event in events:
                missing = [key for key in required if key not in event.fields]
                bad = [key for key in addresses if key in event.fields and g.address(event, key) is None]
                if "peers" in event.fields and not all(g.parse_address(text) for text in
                                                       filter(None, event.fields["peers"].split(","))):
                    bad.append("peers")
                if missing or bad:
                    reason = "; ".join([*(f"no {key}=" for key in missing),
                                        *(f"{key}= is not {'a list of ' if key == 'peers' else ''}IP:port"
                                          for key in bad)])
                    verdict.offences.append(Offence(node, (event.line,), f"{name}: {reason}"))
    texts = 0
    for node, events in g.events[logformat.GOSSIP_GENERATED].items():
        for event in events:
            texts += 1
            try:
                message = GossipMessage.from_text(event.fields.get("msg", ""), node)
                if event.fields.get("number") != str(message.number):
                    raise ProtocolError(f"number={event.fields.get('number')} but the text says {message.number}")
            except ProtocolError as exc:
                verdict.offences.append(Offence(node, (event.line,), f"gossip text: {exc}"))
    duplicates = defaultdict(list)
    for event in g.run.duplicates:
        duplicates[(g.address(event, "origin"), event.fields["msg"])].append(event.line)
    for (origin, text), receivers in g.run.receipts.items():
        texts += 1
        try:
            GossipMessage.from_text(text, origin)
        except ProtocolError as exc:
            lines = sorted([receipt.line for receipt in receivers.values()] + duplicates[(origin, text)])
            verdict.offences.append(Offence(origin, tuple(lines), f"received gossip text: {exc}"))
    for name, reporter_key in ((logformat.DEAD_NODE_REPORTED, None), (logformat.DEAD_NODE_DECISION, "reporter")):
        for node, events in g.events[name].items():
            for event in events:
                texts += 1
                reporter = node if reporter_key is None else g.address(event, reporter_key)
                dead = g.address(event, "dead")
                if reporter is None or dead is None or "msg" not in event.fields:
                    continue  # reported above
                try:
                    report = DeadNodeReport.from_text(event.fields["msg"], reporter)
                    if report.dead != dead:
                        raise ProtocolError(f"the text names {report.dead}, dead= names {dead}")
                except ProtocolError as exc:
                    verdict.offences.append(Offence(node, (event.line,), f"dead-node text: {exc}"))
    total = len(g.run.events) + len(g.run.errors)
    verdict.detail = f"{total} lines; {texts} message texts checked"
    verdict.checked = total
    return verdict


def _node_of(text: str) -> Address | None:
    """The node of a line that did not parse, when its third word says."""
    words = text.split(" ", 3)
    try:
        return Address.parse(words[2]) if len(words) > 2 else None
    except ProtocolError:
        return None


def rule_registration(g: Grading) -> Verdict:
    verdict = Verdict(2)
    for peer in sorted(g.run.peers):
        for event in g.of(logformat.START_FAILED, peer):
            verdict.offences.append(Offence(peer, (event.line,), f"START_FAILED: {event.fields.get('reason', '')}"))
        registered: dict[Address, LogEvent] = {}
        for event in g.of(logformat.REGISTERED, peer):
            seed = g.address(event, "seed")
            if seed is not None:
                registered.setdefault(seed, event)
        lists = {g.address(event, "seed") for event in g.of(logformat.PEER_LIST, peer)}
        verdict.checked += 1
        if peer in g.failed and not registered:
            continue
        n = g.setting(peer, "seeds")
        need = majority(n)
        if len(registered) < need:
            lines = tuple(event.line for event in registered.values()) or (g.run.peers[peer].first_line,)
            verdict.offences.append(Offence(peer, lines, f"registered with {len(registered)} of {n} seeds; "
                                                         f"a majority is {need}"))
        for seed, event in registered.items():
            if seed not in lists:
                verdict.offences.append(Offence(peer, (event.line,), f"no PEER_LIST logged for seed {seed}"))
    if g.run.peers:
        n = g.setting(None, "seeds")
        verdict.detail = f"{len(g.run.peers)} peers; n={n} seeds, a majority is {majority(n)}"
    else:
        verdict.detail = "no peers"
    return verdict


def rule_generation(g: Grading) -> Verdict:
    verdict = Verdict(3)
    made = 0
    for peer in g.joined:
        count, interval = g.setting(peer, "gossip_count"), g.setting(peer, "gossip_interval")
        early, late = 0.01 + 0.01 * interval, g.tolerance + 0.1 * interval
        node = g.run.peers[peer]
        starts = g.starts(peer) or [node.started or node.last_seen]
        incarnations: list[list[tuple[float, LogEvent]]] = [[] for _ in starts]
        for event in sorted(g.of(logformat.GOSSIP_GENERATED, peer), key=attrgetter("timestamp")):
            index = max(0, bisect.bisect_right(starts, event.timestamp) - 1)
            incarnations[index].append((_created(event), event))
        anchors = [event.line for event in g.of(logformat.STARTED, peer)] or [node.first_line]
        for index, generated in enumerate(incarnations):
            made += len(generated)
            ends = starts[index + 1] if index + 1 < len(starts) else node.last_seen
            verdict.checked += _check_generated(verdict, peer, generated, count, interval, early, late,
                                                starts[index], ends, anchors[min(index, len(anchors) - 1)])
    verdict.detail = f"{made} messages created"
    return verdict


def _created(event: LogEvent) -> float:
    """When a message was created: the timestamp of its text, else the time of its line."""
    try:
        return float(event.fields["msg"].split(":", 1)[0])
    except (KeyError, ValueError):
        return event.timestamp


def _check_generated(verdict: Verdict, peer: Address, generated: list[tuple[float, LogEvent]], count: int,
                     interval: float, early: float, late: float, started: float, ends: float, anchor: int) -> bool:
    """Check one incarnation's messages; ``anchor`` is the line named when it made none.  False when there
    was nothing to judge: no message, and the log ends before the first could be missed."""
    for number, (_, event) in enumerate(generated, start=1):
        if event.fields.get("number") != str(number):
            verdict.offences.append(Offence(peer, (event.line,), f"message number {event.fields.get('number')} "
                                                                 f"where {number} was due"))
            break
    for (before, first), (after, second) in pairwise(generated):
        gap = after - before
        if not interval - early <= gap <= interval + late:
            verdict.offences.append(Offence(peer, (first.line, second.line),
                                            f"messages {first.fields.get('number')} and "
                                            f"{second.fields.get('number')} are {gap:.3f} s apart; the interval "
                                            f"is {interval:g} s"))
    first_time = generated[0][0] if generated else started
    last_due = first_time + (count - 1) * (interval + late)
    if len(generated) > count:
        extra = tuple(event.line for _, event in generated[count:])
        verdict.offences.append(Offence(peer, extra, f"created {len(generated)} messages; gossip-count is {count}"))
    elif len(generated) < count and ends >= last_due:
        lines = (generated[-1][1].line,) if generated else (anchor,)
        verdict.offences.append(Offence(peer, lines, f"created {len(generated)} messages; gossip-count is "
                                                     f"{count}, and its log goes on past when the last was due"))
    return bool(generated) or ends >= last_due


def rule_duplicates(g: Grading) -> Verdict:
    verdict = Verdict(4)
    for event in g.run.duplicates:
        origin = g.address(event, "origin")
        first = g.run.receipts[(origin, event.fields["msg"])][event.node]
        if any(first.time < start <= event.timestamp for start in g.starts(event.node)):
            continue  # a restarted peer starts with an empty Message List
        verdict.offences.append(Offence(event.node, (first.line, event.line),
                                        f"received {event.fields['msg']} (origin {origin}) again"))
    for (origin, text), receivers in g.run.receipts.items():
        if origin in receivers:
            verdict.offences.append(Offence(origin, (receivers[origin].line,), f"received its own message {text}"))
    verdict.detail = f"{sum(map(len, g.run.receipts.values()))} first receipts"
    verdict.checked = sum(map(len, g.run.receipts.values())) + len(g.run.duplicates)
    return verdict


def rule_delivery(g: Grading) -> Verdict:
    verdict = Verdict(5)
    # The hot loops key peers by (ip, port): hashing and comparing a tuple is done in C,
    # while Address's dataclass __hash__ and __eq__ run in Python, once per receipt.
    live = {(peer.ip, peer.port): peer for peer in g.live}
    parts = runlog.components(live.values(), g.run.links)
    part = {peer: label for label, members in enumerate(parts) for peer in members}
    members = {label: {(peer.ip, peer.port) for peer in peers} for label, peers in enumerate(parts)}
    ending = sorted((g.run.peers[peer].last_seen, key) for key, peer in live.items())
    opened: dict[tuple[str, int], dict[tuple[str, int], float]] = defaultdict(dict)
    for peer, events in g.events[logformat.LINK_OPENED].items():
        for event in events:
            neighbour = g.address(event, "neighbour")
            if neighbour is not None:
                opened[(peer.ip, peer.port)].setdefault((neighbour.ip, neighbour.port), event.timestamp)
    missing: dict[tuple[str, int], list[tuple[runlog.Message | None, tuple[Address, str]]]] = defaultdict(list)
    strays: dict[Address, list[tuple[int, Address]]] = defaultdict(list)
    expected_total = 0
    nowhere: dict[tuple[str, int], float] = {}
    for key in g.run.messages.keys() | g.run.receipts.keys():
        origin, message = (key[0].ip, key[0].port), g.run.messages.get(key)
        got = set()
        for peer, receipt in g.run.receipts.get(key, {}).items():
            receiver, sender = (peer.ip, peer.port), receipt.sender
            got.add(receiver)
            at = opened.get(receiver, nowhere).get((sender.ip, sender.port))
            if at is None or at > receipt.time:
                strays[peer].append((receipt.line, sender))
        holders = got & live.keys()
        if message is not None and origin in live:
            holders.add(origin)
        if len(members) == 1:
            expected = set(next(iter(members.values()))) if holders else set()
        else:
            expected = set().union(*(members[part[live[peer]]] for peer in holders))
        expected.discard(origin)
        if message is not None:
            created = message.created
        else:
            created = min(receipt.time for receipt in g.run.receipts[key].values())
        expected.difference_update(peer for _, peer in ending[:bisect.bisect_left(ending, (created,))])
        expected_total += len(expected)
        for peer in expected - got:
            missing[peer].append((message, key))
    for peer, gaps in missing.items():
        lines = sorted(message.line for message, _ in gaps if message is not None)
        origin, text = gaps[0][1]
        verdict.offences.append(Offence(live[peer], tuple(lines), f"never received {len(gaps)} message(s) of its "
                                                                  f"part of the overlay (lines: where each was "
                                                                  f"created), e.g. {text} from {origin}"))
    for peer, receipts in strays.items():
        receipts.sort()
        senders = sorted({str(sender) for _, sender in receipts})
        verdict.offences.append(Offence(peer, tuple(line for line, _ in receipts),
                                        f"{len(receipts)} first receipt(s) from a peer it had not logged "
                                        f"LINK_OPENED with: {', '.join(senders[:5])}"))
    parts = f" in {len(members)} parts" if len(members) > 1 else ""
    verdict.detail = f"{expected_total} receipts expected at {len(live)} live peers{parts}, all checked for a link"
    verdict.checked = expected_total + sum(map(len, g.run.receipts.values()))
    return verdict


def rule_overlay(g: Grading) -> Verdict:
    verdict = Verdict(6)
    peers = set(g.joined)
    for link in g.run.links:
        peers.update(link)
    part = {peer: label for label, members in enumerate(runlog.components(peers, g.run.links)) for peer in members}
    sizes = Counter(part.values())
    if len(sizes) > 1:
        main = sizes.most_common(1)[0][0]
        for peer in sorted(part):
            if part[peer] != main:
                node = g.run.peers.get(peer)
                verdict.offences.append(Offence(peer, (node.first_line,) if node else (),
                                                f"in a part of {sizes[part[peer]]} peer(s) cut off from the "
                                                f"{sizes[main]} others"))
    degrees = {peer: 0 for peer in peers}
    for link in g.run.links:
        for end in link:
            degrees[end] += 1
    values = sorted(degrees.values())
    verdict.checked = len(values)
    if not values:
        verdict.detail = "no peers"
        return verdict
    summary = (f"{len(values)} peers, {len(g.run.links)} links in {len(sizes)} part(s); degree min "
               f"{values[0]}, median {statistics.median(values):g}, max {values[-1]}")
    try:
        fit = topology.fit_power_law(values)
        summary += (f"; power law P(k) ~ k^-{fit.alpha:.2f} for k >= {fit.k_min} ({fit.tail} peers), "
                    f"against an exponential: {fit.verdict}")
    except Exception as exc:  # a handful of peers is too few to fit; that is no failure of the run
        summary += f"; no power-law fit ({exc})"
    verdict.detail = summary
    return verdict


def rule_reports(g: Grading) -> Verdict:
    verdict = Verdict(7)
    true_reports: dict[Address, list[LogEvent]] = defaultdict(list)
    silences = []
    for event in g.all(logformat.DEAD_NODE_REPORTED):
        reporter, dead = event.node, g.address(event, "dead")
        if dead is None:
            continue  # rule 1
        verdict.checked += 1
        timeline = g.timeline.get(dead, [])
        if not timeline:
            verdict.offences.append(Offence(reporter, (event.line,), f"reported {dead}, which never logged a line"))
            continue
        after = bisect.bisect_right(timeline, (event.timestamp, "\uffff"))
        if after < len(timeline) and timeline[after][1] != logformat.STARTED:
            verdict.offences.append(Offence(reporter, (event.line, timeline[after][2]),
                                            f"reported {dead} dead, but it logged "
                                            f"{g.where([timeline[after][2]])} after the report"))
            continue
        if after == 0:
            verdict.offences.append(Offence(reporter, (event.line,), f"reported {dead} before its first line"))
            continue
        last = after - 1
        if timeline[last][1] == logformat.STOPPED and last > 0:
            last -= 1  # a clean stop is logged after the peer stopped answering: the line before is its last word
        last_time, _, last_line = timeline[last]
        silence = event.timestamp - last_time
        bound = g.setting(reporter, "ping_misses") * g.setting(reporter, "ping_interval")
        if silence < bound - g.tolerance:
            verdict.offences.append(Offence(reporter, (event.line, last_line),
                                            f"reported {dead} {silence:.3f} s after its last line; ping-misses x "
                                            f"ping-interval is {bound:g} s"))
            continue
        silences.append(silence)
        true_reports[dead].append(event)
    removed: dict[tuple[Address, Address], list[float]] = defaultdict(list)  # (seed, peer) -> times
    for seed, events in g.events[logformat.PL_REMOVED].items():
        for event in events:
            removed[(seed, g.address(event, "peer"))].append(event.timestamp)
    holders_total = 0
    for dead, reports in true_reports.items():
        first, last = reports[0], reports[-1]
        for seed, registration in _holders(g, dead, first.timestamp).items():
            holders_total += 1
            if any(time >= first.timestamp - 0.001 for time in removed.get((seed, dead), [])):
                continue
            node = g.run.seeds.get(seed)
            probe = _float(node.settings.get("probe_timeout")) if node else None
            if node is not None and node.last_seen < last.timestamp + (probe or 0.0) + g.tolerance:
                continue  # the seed was stopped before it could decide
            verdict.offences.append(Offence(seed, (first.line, registration.line),
                                            f"held {dead} (it registered there) but never removed it after the "
                                            f"report at {g.where([first.line])}"))
    if silences:
        verdict.detail = (f"{len(silences)} true reports about {len(true_reports)} dead peer(s), "
                          f"{min(silences):.2f} to {max(silences):.2f} s after the accused's last line; "
                          f"{holders_total} seeds held them")
    else:
        verdict.detail = "no true dead-node reports" if verdict.checked else "no dead-node reports"
    return verdict


def _holders(g: Grading, peer: Address, before: float) -> dict[Address, LogEvent]:
    """Seeds ``peer`` registered with in its incarnation current at ``before``: seed -> REGISTERED line."""
    starts = [time for time in g.starts(peer) if time <= before]
    since = starts[-1] if starts else float("-inf")
    holders: dict[Address, LogEvent] = {}
    for event in g.of(logformat.REGISTERED, peer):
        seed = g.address(event, "seed")
        if seed is not None and since <= event.timestamp <= before:
            holders.setdefault(seed, event)
    return holders


def _float(text: str | None) -> float | None:
    try:
        return float(text) if text is not None else None
    except ValueError:
        return None


def rule_peer_lists(g: Grading) -> Verdict:
    verdict = Verdict(8)
    held: dict[Address, dict[Address, LogEvent]] = {}  # seed -> peer -> its PL_ADDED line
    dropped: dict[Address, dict[Address, LogEvent]] = defaultdict(dict)  # seed -> peer -> its PL_REMOVED line
    last_removed: dict[Address, LogEvent] = {}
    events: list[LogEvent] = []
    left: dict[Address, set[Address]] = defaultdict(set)  # seed -> peers that left it (and did not come back)
    for name in (logformat.STARTED, logformat.PL_ADDED, logformat.PL_REMOVED, logformat.PEER_LEFT):
        for node, per_node in g.events[name].items():
            if node in g.run.seeds:
                events.extend(per_node)
    events.sort(key=attrgetter("timestamp"))
    for event in events:
        pl = held.setdefault(event.node, {})
        if event.event == logformat.STARTED:
            pl.clear()
            continue
        peer = g.address(event, "peer")
        if peer is None:
            continue  # rule 1
        if event.event == logformat.PL_ADDED:
            pl[peer] = event
            dropped[event.node].pop(peer, None)
            left[event.node].discard(peer)
        elif event.event == logformat.PEER_LEFT:  # it stopped and said so: out of the list, not dead
            pl.pop(peer, None)
            left[event.node].add(peer)
        else:
            pl.pop(peer, None)
            dropped[event.node][peer] = event
            last_removed[peer] = event
    for seed in sorted(held):
        verdict.checked += len(held[seed])
        for peer, added in sorted(held[seed].items()):
            if peer not in g.run.peers:
                verdict.offences.append(Offence(seed, (added.line,), f"holds {peer}, which never logged a line"))
            elif peer in g.dead:
                removal = last_removed.get(peer)
                by = f" (seed {removal.node} removed it)" if removal else ""
                lines = (added.line, removal.line) if removal else (added.line,)
                verdict.offences.append(Offence(seed, lines, f"still holds {peer}, which is dead{by}"))
    for peer in g.live:
        for seed, registration in _holders(g, peer, float("inf")).items():
            verdict.checked += seed in g.run.seeds
            if seed in g.run.seeds and peer not in held.get(seed, {}) and peer not in left[seed]:
                removal = dropped[seed].get(peer)
                lines = (removal.line,) if removal else (registration.line,)
                how = "removed it" if removal else "has no PL_ADDED for it"
                verdict.offences.append(Offence(seed, lines, f"{how}, but {peer} is live and registered there"))
    sizes = ", ".join(str(len(held[seed])) for seed in sorted(held))
    verdict.detail = f"final Peer List sizes {sizes or 'none'}; {len(g.live)} live peers"
    return verdict


RULE_CHECKS: list[Callable[[Grading], Verdict]] = [
    rule_format, rule_registration, rule_generation, rule_duplicates, rule_delivery, rule_overlay, rule_reports,
    rule_peer_lists,
]


def grade(paths: list[str], overrides: dict[str, float | int | None] | None = None,
          tolerance: float = DEFAULT_TOLERANCE) -> tuple[Grading, list[Verdict]]:
    """Read the run in ``paths`` and check every rule.  Raises UsageError."""
    for path in paths:
        try:
            with open(path, "rb"):
                pass
        except OSError as exc:
            raise UsageError(f"cannot read {path}: {exc.strerror or exc}") from None
    with runlog.collector_paused():
        run, files = runlog.read_logs(paths)
        if not run.events and not run.errors:
            raise UsageError(f"no log lines in {', '.join(paths)}")
        grading = Grading(run, files, overrides or {}, tolerance)
        return grading, [check(grading) for check in RULE_CHECKS]
