"""Sockets and threads: carrying lines between nodes, one thread per connection.

:class:`Connection` pairs a blocking socket with a :class:`framing.LineReader`
and a send lock.  :class:`NodeServer` is a ``socketserver`` threaded server
that caps concurrent connections, tracks them so ``stop`` can unblock and
join every handler thread, and runs each handler under :func:`guarded` so a
bad or broken connection is logged once and closed while the listener and all
other connections carry on.  :func:`request` is one request/reply exchange.

Protocol decisions live elsewhere; this module only moves bytes.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import resource
import signal
import socket
import socketserver
import sys
import threading
import time
from collections.abc import Callable

from gossipnet.config import CONNECT_TIMEOUT, LOOP_RESTART_PAUSE, LOOP_RESTARTS, MAX_CONNECTIONS
from gossipnet.logs import logformat
from gossipnet.logs.logformat import NodeLog
from gossipnet.node.framing import LineReader
from gossipnet.protocol.wire import Address, Error, Message, ProtocolError, encode, parse


class Connection:
    """A connected socket speaking lines.  ``close`` is safe to call twice."""

    def __init__(self, sock: socket.socket, remote: str) -> None:
        self.sock = sock
        # Lines are small and latency is what gossip measures: no Nagle delay.
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        # Who is at the other end, for logs: the socket's address until a
        # handshake names the node.
        self.remote = remote
        self._reader = LineReader(sock)
        self._send_lock = threading.Lock()
        self._closed = threading.Event()

    @classmethod
    def open(cls, address: Address, timeout: float = CONNECT_TIMEOUT) -> Connection:
        sock = socket.create_connection((address.ip, address.port), timeout=timeout)
        return cls(sock, str(address))

    def read(self) -> Message | None:
        """Next message, or ``None`` when the other end closed.

        With a timeout set, it bounds the whole line, not each ``recv``.
        """
        line = self.read_line()
        return None if line is None else parse(line)

    def read_line(self) -> str | None:
        """Next line unparsed (no newline), or ``None`` when the other end closed; bounded as ``read``."""
        timeout = self.sock.gettimeout()
        if timeout is None:
            return self._reader.read_line()
        try:
            return self._reader.read_line(time.monotonic() + timeout)
        finally:
            with contextlib.suppress(OSError):
                self.sock.settimeout(timeout)

    def send(self, message: Message) -> None:
        self.send_bytes(encode(message))

    def send_bytes(self, data: bytes) -> None:
        with self._send_lock:
            self.sock.sendall(data)

    def send_nowait(self, data: bytes) -> int:
        """Send what the socket takes without blocking; the number of bytes sent.

        0 when the socket buffer is full or another thread is sending.
        Raises OSError when the connection is broken.
        """
        if not self._send_lock.acquire(blocking=False):
            return 0
        try:
            return self.sock.send(data, socket.MSG_DONTWAIT)
        except BlockingIOError:
            return 0
        finally:
            self._send_lock.release()

    def set_timeout(self, seconds: float | None) -> None:
        self.sock.settimeout(seconds)

    @property
    def closed(self) -> bool:
        return self._closed.is_set()

    def close(self) -> None:
        if self._closed.is_set():
            return
        self._closed.set()
        # Wakes any thread blocked in recv or sendall on this socket.
        with contextlib.suppress(OSError):
            self.sock.shutdown(socket.SHUT_RDWR)
        self.sock.close()


def describe(exc: BaseException) -> str:
    """An exception as a short one-line reason, never empty, for a log or an ERROR line."""
    return " ".join(str(exc).split())[:200] or type(exc).__name__


def request(address: Address, message: Message, timeout: float = CONNECT_TIMEOUT) -> Message:
    """Send one message on a new connection and return the reply.

    Raises ``OSError`` when the node cannot be reached or times out, and
    :class:`ProtocolError` when its reply is malformed or missing.
    """
    conn = Connection.open(address, timeout)
    try:
        conn.send(message)
        reply = conn.read()
    finally:
        conn.close()
    if reply is None:
        raise ProtocolError(f"{address} closed the connection without replying")
    return reply


def guarded(conn: Connection, handler: Callable[[Connection], None], log: NodeLog,
            stopping: threading.Event) -> None:
    """Run ``handler(conn)``; log what goes wrong once, then close ``conn``.

    Protocol violations are answered with an ``ERROR`` line when possible.
    Errors after ``stopping`` is set are shutdown noise and not logged.
    """
    try:
        handler(conn)
    except ProtocolError as exc:
        if not stopping.is_set():
            log.event(logformat.BAD_INPUT, remote=conn.remote, reason=describe(exc))
            try:
                conn.set_timeout(1.0)
                conn.send(Error(describe(exc)))
            except (OSError, ProtocolError):
                pass
    except TimeoutError:
        if not stopping.is_set():
            log.event(logformat.BAD_INPUT, remote=conn.remote, reason="timed out waiting for a line")
    except OSError as exc:
        if not stopping.is_set() and not conn.closed:
            log.event(logformat.BAD_INPUT, remote=conn.remote, reason=f"connection error: {describe(exc)}")
    except Exception as exc:  # a bug must not take the node down; say what it was
        log.event(logformat.BAD_INPUT, remote=conn.remote,
                  reason=f"internal error: {type(exc).__name__}: {describe(exc)}")
    finally:
        conn.close()


class NodeFailure:
    """Why a node must stop on its own: a background loop that could not go on.

    ``fail`` records the first reason and sets ``stopping``;
    :func:`run_until_signalled` then stops the node and exits non-zero.
    """

    def __init__(self, stopping: threading.Event) -> None:
        self.stopping = stopping
        self.reason: str | None = None

    def fail(self, reason: str) -> None:
        if self.reason is None:
            self.reason = reason
        self.stopping.set()


def run_loop(name: str, body: Callable[[], None], log: NodeLog, failure: NodeFailure) -> None:
    """Run a node's background loop ``body`` so that no exception ends it silently.

    An unexpected exception is logged as ``LOOP_FAILED`` with the loop's name
    and the error, and ``body`` is started again (after a pause) up to
    LOOP_RESTARTS times; after that the node stops with a one-line error
    (``failure.fail``).  ``body`` returning ends the loop.  Errors once the
    node is stopping are shutdown noise and not logged.
    """
    for restarts_left in range(LOOP_RESTARTS, -1, -1):
        try:
            body()
            return
        except Exception as exc:  # a bug must not leave a dead loop behind; say what it was
            if failure.stopping.is_set():
                return
            error = f"{type(exc).__name__}: {describe(exc)}"
            log.event(logformat.LOOP_FAILED, loop=name, error=error, restarts_left=restarts_left)
            if not restarts_left:
                failure.fail(f"the {name} loop failed {LOOP_RESTARTS + 1} times; last: {error}")
                return
            if failure.stopping.wait(LOOP_RESTART_PAUSE * (LOOP_RESTARTS + 1 - restarts_left)):
                return


class NodeServer(socketserver.ThreadingTCPServer):
    """Accepts connections; runs ``handler(conn)`` in a thread for each one."""

    daemon_threads = False
    block_on_close = True  # server_close joins every handler thread
    allow_reuse_address = True
    request_queue_size = 128

    def __init__(self, ip: str, port: int, handler: Callable[[Connection], None], log: NodeLog | None = None,
                 max_connections: int = MAX_CONNECTIONS) -> None:
        # The node sets handler and log once both exist; serving starts after.
        self.handler = handler
        self.log = log
        self.stopping = threading.Event()
        self._max_connections = max_connections
        self._connections: set[Connection] = set()
        self._lock = threading.Lock()
        self._serve_thread: threading.Thread | None = None
        super().__init__((ip, port), socketserver.BaseRequestHandler)

    @property
    def address(self) -> Address:
        ip, port = self.server_address[:2]
        return Address(ip, port)

    def verify_request(self, request: socket.socket, client_address: tuple) -> bool:
        with self._lock:
            full = len(self._connections) >= self._max_connections
        if full or self.stopping.is_set():
            try:
                request.settimeout(1.0)
                request.sendall(encode(Error("busy: too many connections")))
            except OSError:
                pass
            return False
        return True

    def finish_request(self, request: socket.socket, client_address: tuple) -> None:
        conn = Connection(request, "{}:{}".format(*client_address[:2]))
        with self._lock:
            self._connections.add(conn)
        try:
            guarded(conn, self.handler, self.log, self.stopping)
        finally:
            with self._lock:
                self._connections.discard(conn)

    def shutdown_request(self, request: socket.socket) -> None:
        # guarded() already closed the Connection; closing twice is harmless.
        with contextlib.suppress(OSError):
            request.close()

    def start(self) -> None:
        self._serve_thread = threading.Thread(target=self.serve_forever, name="listener", daemon=True)
        self._serve_thread.start()

    def stop(self) -> None:
        """Stop accepting, close every connection, join every handler thread."""
        if self.stopping.is_set():
            return
        self.stopping.set()
        if self._serve_thread is not None:
            self.shutdown()
            self._serve_thread.join()
        with self._lock:
            connections = list(self._connections)
        for conn in connections:
            conn.close()
        self.server_close()


class NodeStartError(Exception):
    """A node could not start its work (for a peer: no majority of seeds)."""


# Descriptors a node needs beyond one per connection it serves: its log, its
# listening socket, the connections it opens itself (dials, probes, seed
# connections) and the interpreter's own.
SPARE_FILES = 256


def allow_open_files(count: int) -> None:
    """Raise this process's soft limit on open descriptors to ``count`` if it is lower (up to the
    hard limit): many systems start processes at 1,024, fewer than a seed's connections need."""
    with contextlib.suppress(ValueError, OSError):
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        wanted = count if hard == resource.RLIM_INFINITY else min(count, hard)
        if soft != resource.RLIM_INFINITY and soft < wanted:
            resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))


