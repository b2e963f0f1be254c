"""What a lab run amounts to: the checks of a fault scenario, judged from its log.

Every fact about the run comes from :class:`runlog.Run` (the same reading of
the log as every other tool); the lab adds what only it knows, the
:class:`Facts`: which fault struck whom and when, who joined when, and which
peers are live at the end.  Each check is one :class:`Check`, so a test can
assert exactly the ones its scenario is about:

- ``detected``: every crashed or hung peer was reported by a neighbour within
  (misses + 1) ping intervals plus slack, and removed by every running seed
  that held it within two probe timeouts more;
- ``cut detected``: each side of a cut reported the other's peers;
- ``no false reports``: no peer was reported dead, nor removed, unless a
  fault kept it and its accuser apart shortly before (a removal only counts
  the accused's own faults);
- ``joins``: a peer that joins while a majority of seeds is down exits with a
  START_FAILED line; any other joins; no node exits by itself;
- ``relisted`` (after seeds that restart): every live peer is listed again
  at every restarted seed that listed it before, as the seed logs it;
- ``exactly once``: no peer process logs a message twice;
- ``nothing lost``: every message of a live peer reached every live peer
  connected to it (in its part of the overlay of live links at the end);
- ``connected`` and ``delivered`` (these need the overlay repaired after
  faults): the live peers form one overlay, and every message of a live peer
  reached every live peer;
- ``rejoined`` (needs rejoin): every peer back from a fault has live links
  and got every message made since it came back.

This module starts and signals nothing.
"""

from __future__ import annotations

import bisect
from collections import Counter, defaultdict
from dataclasses import dataclass, field

from gossipnet.logs import logformat
from gossipnet.logs.runlog import Run, components
from gossipnet.protocol.wire import Address

# LINK_CLOSED reasons of a dial that never opened a link (as runlog reads them).
_DIAL_FAILURES = ("cannot connect", "refused")
# Offenders a check names before it only counts the rest.
SHOWN = 3


@dataclass
class Incident:
    """A fault striking one node: from ``start`` to ``end`` (wall clock, as in the log)."""

    kind: str  # crash, hang, cut, seeds-down
    node: Address
    start: float
    end: float | None = None  # None: never undone
    neighbours: frozenset[Address] = frozenset()  # its live links when it struck


@dataclass
class Join:
    """A peer process started after the run was up (a join or a restart)."""

    node: Address | None  # None until its STARTED line is read (a loopback newcomer)
    pid: int
    time: float
    majority_up: bool  # whether a majority of the seeds was running when it started
    returncode: int | None = None
    error: str = ""


@dataclass
class Facts:
    """What the lab knows beyond the log."""

    seeds: list[Address]
    live: set[Address]  # peers running, and not hung or cut, at the end
    incidents: list[Incident] = field(default_factory=list)
    joins: list[Join] = field(default_factory=list)
    exits: list[str] = field(default_factory=list)  # nodes that exited without being killed
    ping_interval: float = 13.0
    ping_misses: int = 3
    probe_timeout: float = 3.0

    @property
    def slack(self) -> float:
        """What a loaded machine may add to a timer (a late tick, a slow probe)."""
        return 2 * self.ping_interval + 1.0

    @property
    def report_within(self) -> float:
        return (self.ping_misses + 1) * self.ping_interval + self.slack

    @property
    def removal_within(self) -> float:
        return self.report_within + 2 * self.probe_timeout


@dataclass(frozen=True)
class Check:
    name: str
    ok: bool
    detail: str
    needs_repair: bool = False  # holds only once peers repair the overlay and rejoin after faults

    def __str__(self) -> str:
        mark = "ok  " if self.ok else "FAIL"
        note = " (needs overlay repair/rejoin)" if self.needs_repair and not self.ok else ""
        return f"{mark}  {self.name}: {self.detail}{note}"


