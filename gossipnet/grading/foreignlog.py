"""A submission of students' output files, read as one run: lines, nodes, roles, times.

:func:`read_submission` reads every file through textlines (lines cut at a
bound, any encoding) and each line through foreignline.read_line, then puts
the facts together:

- lines are numbered across the files as runlog.LogFiles numbers them, so
  every fact is a ``FILE:LINE``;
- a line repeated verbatim right after itself is an *echo* (console output
  copied into the file): counted, and not read a second time;
- a line's node is its own tag, else its file's name, else unknown.  A name
  that gives only a port (``peer_6002``) is the ``IP:port`` with that port
  when exactly one node has it.  A node's role is what its tags say, else its
  file's name, else what it writes (gossip or peer lists: a peer;
  registrations and no gossip: a seed);
- a peer list written a line per peer joins its header and the entries that
  follow it into one list;
- time: a fact's time is its line's own time put on the texts' clock, else
  the time in its texts.  A line's clock (a local date and time, or a time
  of day) is put on the texts' clock (epoch seconds) by the offset that the
  lines holding both show, rounded to a quarter hour, as a time zone is; a
  clock that no line ties to the texts is left out of the times.

This module judges nothing; foreigngrading.py does.
"""

from __future__ import annotations

import re
import statistics
from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from gossipnet.grading.foreignline import DeadNodeText, GossipText, LineFacts, node_label, read_line
from gossipnet.grading.foreignlists import HEADER
from gossipnet.logs import textlines
from gossipnet.logs.runlog import LogFiles

_ZONE_STEP = 900.0  # s: time zones are whole quarter hours from UTC
_DAY = 86400.0
_FILE_ROLE = re.compile(r"(peer|seed)", re.I)
_FILE_ADDRESS = re.compile(r"(\d{1,3}(?:[._]\d{1,3}){3})[_\-:]+(\d{2,5})(?!\d)")


@dataclass
class FileSummary:
    """One file, as read."""

    path: Path
    lines: int = 0
    blank: int = 0
    understood: int = 0  # lines holding a fact the rules use
    nameless: int = 0  # of those, lines whose node is not known
    tagged: int = 0  # lines whose own tag names their node
    echoes: int = 0
    cut: list[tuple[int, int]] = field(default_factory=list)  # (line in the file, its length): over the bound
    binary: bool = False  # holds NUL bytes: not a text file
    name_node: str | None = None  # what the file's name says
    name_role: str | None = None
    nodes: Counter[str] = field(default_factory=Counter)  # lines per node
    roles: Counter[str] = field(default_factory=Counter)


@dataclass
class NodeFacts:
    label: str
    role: str | None = None
    role_from: str = "unknown"  # "tags", "file name", "what it writes", "unknown"
    lines: int = 0
    first: float | None = None  # earliest and latest time known of it, on the texts' clock
    last: float | None = None

    def saw(self, time: float | None) -> None:
        if time is None:
            return
        self.first = time if self.first is None else min(self.first, time)
        self.last = time if self.last is None else max(self.last, time)


@dataclass(frozen=True)
class Sighting:
    """A gossip text in a node's line, and what the line did with it."""

    line: int
    node: str | None
    kind: str  # received, sent, created, ignored
    gossip: GossipText
    time: float | None  # the line's time on the texts' clock


@dataclass(frozen=True)
class ReportSeen:
    line: int
    node: str | None
    report: DeadNodeText


@dataclass
class ListSeen:
    lines: list[int]
    node: str | None
    peers: list[str]
    shape: str


@dataclass
class Submission:
    files: LogFiles
    summaries: list[FileSummary]
    nodes: dict[str, NodeFacts] = field(default_factory=dict)
    gossip: list[Sighting] = field(default_factory=list)
    reports: list[ReportSeen] = field(default_factory=list)
    peer_lists: list[ListSeen] = field(default_factory=list)
    registrations: list[tuple[int, str | None]] = field(default_factory=list)  # (line, node)
    origins: dict[str, str | None] = field(default_factory=dict)  # gossip text -> the node that made it
    inferred: set[str] = field(default_factory=set)  # texts whose origin is the peer that never logged them
    clocks: dict[str, float] = field(default_factory=dict)  # a line clock -> its offset from the texts'
    reference: float | None = None  # the texts' median time: a time of day is put on the day nearest it

    @property
    def lines(self) -> int:
        return self.files.ends[-1] if self.files.ends else 0

    @property
    def understood(self) -> int:
        return sum(summary.understood for summary in self.summaries)

    def role(self, node: str | None) -> str | None:
        return self.nodes[node].role if node in self.nodes else None

    def where(self, lines: Sequence[int]) -> str:
        return ", ".join(f"{path}:{number}" for path, number in map(self.files.locate, lines))


@dataclass
class _Raw:
    """One line's facts before nodes and clocks are settled."""

    line: int
    file: int  # index in the submission's files
    node: str | None
    role: str | None
    facts: LineFacts


