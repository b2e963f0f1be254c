"""One lab run: start the seeds and peers on a backend, play the faults, follow the log, tear down.

:class:`Lab` is the engine of the lab (cli.py, which adds the command line and the
report) and of tests/test_faults.py.  Nodes start and stop through
launch.py; where they run is the backend's business (lab/net.py); whom a
fault strikes is faults.py's; what the run amounts to is lab/verdict.py's.
The run stops when every check holds, when the log has been quiet for a
detection time after the last fault, or at the timeout.  :meth:`Lab.run`
always ends with :meth:`Lab.teardown`: every process the lab started is
stopped by PID (a hung one is continued first), and every namespace and link
it made is removed, also when it fails or is interrupted.
"""

from __future__ import annotations

import io
import math
import os
import random
import signal
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from gossipnet.config import PeerSettings, majority, peer_argv
from gossipnet.lab import net as labnet
from gossipnet.lab.faults import (
    Action,
    Fault,
    Scenario,
    choose_churn,
    choose_crash,
    choose_group,
    choose_seeds,
    choose_seeds_to_restart,
)
from gossipnet.lab.verdict import Check, Facts, Incident, Join, held_by, judge, live_links
from gossipnet.logs import logformat
from gossipnet.logs.runlog import LogTail, Run
from gossipnet.protocol.wire import Address
from gossipnet.run import launch
from gossipnet.run.launch import NodeProcess
from gossipnet.run.peerrun import COMPLETE, FAILED, INTERRUPTED, TIMED_OUT, Status

SETTLED = "settled"  # the log went quiet after the last fault, with some check failing

# Seconds between two reads of the log, and between two full judgements of it.
POLL_INTERVAL = 0.2
JUDGE_EVERY = 1.0
# Log events that show a run is still moving; none for a detection time means it has settled.
PROGRESS = frozenset({logformat.GOSSIP_GENERATED, logformat.GOSSIP_RECEIVED, logformat.LINK_OPENED,
                      logformat.DEAD_NODE_REPORTED, logformat.PL_REMOVED, logformat.PL_ADDED,
                      logformat.REGISTERED, logformat.START_FAILED})


@dataclass
class LabNode:
    """A seed or peer of the lab: its place, and the processes that ran there (one per start)."""

    name: str  # s0, p3: also its namespace's and cable's suffix
    role: str
    ip: str
    port: int  # 0 until a loopback node's first STARTED line gives it one
    prefix: list[str]
    lives: list[NodeProcess] = field(default_factory=list)
    hung: bool = False
    cut: bool = False

    @property
    def process(self) -> NodeProcess:
        return self.lives[-1]

    @property
    def address(self) -> Address | None:
        return Address(self.ip, self.port) if self.port else None

    @property
    def running(self) -> bool:
        return bool(self.lives) and self.process.running

    @property
    def live(self) -> bool:
        return self.running and not self.hung and not self.cut


@dataclass
class Result:
    outcome: str
    problem: str
    checks: list[Check]
    run: Run
    facts: Facts
    elapsed: float
    leftovers: list[str]

    @property
    def passed(self) -> bool:
        return self.outcome in (COMPLETE, SETTLED) and all(check.ok for check in self.checks) and not self.leftovers

    def check(self, name: str) -> Check:
        return next(check for check in self.checks if check.name == name)


