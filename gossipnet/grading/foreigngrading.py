"""What can be judged of any student's output files: the rules the grader checks on a foreign submission.

:func:`grade` reads a submission through foreignlog.read_submission and checks
each rule in :data:`RULES`, returning one verdict per rule: PASS, FAIL, or NOT
CHECKED when the files hold nothing the rule can judge (:data:`NEEDS` says
what each needs).  A rule never passes on no evidence.  The rules ask only
what the handout fixes: its two texts, and what each node must write.  This
module judges; it prints nothing (grader.py does).
"""

from __future__ import annotations

import re
import statistics
from collections import Counter, defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from itertools import pairwise
from pathlib import Path

from gossipnet.config import PeerSettings
from gossipnet.grading import rules as grading
from gossipnet.grading.foreignlog import ReportSeen, Sighting, Submission, read_submission
from gossipnet.grading.rules import Offence

# The handout's numbers (the peer's defaults), used for a student's files when no flag gives them.
DEFAULT_GOSSIP_COUNT = PeerSettings.gossip_count
DEFAULT_GOSSIP_INTERVAL = PeerSettings.gossip_interval
FOREIGN_DEFAULTS = {"gossip_count": DEFAULT_GOSSIP_COUNT, "gossip_interval": DEFAULT_GOSSIP_INTERVAL}

RULES = {
    1: ("output present", "every file holds text (not empty, not binary); when every line's node is known, every "
        "node named in a peer list wrote lines of its own"),
    2: ("peer lists", "every peer logged a peer list it got from the seeds (an empty list counts); when no peer is "
        "known by name, the peers' output holds one"),
    3: ("gossip texts", "every gossip text is <timestamp>:<IP>:<Msg#>, or a variant the verdict names (the origin's "
        "port, a word before the number, an integer, millisecond or date-time timestamp); a text whose IP, port "
        "or date is invalid fails"),
    4: ("message count", "per origin: gossip-count messages, numbered in order from 0 or 1 with no gap and no "
        "number twice; fewer only when the origin was reported dead or the output ends before the last was due"),
    5: ("message spacing", "per origin: each message gossip-interval after the one before it by the times in "
        "their texts, no more than 1% + 10 ms early and no more than the tolerance + 10% late, give or take the "
        "timestamps' resolution"),
    6: ("no duplicates", "no node logged one message as received twice (a line saying it ignored a copy is "
        "fine); a line repeated verbatim right after itself is an echo, not a duplicate"),
    7: ("delivery", "every peer logged every message created while it was known to run (from its first to its "
        "last time, less the tolerance), except its own; a message whose origin is unknown and that several "
        "peers lack is one offence naming them all (one of them may be its origin), blaming none"),
    8: ("dead-node reports", "every Dead Node text is Dead Node:<IP>:<Port>:<timestamp>:<IP> or a variant the "
        "verdict names, its reporter IP is the IP of the peer that logged it, a peer logged it (not only seeds), "
        "and, when seeds' output is there, a seed recorded it (same dead node and reporter)"),
    9: ("registrations at seeds", "every seed logged a connection or registration request of a peer"),
}
NEEDS = {
    1: "files (always checked)",
    2: "peers known by a tag or a file name, or else any line understood",
    3: "gossip texts",
    4: "gossip texts whose origin can be told: a port in the text, a node that logged making it, the only node "
       "at its IP, or the one peer that never logged it (with no node known, texts of several origins sharing "
       "one IP cannot be told apart)",
    5: "two messages of one origin told apart as for rule 4",
    6: "gossip texts received in lines whose node is known (a tag in the line, or one file per node)",
    7: "peers known by name, each with times (its lines' own times or its texts'), and messages with times",
    8: "Dead Node texts (a run in which no peer died has none)",
    9: "seeds known by a tag or a file name (outputseed.txt, seed_5001.log)",
}


class Verdict(grading.Verdict):
    """A foreign rule's verdict: as grading.Verdict, named from this module's RULES."""

    @property
    def name(self) -> str:
        return RULES[self.number][0]


