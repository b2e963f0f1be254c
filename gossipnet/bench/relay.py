"""Minimal line relays: the limits a Python node on loopback could reach (bench.py).

    python -m gossipnet.bench.relay echo     # prints its port, then echoes each line back
    python -m gossipnet.bench.relay relay    # prints its port, then reads its plan (one JSON line) on stdin

Neither speaks the gossip protocol.  ``echo`` answers every newline-framed
line with itself; bench.py times ping-pongs against it for the one-hop floor.
``relay`` is the practical ceiling for gossip throughput: the peer's framing
(newline-delimited lines of the same length), the same overlay, and the same
rule (a line seen for the first time goes to every neighbour except the one
it came from; a set drops the rest), but no parsing, no signatures, no
threads (one ``selectors`` loop) and, unless the plan names a log, no log.

This module imports nothing from the project, so a relay costs what a bare
Python process costs.
"""

from __future__ import annotations

import json
import os
import selectors
import socket
import sys
import time
from datetime import datetime, timezone

# Bytes read per recv: large enough to take a backlog of lines in one call.
RECV_BYTES = 256 * 1024

# A relay makes a new line only while every neighbour's unsent output is
# below this: new lines wait for spare capacity instead of piling up, so
# memory stays bounded however far the offered load exceeds the relay's.
HIGH_WATER = 256 * 1024

# New lines made in one go when the relay has fallen behind its period.
MAX_BURST = 16

# A line starts with its identity, "G <port>:<number>" in a fixed width; the
# set of lines seen keeps only that, not the whole line, to bound memory.
ID_BYTES = 18


def echo() -> None:
    """Serve one connection: send back every complete line as it arrives."""
    listener = socket.create_server(("127.0.0.1", 0))
    print(listener.getsockname()[1], flush=True)
    conn, _ = listener.accept()
    listener.close()
    buffer = bytearray()
    with conn:
        while chunk := conn.recv(RECV_BYTES):
            buffer += chunk
            end = buffer.rfind(b"\n")
            if end >= 0:
                conn.sendall(bytes(buffer[: end + 1]))
                del buffer[: end + 1]


class _Link:
    """One neighbour: its socket, the partial line read so far, the bytes not yet sent."""

    __slots__ = ("sock", "name", "inbox", "outbox", "writing")

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.name = "{}:{}".format(*sock.getpeername()[:2])
        self.inbox = bytearray()
        self.outbox = bytearray()
        self.writing = False  # registered for EVENT_WRITE


def relay() -> None:
    """Flood lines over the planned links until the plan's stop time; print counts as JSON.

    The plan: ``dial`` (ports to connect to), ``accept`` (links to expect),
    ``start``/``stop`` (wall-clock times to start and stop making lines),
    ``period`` (seconds between new lines; 0 makes them as fast as the
    outputs drain), ``window`` ([from, to) wall-clock times in which first
    receipts are counted), ``line_bytes`` (length of every line, newline
    included), ``log`` (a file to append one line per first receipt to, as a
    peer logs GOSSIP_RECEIVED; null for none).
    """
    listener = socket.create_server(("127.0.0.1", 0), backlog=256)
    port = listener.getsockname()[1]
    print(port, flush=True)
    plan = json.loads(sys.stdin.readline())
    socks = [socket.create_connection(("127.0.0.1", dial)) for dial in plan["dial"]]
    listener.settimeout(60)
    socks += [listener.accept()[0] for _ in range(plan["accept"])]
    listener.close()
    links = [_Link(sock) for sock in socks]
    selector = selectors.DefaultSelector()
    for link in links:
        link.sock.setblocking(False)
        selector.register(link.sock, selectors.EVENT_READ, link)
    log_fd = os.open(plan["log"], os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644) if plan.get("log") else -1
    me = f"127.0.0.1:{port}"
    start, stop, period = plan["start"], plan["stop"], plan["period"]
    window_from, window_to = plan["window"]
    seen: set[bytes] = set()
    made = made_in_window = counted = 0
    next_line = start

    def send_pending(link: _Link) -> None:
        try:
            sent = link.sock.send(link.outbox)
        except BlockingIOError:
            sent = 0
        except OSError:
            drop(link)
            return
        del link.outbox[:sent]
        if bool(link.outbox) != link.writing:
            link.writing = not link.writing
            events = selectors.EVENT_READ | (selectors.EVENT_WRITE if link.writing else 0)
            selector.modify(link.sock, events, link)

    def drop(link: _Link) -> None:
        if link in links:
            links.remove(link)
            selector.unregister(link.sock)
            link.sock.close()

    while (now := time.time()) < stop:
        if now >= next_line and all(len(link.outbox) < HIGH_WATER for link in links):
            burst = min(int((now - next_line) / period) + 1, MAX_BURST) if period else MAX_BURST
            for _ in range(burst):
                made += 1
                head = f"G {port:05d}:{made:010d} ".encode()
                line = head + b"x" * (plan["line_bytes"] - len(head) - 1) + b"\n"
                seen.add(line[:ID_BYTES])
                for link in links:
                    link.outbox += line
            if window_from <= now < window_to:
                made_in_window += burst
            next_line = max(next_line + burst * period, now - period)  # bank at most one missed slot
        if any(link.outbox and not link.writing for link in links):
            timeout = 0.0  # output to try before waiting
        elif all(len(link.outbox) < HIGH_WATER for link in links):
            timeout = max(0.0, min(next_line, stop) - now)
        else:
            timeout = min(stop - now, 0.05)  # wait for the outputs to drain
        for key, mask in selector.select(timeout):
            link = key.data
            if mask & selectors.EVENT_WRITE:
                send_pending(link)
            if not mask & selectors.EVENT_READ or link not in links:
                continue
            try:
                chunk = link.sock.recv(RECV_BYTES)
            except BlockingIOError:
                continue
            except OSError:
                chunk = b""
            if not chunk:
                drop(link)
                continue
            link.inbox += chunk
            end = link.inbox.rfind(b"\n")
            if end < 0:
                continue
            lines = bytes(link.inbox[: end + 1]).splitlines(keepends=True)
            del link.inbox[: end + 1]
            fresh = [line for line in lines if line[:ID_BYTES] not in seen]
            if not fresh:
                continue
            seen.update(line[:ID_BYTES] for line in fresh)
            received = time.time()
            if window_from <= received < window_to:
                counted += len(fresh)
            for other in links:
                if other is not link:
                    other.outbox += b"".join(fresh)
            for line in fresh if log_fd >= 0 else ():  # one write per receipt, as a peer logs
                stamp = datetime.fromtimestamp(time.time(), timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
                os.write(log_fd, f"{stamp} peer {me} GOSSIP_RECEIVED msg={line[2:ID_BYTES].decode()} "
                                 f"from={link.name}\n".encode())
        for link in list(links):
            if link.outbox and not link.writing:
                send_pending(link)
    for link in list(links):
        drop(link)
    print(json.dumps({"received_in_window": counted, "made": made, "made_in_window": made_in_window,
                      "seen": len(seen), "links": len(socks)}), flush=True)


if __name__ == "__main__":
    {"echo": echo, "relay": relay}[sys.argv[1]]()
