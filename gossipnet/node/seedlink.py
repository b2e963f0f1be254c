"""A peer's connection to one seed it registered with, held open (docs/PROTOCOL.md §3.7).

The course's handout: "the peers will not close connection formed initially
with the seed nodes".  A peer registers with each of its seeds on a
connection it then keeps, and sends its link reports, dead-node reports and
key lookups to that seed over it, one request at a time, each answered
before the next (a seed answers in order).  One thread per seed connection
serves the requests.  While none waits, it watches the socket: a seed that
closes the connection (it crashed, or it removed this peer) is noticed at
once.  When the connection has been idle for the keepalive interval
(PeerSettings.seed_keepalive: half the ping interval, and under the seed's
idle timeout), the thread sends a LIVENESS_REQUEST, which seeds answer, its
reply due within the same interval (at most CONNECT_TIMEOUT): a seed that
went silent is noticed within one ping interval.  A reply that does not come
in time, or any other error, ends the connection (a late reply could no
longer be told from the next one): the thread logs SEED_LOST and has the
peer register there again, at once and then after doubling pauses with
jitter, until the seed takes it.

``SeedLink`` only carries lines.  Not here: what the peer asks and does with
the answers, and what it does once registered again (peer.py: the peer sends
that seed its current links); whom it registers with (peer.py, peerrepair.py).
"""

from __future__ import annotations

import collections
import contextlib
import os
import random
import select
import threading
import time
from collections.abc import Callable

from gossipnet.config import (
    CONNECT_TIMEOUT,
    REGISTER_BACKOFF,
    REGISTER_TIMEOUT,
    SEED_RECONNECT_CAP,
    SEED_REPORT_TIMEOUT,
)
from gossipnet.logs import logformat
from gossipnet.logs.logformat import NodeLog
from gossipnet.node.transport import Connection, describe
from gossipnet.protocol.wire import Address, LivenessReply, Message, PeerList, ProtocolError

# The longest the requests queued ahead of one can take: a peer has at most one
# of each kind waiting on a seed connection (its report thread sends one report
# at a time, its key lookup one GET_KEYS, a repair or reconnection one REGISTER).
AHEAD = SEED_REPORT_TIMEOUT + REGISTER_TIMEOUT + CONNECT_TIMEOUT

_WATCH = select.POLLIN | select.POLLPRI | select.POLLERR | select.POLLHUP | select.POLLNVAL


