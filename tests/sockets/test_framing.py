"""LineReader (gossipnet.node.framing) frames a real socket's byte stream: lines split across
reads, the line bound, bad UTF-8, a close inside a line, a trickled line missing its deadline."""

from __future__ import annotations

import contextlib
import socket
import threading
import time

import pytest

from gossipnet.node import framing
from gossipnet.protocol import wire
from gossipnet.protocol.wire import (
    Address,
    GossipMessage,
    Hello,
    LinkReport,
    Ok,
    PeerListRequest,
    ProtocolError,
    Register,
)

# Distinct IPs everywhere a text carries more than one, so a swapped field shows.
A = Address("10.0.0.1", 9001)
B = Address("10.0.0.2", 9002)
C = Address("10.0.0.3", 9003)
TS = "1732406400.123456"
KEY = "4dvkdXVMjUPSiZySgoXT88_VJ5bFLKaKp8WiWLDkdes"
SIG = "3l99-LVwBfnshIP3PIQUSz_1UJ8cNLSe-ZZIVTKMO0dyc-BEyfe3_ZrDtCyEjKRGC1HJ6EZYFar9yewy4ca4AA"

# Unicode digits that str.isdigit() and re's \d accept but the protocol does not.
ARABIC_INDIC = "\u0661\u0662\u0663"  # "١٢٣"




@pytest.fixture
def pair():
    left, right = socket.socketpair()
    # A reader bug must fail the test, not hang it.
    left.settimeout(5)
    right.settimeout(5)
    yield left, right
    left.close()
    right.close()


class ShortReads:
    """The real socket, but every recv returns at most ``limit`` bytes, as TCP may."""

    def __init__(self, sock: socket.socket, limit: int) -> None:
        self.sock = sock
        self.limit = limit
        self.calls = 0
        self.received = 0

    def recv(self, size: int) -> bytes:
        assert size > 0
        self.calls += 1
        data = self.sock.recv(min(size, self.limit))
        self.received += len(data)
        return data


def send_in_thread(sock: socket.socket, chunks: list[bytes]) -> threading.Thread:
    """Send ``chunks`` one send each from a thread, tolerating the reader hanging up."""

    def run() -> None:
        try:
            for chunk in chunks:
                sock.sendall(chunk)
        except OSError:
            pass

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread


def test_lines_split_across_tiny_sends_are_reassembled(pair):
    writer, reader_sock = pair
    data = wire.encode(GossipMessage(A, TS, 3)) + wire.encode(Hello(B)) + b"OK caf\xc3\xa9 \xe2\x82\xac\n"
    thread = send_in_thread(writer, [data[i:i + 1] for i in range(len(data))])
    sock = ShortReads(reader_sock, 1)
    reader = framing.LineReader(sock)
    assert reader.read_message() == GossipMessage(A, TS, 3)
    assert reader.read_message() == Hello(B)
    # a multi-byte character split between reads is decoded whole
    assert reader.read_line() == "OK caf\u00e9 \u20ac"
    thread.join(5)
    writer.close()
    assert reader.read_line() is None
    assert sock.calls >= len(data)


@pytest.mark.parametrize("limit", [1, 2, 3, 5, 7, 64])
def test_every_split_point_gives_the_same_lines(pair, limit):
    writer, reader_sock = pair
    lines = ["GET_PEERS", "REGISTER 10.0.0.1:9001", "", "OK", "PEER_LIST 10.0.0.1:9001/3 10.0.0.2:9002/0"]
    writer.sendall("".join(line + "\n" for line in lines).encode())
    writer.close()
    reader = framing.LineReader(ShortReads(reader_sock, limit))
    assert [reader.read_line() for _ in lines] == lines
    assert reader.read_line() is None


def test_several_lines_in_one_send_are_split(pair):
    writer, reader_sock = pair
    writer.sendall(wire.encode(Register(A)) + wire.encode(PeerListRequest()) + wire.encode(LinkReport(A, B)))
    reader = framing.LineReader(reader_sock)
    assert reader.read_message() == Register(A)
    assert reader.read_message() == PeerListRequest()
    assert reader.read_message() == LinkReport(A, B)
    writer.close()
    assert reader.read_message() is None


def test_crlf_line_endings(pair):
    writer, reader_sock = pair
    writer.sendall(b"GET_PEERS\r\nHELLO 10.0.0.2:9002\r\nOK a\rb\r\n")
    writer.close()
    reader = framing.LineReader(reader_sock)
    assert reader.read_line() == "GET_PEERS"
    assert reader.read_message() == Hello(B)
    assert reader.read_line() == "OK a\rb"  # only the line's own \r ending goes
    assert reader.read_line() is None