@dataclass(frozen=True)
class Settings:
    gossip_count: int = DEFAULT_GOSSIP_COUNT
    gossip_interval: float = DEFAULT_GOSSIP_INTERVAL
    tolerance: float = grading.DEFAULT_TOLERANCE


def grade(paths: Sequence[str | Path], settings: Settings = Settings()) -> tuple[Submission, list[Verdict]]:
    """Read ``paths`` as one submission and check every rule.  Raises grading.UsageError."""
    try:
        submission = read_submission(paths)
    except OSError as exc:
        raise grading.UsageError(f"cannot read {exc.filename}: {exc.strerror or exc}") from None
    return submission, [check(submission, settings) for check in RULE_CHECKS]


def _first_lines(submission: Submission) -> dict[str, int]:
    """Each gossip text -> the first line it appears on."""
    first: dict[str, int] = {}
    for sighting in submission.gossip:
        first.setdefault(sighting.gossip.text, sighting.line)
    return first


def rule_output(s: Submission, settings: Settings) -> Verdict:
    verdict = Verdict(1)
    for index, summary in enumerate(s.summaries):
        verdict.checked += 1
        start = s.files.ends[index - 1] if index else 0
        if summary.binary:
            verdict.offences.append(Offence(None, (start + 1,), f"{summary.path} holds NUL bytes: not text output"))
        elif summary.lines == summary.blank:
            verdict.offences.append(Offence(None, (), f"{summary.path} is empty"))
    if not s.summaries:
        verdict.offences.append(Offence(None, (), "no output file"))
    by_address = all(re.fullmatch(r"[\d.*]+:\d+", label) for label in s.nodes)
    if s.nodes and by_address and not any(summary.nameless for summary in s.summaries):
        listed: dict[str, int] = {}
        for seen in s.peer_lists:
            for address in seen.peers:
                listed.setdefault(address, seen.lines[0])
        for address, line in sorted(listed.items()):
            verdict.checked += 1
            if address not in s.nodes and f"*:{address.rpartition(':')[2]}" not in s.nodes:
                verdict.offences.append(Offence(address, (line,), f"listed in a peer list, but no line of {address}"
                                                                  " is in the output"))
    files = len(s.summaries)
    verdict.detail = f"{files} file(s), {s.lines} lines, {len(s.nodes)} node(s) known"
    return verdict


def rule_peer_lists(s: Submission, settings: Settings) -> Verdict:
    verdict = Verdict(2)
    peers = sorted(label for label, node in s.nodes.items() if node.role == "peer")
    holders = Counter(seen.node for seen in s.peer_lists)
    shapes = Counter(seen.shape for seen in s.peer_lists)
    for peer in peers:
        verdict.checked += 1
        if not holders[peer]:
            first = min((sighting.line for sighting in s.gossip if sighting.node == peer), default=None)
            verdict.offences.append(Offence(peer, (first,) if first else (), "logged no peer list"))
    if not peers and s.understood:
        verdict.checked = 1
        at_peers = [seen for seen in s.peer_lists if s.role(seen.node) != "seed"]
        if not at_peers:
            verdict.offences.append(Offence(None, (), "no peer list in any file"))
    listed = ", ".join(f"{shape} {count}" for shape, count in shapes.most_common())
    verdict.detail = (f"{len(s.peer_lists)} peer list(s) ({listed or 'none'}); "
                      + (f"{len(peers)} peer(s) known by name" if peers else "no peer known by name"))
    return verdict


def rule_texts(s: Submission, settings: Settings) -> Verdict:
    verdict = Verdict(3)
    lines: dict[str, list[int]] = defaultdict(list)
    texts = {}
    for sighting in s.gossip:
        lines[sighting.gossip.text].append(sighting.line)
        texts[sighting.gossip.text] = sighting.gossip
    variants = Counter(gossip.variant for gossip in texts.values())
    for text, gossip in texts.items():
        verdict.checked += 1
        if gossip.problem:
            verdict.offences.append(Offence(None, tuple(lines[text]), f"{text}: {gossip.problem}"))
    named = ", ".join(f"{variant} {count}" for variant, count in variants.most_common())
    verdict.detail = f"{len(texts)} distinct gossip texts" + (f": {named}" if named else "")
    return verdict