class SeedLink:
    """One held connection from a peer to a seed, and the thread that serves it.

    ``register`` connects and registers (in the caller's thread when the link
    has no connection, over the connection when it has one); ``start`` runs
    ``serve``, the thread's body, once a registration succeeded; ``ask``
    sends a request over the connection and waits for the reply; ``close``
    ends it all and is safe to call twice.  ``rejoin(link, attempt)`` is the
    peer's: it registers again through ``register`` and returns whether the
    seed took it; the thread calls it after a loss until it does.
    """

    def __init__(self, seed: Address, keepalive: float, keepalive_request: Callable[[], Message],
                 rejoin: Callable[[SeedLink, int], bool], log: NodeLog, rng: random.Random) -> None:
        self.seed = seed
        self.keepalive = keepalive
        self._keepalive_request = keepalive_request
        self._rejoin = rejoin
        self.log = log
        self.rng = rng
        # Guards _conn, _requests, _closed and the poll set.
        self._lock = threading.Lock()
        self._conn: Connection | None = None
        self._requests: collections.deque[tuple[Message, float, Future]] = collections.deque()
        self._closed = threading.Event()
        self._registering = threading.Lock()  # one registration at a time on this link
        self._started = False
        self._serving: int | None = None  # the thread ident of serve
        self._last_used = time.monotonic()
        # The thread waits on the socket and on this pipe, which a new request (or close) writes to.
        self._wake_r, self._wake_w = os.pipe()
        os.set_blocking(self._wake_r, False)
        os.set_blocking(self._wake_w, False)
        self._poll = select.poll()
        self._poll.register(self._wake_r, select.POLLIN)
        self._watched: int | None = None  # the socket's fd in the poll set

    @property
    def connected(self) -> bool:
        with self._lock:
            return self._conn is not None

    # --- Requests ----------------------------------------------------------------------

    def ask(self, message: Message, timeout: float) -> Message | None:
        """Send ``message`` over the held connection and wait for the seed's reply (``timeout`` once
        sent); None if there is no connection, or it was lost before the reply."""
        future: Future = Future()
        with self._lock:
            if self._conn is None or self._closed.is_set() or not self._started:
                return None
            self._requests.append((message, timeout, future))
        self._wake()
        return future.result(timeout=timeout + AHEAD)

    def register(self, message: Message, timeout: float = REGISTER_TIMEOUT) -> Message:
        """Send a REGISTER and return the seed's reply.

        Over the held connection when there is one; otherwise on a new
        connection, in the caller's thread, which the link keeps if the reply
        is a PEER_LIST.  Raises OSError or ProtocolError (as
        transport.request does) when no reply comes.
        """
        with self._lock:
            conn = self._conn if self._started else None
        if conn is not None and threading.get_ident() == self._serving:
            # The link's own thread, between requests (it found the connection made again
            # meanwhile): no one else is serving it, so it asks itself.
            try:
                return _exchange(conn, message, timeout)
            except (OSError, ProtocolError) as exc:
                self._lost(conn, describe(exc))
                raise
        if conn is not None:
            reply = self.ask(message, timeout)
            if reply is None:
                raise ConnectionError(f"the connection to seed {self.seed} ended before it answered")
            return reply
        if not self._registering.acquire(blocking=False):
            raise ConnectionError(f"already registering with seed {self.seed}")
        try:
            conn = Connection.open(self.seed, timeout)
            try:
                reply = _exchange(conn, message, timeout)
                if isinstance(reply, PeerList):
                    self._install(conn)
                else:
                    conn.close()
            except BaseException:
                conn.close()
                raise
            return reply
        finally:
            self._registering.release()

    # --- The thread --------------------------------------------------------------------

    def start(self, run: Callable[[Callable[[], None], str], None]) -> None:
        """Have ``run(body, name)`` start the thread (once, however often asked)."""
        with self._lock:
            if self._started or self._closed.is_set():
                return
            self._started = True
        run(self.serve, f"seed {self.seed}")

    def serve(self) -> None:
        """The link's thread: serve requests and keepalives; after a loss, register again."""
        self._serving = threading.get_ident()
        try:
            while not self._closed.is_set():
                with self._lock:
                    conn = self._conn
                if conn is None:
                    self._reconnect()
                    continue
                item = None
                try:
                    item = self._next(conn)
                    if item is None:
                        reply = _exchange(conn, self._keepalive_request(), min(self.keepalive, CONNECT_TIMEOUT))
                        if not isinstance(reply, LivenessReply):
                            raise ProtocolError(f"expected LIVENESS_REPLY to a keepalive, got {reply.VERB}")
                    else:
                        message, timeout, future = item
                        reply = _exchange(conn, message, timeout)
                        future.set_result(reply)
                    self._last_used = time.monotonic()
                except (OSError, ProtocolError) as exc:
                    if item is not None:
                        item[2].set_result(None)
                    self._lost(conn, "timed out waiting for a reply" if isinstance(exc, TimeoutError)
                               else describe(exc))
        finally:
            if self._closed.is_set():
                self._release()

    def _next(self, conn: Connection) -> tuple[Message, float, Future] | None:
        """The next request; None when the connection has been idle for the keepalive interval.

        Raises ConnectionError when the seed closes the connection meanwhile,
        and ProtocolError when it sends a line nobody asked for.
        """
        while True:
            with self._lock:
                if self._closed.is_set() or self._conn is not conn:
                    raise ConnectionError("closed")
                if self._requests:
                    return self._requests.popleft()
            left = self._last_used + self.keepalive - time.monotonic()
            if left <= 0:
                return None
            for fd, _ in self._poll.poll(max(1, int(left * 1000))):
                if fd == self._wake_r:
                    with contextlib.suppress(BlockingIOError):
                        os.read(self._wake_r, 4096)
                    continue
                conn.set_timeout(CONNECT_TIMEOUT)
                line = conn.read_line()
                if line is None:
                    raise ConnectionError("closed by the seed")
                raise ProtocolError(f"the seed sent {line[:100]!r} unasked")

    def _reconnect(self) -> None:
        """Register again, at once and then after doubling pauses with jitter, until the seed takes it."""
        cap = min(SEED_RECONNECT_CAP, max(self.keepalive, REGISTER_BACKOFF))
        attempt = 0
        while not self._closed.is_set() and not self.connected:  # (a repair may have registered meanwhile)
            if self._rejoin(self, attempt + 1):
                return
            pause = min(cap, REGISTER_BACKOFF * 2 ** attempt) * self.rng.uniform(0.5, 1.0)
            attempt += 1
            if self._closed.wait(pause):
                return

    # --- Connection state ----------------------------------------------------------------

    def _install(self, conn: Connection) -> None:
        with self._lock:
            if self._closed.is_set():
                conn.close()
                raise ConnectionError("the peer is stopping")
            self._conn = conn
            self._watched = conn.sock.fileno()
            self._poll.register(self._watched, _WATCH)
            self._last_used = time.monotonic()
        self._wake()

    def _lost(self, conn: Connection, reason: str) -> None:
        """The connection ended: fail whatever waits on it, close it, say so."""
        with self._lock:
            if self._conn is not conn:
                return
            self._conn = None
            if self._watched is not None:
                self._poll.unregister(self._watched)
                self._watched = None
            waiting = list(self._requests)
            self._requests.clear()
        conn.close()
        for _, _, future in waiting:
            future.set_result(None)
        if not self._closed.is_set():
            self.log.event(logformat.SEED_LOST, seed=self.seed, reason=reason)

    def _wake(self) -> None:
        with contextlib.suppress(BlockingIOError, OSError):
            os.write(self._wake_w, b"x")

    def close(self) -> None:
        """End the connection and the thread (which then frees the pipe).  Safe to call twice."""
        if self._closed.is_set():
            return
        self._closed.set()
        with self._lock:
            conn = self._conn
        if conn is not None:
            self._lost(conn, "stopping")
        self._wake()
        if not self._started:
            self._release()

    def _release(self) -> None:
        for fd in (self._wake_r, self._wake_w):
            with contextlib.suppress(OSError):
                os.close(fd)


class Future:
    """One reply awaited: ``set_result`` once, ``result`` waits for it.

    Not concurrent.futures.Future: that module brings `logging` and more into
    every peer (memory and start-up time) for this one wait.
    """

    def __init__(self) -> None:
        self._done = threading.Event()
        self._value: Message | None = None

    def set_result(self, value: Message | None) -> None:
        self._value = value
        self._done.set()

    def result(self, timeout: float) -> Message | None:
        """The reply, or None if none came within ``timeout`` seconds."""
        return self._value if self._done.wait(timeout) else None


def _exchange(conn: Connection, message: Message, timeout: float) -> Message:
    """One request and its reply on ``conn``, the reply due within ``timeout``."""
    conn.set_timeout(timeout)
    conn.send(message)
    reply = conn.read()
    if reply is None:
        raise ConnectionError("closed by the seed")
    return reply
