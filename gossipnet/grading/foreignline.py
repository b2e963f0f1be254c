"""One line of a student's output file: the handout's texts in it, and who wrote it, when.

The assignment's handout fixes two texts, the gossip message
``<timestamp>:<IP>:<Msg#>`` and the report
``Dead Node:<DeadNode.IP>:<DeadNode.Port>:<timestamp>:<ReportingPeer.IP>``;
everything else about a line is the student's choice.  :func:`read_line`
finds what a grader can use anywhere in a line, each in the variants students
write (:data:`SHAPES` names them all):

- the line's own time at its start (a date and time, a clock time, an epoch);
- the node that wrote it (``[IP:port]``, ``[PEER peer_6002]``, ``Peer IP:port``
  at the start of the message) and its role when the tag says;
- gossip texts, with what the line does with each (received, sent, created,
  ignored as a duplicate);
- dead-node texts, also written as JSON;
- a peer list, or one entry of a list written a line per peer (foreignlists.py);
- a seed's record of a connection or registration.

A text that is recognisably meant as a handout text but breaks it (an IP of
999.1.1.1, a ``Dead Node:`` with a part missing) carries a ``problem``.  This
module reads one line; foreignlog.py puts a submission's lines together.
"""

from __future__ import annotations

import calendar
import functools
import re
from dataclasses import dataclass, field
from datetime import datetime

from gossipnet.grading.foreignlists import ADDRESS, IPV4, PeerListText, literal, read_peer_list, valid_ip

# What the reader recognises; docs/GRADING.md has a table of the same.
SHAPES = {
    "line time": ["ISO date and time (T or space, fraction with . or ,, optional Z or offset), bracketed or not",
                  "clock time HH:MM:SS[.fff] (the date is found from the texts' times)",
                  "epoch seconds at the start of the line"],
    "node": ["[IP:port] among the line's first bracketed tags",
             "[PEER peer_6002], [Seed 127.0.0.1:5000], [Peer a] (role word and a name)",
             "Peer IP:port / seed 127.0.0.1:9001 at the start of the message",
             "the file's name: outputfile_peer_6002.txt, seed-127.0.0.1-5000.log, outputseed.txt (role only)"],
    "gossip text": ["<epoch>:<IP>:<n> (the handout's)", "with the origin's port: <ts>:<IP>:<port>:<n>",
                    "a word before the number: GOSSIP3, Msg#3", "integer epoch, millisecond epoch, date-time"],
    "dead-node text": ["Dead Node:<IP>:<port>:<epoch>:<IP> (the handout's)", "integer epoch or date-time timestamp",
                       "other case or spacing of 'Dead Node'", "a JSON or Python dict that says 'dead'"],
    "peer list": ["IP:port a line", "Address: IP:port, Degree: n a line", "Python list of dicts, tuples or strings",
                  "JSON", "inline IP:port, IP:port after 'peer list' or 'peers:'"],
    "registration": ["at a seed: a line saying connect, register, join, accept or new peer"],
}

_DATE_TIME = r"\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}:\d{2}(?:[.,]\d{1,9})?"
_LINE_TIME = re.compile(
    r"\s*[\[(]?\s*(?:(?P<date>\d{4}-\d{2}-\d{2})[T ](?P<clock>\d{2}:\d{2}:\d{2})(?:[.,](?P<frac>\d{1,9}))?"
    r"(?P<tz>Z|[+-]\d{2}:?\d{2})?|(?P<day>\d{2}:\d{2}:\d{2})(?:[.,](?P<dayfrac>\d{1,9}))?"
    r"|(?P<epoch>\d{10}(?:\.\d{1,9})?))(?![:\d.])\s*[\])]?")
_GOSSIP = re.compile(
    rf"(?<![\w.:])(?P<time>\d{{13}}|\d{{10}}(?:\.\d{{1,9}})?|{_DATE_TIME}):(?P<ip>{IPV4})(?::(?P<port>\d{{1,5}}))?"
    r":(?P<word>[A-Za-z][A-Za-z_#-]{0,11}[ ]?)?(?P<number>\d{1,9})(?![\w.:])")
_DEAD = re.compile(
    rf"(?P<label>dead\s?node\s?:\s?)(?P<ip>[^:\s'\"]+):(?P<port>[^:\s'\"]+):(?P<time>{_DATE_TIME}|[^:\s'\"]+)"
    r":(?P<reporter>[^:\s'\",;)\]}]+)", re.I)