def read_submission(paths: Sequence[str | Path]) -> Submission:
    """Read ``paths`` as one run.  Raises ``OSError`` for a file that cannot be read."""
    summaries, raws, ends = [], [], []
    count = 0
    for index, path in enumerate(map(Path, paths)):
        summary = FileSummary(path)
        summary.name_node, summary.name_role = _from_name(path)
        previous: str | None = None
        for text in textlines.read_lines(path, textlines.LATIN_1, summary.cut):
            count += 1
            summary.lines += 1
            if "\x00" in text:
                summary.binary = True
            if not text.strip():
                summary.blank += 1
                previous = None
                continue
            if text == previous:
                summary.echoes += 1
                continue
            previous = text
            facts = read_line(text)
            raws.append(_Raw(count, index, facts.node or summary.name_node, facts.role or summary.name_role, facts))
            summary.understood += facts.understood
            summary.nameless += facts.understood and not (facts.node or summary.name_node)
            summary.tagged += facts.node is not None
        ends.append(count)
        summaries.append(summary)
    files = LogFiles(tuple(Path(path) for path in paths), tuple(ends))
    submission = Submission(files, summaries)
    _settle_nodes(submission, raws)
    _settle_clocks(submission, raws)
    _collect(submission, raws)
    return submission


def _from_name(path: Path) -> tuple[str | None, str | None]:
    """The node and role a file's name gives: outputfile_peer_6002.txt, seed-127.0.0.1-5000.log."""
    stem = path.stem
    role = _FILE_ROLE.search(stem)
    address = _FILE_ADDRESS.search(stem)
    if address:
        node = node_label(f"{address[1].replace('_', '.')}:{address[2]}")
    else:
        rest = stem[role.end():] if role else ""
        node = node_label(rest) if re.search(r"\d", rest) else None
    return node, role[1].lower() if role else None


def _settle_nodes(submission: Submission, raws: list[_Raw]) -> None:
    """Join names that give only a port to the address with that port; give every node its role."""
    labels = {raw.node for raw in raws if raw.node}
    by_port: dict[str, list[str]] = defaultdict(list)
    for label in labels:
        if not label.startswith("*:") and re.fullmatch(r"[\d.]+:\d+", label):
            by_port[label.rpartition(":")[2]].append(label)
    same = {label: by_port[label[2:]][0] for label in labels
            if label.startswith("*:") and len(by_port.get(label[2:], [])) == 1}
    tags: dict[str, Counter[str]] = defaultdict(Counter)
    names: dict[str, Counter[str]] = defaultdict(Counter)
    writes: dict[str, Counter[str]] = defaultdict(Counter)
    for raw in raws:
        raw.node = same.get(raw.node, raw.node) if raw.node else None
        if raw.node is None:
            continue
        node = submission.nodes.setdefault(raw.node, NodeFacts(raw.node))
        node.lines += 1
        if raw.facts.role:
            tags[raw.node][raw.facts.role] += 1
        elif raw.role:
            names[raw.node][raw.role] += 1
        if raw.facts.gossip or (raw.facts.peer_list and not raw.facts.registration):
            writes[raw.node]["peer"] += 1
        elif raw.facts.registration:
            writes[raw.node]["seed"] += 1
    for label, node in submission.nodes.items():
        if tags[label] or names[label]:
            node.role_from = "tags" if tags[label] else "file name"
            node.role = (tags[label] or names[label]).most_common(1)[0][0]
        elif writes[label]:
            node.role, node.role_from = "peer" if writes[label]["peer"] else "seed", "what it writes"
    for raw in raws:
        raw.role = submission.role(raw.node) or raw.role


def _settle_clocks(submission: Submission, raws: list[_Raw]) -> None:
    """Find each line clock's offset from the texts' clock (see the module docstring)."""
    texts = [gossip.created for raw in raws for gossip, _ in raw.facts.gossip if gossip.created is not None]
    texts += [report.time for raw in raws for report in raw.facts.dead if report.time is not None]
    if not texts:
        return
    reference = statistics.median(texts)
    differences: dict[str, list[float]] = defaultdict(list)
    for raw in raws:
        facts = raw.facts
        if facts.time is None or not facts.gossip or facts.gossip[0][0].created is None:
            continue
        difference = facts.time - facts.gossip[0][0].created
        if facts.clock == "day":
            difference = (difference + _DAY / 2) % _DAY - _DAY / 2
        differences[facts.clock or ""].append(difference)
    for clock, found in differences.items():
        submission.clocks[clock] = round(statistics.median(found) / _ZONE_STEP) * _ZONE_STEP
    submission.reference = reference


def _on_texts_clock(submission: Submission, facts: LineFacts) -> float | None:
    if facts.time is None or facts.clock not in submission.clocks:
        return None
    time = facts.time - submission.clocks[facts.clock]
    if facts.clock == "day" and submission.reference is not None:  # the day nearest the texts' times
        reference = submission.reference
        time = reference + (time - reference + _DAY / 2) % _DAY - _DAY / 2
    return time


