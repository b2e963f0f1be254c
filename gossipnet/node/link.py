"""A link: one neighbour's TCP connection, used both ways, and its writer.

Each side of a link runs a reader (its connection thread, see peerlinks.py)
and a writer thread fed by a bounded queue, so a slow neighbour never holds
up gossip to the others.  A link also carries its neighbour's liveness
tracker (liveness.py); the peer's ping loop drives it through the link
table (linktable.py), whose lock guards it.

Not here: opening, accepting or serving links (peerlinks.py), and what they
carry (peerlinks.py, peergossip.py, peer.py).
"""

from __future__ import annotations

import collections
import threading

from gossipnet.config import SEND_QUEUE_LINES
from gossipnet.node.transport import Connection
from gossipnet.protocol.liveness import APP, LivenessTracker
from gossipnet.protocol.wire import Address, Message, encode

# Lines a writer sends in one system call when its queue has a backlog.
WRITE_BATCH = 64


class Link:
    """One neighbour: its connection, its send queue and writer, its liveness.

    ``send`` never blocks.  When the writer is idle and nothing is queued, the
    line goes straight to the socket without blocking (the common case: no
    thread hand-off); whatever the socket does not take is queued, in order,
    for the writer thread, so a slow neighbour never holds up the others.
    """

    def __init__(self, neighbour: Address, conn: Connection, initiator: bool, ping_misses: int,
                 liveness: str = APP) -> None:
        self.neighbour = neighbour
        self.conn = conn
        self.initiator = initiator
        self.liveness = LivenessTracker(ping_misses, liveness)
        self._queue: collections.deque[bytes | None] = collections.deque()
        # Guards the queue and _writing; the writer waits on it for work.
        self._ready = threading.Condition(threading.Lock())
        self._writing = True  # the writer holds lines not yet sent (True until it first waits)
        self.writer = threading.Thread(target=self._write_loop, name=f"write {neighbour}", daemon=True)
        # origin -> the binding line (KEY) last sent on this link for it; written under the peer's
        # lock, by forwarding (peergossip.Gossiping._send_vouched), which sends a binding before
        # the first message of its origin that goes over the link.
        self.bindings_sent: dict[Address, bytes] = {}

    def send(self, message: Message | bytes) -> bool:
        """Send ``message`` (or its encoded line) to the neighbour; False if the link cannot take it."""
        if self.conn.closed:
            return False
        data = message if isinstance(message, bytes) else encode(message)
        with self._ready:
            if not self._writing and not self._queue:
                try:
                    data = data[self.conn.send_nowait(data):]
                except OSError:
                    self.conn.close()
                    return False
                if not data:
                    return True
            if len(self._queue) >= SEND_QUEUE_LINES:
                overflow = True
            else:
                overflow = False
                self._queue.append(data)
                self._ready.notify()
        if overflow:
            self.conn.close()  # it stopped reading; liveness will tell whether it is dead
            return False
        return True

    def close(self) -> None:
        self.conn.close()
        self.stop_writer()

    def stop_writer(self) -> None:
        """Let the writer finish what is queued and end, leaving the socket open."""
        with self._ready:
            self._queue.append(None)
            self._ready.notify()

    def _write_loop(self) -> None:
        """Send queued lines, several per system call when there is a backlog; end at None."""
        while True:
            with self._ready:
                self._writing = False
                while not self._queue:
                    self._ready.wait()
                self._writing = True
                batch = []
                while self._queue and len(batch) < WRITE_BATCH:
                    batch.append(self._queue.popleft())
                    if batch[-1] is None:
                        break
            ending = batch[-1] is None
            data = b"".join(item for item in batch if item is not None)
            try:
                if data:
                    self.conn.send_bytes(data)
            except OSError:
                self.conn.close()
                return
            if ending:
                return