def _origins(s: Submission) -> tuple[dict[str, list[Sighting]], list[str]]:
    """The distinct messages of each origin told apart (first sighting of each), and the IPs whose
    texts could not be told apart.  An origin is a node (foreignlog settled which), else the text's
    IP:port, else its IP, if no number repeats among that IP's texts and no node known to have made
    messages may be at that IP."""
    groups: dict[str, dict[str, Sighting]] = defaultdict(dict)
    for sighting in s.gossip:
        gossip = sighting.gossip
        if gossip.problem:
            continue
        key = s.origins.get(gossip.text) or gossip.origin
        groups[key].setdefault(gossip.text, sighting)
    makers = {key.rpartition(":")[0] for key in groups if key in s.nodes}  # "*" or "" when the IP is unknown
    told, untold = {}, []
    for key, messages in groups.items():
        numbers = Counter(sighting.gossip.number for sighting in messages.values())
        shared = makers & {key, "*", ""}
        if key in s.nodes or ":" in key or (max(numbers.values()) == 1 and not shared):
            told[key] = sorted(messages.values(), key=lambda seen: (seen.gossip.number, seen.gossip.created or 0))
        else:
            untold.append(key)
    return told, untold


def rule_count(s: Submission, settings: Settings) -> Verdict:
    verdict = Verdict(4)
    told, untold = _origins(s)
    count, interval = settings.gossip_count, settings.gossip_interval
    late = settings.tolerance + 0.1 * interval
    # The latest time the output shows: a message due after it may not have been made yet.
    times = [node.last for node in s.nodes.values() if node.last is not None]
    ends = max(times + [seen.gossip.created for seen in s.gossip if seen.gossip.created is not None], default=None)
    dead = {report.report.dead for report in s.reports if report.report.dead}
    dead_ports = {address.rpartition(":")[2] for address in dead}
    for origin, messages in sorted(told.items()):
        verdict.checked += 1
        numbers = [seen.gossip.number for seen in messages]
        lines = tuple(seen.line for seen in messages)
        repeated = sorted(number for number, times in Counter(numbers).items() if times > 1)
        distinct = sorted(set(numbers))
        gaps = sorted(set(range(distinct[0], distinct[-1] + 1)) - set(distinct))
        problems = []
        if distinct[0] not in (0, 1):
            problems.append(f"numbering starts at {distinct[0]}")
        if gaps:
            problems.append(f"number(s) {_span(gaps)} missing")
        if repeated:
            problems.append(f"number(s) {_span(repeated)} on more than one text")
        timed = sorted((seen.gossip.created, seen.gossip.number) for seen in messages if seen.gossip.created)
        if [number for _, number in timed] != sorted(number for _, number in timed):
            problems.append("numbers out of order by their texts' times")
        if problems:
            verdict.offences.append(Offence(origin, lines, "; ".join(problems)))
        first = min((time for time, _ in timed), default=None)
        was_reported = origin in dead or origin.startswith("*:") and origin[2:] in dead_ports
        if len(distinct) > count:
            verdict.offences.append(Offence(origin, lines[count:], f"made {len(distinct)} messages; gossip-count "
                                                                   f"is {count}"))
        elif len(distinct) < count and not was_reported and first is not None and ends is not None and (
                ends >= first + (count - 1) * (interval + late)):
            verdict.offences.append(Offence(origin, lines[-1:], f"made {len(distinct)} messages; gossip-count is "
                                                                f"{count}, and the output goes on past when the "
                                                                f"last was due"))
    verdict.detail = f"{len(told)} origin(s), gossip-count {count}"
    inferred = {s.origins[text] for text in s.inferred}
    if inferred:
        verdict.detail += f" ({len(inferred)} known as the one peer that never logged its texts)"
    if untold:
        verdict.detail += (f"; texts from {', '.join(sorted(untold))} not judged: several origins share the IP "
                           f"and the texts carry no port")
    return verdict