_BRACKET = re.compile(r"[\s\-|:>]*\[([^\[\]]{1,60})\]")
_LEVEL = re.compile(r"[\s\-|:>]*(?:INFO|DEBUG|WARNING|WARN|ERROR|CRITICAL|TRACE|NOTICE)\b", re.I)
_ROLE_TAG = re.compile(r"\s*(peer|seed|node)\b[\s_:#-]*(.*?)\s*$", re.I)
_EVENT_TAG = re.compile(r"[A-Z]{3,}(?: [A-Z]+)*")  # "[PEER LIST]" names an event, not a peer called LIST
_LEADING_ROLE = re.compile(rf"[\s\-|:>]*(peer|seed)\b\s*[:#-]?\s*({IPV4}:\d{{1,5}}|\d{{1,5}}\b|[A-Za-z]*_\d+\b)", re.I)
_PORT = re.compile(r"(?<![\d.])(\d{4,5})(?![\d.])")
_KINDS = (("created", re.compile(r"generat|creat|originat", re.I)),
          ("sent", re.compile(r"forward|\bsen[dt]|relay|broadcast|propagat", re.I)),
          ("received", re.compile(r"receiv|\brecv|\bgot\b|first time|incoming|\bnew message", re.I)))
_IGNORED = re.compile(r"duplicate|already|ignor|discard|\bdropp", re.I)
_REGISTRATION = re.compile(r"(?<!dis)connect|regist|\bjoin|new peer|accept", re.I)
_PEER_SIDE = re.compile(r"\b(?:to|with|at)\s+(?:the\s+|a\s+)?seeds?\b", re.I)  # "registered with seed ...": a peer's


@dataclass(frozen=True)
class GossipText:
    """A gossip message's text, as the handout fixes it or in a variant."""

    text: str
    ip: str
    port: int | None  # the origin's port, in the variant that carries it
    number: int
    created: float | None  # the text's time in seconds (a date-time is read as UTC)
    clock: str  # what ``created`` counts: "epoch" (UTC) or "local" (a date-time without a zone)
    resolution: float  # seconds of the timestamp's last digit: 1.0 for whole seconds
    variant: str  # "handout", or what differs from it
    problem: str | None = None  # why it is not a well-formed text

    @property
    def origin(self) -> str:
        """IP:port of the node that made it when the text says, else its IP."""
        return f"{self.ip}:{self.port}" if self.port is not None else self.ip


@dataclass(frozen=True)
class DeadNodeText:
    """A dead-node report: the handout's text, a variant of it, or a JSON record of one."""

    text: str  # as written; for a JSON record, the handout's text it stands for
    dead: str | None  # IP:port
    reporter_ip: str | None
    time: float | None
    variant: str
    problem: str | None = None


@dataclass
class LineFacts:
    time: float | None = None  # the line's own time, in seconds
    clock: str | None = None  # "epoch", "local" (a date without a zone) or "day" (seconds since midnight)
    resolution: float = 1.0
    node: str | None = None  # IP:port, *:port (the port only), or the name in its tag
    role: str | None = None  # "peer" or "seed", when the tag says
    gossip: list[tuple[GossipText, str]] = field(default_factory=list)  # (text, received|sent|created|ignored|bare)
    dead: list[DeadNodeText] = field(default_factory=list)
    peer_list: PeerListText | None = None
    registration: bool = False

    @property
    def understood(self) -> bool:
        return bool(self.gossip or self.dead or self.peer_list or self.registration)


def read_line(text: str) -> LineFacts:
    facts = LineFacts()
    rest = _read_time(text, facts)
    rest = _read_node(rest, facts)
    body_start = len(text) - len(rest)
    facts.gossip = [(_gossip(match), _kind(text, match.start())) for match in _GOSSIP.finditer(text)]
    facts.dead = _dead_texts(text)
    if not facts.gossip and not facts.dead:
        body = text[body_start:]
        facts.peer_list = read_peer_list(body, facts.node)
        facts.registration = (facts.peer_list is None and bool(_REGISTRATION.search(body))
                              and not _PEER_SIDE.search(body))
    return facts


# --- Time -------------------------------------------------------------------------------