def _some(items: list[str]) -> str:
    more = f" and {len(items) - SHOWN} more" if len(items) > SHOWN else ""
    return "; ".join(items[:SHOWN]) + more


# --- Facts derived from the log -----------------------------------------------------------------


def lives(run: Run) -> dict[Address, list[float]]:
    """Each peer's STARTED times: one per process that ran on its address."""
    starts: dict[Address, list[float]] = defaultdict(list)
    for event in run.events:
        if event.event == logformat.STARTED and event.role == "peer":
            starts[event.node].append(event.timestamp)
    return starts


def live_links(run: Run, live: set[Address]) -> dict[Address, set[Address]]:
    """The overlay at the end of the log among ``live``: links both ends still hold.

    A peer's neighbours are its LINK_OPENED less its LINK_CLOSED (a dial that
    failed aside) and the neighbours it reported dead; a new process on an
    address starts with none.
    """
    held: dict[Address, set[Address]] = defaultdict(set)
    for event in run.events:
        if event.role != "peer":
            continue
        name = event.event
        if name == logformat.STARTED:
            held[event.node] = set()
        elif name == logformat.LINK_OPENED:
            held[event.node].add(event.address("neighbour"))
        elif name == logformat.LINK_CLOSED and not event.fields.get("reason", "").startswith(_DIAL_FAILURES):
            held[event.node].discard(event.address("neighbour"))
        elif name == logformat.DEAD_NODE_REPORTED:
            held[event.node].discard(event.address("dead"))
    return {peer: {other for other in held[peer] if other in live and peer in held[other]} for peer in live}


def _receipts(run: Run, starts: dict[Address, list[float]]) -> Counter:
    """(peer, life, origin, text) -> receipts logged; a life is the index of the peer's process."""
    counts: Counter = Counter()
    for event in run.events:
        if event.event == logformat.GOSSIP_RECEIVED:
            life = bisect.bisect_right(starts.get(event.node, []), event.timestamp) - 1
            counts[(event.node, life, event.address("origin"), event.fields["msg"])] += 1
    return counts


# --- The checks ----------------------------------------------------------------------------------


def judge(run: Run, facts: Facts) -> list[Check]:
    """Every check that applies to this run, in the order of the module docstring."""
    starts = lives(run)
    links = live_links(run, facts.live)
    checks = []
    if any(incident.kind in ("crash", "hang") for incident in facts.incidents):
        checks.append(_detected(run, facts))
    if any(incident.kind == "cut" for incident in facts.incidents):
        checks.append(_cut_detected(run, facts))
    checks.append(_no_false_reports(run, facts))
    checks.append(_joins(run, facts, starts))
    if any(incident.kind == "seeds-down" and incident.end is not None for incident in facts.incidents):
        checks.append(_relisted(run, facts))
    receipts = _receipts(run, starts)
    checks.append(_exactly_once(receipts))
    parts = components(links, links)
    part_of = {peer: index for index, part in enumerate(parts) for peer in part}
    checks.append(_delivery(run, facts, starts, receipts, "nothing lost",
                            lambda origin, peer: part_of.get(origin) == part_of.get(peer)))
    connected = len(parts) <= 1
    sizes = sorted((len(part) for part in parts), reverse=True)
    checks.append(Check("connected", connected,
                        f"the {len(facts.live)} live peers form one overlay" if connected else
                        f"the live peers fall into {len(parts)} parts of sizes {sizes}", needs_repair=True))
    checks.append(_delivery(run, facts, starts, receipts, "delivered", lambda origin, peer: True))
    revived = _revived(facts)
    if revived:
        checks.append(_rejoined(run, facts, starts, receipts, links, revived))
    if run.errors:
        checks.append(Check("log", False, f"{len(run.errors)} malformed lines"))
    return checks


def _reports_about(run: Run) -> dict[Address, list[logformat.LogEvent]]:
    reports = defaultdict(list)
    for event in run.reports:
        reports[event.address("dead")].append(event)
    return reports


