"""Start node processes, know when each is up, and stop them all.

The runners (``runner.py``, ``PeerRunner.py``) and the test harness start
seeds and peers through this one module: each node is its own process, found
through the ``STARTED`` line it logs (matched by its pid, so a node on port 0
is found too), and stopped by PID with SIGTERM and, past a deadline, SIGKILL.
Every node runs in its own session, so a Ctrl-C at the terminal reaches only
the runner, which then stops its nodes in the order it chooses.

This module knows nothing of what nodes do once they run.
"""

from __future__ import annotations

import functools
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from gossipnet.logs.runlog import LogTail
from gossipnet.protocol.wire import Address

# The repository: the user's scripts (seed.py, peer.py, ...) and the gossipnet package live here.
ROOT = Path(__file__).resolve().parents[2]

# Seconds a node gets to stop after SIGTERM before it is killed.  A clean stop
# joins the node's threads, each bounded by CONNECT_TIMEOUT + 1 s; on a loaded
# machine several of those can add up.
STOP_TIMEOUT = 15.0

# Seconds between two looks at the log or the processes while waiting.
POLL_INTERVAL = 0.1

# Seconds a STARTED line may seem to precede its process's spawn (a wall-clock
# step) and still be matched to it by pid.
PID_REUSE_SLACK = 1.0


class LaunchError(Exception):
    """A node could not be started.  The message is one line for the user."""

    def __init__(self, message: str, failed: Sequence[NodeProcess] = ()) -> None:
        super().__init__(message)
        self.failed = list(failed)  # nodes that exited before logging STARTED


class Interrupted(Exception):
    """The user asked to stop (Ctrl-C, SIGTERM) while nodes were starting."""


@dataclass
class NodeProcess:
    """One node's process, and its address once its STARTED line is seen."""

    role: str  # "seed" or "peer"
    process: subprocess.Popen
    stderr_path: Path
    spawned: float = 0.0  # wall clock, as in the log: its STARTED line comes after
    address: Address | None = None

    @property
    def pid(self) -> int:
        return self.process.pid

    @property
    def running(self) -> bool:
        return self.process.poll() is None

    def stderr(self) -> str:
        try:
            return self.stderr_path.read_text(errors="replace")
        except OSError:
            return ""

    def error_line(self) -> str:
        """The last line the node wrote to stderr (its one-line error), or ''."""
        lines = [line.strip() for line in self.stderr().splitlines() if line.strip()]
        return lines[-1] if lines else ""

    def describe(self) -> str:
        """``seed 127.0.0.1:8080 (pid 123)``, or without the address before it is known."""
        where = f" {self.address}" if self.address else ""
        return f"{self.role}{where} (pid {self.pid})"


@functools.cache
def compile_package() -> None:
    """Compile the package's modules to bytecode once, before the first node starts.

    Only when this interpreter is told not to write bytecode
    (PYTHONDONTWRITEBYTECODE, as on the project's machine): then no node
    would, and every node would compile every module it imports at its
    start, about 30 ms of CPU each (docs/BENCHMARKS.md).  The files go where
    Python itself would put them (``__pycache__``, ignored by git) and are
    only rewritten when a source changed.
    """
    if sys.dont_write_bytecode:
        import compileall

        compileall.compile_dir(ROOT / "gossipnet", quiet=2)


def module_command(module: str) -> list[str]:
    """``python -m MODULE`` for a module of this package; run it with :func:`module_env`."""
    compile_package()
    return [sys.executable, "-m", module]