def _span(numbers: list[int]) -> str:
    return ", ".join(map(str, numbers[:8])) + (f" (+{len(numbers) - 8} more)" if len(numbers) > 8 else "")


def rule_spacing(s: Submission, settings: Settings) -> Verdict:
    verdict = Verdict(5)
    told, _ = _origins(s)
    interval = settings.gossip_interval
    early, late = 0.01 + 0.01 * interval, settings.tolerance + 0.1 * interval
    gaps = []
    for origin, messages in sorted(told.items()):
        timed = [seen for seen in messages if seen.gossip.created is not None]
        for before, after in pairwise(timed):
            if after.gossip.number != before.gossip.number + 1 or after.gossip.clock != before.gossip.clock:
                continue  # rule 4 reports a gap in the numbering
            verdict.checked += 1
            gap = after.gossip.created - before.gossip.created  # type: ignore[operator]
            slack = max(before.gossip.resolution, after.gossip.resolution)
            gaps.append(gap)
            if not interval - early - slack <= gap <= interval + late + slack:
                verdict.offences.append(Offence(origin, (before.line, after.line),
                                                f"messages {before.gossip.number} and {after.gossip.number} are "
                                                f"{gap:.3f} s apart; gossip-interval is {interval:g} s"))
    verdict.detail = f"{len(gaps)} gaps between consecutive messages, gossip-interval {interval:g} s"
    if gaps:
        verdict.detail += f"; median {statistics.median(gaps):.3f} s"
    return verdict


def rule_duplicates(s: Submission, settings: Settings) -> Verdict:
    verdict = Verdict(6)
    receipts: dict[tuple[str, str], list[int]] = defaultdict(list)
    nameless = 0
    for sighting in s.gossip:
        if sighting.kind != "received":
            continue
        if sighting.node is None:
            nameless += 1
        else:
            receipts[(sighting.node, sighting.gossip.text)].append(sighting.line)
    for (node, text), lines in sorted(receipts.items()):
        verdict.checked += 1
        if len(lines) > 1:
            verdict.offences.append(Offence(node, tuple(lines), f"received {text} {len(lines)} times"))
    echoes = sum(summary.echoes for summary in s.summaries)
    verdict.detail = f"{len(receipts)} first receipts at named nodes; {echoes} echo line(s) not counted"
    if nameless:
        verdict.detail += f"; {nameless} receipt(s) in lines of no known node not checked"
    return verdict


def rule_delivery(s: Submission, settings: Settings) -> Verdict:
    verdict = Verdict(7)
    peers = {label: node for label, node in s.nodes.items()
             if node.role == "peer" and node.first is not None and node.last is not None}
    holders: dict[str, set[str]] = defaultdict(set)
    created: dict[str, float] = {}
    for sighting in s.gossip:
        if sighting.node:
            holders[sighting.gossip.text].add(sighting.node)
        if sighting.gossip.created is not None and not sighting.gossip.problem:
            created[sighting.gossip.text] = sighting.gossip.created
    first_line = _first_lines(s)
    missing: dict[str, list[str]] = defaultdict(list)
    for text, time in created.items():
        origin = s.origins.get(text)
        expected = {label for label, node in peers.items()
                    if node.first <= time <= node.last - settings.tolerance and label != origin}  # type: ignore[operator]
        verdict.checked += len(expected)
        lacking = sorted(expected - holders[text])
        if origin is None and len(lacking) > 1:  # one of them may be its origin: blame none
            verdict.offences.append(Offence(None, (first_line[text],), f"{text} is missing at {', '.join(lacking)}; "
                                                                       f"one of them may be its origin"))
        elif lacking and origin is not None:
            for peer in lacking:
                missing[peer].append(text)
    for peer, texts in sorted(missing.items()):
        texts.sort(key=lambda text: first_line[text])
        verdict.offences.append(Offence(peer, tuple(first_line[text] for text in texts),
                                        f"never logged {len(texts)} message(s) created while it ran (lines: where "
                                        f"each is first seen), e.g. {texts[0]}"))
    verdict.detail = f"{verdict.checked} receipts expected at {len(peers)} peer(s) with times"
    return verdict