def _collect(submission: Submission, raws: list[_Raw]) -> None:
    """Each line's facts into the submission, with its time and its node's; join line-per-peer lists."""
    open_list: dict[int, ListSeen] = {}  # file -> the list its lines are adding entries to
    for raw in raws:
        facts, node = raw.facts, raw.node
        summary = submission.summaries[raw.file]
        if node:
            summary.nodes[node] += 1
        if raw.role:
            summary.roles[raw.role] += 1
        texts = [gossip.created for gossip, _ in facts.gossip] + [report.time for report in facts.dead]
        time = _on_texts_clock(submission, facts)
        if node in submission.nodes:
            for seen in (time, *texts):
                submission.nodes[node].saw(seen)
        if time is None:
            time = next((value for value in texts if value is not None), None)
        submission.gossip += [Sighting(raw.line, node, kind, gossip, time) for gossip, kind in facts.gossip]
        submission.reports += [ReportSeen(raw.line, node, report) for report in facts.dead]
        if facts.registration:
            submission.registrations.append((raw.line, node))
        listed, current = facts.peer_list, open_list.get(raw.file)
        if listed and listed.entry and current and current.node == node:
            current.lines.append(raw.line)
            current.peers.extend(listed.peers)
            if current.shape == HEADER:
                current.shape = listed.shape
        elif listed:
            open_list[raw.file] = ListSeen([raw.line], node, list(listed.peers), listed.shape)
            submission.peer_lists.append(open_list[raw.file])
        else:
            open_list.pop(raw.file, None)
    _settle_origins(submission)


def _settle_origins(submission: Submission) -> None:
    """Which node made each gossip text: the one that logged making it, else the one node at its
    IP:port (or IP, when the text has no port), else the one that never logged it (see _infer_origins),
    else unknown.  A "bare" line is a receipt, or the making of a message when the node is its origin."""
    made = {sighting.gossip.text: sighting.node for sighting in submission.gossip
            if sighting.kind == "created" and sighting.node}
    nodes_at: dict[str, set[str]] = defaultdict(set)  # IP:port, IP and *:port -> the nodes there
    for label in submission.nodes:
        ip, _, port = label.rpartition(":")
        if port.isdigit():
            nodes_at[label].add(label)
            nodes_at[f"*:{port}"].add(label)
            if ip != "*":
                nodes_at[ip].add(label)
    for sighting in submission.gossip:
        text = sighting.gossip
        if text.text in submission.origins:
            continue
        origin = made.get(text.text)
        if origin is None:
            candidates = nodes_at.get(text.origin) or (nodes_at.get(f"*:{text.port}", set()) if text.port else set())
            origin = next(iter(candidates)) if len(candidates) == 1 else None
        submission.origins[text.text] = origin
    _infer_origins(submission)
    for index, sighting in enumerate(submission.gossip):
        if sighting.kind == "bare":
            made_here = sighting.node is not None and submission.origins[sighting.gossip.text] == sighting.node
            submission.gossip[index] = Sighting(sighting.line, sighting.node, "created" if made_here else "received",
                                                sighting.gossip, sighting.time)


def _infer_origins(submission: Submission) -> None:
    """Origins of texts that carry no port, when many nodes share its IP and none logged making it.

    A peer logs the messages it receives, and never receives its own: when exactly one peer at the
    text's IP (or of no known IP) never logged a text, it made it.  When two or more never did (the
    message was also lost on the way to one), it is the one of them whose other messages leave the
    text's number free.
    """
    texts = {sighting.gossip.text: sighting.gossip for sighting in submission.gossip}
    loggers: dict[str, set[str]] = defaultdict(set)
    for sighting in submission.gossip:
        if sighting.node:
            loggers[sighting.gossip.text].add(sighting.node)
    peers = [label for label, node in submission.nodes.items() if node.role != "seed"]
    pending: dict[str, list[str]] = {}
    for text, gossip in texts.items():
        if submission.origins.get(text) is not None or gossip.port is not None:
            continue
        lacking = [peer for peer in peers if peer.rpartition(":")[0] in (gossip.ip, "*", "")
                   and peer not in loggers[text]]
        if len(lacking) == 1:
            submission.origins[text] = lacking[0]
            submission.inferred.add(text)
        elif lacking:
            pending[text] = lacking
    numbers: dict[str, set[int]] = defaultdict(set)
    for text, origin in submission.origins.items():
        if origin is not None:
            numbers[origin].add(texts[text].number)
    for text, lacking in pending.items():
        free = [peer for peer in lacking if numbers[peer] and texts[text].number not in numbers[peer]]
        if len(free) == 1:
            submission.origins[text] = free[0]
            submission.inferred.add(text)
            numbers[free[0]].add(texts[text].number)