def _seed_down(facts: Facts, seed: Address, start: float, end: float) -> bool:
    return any(incident.kind == "seeds-down" and incident.node == seed and incident.start <= end
               and (incident.end is None or incident.end >= start) for incident in facts.incidents)


def held_by(run: Run, peer: Address, before: float) -> set[Address]:
    """Seeds whose Peer List held ``peer`` at ``before``, as the seeds logged it (PL_ADDED and
    PL_REMOVED; a seed that starts again starts with an empty list)."""
    held: set[Address] = set()
    for event in run.events:
        if event.role != "seed" or event.timestamp > before:
            continue
        if event.event == logformat.STARTED:
            held.discard(event.node)
        elif event.event in (logformat.PL_ADDED, logformat.PL_REMOVED) and event.address("peer") == peer:
            (held.add if event.event == logformat.PL_ADDED else held.discard)(event.node)
    return held


def removals_since(run: Run, peer: Address, start: float) -> dict[Address, float]:
    """Each seed's first removal of ``peer`` at or after ``start`` (run.removals keeps only the
    first ever, and a peer back from a fault may be removed again)."""
    removed: dict[Address, float] = {}
    for event in run.events:
        if event.event == logformat.PL_REMOVED and event.timestamp >= start and event.address("peer") == peer:
            removed.setdefault(event.node, event.timestamp)
    return removed


def _detected(run: Run, facts: Facts) -> Check:
    reports = _reports_about(run)
    problems, worst_report, worst_removal = [], 0.0, 0.0
    struck = [incident for incident in facts.incidents if incident.kind in ("crash", "hang")]
    for incident in struck:
        peer, start = incident.node, incident.start
        first = min((event.timestamp for event in reports[peer] if event.timestamp >= start), default=None)
        if first is None or first - start > facts.report_within:
            late = "never reported" if first is None else f"first reported after {first - start:.1f} s"
            problems.append(f"{incident.kind} peer {peer} {late} (bound {facts.report_within:g} s)")
            continue
        worst_report = max(worst_report, first - start)
        deadline = start + facts.removal_within
        for seed in sorted(held_by(run, peer, start)):
            if _seed_down(facts, seed, start, deadline):
                continue
            removed = removals_since(run, peer, start).get(seed)
            if removed is None or removed > deadline:
                late = "never" if removed is None else f"after {removed - start:.1f} s"
                problems.append(f"{incident.kind} peer {peer} removed by seed {seed} {late} "
                                f"(bound {facts.removal_within:g} s)")
            else:
                worst_removal = max(worst_removal, removed - start)
    if problems:
        return Check("detected", False, _some(problems))
    return Check("detected", True, f"{len(struck)} crashed/hung peers reported within {worst_report:.1f} s "
                                   f"and removed by every seed that held them within {worst_removal:.1f} s")


def _cut_detected(run: Run, facts: Facts) -> Check:
    cut = [incident for incident in facts.incidents if incident.kind == "cut"]
    cut_nodes = {incident.node for incident in cut}
    problems = []
    for incident in cut:
        outside = incident.neighbours - cut_nodes
        if not outside:
            continue
        end = (incident.end if incident.end is not None else float("inf")) + facts.slack

        def within(event: logformat.LogEvent, incident: Incident = incident, end: float = end) -> bool:
            return incident.start <= event.timestamp <= end

        by_outside = [event for event in run.reports if event.address("dead") == incident.node
                      and event.node in outside and within(event)]
        by_it = [event for event in run.reports if event.node == incident.node
                 and event.address("dead") in outside and within(event)]
        if not by_outside:
            problems.append(f"cut peer {incident.node} was reported by none of its {len(outside)} neighbours outside")
        if not by_it:
            problems.append(f"cut peer {incident.node} reported none of its {len(outside)} neighbours outside")
    if problems:
        return Check("cut detected", False, _some(problems))
    return Check("cut detected", True, f"each of the {len(cut)} cut peers and its neighbours outside reported "
                                       "each other")


