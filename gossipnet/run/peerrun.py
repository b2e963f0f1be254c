"""A run of peers: start them, follow the run in the log, kill some, stop them all.

:class:`PeerRun` is the engine of ``PeerRunner.py`` and of ``runner.py
--peers``.  It starts each peer as its own ``peer.py`` process (through
launch.py), reads the log as it grows (runlog.LogTail), shows progress on
one line, kills the victims of ``--kill``, and stops by itself once every
message has reached every live peer and every killed peer has been reported
and removed by each seed it registered with, or at the timeout.  What the run
amounts to is for summary.py to say; the command lines are the scripts'.
"""

from __future__ import annotations

import random
import shutil
import sys
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TextIO

from gossipnet.config import PeerSettings, SeedSettings, peer_argv
from gossipnet.lab.faults import reportable
from gossipnet.logs import logformat
from gossipnet.logs.runlog import LogTail, Run, components
from gossipnet.protocol.wire import Address
from gossipnet.run import launch
from gossipnet.run.launch import NodeProcess

# Seconds between two reads of the log.  Each read parses only the lines added
# since the last, so even a 200-peer run stays cheap to follow.
POLL_INTERVAL = 0.5
# Seconds between two progress lines when stdout is not a terminal (a file, CI).
PLAIN_PROGRESS_EVERY = 5.0
# Random draws tried to find victims whose deaths can be detected (see choose_victims).
VICTIM_DRAWS = 500

# Outcomes of watching a run.
COMPLETE, TIMED_OUT, INTERRUPTED, FAILED = "complete", "timed out", "interrupted", "failed"


@dataclass(frozen=True)
class Timings:
    """The clocks of a run.  REPORT holds the report's numbers; --fast divides each by ten."""

    gossip_interval: float
    ping_interval: float
    probe_timeout: float  # the seeds'; runner.py passes it on, PeerRunner.py only plans with it
    kill_after: float  # seconds after every peer is up before --kill strikes

    def scaled(self, factor: float) -> Timings:
        return Timings(*(round(value * factor, 6) for value in asdict(self).values()))


REPORT = Timings(PeerSettings.gossip_interval, PeerSettings.ping_interval, SeedSettings.probe_timeout,
                 kill_after=2 * PeerSettings.gossip_interval)
FAST = REPORT.scaled(0.1)


@dataclass(frozen=True)
class Plan:
    """Everything a run of peers is asked to do, checked."""

    peers: int
    config: Path
    log: Path
    summary: Path
    timings: Timings
    host: str = "127.0.0.1"
    base_port: int | None = None
    gossip_count: int = PeerSettings.gossip_count
    ping_misses: int = PeerSettings.ping_misses
    degree_model: str = PeerSettings.degree_model
    liveness: str = PeerSettings.liveness
    rng_seed: int | None = None
    kill: int = 0
    timeout: float = 0.0

    @property
    def peer_settings(self) -> PeerSettings:
        return PeerSettings(self.timings.gossip_interval, self.gossip_count, self.timings.ping_interval,
                            self.ping_misses, self.degree_model, liveness=self.liveness)

    def peer_args(self, index: int) -> list[str]:
        """peer.py's command line for peer ``index``: its port, and rng seed N+index with --rng-seed N."""
        port = self.base_port + index if self.base_port is not None else 0
        return [self.host, str(port), "--config", str(self.config), "--log", str(self.log), "--quiet",
                *peer_argv(self.peer_settings, None if self.rng_seed is None else self.rng_seed + index)]

    @property
    def detection_window(self) -> tuple[float, float]:
        """When neighbours should report a death: misses to misses + 1 ping intervals after it."""
        interval = self.timings.ping_interval
        return self.ping_misses * interval, (self.ping_misses + 1) * interval

    def expected_duration(self) -> float:
        """Seconds the run should take once the peers are up."""
        gossip = self.gossip_count * self.timings.gossip_interval
        if not self.kill:
            return gossip
        return max(gossip, self.timings.kill_after + self.detection_window[1] + 2 * self.timings.probe_timeout)


# --- Progress on the console ------------------------------------------------------------------