def _read_time(text: str, facts: LineFacts) -> str:
    match = _LINE_TIME.match(text)
    if match is None:
        return text
    if match["epoch"]:
        facts.time, facts.clock = float(match["epoch"]), "epoch"
        facts.resolution = _resolution(match["epoch"].partition(".")[2])
    elif match["day"]:
        hours, minutes, seconds = (int(part) for part in match["day"].split(":"))
        if hours > 23 or minutes > 59 or seconds > 60:
            return text
        fraction = match["dayfrac"] or ""
        facts.time = hours * 3600 + minutes * 60 + seconds + (float(f"0.{fraction}") if fraction else 0.0)
        facts.clock, facts.resolution = "day", _resolution(fraction)
    else:
        seconds = date_time_seconds(f"{match['date']} {match['clock']}", match["frac"] or "")
        if seconds is None:
            return text
        zone = match["tz"]
        if zone:
            sign = -1 if zone[0] == "-" else 1
            digits = zone[1:].replace(":", "")
            seconds -= sign * (int(digits[:2]) * 3600 + int(digits[2:]) * 60) if zone != "Z" else 0
        facts.time, facts.clock = seconds, "epoch" if zone else "local"
        facts.resolution = _resolution(match["frac"] or "")
    return text[match.end():]


def date_time_seconds(text: str, fraction: str = "") -> float | None:
    """``YYYY-MM-DD HH:MM:SS`` (or with a T) read as UTC, in seconds since the epoch; None if no such time."""
    whole = _second(text.replace("T", " "))
    if whole is None:
        return None
    return whole + (float(f"0.{fraction}") if fraction else 0.0)


@functools.lru_cache(maxsize=1 << 12)
def _second(text: str) -> int | None:
    # Remembered: an output file writes many lines a second, and strptime is slow.
    try:
        return calendar.timegm(datetime.strptime(text, "%Y-%m-%d %H:%M:%S").timetuple())
    except ValueError:
        return None


def _resolution(fraction: str) -> float:
    return 10.0 ** -len(fraction)


# --- Who wrote it -------------------------------------------------------------------------


def _read_node(rest: str, facts: LineFacts) -> str:
    """Take the node (and role) from the tags that open the message; return what follows them."""
    while True:
        level = _LEVEL.match(rest)
        if level:
            rest = rest[level.end():]
            continue
        tag = _BRACKET.match(rest)
        if tag is None:
            break
        rest = rest[tag.end():]
        if facts.node is None:
            _read_tag(tag[1], facts)
    if facts.node is None:
        lead = _LEADING_ROLE.match(rest)
        if lead:
            facts.role = lead[1].lower()
            facts.node = node_label(lead[2])
    return rest


def _read_tag(tag: str, facts: LineFacts) -> None:
    if ADDRESS.fullmatch(tag.strip()):
        facts.node = node_label(tag)
        return
    role = _ROLE_TAG.match(tag)
    if role and not _EVENT_TAG.fullmatch(role[2]):
        if role[1].lower() != "node":
            facts.role = role[1].lower()
        facts.node = node_label(role[2]) if role[2] else None


def node_label(name: str) -> str | None:
    """A node's name as the grader keys it: ``IP:port`` if the name holds one, ``*:port`` if it holds
    only a port (a 4- or 5-digit number from 1024 up), else the name itself."""
    name = name.strip(" _-:#'\"")
    if not name:
        return None
    address = ADDRESS.search(name)
    if address and valid_ip(address[1]) and 1 <= int(address[2]) <= 65535:
        return f"{address[1]}:{int(address[2])}"
    port = _PORT.search(name)
    if port and 1024 <= int(port[1]) <= 65535:
        return f"*:{int(port[1])}"
    return name[:40]


# --- Gossip texts -------------------------------------------------------------------------


def _gossip(match: re.Match[str]) -> GossipText:
    stamp, ip, port, word, number = match["time"], match["ip"], match["port"], match["word"], match["number"]
    variant, problems = [], []
    if len(stamp) == 13 and stamp.isdigit():
        created, clock, resolution = int(stamp) / 1000, "epoch", 0.001
        variant.append("millisecond timestamp")
    elif "-" in stamp:
        whole, _, fraction = stamp.replace(",", ".").partition(".")
        created, clock, resolution = date_time_seconds(whole, fraction), "local", _resolution(fraction)
        variant.append("date-time timestamp")
        if created is None:
            problems.append(f"{stamp!r} is not a date and time")
    else:
        created, clock, resolution = float(stamp), "epoch", _resolution(stamp.partition(".")[2])
        if "." not in stamp:
            variant.append("integer timestamp")
    if port is not None:
        variant.append("origin's port")
        if not 1 <= int(port) <= 65535:
            problems.append(f"port {port} is not 1-65535")
    if word:
        variant.append(f"word {word.strip()!r} before the number")
    if not valid_ip(ip):
        problems.append(f"{ip} is not an IPv4 address")
    return GossipText(match[0], ip, int(port) if port is not None else None, int(number), created, clock,
                      resolution, ", ".join(variant) or "handout", "; ".join(problems) or None)