def _apart(facts: Facts, accused: Address, accuser: Address | None, time: float) -> bool:
    """A fault kept ``accused`` (or ``accuser``) cut off at some moment of the window a report covers."""
    window = (facts.ping_misses + 1) * facts.ping_interval + facts.slack
    return any(incident.node in (accused, accuser) and incident.kind != "seeds-down"
               and incident.start <= time and (incident.end is None or incident.end >= time - window)
               for incident in facts.incidents)


def false_reports(run: Run, facts: Facts) -> list[str]:
    """Reports and removals of peers that no fault had cut off from their accuser."""
    false = [f"{event.node} reported {event.address('dead')} at line {event.line}" for event in run.reports
             if not _apart(facts, event.address("dead"), event.node, event.timestamp)]
    return false + [f"seed {event.node} removed {event.address('peer')} at line {event.line}"
                    for event in run.events if event.event == logformat.PL_REMOVED
                    and not _apart(facts, event.address("peer"), None, event.timestamp)]


def _no_false_reports(run: Run, facts: Facts) -> Check:
    false = false_reports(run, facts)
    if false:
        return Check("no false reports", False, f"{len(false)} reports or removals of peers that were "
                                                f"reachable: {_some(false)}")
    return Check("no false reports", True, f"{len(run.reports)} reports, all of peers a fault had cut off")


def _joins(run: Run, facts: Facts, starts: dict[Address, list[float]]) -> Check:
    problems, failed_ok, joined = list(facts.exits), 0, 0
    for join in facts.joins:
        if join.node is None:
            problems.append(f"a peer started (pid {join.pid}) never logged STARTED")
            continue
        began = next((event.timestamp for event in run.events if event.event == logformat.STARTED
                      and event.node == join.node and event.fields.get("pid") == str(join.pid)), join.time)
        until = min((time for time in starts.get(join.node, []) if time > began), default=float("inf"))
        events = [event for event in run.events if event.node == join.node and event.role == "peer"
                  and began <= event.timestamp < until]
        failed = any(event.event == logformat.START_FAILED for event in events)
        union = any(event.event == logformat.PEER_LIST_UNION for event in events)
        if join.majority_up and not union:
            problems.append(f"peer {join.node} did not join although a majority of seeds was up"
                            + (f": {join.error}" if join.error else ""))
        elif not join.majority_up and not (failed and join.returncode == 1 and join.error):
            problems.append(f"peer {join.node} started with most seeds down did not exit with an error "
                            f"(exit status {join.returncode})")
        else:
            failed_ok += not join.majority_up
            joined += join.majority_up
    if problems:
        return Check("joins", False, _some(problems))
    return Check("joins", True, f"{joined} later peers joined, {failed_ok} refused with an error while most "
                                "seeds were down; no node exited by itself")


def _relisted(run: Run, facts: Facts) -> Check:
    """Every live peer a restarted seed listed before it went down is listed there again at the end."""
    problems, relearned, slowest = [], 0, 0.0
    end = run.events[-1].timestamp if run.events else 0.0
    for incident in facts.incidents:
        if incident.kind != "seeds-down" or incident.end is None:
            continue
        seed = incident.node
        back = min((event.timestamp for event in run.events if event.event == logformat.STARTED
                    and event.node == seed and event.timestamp >= incident.start), default=None)
        for peer in sorted(facts.live):
            if seed not in held_by(run, peer, incident.start):
                continue
            if back is None or seed not in held_by(run, peer, end):
                problems.append(f"seed {seed} does not list {peer} again after its restart")
                continue
            added = min(event.timestamp for event in run.events if event.event == logformat.PL_ADDED
                        and event.node == seed and event.timestamp >= back and event.address("peer") == peer)
            relearned += 1
            slowest = max(slowest, added - back)
    if problems:
        return Check("relisted", False, _some(problems))
    return Check("relisted", True, f"{relearned} listings of live peers at restarted seeds, each back within "
                                   f"{slowest:.1f} s of the seed's restart")