def test_clean_close_returns_none(pair):
    writer, reader_sock = pair
    writer.close()
    reader = framing.LineReader(reader_sock)
    assert reader.read_line() is None
    assert reader.read_message() is None


def test_close_in_the_middle_of_a_line_raises(pair):
    writer, reader_sock = pair
    writer.sendall(b"GET_PEERS\nREGISTER 10.0.0.1:90")
    writer.close()
    reader = framing.LineReader(reader_sock)
    assert reader.read_message() == PeerListRequest()
    with pytest.raises(ProtocolError):
        reader.read_line()


def test_invalid_utf8_raises(pair):
    writer, reader_sock = pair
    writer.sendall(b"OK \xff\xfe\n")
    reader = framing.LineReader(reader_sock)
    with pytest.raises(ProtocolError):
        reader.read_line()


def test_truncated_utf8_sequence_raises(pair):
    writer, reader_sock = pair
    writer.sendall(b"OK caf\xc3\n")
    reader = framing.LineReader(reader_sock)
    with pytest.raises(ProtocolError):
        reader.read_line()


def test_read_message_raises_on_a_malformed_line(pair):
    writer, reader_sock = pair
    writer.sendall(b"FOO bar\n")
    with pytest.raises(ProtocolError):
        framing.LineReader(reader_sock).read_message()


def test_overlong_line_refused_without_buffering_past_the_limit(pair):
    writer, reader_sock = pair
    # 1 MB with no newline: more than the socket buffers, so it comes from a thread.
    thread = send_in_thread(writer, [b"x" * (1 << 20)])
    sock = ShortReads(reader_sock, 1 << 20)
    reader = framing.LineReader(sock)
    with pytest.raises(ProtocolError):
        reader.read_line()
    assert sock.received <= wire.MAX_LINE_BYTES
    assert len(reader._buffer) <= wire.MAX_LINE_BYTES
    reader_sock.close()  # unblocks the sender
    thread.join(5)
    assert not thread.is_alive()


def test_overlong_line_with_a_late_newline_is_refused(pair):
    writer, reader_sock = pair
    thread = send_in_thread(writer, [b"OK " + b"y" * (2 * wire.MAX_LINE_BYTES) + b"\nGET_PEERS\n"])
    sock = ShortReads(reader_sock, 1 << 20)
    with pytest.raises(ProtocolError):
        framing.LineReader(sock).read_line()
    assert sock.received <= wire.MAX_LINE_BYTES
    reader_sock.close()
    thread.join(5)
    assert not thread.is_alive()


def test_line_of_exactly_max_bytes_is_read(pair):
    writer, reader_sock = pair
    longest = wire.encode(Ok("z" * (wire.MAX_LINE_BYTES - 4)))
    assert len(longest) == wire.MAX_LINE_BYTES
    thread = send_in_thread(writer, [longest, b"GET_PEERS\n"])
    reader = framing.LineReader(reader_sock)
    assert reader.read_message() == Ok("z" * (wire.MAX_LINE_BYTES - 4))
    assert reader.read_message() == PeerListRequest()
    thread.join(5)


def test_line_one_byte_over_max_is_refused(pair):
    writer, reader_sock = pair
    thread = send_in_thread(writer, [b"OK " + b"z" * (wire.MAX_LINE_BYTES - 3) + b"\n"])
    with pytest.raises(ProtocolError):
        framing.LineReader(reader_sock).read_line()
    reader_sock.close()
    thread.join(5)


def test_custom_max_line(pair):
    writer, reader_sock = pair
    writer.sendall(b"1234567\n12345678\n")
    reader = framing.LineReader(reader_sock, max_line=8)
    assert reader.read_line() == "1234567"
    with pytest.raises(ProtocolError):
        reader.read_line()


def test_a_line_trickled_a_byte_at_a_time_misses_its_deadline(pair):
    left, right = pair
    stop = threading.Event()

    def trickle() -> None:  # each byte well inside any per-recv timeout, the line never done
        with contextlib.suppress(OSError):
            while not stop.wait(0.01):
                left.sendall(b"A")

    thread = threading.Thread(target=trickle, daemon=True)
    thread.start()
    try:
        with pytest.raises(TimeoutError):
            framing.LineReader(right).read_line(deadline=time.monotonic() + 0.3)
    finally:
        stop.set()
        thread.join()


def test_a_line_within_its_deadline_is_read(pair):
    left, right = pair
    left.sendall(b"HELLO 10.0.0.1:9001\n")
    assert framing.LineReader(right).read_message(deadline=time.monotonic() + 30) == Hello(A)