class Status:
    """One progress line, rewritten in place on a terminal; a plain line now and then otherwise."""

    def __init__(self, stream: TextIO = sys.stdout, clock: Callable[[], float] = time.monotonic) -> None:
        self.stream = stream
        self.tty = stream.isatty()
        self.clock = clock
        self._shown = ""
        self._last_plain = float("-inf")

    def show(self, text: str) -> None:
        if self.tty:
            width = shutil.get_terminal_size().columns - 1
            self._shown = text[:width]
            self.stream.write(f"\r{self._shown}\x1b[K")
            self.stream.flush()
        elif self.clock() - self._last_plain >= PLAIN_PROGRESS_EVERY:
            self._last_plain = self.clock()
            self.note(text)

    def note(self, text: str) -> None:
        """A line that stays, printed above the progress line."""
        if self.tty and self._shown:
            self.stream.write("\r\x1b[K")
        print(text, file=self.stream, flush=True)
        if self.tty and self._shown:
            self.stream.write(self._shown)
            self.stream.flush()

    def end(self) -> None:
        """Leave the progress line as it is and move below it."""
        if self.tty and self._shown:
            self.stream.write("\n")
            self.stream.flush()
        self._shown = ""


# --- Choosing whom to kill --------------------------------------------------------------------


def choose_victims(adjacency: dict[Address, set[Address]], candidates: Sequence[Address], count: int,
                   rng: random.Random) -> tuple[list[Address], bool]:
    """Draw ``count`` peers to kill; True if the draw keeps their deaths detectable.

    Only neighbours report a death, and a seed removes a peer once
    CONFIRMATIONS of its neighbours (all of them, if it has fewer) reported
    it: a victim left with fewer live neighbours may never be removed.  And
    survivors split apart cannot deliver each other's messages.  Draws are
    random, but one that avoids both is preferred.
    """
    victims: list[Address] = []
    for _ in range(VICTIM_DRAWS):
        victims = rng.sample(list(candidates), count)
        survivors = set(candidates) - set(victims)
        if all(reportable(adjacency.get(victim, set()), survivors) for victim in victims) \
                and len(components(survivors, adjacency)) <= 1:
            return victims, True
    return victims, False


# --- A run of peers ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Kill:
    """A peer this run killed, and when."""

    pid: int
    time: float  # wall clock, as in the log
    degree: int


