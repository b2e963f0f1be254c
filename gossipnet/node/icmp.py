"""The system ping utility, for a peer run with ``--liveness icmp`` or ``both``.

The course handout asks for liveness by "a ping utility", not one of our own:
this module runs the system's ``ping`` (iputils, Debian's iputils-ping), one
echo request at a time, and says whether an echo reply came.  What a reply
means, and when a neighbour is dead, is liveness.py's: this module only
carries the answer to it.

- :func:`ping_unavailable`: the start-up check (peer.py): is there a ``ping``
  that can open its socket and get an answer from 127.0.0.1?  One line if not.
- :class:`Pinger`: the ping loop's worker (peer.py).  Each ping is a process
  of its own, waited for on a thread of its own, so a ping never blocks the
  peer's other work; at most one runs per neighbour at a time (a neighbour
  whose last ping has not ended gets none this round, which counts as
  unanswered), so at most one per link: config.MAX_CONNECTIONS bounds them.
  Each waits ``config.ICMP_WAIT_SHARE`` of the ping interval for its reply
  and is killed at ``config.ICMP_KILL_SHARE``.  :meth:`Pinger.stop` kills the
  pings still running, by PID, and joins their threads.

It sends nothing itself and reads no socket: ``ping`` does both.

``subprocess`` and ``shutil`` are imported where a ping is run, not here:
every peer loads this module, and with them comes compression code
(bz2, lzma) that only a --liveness icmp or both peer ever uses.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING

from gossipnet.config import ICMP_CHECK_TIMEOUT, ICMP_KILL_SHARE, ICMP_WAIT_SHARE
from gossipnet.protocol.wire import Address

if TYPE_CHECKING:
    import subprocess

PING = "ping"
# The address the start-up check pings: this host's own, which answers whenever ICMP works at all.
CHECK_ADDRESS = "127.0.0.1"
MISSING = (f"--liveness icmp needs the system {PING} utility, and there is no {PING!r} on PATH "
           "(Debian: apt-get install iputils-ping)")


def ping_command(ip: str, wait: float) -> list[str]:
    """One echo request to ``ip``, waiting ``wait`` seconds for the reply: numeric, quiet.

    Exit status (iputils): 0 a reply came, 1 none did, 2 another error.
    """
    return [PING, "-n", "-q", "-c", "1", "-W", f"{max(wait, 0.001):.3f}", ip]


def ping_unavailable() -> str | None:
    """Why this host cannot run --liveness icmp (one line), or None if its ping works."""
    import shutil
    import subprocess

    if shutil.which(PING) is None:
        return MISSING
    try:
        done = subprocess.run(ping_command(CHECK_ADDRESS, 1.0), capture_output=True, text=True,
                              timeout=ICMP_CHECK_TIMEOUT, stdin=subprocess.DEVNULL, start_new_session=True)
    except FileNotFoundError:
        return MISSING
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"--liveness icmp: the system {PING} utility cannot run: {exc}"
    if done.returncode == 0:
        return None
    said = (done.stderr.strip().splitlines() or done.stdout.strip().splitlines() or [""])[-1]
    if done.returncode == 1 and not done.stderr.strip():
        return (f"--liveness icmp: {PING} {CHECK_ADDRESS} got no echo reply: ICMP echo is blocked on this "
                "host (net.ipv4.icmp_echo_ignore_all?)")
    return (f"--liveness icmp: the system {PING} utility cannot open its socket or send "
            f"(exit status {done.returncode}): {said or 'no message'}")


class Pinger:
    """Runs ``ping`` for the ping loop: never blocking it, at most one at a time per neighbour."""

    def __init__(self, ping_interval: float, command: Callable[[str, float], list[str]] = ping_command) -> None:
        self.command = command  # (IP, seconds to wait) -> argv; tests put a stand-in here
        self.wait = ICMP_WAIT_SHARE * ping_interval
        self.kill_after = ICMP_KILL_SHARE * ping_interval
        self._running: dict[Address, threading.Thread] = {}
        self._processes: dict[Address, subprocess.Popen] = {}
        self._stopped = False
        # Guards _running, _processes and _stopped.
        self._lock = threading.Lock()

    def ping(self, neighbour: Address, done: Callable[[bool], None]) -> bool:
        """Start a ping of ``neighbour``'s IP; ``done(answered)`` is called when it ends.

        False (and ``done`` never called) when the neighbour's last ping is
        still running, or the pinger is stopped.
        """
        with self._lock:
            if self._stopped or neighbour in self._running:
                return False
            thread = self._running[neighbour] = threading.Thread(
                target=self._run, args=(neighbour, done), name=f"ping {neighbour}", daemon=True)
        thread.start()
        return True

    def _run(self, neighbour: Address, done: Callable[[bool], None]) -> None:
        answered = False
        try:
            answered = self._echo(neighbour)
        finally:
            with self._lock:
                self._running.pop(neighbour, None)
                stopped = self._stopped
        if not stopped:
            done(answered)

    def _echo(self, neighbour: Address) -> bool:
        """Whether one echo request to the neighbour's IP got a reply."""
        import subprocess

        try:
            # Its own session: a Ctrl-C at the terminal is for the peer, which then stops its pings.
            process = subprocess.Popen(self.command(neighbour.ip, self.wait), stdin=subprocess.DEVNULL,
                                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                       start_new_session=True)
        except OSError:  # out of processes, or ping gone since the start-up check: no reply
            return False
        with self._lock:
            self._processes[neighbour] = process
            stopped = self._stopped
        try:
            if stopped:
                process.kill()
            try:
                return process.wait(timeout=self.kill_after) == 0
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
                return False
        finally:
            with self._lock:
                self._processes.pop(neighbour, None)

    def running(self) -> set[Address]:
        """The neighbours whose ping has not ended yet."""
        with self._lock:
            return set(self._running)

    def stop(self, timeout: float = 2.0) -> None:
        """Kill the pings still running and join their threads.  Safe to call twice; no callback follows."""
        with self._lock:
            self._stopped = True
            processes = list(self._processes.values())
            threads = list(self._running.values())
        for process in processes:
            with contextlib.suppress(OSError):
                process.kill()  # by its Popen, so never a reaped pid
        for thread in threads:
            thread.join(timeout)