def module_env() -> dict[str, str]:
    """This environment with the repository first on PYTHONPATH, so that ``-m gossipnet...`` runs from any directory."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    return env


def spawn(role: str, args: Iterable[str], stderr_path: str | Path, cwd: str | Path | None = None,
          prefix: Sequence[str] = ()) -> NodeProcess:
    """Start ``<role>.py ARGS`` as its own process; its stderr goes to ``stderr_path``.

    The node gets no terminal input and its console output is discarded: it
    should be given ``--quiet`` and a ``--log`` file, which is where it speaks.
    ``prefix`` runs the node through a wrapper command, such as
    ``ip netns exec NS`` (lab.py); the wrapper must exec the interpreter in its
    own process, so that the pid in the STARTED line is the one spawned here.
    """
    stderr_path = Path(stderr_path)
    compile_package()
    spawned = time.time()
    with open(stderr_path, "wb") as stderr:
        process = subprocess.Popen(
            [*prefix, sys.executable, str(ROOT / f"{role}.py"), *args],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=stderr, cwd=cwd,
            start_new_session=True,
        )
    return NodeProcess(role, process, stderr_path, spawned)


def record_started(nodes: Iterable[NodeProcess], tail: LogTail) -> None:
    """Give each node without an address the one its STARTED line (matched by pid) names."""
    waiting = {node.pid: node for node in nodes if node.address is None}
    if not waiting:
        return
    for logged in (*tail.run.seeds.values(), *tail.run.peers.values()):
        pid = logged.settings.get("pid", "")
        node = waiting.get(int(pid)) if pid.isdigit() else None
        # A STARTED line from before the spawn is an earlier process that had the same pid
        # (the slack only forgives a clock step).
        if node is not None and node.role == logged.role and (logged.started or 0) >= node.spawned - PID_REUSE_SLACK:
            node.address = logged.address


def wait_started(nodes: Sequence[NodeProcess], tail: LogTail, timeout: float,
                 interrupted: Callable[[], bool] = lambda: False) -> None:
    """Wait until every node has logged STARTED, reading the log through ``tail``.

    Raises :class:`LaunchError` when a node exits first (after waiting for the
    others to start or fail, so the error can name every failure) or when
    ``timeout`` seconds pass; :class:`Interrupted` as soon as ``interrupted()``
    is true.  The caller still owns the processes and must stop them.
    """
    deadline = time.monotonic() + timeout
    while True:
        tail.poll()
        record_started(nodes, tail)
        failed = [node for node in nodes if node.address is None and not node.running]
        pending = [node for node in nodes if node.address is None and node.running]
        if not pending:
            if failed:
                raise LaunchError(_failure(failed, len(nodes)), failed)
            return
        if interrupted():
            raise Interrupted()
        if time.monotonic() > deadline:
            raise LaunchError(f"{len(pending)} of {len(nodes)} {nodes[0].role}s did not log STARTED "
                              f"within {timeout:g} s (is the machine overloaded?)", failed)
        time.sleep(POLL_INTERVAL)


def _failure(failed: Sequence[NodeProcess], total: int) -> str:
    first = failed[0]
    reason = first.error_line() or f"exit status {first.process.returncode}"
    more = f" ({len(failed)} of {total} failed)" if len(failed) > 1 else ""
    return f"{first.describe()} could not start: {reason}{more}"


def stop(nodes: Iterable[NodeProcess], timeout: float = STOP_TIMEOUT) -> list[NodeProcess]:
    """Stop every node still running: SIGTERM now, SIGKILL for any left after ``timeout``.

    Waits for each process (so none is left behind, not even as a zombie) and
    returns the ones that had to be killed.  Safe to call twice.
    """
    nodes = list(nodes)
    for node in nodes:
        if node.running:
            node.process.send_signal(signal.SIGTERM)  # Popen never signals a reaped PID
    deadline = time.monotonic() + timeout
    killed = []
    for node in nodes:
        try:
            node.process.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            node.process.kill()
            node.process.wait()
            killed.append(node)
    return killed


class StopRequest:
    """Ctrl-C, SIGTERM and SIGHUP ask a runner to stop, by setting a flag its loops poll.

    Raising from the handler instead (as Python's default KeyboardInterrupt
    does) could land between starting a process and recording it, leaving a
    node nobody stops; inside a GUI callback (visualizer.py's live window),
    the toolkit would print and swallow it.  A second signal while stopping
    changes nothing: the stop is already bounded by :data:`STOP_TIMEOUT`.
    """

    SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)

    def __init__(self) -> None:
        self.signum: int | None = None

    def install(self, signals: Iterable[int] = SIGNALS) -> StopRequest:
        for signum in signals:
            signal.signal(signum, self._handle)
        return self

    def sleep(self, seconds: float) -> None:
        """Sleep, waking early once a stop is asked for."""
        deadline = time.monotonic() + seconds
        while not self and (left := deadline - time.monotonic()) > 0:
            time.sleep(min(POLL_INTERVAL, left))

    def _handle(self, signum: int, _frame: object) -> None:
        self.signum = signum

    def __bool__(self) -> bool:
        return self.signum is not None

    @property
    def name(self) -> str:
        return signal.Signals(self.signum).name if self.signum is not None else ""
