"""A benchmark network: seeds and peers as real processes on 127.0.0.1, and what
the kernel can tell about them (peak memory, bytes over links).

bench.py builds each network here: seeds on free ports, peers started in
batches (so startup does not swamp a small machine), optionally through
gossipnet/bench/peer.py so that gossip starts only when the bench says so.  Every process
is started through launch.py (or, for the helpers, the same way), recorded in
:data:`STARTED` at once, and ended by PID: by its network when the network
closes, and by :func:`stop_everything` whatever else happens.

The bench's own reading of the log must not steal the CPU the network runs
on, so its runlog.LogTail parses only the few events a wait needs and
merely counts the rest.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path

from gossipnet.logs import logformat, runlog
from gossipnet.protocol.wire import Address
from gossipnet.run import launch
from gossipnet.run.launch import NodeProcess

ROOT = launch.ROOT

# Seeds in each benchmark network.  Three is the smallest count with a real
# majority rule (each peer registers with 2); more would only add startup work.
SEEDS = 3

# Peers spawned at once, each batch waiting until its peers have registered.
# Python's start-up (imports, key generation) is ~0.2 s of CPU per peer, so a
# batch of this size takes a 2-core machine a few seconds.
BATCH = 20

# Seconds a batch of peers gets to start and register before the run fails.
BATCH_TIMEOUT = 120.0

# Seconds with no new link before a network counts as joined.
QUIET_LINKS = 1.5

# Seconds between two looks at the log while waiting.
POLL_INTERVAL = 0.2

# A ping interval no benchmark window reaches: no liveness traffic while timing gossip.
NO_PINGS = 3600.0

# Every process the bench started, so that none outlives it.
STARTED: list[subprocess.Popen] = []

# Set by Ctrl-C, SIGTERM or SIGHUP; every wait checks it (see check()).
STOP = launch.StopRequest()


class BenchError(Exception):
    """A measurement could not be made; the message says why, in one line."""


def check() -> None:
    """Raise launch.Interrupted if the user asked to stop."""
    if STOP:
        raise launch.Interrupted()


def pause(seconds: float) -> None:
    """Sleep, waking early (with launch.Interrupted) if the user asks to stop."""
    deadline = time.monotonic() + seconds
    while (left := deadline - time.monotonic()) > 0:
        check()
        time.sleep(min(left, POLL_INTERVAL))


def progress(message: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def stop_processes(processes: Iterable[subprocess.Popen], timeout: float = launch.STOP_TIMEOUT) -> None:
    """SIGTERM each process still running, SIGKILL any left after ``timeout``; reap all."""
    processes = list(processes)
    for process in processes:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + timeout
    for process in processes:
        try:
            process.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def stop_everything() -> None:
    """End every process the bench started that is still running."""
    stop_processes(STARTED)


def spawn_helper(args: Sequence[str], stdin: bool = False) -> subprocess.Popen:
    """Start ``python -m gossipnet.bench.relay ARGS`` (an echo or a relay, see relay.py)."""
    process = subprocess.Popen([*launch.module_command("gossipnet.bench.relay"), *args], cwd=ROOT,
                               env=launch.module_env(), stdout=subprocess.PIPE, text=True,
                               stdin=subprocess.PIPE if stdin else subprocess.DEVNULL, start_new_session=True)
    STARTED.append(process)
    return process


def peak_memory_kib(pid: int) -> int | None:
    """The process's peak resident set (VmHWM), in KiB; None if it is gone."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return None
    match = re.search(r"^VmHWM:\s+(\d+) kB", status, re.MULTILINE)
    return int(match.group(1)) if match else None


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far (/proc/PID/stat); 0 if it is gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return 0.0
    fields = stat.rsplit(")", 1)[1].split()  # the name, in parentheses, may hold spaces
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


_SOCKET = re.compile(r"^\S+\s+\S+\s+(\S+):(\d+)\s+(\S+):(\d+)")
_RECEIVED = re.compile(r"bytes_received:(\d+)")


