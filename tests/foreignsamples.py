"""Students' output files in each shape the grader reads, written from one run whose facts are known.

A :class:`Plan` is a small run: seeds, peers joining one after another (each
gets a peer list of the peers before it), every peer making its messages
``interval`` apart, every other peer receiving each, and one peer dying
after the gossip, reported by its neighbours and recorded by the seeds.
Each writer in :data:`WRITERS` writes the plan as some submissions write
their output (the shapes listed in the grader's issue), into a folder; a test
grades the folder and knows what to expect.  A defect is planted by changing
the plan before writing (:meth:`Plan.drop`, :meth:`Plan.repeat`).

Every line is made here; no file of a real submission is copied.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path

EPOCH = 1_739_700_000.0


@dataclass(frozen=True)
class Message:
    origin: int
    number: int
    created: float


@dataclass(frozen=True)
class Receipt:
    peer: int
    message: Message
    time: float
    sender: int


@dataclass
class Plan:
    peers: int = 4
    seeds: int = 2
    count: int = 3
    interval: float = 5.0
    first_number: int = 1
    dead: int | None = 3  # the peer that dies after the gossip
    start: float = EPOCH
    messages: list[Message] = field(default_factory=list)
    receipts: list[Receipt] = field(default_factory=list)
    joins: dict[int, float] = field(default_factory=dict)
    reports: list[tuple[int, float]] = field(default_factory=list)  # (reporter, time)
    died: float = 0.0

    def __post_init__(self) -> None:
        for peer in range(self.peers):
            self.joins[peer] = self.start + 1 + 0.5 * peer
        gossip = self.start + 2 + 0.5 * self.peers
        for step in range(self.count):
            for origin in range(self.peers):
                message = Message(origin, self.first_number + step, round(gossip + step * self.interval
                                                                          + 0.1 * origin, 6))
                self.messages.append(message)
                for peer in range(self.peers):
                    if peer != origin:
                        sender = origin if abs(peer - origin) == 1 else (peer - 1) % self.peers
                        self.receipts.append(Receipt(peer, message, message.created + 0.01 * (1 + peer), sender))
        self.died = gossip + self.count * self.interval + 1
        if self.dead is not None:
            reporters = sorted({(self.dead - 1) % self.peers, (self.dead + 1) % self.peers} - {self.dead})
            self.reports = [(reporter, self.died + 3 + 0.2 * rank) for rank, reporter in enumerate(reporters)]

    def listed(self, peer: int) -> list[int]:
        """The peer list the seeds gave ``peer``: the peers that joined before it."""
        return list(range(peer))

    def drop(self, peer: int, origin: int, number: int) -> None:
        """Plant a message ``peer`` never receives."""
        self.receipts = [receipt for receipt in self.receipts
                         if not (receipt.peer == peer and receipt.message.origin == origin
                                 and receipt.message.number == number)]

    def repeat(self, peer: int, origin: int, number: int) -> None:
        """Plant a second receipt of one message, a second later (not an echo of the first line)."""
        first = next(receipt for receipt in self.receipts if receipt.peer == peer
                     and receipt.message.origin == origin and receipt.message.number == number)
        self.receipts.append(Receipt(peer, first.message, first.time + 1.0, (first.sender + 1) % self.peers))

    def events(self) -> list[tuple[float, str, object]]:
        """Everything that is logged, in time order: (time, what, about)."""
        events: list[tuple[float, str, object]] = []
        for peer, joined in self.joins.items():
            events.append((joined, "join", peer))
        for message in self.messages:
            events.append((message.created, "create", message))
        for receipt in self.receipts:
            events.append((receipt.time, "receive", receipt))
        for reporter, time in self.reports:
            events.append((time, "report", reporter))
        return sorted(events, key=lambda event: (event[0], event[1]))


Writer = Callable[[Plan, Path], list[Path]]


def _stamp(time: float, zone: float, form: str = "%Y-%m-%d %H:%M:%S") -> str:
    return datetime.fromtimestamp(time, timezone(timedelta(hours=zone))).strftime(form)


def _write(folder: Path, name: str, lines: list[str]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
    return path


def bare(plan: Plan, folder: Path) -> list[Path]:
    """Bare lines, one per event, in outputpeer.txt and outputseed.txt; texts carry the port and GOSSIPn."""
    port = lambda peer: 7000 + peer  # noqa: E731
    peers, seeds = [], []
    for time, what, about in plan.events():
        if what == "join":
            seeds.append(f"New peer connected: 127.0.0.1:{port(about)}")
            peers += [f"Address: 127.0.0.1:{port(other)}, Degree: {plan.listed(about).count(other)}"
                      for other in plan.listed(about)]
        elif what == "receive":
            message = about.message
            peers.append(f"{message.created:.6f}:127.0.0.1:{port(message.origin)}:GOSSIP{message.number}")
        elif what == "report":
            text = f"Dead Node:127.0.0.1:{port(plan.dead)}:{time:.1f}:127.0.0.1"
            peers.append(text)
            seeds.append(text)
    return [_write(folder, "outputpeer.txt", peers), _write(folder, "outputseed.txt", seeds)]


def bracketed(plan: Plan, folder: Path) -> list[Path]:
    """[date] [IP:port] lines in one outputfile.txt, local time UTC+5:30; texts without a port, from 0."""
    port = lambda peer: 6000 + peer  # noqa: E731
    lines = []
    for time, what, about in plan.events():
        at = f"[{_stamp(time, 5.5)}]"
        if what == "join":
            for seed in range(plan.seeds):
                lines.append(f"{at} [127.0.0.1:{5000 + seed}] Accepted connection from ('127.0.0.1', "
                             f"{port(about)}) to register")
            listed = [{"ip": "127.0.0.1", "port": port(other)} for other in plan.listed(about)]
            lines.append(f"{at} [127.0.0.1:{port(about)}] Received peer list from seed 127.0.0.1:5000: {listed}")
        elif what == "create":
            lines.append(f"{at} [127.0.0.1:{port(about.origin)}] Generated message: "
                         f"{about.created:.2f}:127.0.0.1:{about.number - plan.first_number}")
        elif what == "receive":
            message = about.message
            lines.append(f"{at} [127.0.0.1:{port(about.peer)}] Received new message from ('127.0.0.1', 59273): "
                         f"{message.created:.2f}:127.0.0.1:{message.number - plan.first_number}")
        elif what == "report":
            text = f"Dead Node:127.0.0.1:{port(plan.dead)}:{time:.2f}:127.0.0.1"
            lines.append(f"{at} [127.0.0.1:{port(about)}] Reporting {text}")
            lines.append(f"{at} [127.0.0.1:5000] Received dead node message: {text}")
    return [_write(folder, "outputfile.txt", lines)]


def logging_style(plan: Plan, folder: Path) -> list[Path]:
    """Python logging lines, one IP per node (UTC-3); peer lists as JSON; Dead Node with a date-time."""
    ip = lambda peer: f"10.0.0.{peer + 1}"  # noqa: E731
    lines = []
    for time, what, about in plan.events():
        at = _stamp(time, -3, "%Y-%m-%d %H:%M:%S") + f",{int(time * 1000) % 1000:03d}"
        if what == "join":
            listed = json.dumps({"peers": [{"ip": ip(other), "port": 1500} for other in plan.listed(about)]})
            lines.append(f"{at} - Seed 10.0.1.1:1400 new peer {ip(about)}:1500 registered")
            lines.append(f"{at} - Peer {ip(about)}:1500 got peer list: {listed}")
        elif what == "receive":
            message = about.message
            lines.append(f"{at} - Peer {ip(about.peer)}:1500 received gossip {message.created:.3f}:"
                         f"{ip(message.origin)}:{message.number} from {ip(about.sender)}:1500")
        elif what == "report":
            text = f"Dead Node:{ip(plan.dead)}:1500:{_stamp(time, -3)}:{ip(about)}"
            lines.append(f"{at} - Peer {ip(about)}:1500 detected dead node: {text}")
            lines.append(f"{at} - Seed 10.0.1.1:1400 received {text}")
    return [_write(folder, "outputfile.txt", lines)]


def level_and_tag(plan: Plan, folder: Path) -> list[Path]:
    """Date, [LEVEL], [IP:port], [EVENT]; integer texts with the origin's port from 0; peer lists as IP:port
    lines under a header; dead-node reports as JSON."""
    port = lambda peer: 6001 + peer  # noqa: E731
    lines = []
    for time, what, about in plan.events():
        at = _stamp(time, 0) + f".{int(time * 1000) % 1000:03d} [INFO]"
        if what == "join":
            lines.append(f"{at} [127.0.0.1:5000] [CONNECT] Peer 127.0.0.1:{port(about)} registered")
            lines.append(f"{at} [127.0.0.1:{port(about)}] [PEER LIST] Peer list from seed 127.0.0.1:5000:")
            lines += [f"{at} [127.0.0.1:{port(about)}]     127.0.0.1:{port(other)}" for other in plan.listed(about)]
        elif what == "receive":
            message = about.message
            lines.append(f"{at} [127.0.0.1:{port(about.peer)}] [GOSSIP RECEIVED] {int(message.created)}:127.0.0.1:"
                         f"{port(message.origin)}:{message.number - plan.first_number} | From: 127.0.0.1:"
                         f"{port(about.sender)}")
        elif what == "report":
            record = json.dumps({"type": "dead_node", "dead_ip": "127.0.0.1", "dead_port": port(plan.dead),
                                 "timestamp": round(time, 3), "reporter": "127.0.0.1"})
            lines.append(f"{at} [127.0.0.1:{port(about)}] [DEAD NODE] {record}")
            lines.append(f"{at} [127.0.0.1:5000] [DEAD NODE] received {record}")
    return [_write(folder, "outputfile.txt", lines)]


def clock_per_node(plan: Plan, folder: Path) -> list[Path]:
    """Clock time only (UTC+1), [PEER peer_6002] tags, one file per node (outputfile_peer_6002.txt)."""
    port = lambda peer: 6001 + peer  # noqa: E731
    files: dict[str, list[str]] = {f"outputfile_peer_{port(peer)}.txt": [] for peer in range(plan.peers)}
    files.update({f"outputfile_seed_{5001 + seed}.txt": [] for seed in range(plan.seeds)})

    def peer(index: int, text: str, time: float) -> None:
        files[f"outputfile_peer_{port(index)}.txt"].append(f"{_stamp(time, 1, '%H:%M:%S')} [PEER peer_{port(index)}] "
                                                           f"{text}")

    def seed(index: int, text: str, time: float) -> None:
        files[f"outputfile_seed_{5001 + index}.txt"].append(f"{_stamp(time, 1, '%H:%M:%S')} [SEED seed_"
                                                            f"{5001 + index}] {text}")

    for time, what, about in plan.events():
        if what == "join":
            for index in range(plan.seeds):
                seed(index, f"Connection request from 127.0.0.1:{port(about)}", time)
            peer(about, f"Peer list from seeds: {[('127.0.0.1', port(other)) for other in plan.listed(about)]}", time)
        elif what == "create":
            peer(about.origin, f"GOSSIP (created): '{about.created:.3f}:127.0.0.1:{about.number}'", time)
        elif what == "receive":
            message = about.message
            peer(about.peer, f"GOSSIP (first time): '{message.created:.3f}:127.0.0.1:{message.number}'  from "
                             f"127.0.0.1:{port(about.sender)}", time)
        elif what == "report":
            text = f"Dead Node:127.0.0.1:{port(plan.dead)}:{int(time)}:127.0.0.1"
            peer(about, f"DEAD NODE sent: {text}", time)
            seed(0, f"Dead node message: {text}", time)
    return [_write(folder, name, lines) for name, lines in files.items()]


def no_time(plan: Plan, folder: Path) -> list[Path]:
    """[Peer a] tags and no time at all, every line written twice (console echo), one outputfile.txt."""
    name = lambda peer: "abcdefghijklmnopqrstuvwxyz"[peer]  # noqa: E731
    lines = []
    for time, what, about in plan.events():
        if what == "join":
            lines.append(f"[Seed s1] Peer 127.0.0.1:{6000 + about} connected")
            listed = ", ".join(f"127.0.0.1:{6000 + other}" for other in plan.listed(about)) or "[]"
            lines.append(f"[Peer {name(about)}] Peer list: {listed}")
        elif what == "create":
            lines.append(f"[Peer {name(about.origin)}] Created Gossip Message: {about.created:.2f}:127.0.0.1:"
                         f"Msg#{about.number}")
        elif what == "receive":
            message = about.message
            lines.append(f"[Peer {name(about.peer)}] Received Gossip Message: {message.created:.2f}:127.0.0.1:"
                         f"Msg#{message.number}")
        elif what == "report":
            text = f"Dead Node:127.0.0.1:{6000 + plan.dead}:{time:.2f}:127.0.0.1"
            lines.append(f"[Peer {name(about)}] Sending {text}")
            lines.append(f"[Seed s1] {text}")
    return [_write(folder, "outputfile.txt", [copy for line in lines for copy in (line, line)])]


WRITERS: dict[str, Writer] = {
    "bare": bare, "bracketed": bracketed, "logging": logging_style, "level-and-tag": level_and_tag,
    "clock-per-node": clock_per_node, "no-time": no_time,
}