def duplicates(run: Run) -> int:
    """Messages a peer's process logged as received more than once (a new process on the same
    address starts afresh: the old messages it gets again are no duplicates)."""
    return sum(count > 1 for count in _receipts(run, lives(run)).values())


def _exactly_once(receipts: Counter) -> Check:
    twice = [f"{peer} got {text} {count} times" for (peer, _, _, text), count in receipts.items() if count > 1]
    if twice:
        return Check("exactly once", False, f"{len(twice)} messages received more than once: {_some(twice)}")
    return Check("exactly once", True, f"{sum(receipts.values())} receipts, none twice by one process")


def _final(starts: dict[Address, list[float]], peer: Address) -> int:
    return len(starts.get(peer, [])) - 1


def _expected(run: Run, facts: Facts, starts: dict[Address, list[float]]):
    """(key, message) of every message a live peer made in its present process."""
    for key, message in run.messages.items():
        if message.origin in facts.live and message.created >= starts.get(message.origin, [0.0])[-1]:
            yield key, message


def _count(run: Run, facts: Facts, starts, receipts: Counter, connected) -> tuple[int, int, list[str]]:
    """(receipts, receipts expected, what is missing) of the messages of live peers at the live
    peers ``connected(origin, peer)`` says they should reach."""
    expected = got = 0
    missing = []
    for (origin, text), message in _expected(run, facts, starts):
        for peer in facts.live:
            if peer == origin or not connected(origin, peer):
                continue
            expected += 1
            if receipts[(peer, _final(starts, peer), origin, text)]:
                got += 1
            else:
                missing.append(f"{peer} lacks message {message.number} of {origin}")
    return got, expected, missing


def delivery_counts(run: Run, facts: Facts) -> tuple[int, int]:
    """(receipts, receipts expected): every message a live peer made, at every other live peer."""
    starts = lives(run)
    got, expected, _ = _count(run, facts, starts, _receipts(run, starts), lambda origin, peer: True)
    return got, expected


def _delivery(run: Run, facts: Facts, starts, receipts: Counter, name: str, connected) -> Check:
    got, expected, missing = _count(run, facts, starts, receipts, connected)
    needs_repair = name == "delivered"
    if missing:
        return Check(name, False, f"{got} of {expected} receipts: {_some(missing)}", needs_repair)
    scope = "connected to it" if not needs_repair else "alive"
    return Check(name, True, f"{expected} of {expected} receipts: every message of a live peer reached "
                             f"every live peer {scope}", needs_repair)


def _revived(facts: Facts) -> dict[Address, float]:
    """Live peers back from a hang, a cut or a crash (restarted): when each came back."""
    back: dict[Address, float] = {}
    for incident in facts.incidents:
        if incident.kind in ("hang", "cut", "crash") and incident.end is not None and incident.node in facts.live:
            back[incident.node] = max(back.get(incident.node, 0.0), incident.end)
    return back


def _rejoined(run: Run, facts: Facts, starts, receipts: Counter, links, revived: dict[Address, float]) -> Check:
    problems = []
    for peer, back in sorted(revived.items()):
        since = [(origin, text) for (origin, text), message in _expected(run, facts, starts)
                 if origin != peer and message.created >= back]
        got = sum(bool(receipts[(peer, _final(starts, peer), origin, text)]) for origin, text in since)
        if not links.get(peer) or got < len(since) or not since:
            problems.append(f"{peer} has {len(links.get(peer, ()))} live links and got {got} of the "
                            f"{len(since)} messages made since it came back")
    if problems:
        return Check("rejoined", False, _some(problems), needs_repair=True)
    return Check("rejoined", True, f"{len(revived)} peers back from a fault are linked again and got every "
                                   "message made since", needs_repair=True)