def received_bytes(ports: set[int]) -> dict[tuple[int, int], int]:
    """Bytes each established loopback TCP socket touching ``ports`` has received, by
    (local port, remote port), as the kernel counts them (``ss -ti``)."""
    try:
        text = subprocess.run(["ss", "-tinH", "state", "established"], capture_output=True, text=True,
                              timeout=60, check=True).stdout
    except (OSError, subprocess.SubprocessError) as exc:
        raise BenchError(f"cannot read socket counters with ss: {exc}") from None
    result: dict[tuple[int, int], int] = {}
    key = None
    for line in text.splitlines():
        if match := _SOCKET.match(line):
            local, remote = int(match.group(2)), int(match.group(4))
            key = (local, remote) if local in ports or remote in ports else None
            if key is not None:
                result[key] = 0
        elif key is not None and (match := _RECEIVED.search(line)):
            result[key] = int(match.group(1))
    return result


class Network:
    """Seeds and peers of one benchmark run, in ``directory``; a context manager
    that stops every node it started on exit."""

    # Events a wait needs parsed; all others are only counted.
    WATCHED = (logformat.STARTED, logformat.PEER_LIST_UNION, logformat.LINK_OPENED, logformat.START_FAILED,
               logformat.DEAD_NODE_REPORTED, logformat.PL_ADDED, logformat.PL_REMOVED)

    def __init__(self, directory: Path, auth: bool = True) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        self.directory = directory
        self.auth = auth
        self.log_path = directory / "outputfile.txt"
        self.config_path = directory / "config.txt"
        self.start_file = directory / "start"
        self.seeds: list[NodeProcess] = []
        self.peers: list[NodeProcess] = []
        self.killed: list[NodeProcess] = []  # peers the bench killed on purpose
        # A kept directory may hold an earlier run: its log would be read as part
        # of this one, and its start file would start the new peers' gossip at once.
        for stale in (self.log_path, self.start_file):
            stale.unlink(missing_ok=True)
        self.tail = runlog.LogTail(self.log_path, events=self.WATCHED)

    def __enter__(self) -> Network:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def nodes(self) -> list[NodeProcess]:
        return self.seeds + self.peers

    def _common(self) -> list[str]:
        return ["127.0.0.1", "0", "--log", str(self.log_path), "--quiet", "--config", str(self.config_path),
                *([] if self.auth else ["--no-auth"])]

    def _spawn(self, role: str, args: list[str], module: str | None = None) -> NodeProcess:
        stderr_path = self.directory / f"{role}-{len(self.nodes)}.err"
        if module is None:
            node = launch.spawn(role, args, stderr_path, cwd=self.directory)
        else:  # launch.spawn runs <role>.py; a wrapper is started the same way
            spawned = time.time()
            with open(stderr_path, "wb") as stderr:
                process = subprocess.Popen([*launch.module_command(module), *args], stdin=subprocess.DEVNULL,
                                           stdout=subprocess.DEVNULL, stderr=stderr, cwd=self.directory,
                                           env=launch.module_env(), start_new_session=True)
            node = NodeProcess(role, process, stderr_path, spawned)
        STARTED.append(node.process)
        (self.seeds if role == "seed" else self.peers).append(node)
        return node

    def start_seeds(self, count: int = SEEDS, flags: Sequence[str] = ()) -> None:
        nodes = [self._spawn("seed", [*self._common(), *flags]) for _ in range(count)]
        self._wait_started(nodes, 30.0)
        self.config_path.write_text("".join(f"{node.address}\n" for node in nodes))

    def start_peers(self, count: int, flags: Sequence[str], offsets: Sequence[float] | None = None,
                    batch: int = BATCH) -> None:
        """Start ``count`` peers, ``batch`` at a time, each batch registered before the next.

        With ``offsets``, peer *i* runs through gossipnet/bench/peer.py and makes its first
        message ``offsets[i]`` seconds after the time :meth:`go` sets.
        """
        first = len(self.peers)
        for begin in range(0, count, batch):
            nodes = []
            for index in range(begin, min(begin + batch, count)):
                check()
                args = [*self._common(), "--rng-seed", str(first + index), *flags]
                if offsets is None:
                    nodes.append(self._spawn("peer", args))
                else:
                    nodes.append(self._spawn("peer", [str(self.start_file), f"{offsets[index]:.6f}", *args],
                                             module="gossipnet.bench.peer"))
            self._wait_started(nodes, BATCH_TIMEOUT)
            addresses = {node.address for node in nodes}
            self.wait_for(lambda addresses=addresses: addresses <= self._registered(), BATCH_TIMEOUT,
                          f"peers {begin + 1}-{begin + len(nodes)} to register")

    def _registered(self) -> set[Address]:
        return {event.node for event in self.tail.run.events if event.event == logformat.PEER_LIST_UNION}

    def _wait_started(self, nodes: list[NodeProcess], timeout: float) -> None:
        try:
            launch.wait_started(nodes, self.tail, timeout, interrupted=lambda: bool(STOP))
        except launch.LaunchError as exc:
            raise BenchError(str(exc)) from None

    def wait_for(self, condition: Callable[[], bool], timeout: float, what: str) -> None:
        """Poll the log until ``condition()``; BenchError after ``timeout`` s or if a peer exits."""
        deadline = time.monotonic() + timeout
        while True:
            check()
            self.tail.poll()
            if condition():
                return
            dead = [node for node in self.nodes if not node.running and node not in self.killed]
            if dead:
                raise BenchError(f"{dead[0].describe()} exited: {dead[0].error_line() or 'no error line'}")
            if time.monotonic() > deadline:
                raise BenchError(f"timed out after {timeout:g} s waiting for {what}")
            time.sleep(POLL_INTERVAL)

    def wait_joined(self, timeout: float = 120.0) -> None:
        """Wait until every peer has a link and no link opened for QUIET_LINKS seconds."""
        state = {"links": -1, "since": time.monotonic()}

        def settled() -> bool:
            opened = [event for event in self.tail.run.events if event.event == logformat.LINK_OPENED]
            if len(opened) != state["links"]:
                state["links"], state["since"] = len(opened), time.monotonic()
                return False
            linked = {event.node for event in opened}
            return all(node.address in linked for node in self.peers) and \
                time.monotonic() - state["since"] >= QUIET_LINKS

        self.wait_for(settled, timeout, "every peer to link")

    def go(self, at: float) -> None:
        """Tell the peers started through gossipnet/bench/peer.py to start gossiping at ``at`` (+ their offset)."""
        temporary = self.start_file.with_suffix(".tmp")
        temporary.write_text(f"{at:.6f}")
        temporary.replace(self.start_file)  # atomic: a peer never reads half a time

    def peak_memory_kib(self, nodes: Iterable[NodeProcess]) -> list[int]:
        return [kib for node in nodes if node.running and (kib := peak_memory_kib(node.pid)) is not None]

    def cpu_seconds(self) -> float:
        """CPU time (user + system) the running nodes have used so far, summed."""
        return sum(cpu_seconds(node.pid) for node in self.nodes if node.running)

    def kill(self, node: NodeProcess) -> float:
        """SIGKILL one peer; the wall-clock time the signal was sent."""
        self.killed.append(node)
        sent = time.time()
        os.kill(node.pid, signal.SIGKILL)
        node.process.wait()
        return sent

    def link_bytes(self) -> dict[tuple[int, int], int]:
        """Bytes received so far on each peer-to-peer link end (sockets to seeds left out)."""
        peers = {node.address.port for node in self.peers if node.address}
        seeds = {node.address.port for node in self.seeds if node.address}
        return {key: count for key, count in received_bytes(peers).items()
                if not set(key) & seeds}

    def close(self) -> None:
        launch.stop(self.nodes)