def rule_reports(s: Submission, settings: Settings) -> Verdict:
    verdict = Verdict(8)
    seeds = [label for label, node in s.nodes.items() if node.role == "seed"]
    seed_files = any(summary.name_role == "seed" for summary in s.summaries)
    by_text: dict[str, list[ReportSeen]] = defaultdict(list)
    for seen in s.reports:
        by_text[seen.report.text].append(seen)
    recorded = {(seen.report.dead, seen.report.reporter_ip) for seen in s.reports if s.role(seen.node) == "seed"
                or seen.node is None and _file_role(s, seen.line) == "seed"}
    variants: Counter[str] = Counter()
    for text, sightings in by_text.items():
        verdict.checked += 1
        report = sightings[0].report
        variants[report.variant] += 1
        lines = tuple(seen.line for seen in sightings)
        if report.problem:
            verdict.offences.append(Offence(sightings[0].node, lines, f"{text}: {report.problem}"))
            continue
        at_peers = [seen for seen in sightings if s.role(seen.node) == "peer"
                    or seen.node is None and _file_role(s, seen.line) == "peer"]
        for seen in at_peers:
            ip = (seen.node or "").rpartition(":")[0]
            if ip and ip != "*" and report.reporter_ip != ip:
                verdict.offences.append(Offence(seen.node, (seen.line,), f"{text}: the reporter IP is not the IP "
                                                                         f"of {seen.node}, which logged it"))
        roles_known = all(s.role(seen.node) or _file_role(s, seen.line) for seen in sightings)
        if roles_known and not at_peers:
            verdict.offences.append(Offence(sightings[0].node, lines, f"{text}: recorded at seeds, but no peer "
                                                                      f"logged sending it"))
        elif at_peers and (seeds or seed_files) and (report.dead, report.reporter_ip) not in recorded:
            verdict.offences.append(Offence(at_peers[0].node, lines, f"{text}: no seed recorded it"))
    named = ", ".join(f"{variant} {count}" for variant, count in variants.most_common())
    verdict.detail = f"{len(by_text)} distinct dead-node texts" + (f": {named}" if named else "")
    return verdict


def _file_role(s: Submission, line: int) -> str | None:
    path, _ = s.files.locate(line)
    return next((summary.name_role for summary in s.summaries if summary.path == path), None)


def rule_registrations(s: Submission, settings: Settings) -> Verdict:
    verdict = Verdict(9)
    units: dict[str, int] = {}  # a seed, or a seed's file whose lines name no node -> registration lines
    for label, node in sorted(s.nodes.items()):
        if node.role == "seed":
            units[label] = 0
    for summary in s.summaries:
        if summary.name_role == "seed" and not summary.nodes:
            units[str(summary.path)] = 0
    for line, node in s.registrations:
        if node in units:
            units[node] += 1
        else:
            path = str(s.files.locate(line)[0])
            if path in units:
                units[path] += 1
    for unit, count in units.items():
        verdict.checked += 1
        if not count:
            verdict.offences.append(Offence(unit, (), "logged no connection or registration of a peer"))
    verdict.detail = f"{len(units)} seed(s); {len(s.registrations)} connection or registration line(s)"
    return verdict


RULE_CHECKS: list[Callable[[Submission, Settings], Verdict]] = [
    rule_output, rule_peer_lists, rule_texts, rule_count, rule_spacing, rule_duplicates, rule_delivery, rule_reports,
    rule_registrations,
]