def _kind(text: str, at: int) -> str:
    """What the line does with the gossip text at ``at``: the first verb before it says, else any in the line."""
    if _IGNORED.search(text):
        return "ignored"
    for part in (text[:at], text):
        found = [(match.start(), kind) for kind, pattern in _KINDS if (match := pattern.search(part))]
        if found:
            return min(found)[1]
    return "bare"


# --- Dead-node texts ------------------------------------------------------------------------


def _dead_texts(text: str) -> list[DeadNodeText]:
    found = [_dead(match) for match in _DEAD.finditer(text)]
    if not found and "Dead Node:" in text:
        at = text.index("Dead Node:")
        found.append(DeadNodeText(text[at:at + 80].strip(), None, None, None, "handout",
                                  "not Dead Node:<IP>:<Port>:<timestamp>:<IP>"))
    if not found and "{" in text and re.search("dead", text, re.I):
        record = literal(text[text.index("{"):text.rfind("}") + 1])
        if isinstance(record, dict):
            found.append(_dead_record(record))
    return found


def _dead(match: re.Match[str]) -> DeadNodeText:
    ip, port, stamp, reporter = match["ip"], match["port"], match["time"], match["reporter"]
    variant, problems = [], []
    if match["label"] != "Dead Node:":
        variant.append(f"written {match['label'].strip()!r}")
    if not valid_ip(ip):
        problems.append(f"{ip!r} is not an IPv4 address")
    if not (port.isdigit() and 1 <= int(port) <= 65535):
        problems.append(f"{port!r} is not a port")
    time = _report_time(stamp, variant, problems)
    if not valid_ip(reporter):
        problems.append(f"reporter {reporter!r} is not an IPv4 address")
    dead = f"{ip}:{int(port)}" if valid_ip(ip) and port.isdigit() and 1 <= int(port) <= 65535 else None
    return DeadNodeText(match[0], dead, reporter if valid_ip(reporter) else None, time,
                        ", ".join(variant) or "handout", "; ".join(problems) or None)


def _report_time(stamp: str, variant: list[str], problems: list[str]) -> float | None:
    if re.fullmatch(r"\d{1,12}\.\d{1,9}", stamp):
        return float(stamp)
    if re.fullmatch(r"\d{1,13}", stamp):
        variant.append("integer timestamp")
        return float(stamp)
    whole, _, fraction = stamp.replace(",", ".").partition(".")
    seconds = date_time_seconds(whole, fraction) if re.fullmatch(_DATE_TIME, stamp) else None
    if seconds is None:
        problems.append(f"{stamp!r} is not a timestamp")
    else:
        variant.append("date-time timestamp")
    return seconds


def _dead_record(record: dict[object, object]) -> DeadNodeText:
    """A dead-node report written as a JSON or Python dict: its fields found by their names."""
    values = _flatten(record)
    address = next((value for key, value in values if "dead" in key or "node" in key
                    if isinstance(value, str) and ADDRESS.fullmatch(value)), None)
    ip = address.rpartition(":")[0] if address else _field(values, ("dead_ip", "node_ip", "ip", "host"))
    port = address.rpartition(":")[2] if address else _field(values, ("dead_port", "node_port", "port"))
    stamp = _field(values, ("timestamp", "time", "ts"))
    reporter = _field(values, ("report", "from", "sender", "by", "source"))
    reporter = reporter.partition(":")[0] if reporter else None
    parts = {"the dead node's IP": ip, "its port": port, "a timestamp": stamp, "the reporter's IP": reporter}
    missing = [name for name, value in parts.items() if not value]
    text = f"Dead Node:{ip}:{port}:{stamp}:{reporter}"
    problems = [f"no {name}" for name in missing]
    if ip and not valid_ip(ip) or reporter and not valid_ip(reporter):
        problems.append("an IP is not IPv4")
    dead = f"{ip}:{port}" if ip and port and port.isdigit() and valid_ip(ip) else None
    time = None
    if stamp:
        time = _report_time(stamp, [], problems)
    return DeadNodeText(text, dead, reporter, time, "JSON record", "; ".join(problems) or None)


def _flatten(record: object, prefix: str = "") -> list[tuple[str, object]]:
    if isinstance(record, dict):
        return [item for key, value in record.items() for item in _flatten(value, f"{prefix}{str(key).lower()}.")]
    return [(prefix.rstrip("."), record)]


def _field(values: list[tuple[str, object]], names: tuple[str, ...]) -> str | None:
    for name in names:
        for key, value in values:
            if key.rpartition(".")[2].startswith(name) and value not in (None, ""):
                return str(value)
    return None