def open_node(parser: argparse.ArgumentParser, role: str, ip: str, port: int, log_path: str,
              quiet: bool, max_connections: int = MAX_CONNECTIONS) -> tuple[NodeServer, NodeLog]:
    """Bind the listening socket and open the log, or exit with a one-line error."""
    allow_open_files(max_connections + SPARE_FILES)
    try:
        server = NodeServer(ip, port, handler=lambda conn: None, max_connections=max_connections)
    except OSError as exc:
        parser.exit(1, f"{role}: error: cannot listen on {ip}:{port}: {exc.strerror or exc}\n")
    try:
        log = NodeLog(role, server.address, log_path, console=not quiet)
    except OSError as exc:
        server.server_close()
        parser.exit(1, f"{role}: error: cannot open log {log_path}: {exc.strerror or exc}\n")
    server.log = log
    return server, log


class SignalWatch:
    """The first SIGINT, SIGTERM or SIGHUP sets ``stopped``, from a thread of its own.

    Python runs a signal handler in the main thread between two bytecodes,
    possibly while that thread holds the lock inside ``stopped`` (``Event.wait``
    and ``Event.set`` both take it), so a handler that called ``stopped.set()``
    could wait forever on a lock its own thread holds.  ``timeout 25 peer.py``
    did exactly that: GNU timeout sends SIGTERM to the node and again to its
    process group, and the second signal landed inside the first one's
    ``set()``.  Here the handler only writes a byte to a pipe, which takes no
    lock, and the watching thread sets the event.  From the first signal on,
    the kernel ignores the others: the stop under way is bounded already, and
    a stream of signals can neither nest handlers nor kill the interpreter
    while it ends (Python puts its own handlers back to the default then).
    """

    SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)

    def __init__(self, stopped: threading.Event) -> None:
        self._read, self._write = os.pipe()
        os.set_blocking(self._write, False)
        self._thread = threading.Thread(target=self._watch, args=(stopped,), name="signals", daemon=True)
        self._thread.start()
        # ``nohup`` leaves SIGHUP ignored so the node outlives its terminal: it stays so.
        self._handled = [signum for signum in self.SIGNALS
                         if signum != signal.SIGHUP or signal.getsignal(signum) is not signal.SIG_IGN]
        for signum in self._handled:
            signal.signal(signum, self._handle)

    def _ignore_signals(self) -> None:
        for signum in self._handled:
            signal.signal(signum, signal.SIG_IGN)

    def _handle(self, _signum: int, _frame: object) -> None:
        self._ignore_signals()
        with contextlib.suppress(OSError):
            os.write(self._write, b"s")

    def _watch(self, stopped: threading.Event) -> None:
        if os.read(self._read, 1) == b"s":
            stopped.set()

    def close(self) -> None:
        """Ignore these signals from now on and end the watching thread."""
        self._ignore_signals()
        with contextlib.suppress(OSError):  # a signal's byte is there: the watcher is awake anyway
            os.write(self._write, b"c")
        self._thread.join()
        os.close(self._read)
        os.close(self._write)


def run_until_signalled(stopped: threading.Event, start: Callable[[], None], stop: Callable[[], None],
                        log: NodeLog, role: str, failure: NodeFailure | None = None,
                        watch: SignalWatch | None = None) -> int:
    """Run a node until SIGINT/SIGTERM/SIGHUP sets ``stopped``, then stop it cleanly.

    Exit status 0 after a signal; 1 when ``start`` raises NodeStartError or
    ``failure`` says a background loop could not go on (one line on stderr).
    ``watch``: the node's SignalWatch on ``stopped``, made before its STARTED
    line so that no signal after that line finds the default handlers.
    """
    watch = watch or SignalWatch(stopped)
    status = 0
    try:
        start()
        while not stopped.wait(0.5):
            pass
    except NodeStartError as exc:
        if not stopped.is_set():
            log.event(logformat.START_FAILED, reason=describe(exc))
            print(f"{role}: error: {exc}", file=sys.stderr)
            status = 1
    finally:
        stopped.set()
        stop()
        if failure is not None and failure.reason is not None:
            print(f"{role}: error: {failure.reason}", file=sys.stderr)
            status = 1
        log.event(logformat.STOPPED)
        log.close()
        watch.close()
    return status