class Lab:
    """Runs one scenario on one backend; :meth:`run` always tears down what it made."""

    def __init__(self, scenario: Scenario, backend: labnet.Loopback | labnet.Namespaces, log: Path,
                 workdir: Path, stop_request: launch.StopRequest | None = None, status: Status | None = None,
                 timeout: float | None = None) -> None:
        self.scenario, self.backend, self.log, self.workdir = scenario, backend, Path(log), Path(workdir)
        self.config = self.workdir / "config.txt"
        # `or` would not do: a StopRequest is false until a signal comes.
        self.stop_request = stop_request if stop_request is not None else launch.StopRequest()
        self.status = status or Status(io.StringIO())  # quiet unless given one
        self.timeout = timeout or default_timeout(scenario)
        self.rng = random.Random(scenario.rng_seed)
        self.nodes: dict[str, LabNode] = {}
        self.incidents: list[Incident] = []
        self.joins: dict[int, Join] = {}  # pid -> join
        self.killed: set[int] = set()  # pids this lab SIGKILLed
        self.chosen: dict[int, list[LabNode]] = {}  # fault index -> the nodes it struck
        # Fault index -> (when its hang or cut began, monotonic; when the timeline planned it): the undo
        # waits for the whole duration after the real start, however late a loaded machine made it.
        self._struck_at: dict[int, tuple[float, float]] = {}
        self.tail = LogTail(self.log)
        self.outcome = self.problem = ""
        self.facts = Facts([], set())
        self.checks: list[Check] = []
        self.leftovers: list[str] = []
        self._began = time.monotonic()
        self._t0: float | None = None
        self._read = 0
        self._last_progress = time.monotonic()

    # --- Nodes ------------------------------------------------------------------------------

    def seeds(self) -> list[LabNode]:
        return [node for node in self.nodes.values() if node.role == "seed"]

    def peers(self) -> list[LabNode]:
        return [node for node in self.nodes.values() if node.role == "peer"]

    def _add(self, role: str) -> LabNode:
        name = f"{role[0]}{sum(node.role == role for node in self.nodes.values())}"
        ip, port, prefix = self.backend.place(name, role)
        node = self.nodes[name] = LabNode(name, role, ip, port, prefix)
        return node

    def _spawn(self, node: LabNode) -> NodeProcess:
        s = self.scenario
        settings = PeerSettings(s.gossip_interval, s.gossip_count, s.ping_interval, s.ping_misses,
                                liveness=s.liveness)
        rng_seed = None if s.rng_seed is None else s.rng_seed + int(node.name[1:]) + 1000 * len(node.lives)
        flags = (["--probe-timeout", f"{s.probe_timeout:g}", "--state", str(self._state_file(node))]
                 if node.role == "seed" else peer_argv(settings, rng_seed))
        process = launch.spawn(node.role, [node.ip, str(node.port), "--config", str(self.config.resolve()),
                                           "--log", str(self.log.resolve()), "--quiet", *flags],
                               self.workdir / f"{node.name}-{len(node.lives)}.err", prefix=node.prefix)
        node.lives.append(process)
        return process

    def _state_file(self, node: LabNode) -> Path:
        """A seed's state file, so that a seed the lab starts again starts from it.  A new seed starts
        empty: a file left in a reused --workdir by an earlier scenario is the lab's own, and removed."""
        path = (self.workdir / f"{node.name}.sqlite").resolve()
        if not node.lives:
            for leftover in (path, path.with_name(f"{path.name}-wal"), path.with_name(f"{path.name}-shm")):
                leftover.unlink(missing_ok=True)
        return path

    def _write_config(self) -> None:
        self.config.write_text("".join(f"{node.address}\n" for node in self.seeds()))

    def _signal(self, node: LabNode, signum: int) -> None:
        if node.running:  # never a reaped pid, which may be another process's by now
            os.kill(node.process.pid, signum)
            if signum == signal.SIGKILL:
                self.killed.add(node.process.pid)

    # --- The run ----------------------------------------------------------------------------

    def run(self) -> Result:
        """Set up, start, play the faults, follow to the end; tear down whatever happens."""
        try:
            self._start()
            self._follow()
        except launch.Interrupted:
            self.outcome = INTERRUPTED
        except launch.LaunchError as exc:
            self.outcome, self.problem = FAILED, str(exc)
        finally:
            try:
                self._poll()
                self.facts = self._facts()
                # Judged as the run stands now: stopping the nodes logs links closing, which says
                # nothing about the run (a peer stopped last sees its neighbours go first).
                self.checks = judge(self.tail.run, self.facts)
            finally:
                self.teardown()
        return self.result()

    def _interrupted(self) -> bool:
        return bool(self.stop_request)

    def _start(self) -> None:
        self.backend.setup()
        seeds = [self._add("seed") for _ in range(self.scenario.seeds)]
        if all(node.port for node in seeds):
            self._write_config()  # a seed on a fixed port checks that the config lists it
        processes = [self._spawn(node) for node in seeds]
        launch.wait_started(processes, self.tail, 30, interrupted=self._interrupted)
        self._learn_ports()
        self._write_config()
        processes = [self._spawn(self._add("peer")) for _ in range(self.scenario.peers)]
        launch.wait_started(processes, self.tail, 30 + 0.5 * len(processes), interrupted=self._interrupted)
        self._learn_ports()
        self.status.note(f"{len(seeds)} seeds and {len(processes)} peers started ({self.backend.name}: "
                         f"{', '.join(str(node.address) for node in list(self.nodes.values())[:3])}, ...); "
                         f"log {self.log}")
        deadline = time.monotonic() + 30 + 0.5 * len(processes)
        while True:
            self._poll()
            made = self._made()
            if all(made[node.address] for node in self.peers()):
                break
            if exited := [node for node in self.nodes.values() if not node.running]:
                node = exited[0]
                raise launch.LaunchError(f"{node.process.describe()} exited with status "
                                         f"{node.process.process.returncode}: {node.process.error_line()}")
            if self._interrupted():
                raise launch.Interrupted()
            if time.monotonic() > deadline:
                raise launch.LaunchError("not every peer joined and made a message within "
                                         f"{30 + 0.5 * len(processes):g} s (is the machine overloaded?)")
            time.sleep(POLL_INTERVAL)
        self._t0 = time.monotonic()
        self.status.note(f"every peer is up after {self.elapsed():.1f} s; faults: "
                         f"{' '.join(map(str, self.scenario.faults)) or 'none'}")

    def _follow(self) -> None:
        actions = self.scenario.timeline()
        deadline = self._began + self.timeout
        next_judgement = 0.0
        quiet_for = self.scenario.detection_time + 2 * self.scenario.ping_interval + 1
        while True:
            self._poll()
            since_up = time.monotonic() - self._t0
            while actions and actions[0].at <= since_up and self._undo_due(actions[0]):
                self._apply(actions.pop(0))
            if self._interrupted():
                raise launch.Interrupted()
            self.status.show(self._progress(len(actions)))
            if not actions and self._gossip_done():
                if time.monotonic() >= next_judgement:
                    next_judgement = time.monotonic() + JUDGE_EVERY
                    if all(check.ok for check in judge(self.tail.run, self._facts())):
                        self.outcome = COMPLETE
                        break
                if time.monotonic() - self._last_progress > quiet_for:
                    self.outcome = SETTLED
                    break
            if time.monotonic() > deadline:
                self.outcome = TIMED_OUT
                break
            time.sleep(POLL_INTERVAL)
        self.status.end()

    def _poll(self) -> None:
        self.tail.poll()
        self._learn_ports()
        events = self.tail.run.events
        if any(event.event in PROGRESS for event in events[self._read:]):
            self._last_progress = time.monotonic()
        self._read = len(events)

    def _learn_ports(self) -> None:
        launch.record_started([process for node in self.nodes.values() for process in node.lives], self.tail)
        for node in self.nodes.values():
            if not node.port and node.lives and node.process.address is not None:
                node.port = node.process.address.port

    def _made(self) -> Counter:
        """Messages each peer's present process has made."""
        since = {node.address: node.process.spawned for node in self.peers()}
        return Counter(message.origin for message in self.tail.run.messages.values()
                       if message.created >= since.get(message.origin, math.inf))

    def _gossip_done(self) -> bool:
        made = self._made()
        return all(made[node.address] >= self.scenario.gossip_count for node in self.peers() if node.live)

    def elapsed(self) -> float:
        return time.monotonic() - self._began

    def _progress(self, left: int) -> str:
        run = self.tail.run
        live = sum(node.live for node in self.peers())
        return (f"{self.elapsed():.0f} s | peers {live}/{len(self.peers())} live | {left} fault steps left | "
                f"{len(run.messages)} messages, {sum(map(len, run.receipts.values()))} receipts | "
                f"{len(run.reports)} dead reports, {sum(map(len, run.removals.values()))} removals")

    # --- Faults -----------------------------------------------------------------------------

    def _undo_due(self, action: Action) -> bool:
        """A hang or cut ends no earlier than its duration after it really began (SIGCONT or link up)."""
        if action.verb not in ("cont", "up") or action.index not in self._struck_at:
            return True
        began, planned = self._struck_at[action.index]
        return time.monotonic() - began >= action.at - planned

    def _apply(self, action: Action) -> None:
        fault: Fault = self.scenario.faults[action.index]
        verb, now = action.verb, time.time()
        if verb in ("stop", "down"):
            self._struck_at[action.index] = (time.monotonic(), action.at)
        if verb in ("crash", "stop", "down"):
            struck = self._pick(fault, choose_crash if verb == "crash" else choose_group)
            self.chosen[action.index] = [node for node, _ in struck]
            for node, neighbours in struck:
                if verb == "down":
                    self.backend.cut(node.name)
                    node.cut = True
                else:
                    self._signal(node, signal.SIGKILL if verb == "crash" else signal.SIGSTOP)
                    node.hung = verb == "stop"
                self.incidents.append(Incident(action.fault_kind, node.address, now, neighbours=neighbours))
        elif verb in ("cont", "up"):
            for node in self.chosen.get(action.index, []):
                if verb == "up":
                    self.backend.restore(node.name)
                    node.cut = False
                else:
                    self._signal(node, signal.SIGCONT)
                    node.hung = False
                self._end_incidents(node, action.fault_kind, now)
        elif verb == "seeds-kill":
            running = {node.address: node for node in self.seeds() if node.running}
            registered = {node.address: held_by(self.tail.run, node.address, now)
                          for node in self.peers() if node.running and node.address}
            picked = choose_seeds(registered, list(running), min(fault.count, len(running)), self.rng)
            self.chosen[action.index] = struck_seeds = [running[address] for address in picked]
            for node in struck_seeds:
                self._signal(node, signal.SIGKILL)
                self.incidents.append(Incident("seeds-down", node.address, now))
        elif verb == "seeds-start":
            for node in self.chosen.get(action.index, []):
                self._spawn(node)
                self._end_incidents(node, "seeds-down", now)
        elif verb == "seeds-restart":
            self._restart_seeds(action.index, fault, now)
        elif verb == "churn":
            self._churn(action.index, now)
        elif verb in ("join", "restart"):
            targets = [self._add("peer") for _ in range(fault.count)] if verb == "join" else \
                [node for node in self.peers() if not node.running and node.lives]
            for node in targets:
                self._join(node, now)
        if verb == "churn":
            what = ", ".join(f"{node.address or node.name}" for node in self.chosen.get(action.index, [])[-2:])
        else:
            what = ", ".join(str(node.address or node.name) for node in self.chosen.get(action.index, [])) \
                if verb not in ("join", "restart") else f"{len(targets)} peers"
        self.status.note(f"{self.elapsed():.1f} s: {verb} ({fault}): {what or 'nobody'}")

    def _join(self, node: LabNode, now: float) -> None:
        """Start a peer after the run is up (a newcomer, or a dead peer on its own address)."""
        majority_up = sum(seed.running for seed in self.seeds()) >= majority(len(self.seeds()))
        process = self._spawn(node)
        self.joins[process.pid] = Join(node.address, process.pid, now, majority_up)
        self._end_incidents(node, "crash", now)

    def _restart_seeds(self, index: int, fault: Fault, now: float) -> None:
        """SIGKILL the seeds whose loss strands the most peers, and start each again on its own address
        as soon as it is gone: it comes back with an empty Peer List (no --state)."""
        running = {node.address: node for node in self.seeds() if node.running}
        registered = {node.address: held_by(self.tail.run, node.address, now)
                      for node in self.peers() if node.running and node.address}
        picked = choose_seeds_to_restart(registered, list(running), min(self.scenario.count(fault), len(running)),
                                         self.rng)
        self.chosen[index] = struck = [running[address] for address in picked]
        for node in struck:
            self._signal(node, signal.SIGKILL)
            self.incidents.append(Incident("seeds-down", node.address, now))
        for node in struck:
            node.process.process.wait(timeout=launch.STOP_TIMEOUT)  # its port is free once it is gone
            self._spawn(node)
            self._end_incidents(node, "seeds-down", time.time())

    def _churn(self, index: int, now: float) -> None:
        """One step of a churn: SIGKILL one peer, a neighbour of the last one when it can be detected,
        and start a new peer."""
        candidates = {node.address: node for node in self.peers() if node.live and node.address}
        adjacency = live_links(self.tail.run, set(candidates))
        killed = [incident for incident in self.incidents if incident.kind == "crash"]
        reported = {(event.address("dead"), event.timestamp) for event in self.tail.run.reports}
        unreported = [incident.neighbours for incident in killed
                      if not any(dead == incident.node and at >= incident.start for dead, at in reported)]
        victim = choose_churn(adjacency, list(candidates), killed[-1].neighbours if killed else frozenset(),
                              unreported, self.rng)
        chosen = self.chosen.setdefault(index, [])
        if victim is not None:
            node = candidates[victim]
            self._signal(node, signal.SIGKILL)
            self.incidents.append(Incident("crash", victim, now, neighbours=frozenset(adjacency.get(victim, ()))))
            chosen.append(node)
        newcomer = self._add("peer")
        self._join(newcomer, now)
        chosen.append(newcomer)

    def _pick(self, fault: Fault, choose) -> list[tuple[LabNode, frozenset[Address]]]:
        candidates = {node.address: node for node in self.peers() if node.live and node.address}
        adjacency = live_links(self.tail.run, set(candidates))
        # In the nodes' order (not by address, which on loopback is a random port): with --rng-seed,
        # both backends strike the same nodes.
        picked = choose(adjacency, list(candidates), min(self.scenario.count(fault), len(candidates) - 1), self.rng)
        return [(candidates[address], frozenset(adjacency.get(address, ()))) for address in picked]

    def _end_incidents(self, node: LabNode, kind: str, now: float) -> None:
        for incident in self.incidents:
            if incident.node == node.address and incident.kind == kind and incident.end is None:
                incident.end = now

    # --- The end ----------------------------------------------------------------------------

    def _facts(self) -> Facts:
        """What the lab knows now, for the verdict (called before the processes are stopped)."""
        exits = []
        for node in self.nodes.values():
            for process in node.lives:
                join = self.joins.get(process.pid)
                if join is not None:
                    join.node, join.returncode, join.error = node.address, process.process.poll(), \
                        process.error_line()
                if process.running or process.pid in self.killed or (join and not join.majority_up):
                    continue  # a join refused while most seeds were down is judged as a join
                exits.append(f"{process.describe()} exited by itself with status {process.process.returncode}"
                             f"{': ' + process.error_line() if process.error_line() else ''}")
        s = self.scenario
        return Facts([node.address for node in self.seeds() if node.address],
                     {node.address for node in self.peers() if node.live and node.address},
                     self.incidents, list(self.joins.values()), exits, s.ping_interval, s.ping_misses,
                     s.probe_timeout)

    def teardown(self) -> None:
        """Stop every process this lab started, remove its network, and list what is left (nothing).

        Safe to call twice.  A stopped (SIGSTOP) node is continued first: it
        cannot act on SIGTERM otherwise.
        """
        processes = [process for node in self.nodes.values() for process in node.lives]
        for node in self.nodes.values():
            self._signal(node, signal.SIGCONT)
        launch.stop(processes)
        problems = self.backend.teardown()
        self.leftovers = problems + self.backend.leftovers() + \
            [f"{process.describe()} still running" for process in processes if process.running]

    def result(self) -> Result:
        self.tail.poll()
        return Result(self.outcome, self.problem, self.checks, self.tail.run, self.facts, self.elapsed(),
                      self.leftovers)


def default_timeout(scenario: Scenario) -> float:
    """Start-up, the faults, the gossip, and two detection times to settle, with room for a loaded machine."""
    gossip = scenario.gossip_count * scenario.gossip_interval
    return 60 + (scenario.seeds + scenario.peers) + max(gossip, scenario.last_action) + 3 * scenario.detection_time