@dataclass
class PeerRun:
    """Starts the peers of a plan, follows the run through the log, kills the victims, stops the peers."""

    plan: Plan
    tail: LogTail
    stop_request: launch.StopRequest
    status: Status
    workdir: Path  # for the peers' stderr files
    others: list[NodeProcess] = field(default_factory=list)  # processes the run needs (the seeds), not ours
    nodes: list[NodeProcess] = field(default_factory=list)
    kills: dict[Address, Kill] = field(default_factory=dict)
    registered: dict[Address, set[Address]] = field(default_factory=lambda: defaultdict(set))  # peer -> seeds
    joined: set[Address] = field(default_factory=set)  # peers that logged their union of peer lists
    outcome: str = ""
    problem: str = ""  # why the run failed, when it did
    _started: float = 0.0
    _all_up: float | None = None
    _read: int = 0  # events of tail.run already looked at
    _run: Run | None = None

    @property
    def run(self) -> Run:
        return self.tail.run

    def elapsed(self) -> float:
        return time.monotonic() - self._started if self._started else 0.0

    def start(self) -> None:
        """Start every peer and wait for each STARTED line.  Raises launch.LaunchError or launch.Interrupted."""
        self._started = time.monotonic()
        for index in range(self.plan.peers):
            if self.stop_request:
                raise launch.Interrupted()
            self.nodes.append(launch.spawn("peer", self.plan.peer_args(index),
                                           self.workdir / f"peer-{index}.err"))
        launch.wait_started(self.nodes, self.tail, timeout=30 + 0.5 * self.plan.peers,
                            interrupted=lambda: bool(self.stop_request))
        self.status.note(f"{len(self.nodes)} peers started on {self._ports()}; "
                         f"log {self.plan.log}; timeout {self.plan.timeout:g} s")

    def _ports(self) -> str:
        ports = sorted(node.address.port for node in self.nodes if node.address)
        if ports == list(range(ports[0], ports[0] + len(ports))):
            return f"{self.plan.host}:{ports[0]}-{ports[-1]}"
        return f"{self.plan.host}, ports {', '.join(map(str, ports[:8]))}{', ...' if len(ports) > 8 else ''}"

    def watch(self) -> str:
        """Follow the run until it is complete, times out, fails or is interrupted; returns the outcome."""
        deadline = self._started + self.plan.timeout
        while True:
            self._poll()
            self.status.show(self.progress())
            if self.stop_request:
                self.outcome = INTERRUPTED
            elif exited := [node for node in self.others + self.nodes
                            if not node.running and node.address not in self.kills]:
                node = exited[0]
                reason = node.error_line() or "no error message"
                self.problem = f"{node.describe()} exited with status {node.process.returncode}: {reason}"
                self.outcome = FAILED
            elif self.complete():
                self.outcome = COMPLETE
            elif time.monotonic() > deadline:
                self.outcome = TIMED_OUT
            else:
                self._maybe_kill()
                time.sleep(POLL_INTERVAL)
                continue
            self.status.end()
            return self.outcome

    def stop(self) -> None:
        """Stop every peer this run started (SIGTERM, then SIGKILL), then read the log to its end."""
        launch.stop(self.nodes)
        self._poll()

    def _poll(self) -> None:
        self.tail.poll()
        if self.tail.run is not self._run:  # the log was started afresh under us
            self._run, self._read = self.tail.run, 0
        events = self.run.events
        for event in events[self._read:]:
            if event.event == logformat.REGISTERED:
                self.registered[event.node].add(event.address("seed"))
            elif event.event == logformat.PEER_LIST_UNION:
                self.joined.add(event.node)
        self._read = len(events)

    # --- What the run has done so far --------------------------------------------------------

    def addresses(self) -> list[Address]:
        return [node.address for node in self.nodes if node.address is not None]

    def made(self) -> Counter:
        """Messages each peer has created so far."""
        return Counter(origin for origin, _ in self.run.messages)

    def reported(self) -> set[Address]:
        return {event.address("dead") for event in self.run.reports}

    def missing_removals(self, victim: Address) -> set[Address]:
        """Seeds the victim registered with that have not yet removed it."""
        return self.registered[victim] - set(self.run.removals.get(victim, {}))

    def complete(self) -> bool:
        """Every message at every live peer; every killed peer reported and removed where it was held."""
        addresses = self.addresses()
        if len(addresses) < self.plan.peers or len(self.kills) < self.plan.kill:
            return False
        made = self.made()
        if any(made[peer] < self.plan.gossip_count for peer in addresses if peer not in self.kills):
            return False
        delivered, expected = self.run.delivery_counts()
        if delivered < expected:
            return False
        reported = self.reported()
        return all(victim in reported and not self.missing_removals(victim) for victim in self.kills)

    def progress(self) -> str:
        addresses = self.addresses()
        made = self.made()
        # Receipts at the peers not killed, of the messages the run will have made in
        # the end: a total that holds still, where run.delivery_counts() only knows of
        # the messages made so far and of deaths once they are reported.
        alive = self.plan.peers - len(self.kills)
        total = alive * self.plan.gossip_count * (alive - 1) + alive * sum(made[victim] for victim in self.kills)
        delivered = sum(len(receivers) - sum(victim in receivers for victim in self.kills)
                        for receivers in self.run.receipts.values())
        # Most telling first: a narrow terminal cuts the end.
        parts = [f"{self.elapsed():.0f} s",
                 f"peers {len(addresses)}/{self.plan.peers} up, {len(self.joined)} registered",
                 f"gossip {delivered}/{total}"]
        if self.kills:
            removed = sum(len(self.registered[victim]) - len(self.missing_removals(victim)) for victim in self.kills)
            held = sum(len(self.registered[victim]) for victim in self.kills)
            parts.append(f"killed {len(self.kills)}: {len(self.run.reports)} reports, {removed}/{held} removed")
        elif self.run.reports:
            parts.append(f"{len(self.run.reports)} dead reports")
        parts.append(f"links {len(self.run.links)}")
        return " | ".join(parts)

    def _maybe_kill(self) -> None:
        """Kill the victims --kill-after seconds after every peer has made its first message."""
        if not self.plan.kill or self.kills:
            return
        addresses = self.addresses()
        if self._all_up is None:
            made = self.made()
            if len(addresses) == self.plan.peers and all(made[peer] for peer in addresses):
                self._all_up = time.monotonic()
            return
        if time.monotonic() < self._all_up + self.plan.timings.kill_after:
            return
        adjacency = self.run.adjacency()
        victims, detectable = choose_victims(adjacency, addresses, self.plan.kill, random.Random(self.plan.rng_seed))
        if not detectable:
            self.status.note(f"note: no choice of {self.plan.kill} peers leaves each enough live neighbours to "
                             "report it and the rest connected; some deaths may go unnoticed")
        by_address = {node.address: node for node in self.nodes}
        low, high = self.plan.detection_window
        for victim in victims:
            node = by_address[victim]
            self.kills[victim] = Kill(node.pid, time.time(), len(adjacency.get(victim, ())))
            node.process.kill()
            self.status.note(f"killed peer {victim} (pid {node.pid}, {self.kills[victim].degree} links) at "
                             f"{self.elapsed():.1f} s; its neighbours should report it {low:g}-{high:g} s later")
