"""The user's scripts (runner.py, PeerRunner.py) run as subprocesses by tests: free ports, a config,
a run to its end with a deadline, and nothing left behind (every node the log names is ended by PID)."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Collection
from pathlib import Path

from gossipnet.logs import logformat
from netharness import ROOT

RUN_TIMEOUT = 90  # seconds a whole scripted run may take on a loaded machine before the test fails


def free_ports(count: int) -> list[int]:
    sockets = [socket.socket() for _ in range(count)]
    try:
        for sock in sockets:
            sock.bind(("127.0.0.1", 0))
        return [sock.getsockname()[1] for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()


def write_config(directory: Path, ports: list[int]) -> Path:
    config = directory / "config.txt"
    config.write_text("# seeds for this test\n" + "".join(f"127.0.0.1:{port}\n" for port in ports))
    return config


def script(name: str, *args: str) -> list[str]:
    return [sys.executable, str(ROOT / name), *args]


def run(name: str, *args: str, cwd: Path, log: Path | None = None) -> subprocess.CompletedProcess:
    """Run a script to its end; whatever happens, no node it started outlives the call."""
    before = set(started(log)) if log is not None else set()
    process = subprocess.Popen(script(name, *args), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                               cwd=cwd)
    try:
        out, err = process.communicate(timeout=RUN_TIMEOUT)
    except subprocess.TimeoutExpired:
        stop(process)
        raise AssertionError(f"{name} still running after {RUN_TIMEOUT} s") from None
    finally:
        if log is not None:
            kill_leftovers(log, spare=before)
    return subprocess.CompletedProcess(process.args, process.returncode, out, err)


def started(log: Path) -> dict[int, logformat.LogEvent]:
    """The STARTED line of every node in the log, by pid."""
    if not log.exists():
        return {}
    return {int(event.fields["pid"]): event for event in logformat.parse_log(log).events
            if event.event == logformat.STARTED}


def events(log: Path, name: str) -> list[logformat.LogEvent]:
    if not log.exists():
        return []
    return [event for event in logformat.parse_log(log).events if event.event == name]


def node_alive(pid: int) -> bool:
    """A seed.py or peer.py process with this pid runs (a reused pid or a zombie does not count)."""
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError):
        return False
    return state != "Z" and (b"seed.py" in cmdline or b"peer.py" in cmdline)


def wait_until(condition: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:g} s waiting for {what}")
        time.sleep(0.1)  # polling interval, not synchronisation


def assert_all_stopped(log: Path, count: int) -> None:
    """``count`` nodes started, each logged STOPPED or was killed, and none runs any more."""
    nodes = started(log)
    assert len(nodes) == count, nodes
    assert not [pid for pid in nodes if node_alive(pid)]
    stopped = {event.node for event in events(log, logformat.STOPPED)}
    assert {event.node for event in nodes.values()} == stopped


def stop(process: subprocess.Popen) -> None:
    """SIGTERM, so a runner stops its nodes itself; SIGKILL if it does not end."""
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.communicate()


def kill_leftovers(log: Path, spare: Collection[int] = ()) -> None:
    """Kill every node the log names, but those in ``spare``, that still runs (none should)."""
    for pid in started(log):
        if pid not in spare and node_alive(pid):
            os.kill(pid, signal.SIGKILL)


def cleanup(process: subprocess.Popen | None, log: Path) -> None:
    if process is not None:
        stop(process)
    kill_leftovers(log)


def one_line_error(stderr: str) -> str:
    lines = stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in stderr, stderr
    return lines[0]


# --- A whole run ---------------------------------------------------------------------------------
