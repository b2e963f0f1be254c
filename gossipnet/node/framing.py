"""Newline framing over a blocking socket: one ``recv`` is never taken to be one message.

The wire format (gossipnet.protocol.wire) says what a line means; this module
only cuts a socket's byte stream into lines, within the line bound and an
optional deadline for a whole line.
"""

from __future__ import annotations

import socket
import time

from gossipnet.protocol.wire import MAX_LINE_BYTES, Message, ProtocolError, parse

# Bytes asked of one ``recv``.  Each call allocates a buffer of this size
# first, and a peer has a reader thread per link: a 64 KiB ask costs a hub
# megabytes of peak memory, while a gossip line is ~250 bytes.
RECV_BYTES = 8 * 1024


class LineReader:
    """Splits a socket's byte stream into lines through a buffer.

    ``read_line`` returns one line without its newline, or ``None`` when the
    peer closed the connection (an empty ``recv``).  A partial line at close,
    a line over :data:`MAX_LINE_BYTES`, or bytes that are not UTF-8 raise
    :class:`ProtocolError`.  Socket errors and timeouts propagate as
    ``OSError`` for the caller to decide.
    """

    def __init__(self, sock: socket.socket, max_line: int = MAX_LINE_BYTES) -> None:
        self._sock = sock
        self._max_line = max_line
        self._buffer = bytearray()

    def read_line(self, deadline: float | None = None) -> str | None:
        """The next line; with ``deadline`` (a ``time.monotonic`` instant), the whole
        line must arrive by then, or ``TimeoutError``: a sender trickling a byte
        at a time cannot hold the connection open forever."""
        while True:
            end = self._buffer.find(b"\n")
            if end >= 0:
                raw = bytes(self._buffer[:end])
                del self._buffer[: end + 1]
                break
            if len(self._buffer) >= self._max_line:
                raise ProtocolError(f"line longer than {self._max_line} bytes")
            if deadline is not None:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise TimeoutError("timed out")
                self._sock.settimeout(remaining)
            chunk = self._sock.recv(min(RECV_BYTES, self._max_line - len(self._buffer)))
            if not chunk:
                if self._buffer:
                    raise ProtocolError(f"connection closed inside a line ({len(self._buffer)} bytes)")
                return None
            self._buffer += chunk
        if len(raw) >= self._max_line:
            raise ProtocolError(f"line longer than {self._max_line} bytes")
        try:
            line = raw.decode("utf-8")
        except UnicodeDecodeError:
            raise ProtocolError("line is not valid UTF-8") from None
        return line.removesuffix("\r")

    def read_message(self, deadline: float | None = None) -> Message | None:
        """The next line parsed, or ``None`` at a clean close."""
        line = self.read_line(deadline)
        return None if line is None else parse(line)
