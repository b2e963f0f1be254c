"""Properties of the wire format under generated input (hypothesis).

Whatever text or bytes arrive, the parser and the line reader fail only with
ProtocolError; every message kind round-trips to the same bytes; and a valid
line with a few characters inserted, deleted or replaced either still reads
as a message that writes back to exactly that line, or is a ProtocolError.
"""

from __future__ import annotations

import base64
import dataclasses
import socket
import threading

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gossipnet.node import framing
from gossipnet.protocol import auth, wire
from gossipnet.protocol.wire import (
    Address,
    DeadNodeReport,
    Error,
    Full,
    GossipMessage,
    Hello,
    Keys,
    KeysRequest,
    Leave,
    LinkReport,
    LivenessReply,
    LivenessRequest,
    Ok,
    PeerList,
    PeerListRequest,
    ProtocolError,
    Register,
    RemovalNotice,
)

# Example counts keep the whole file near 10 s on a busy 2-core machine.
# (Hypothesis keeps its example database in .hypothesis/, which it gitignores.)
FAST = settings(max_examples=300, deadline=None)
PER_KIND = settings(max_examples=120, deadline=None)
SOCKETS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])

# A few real key pairs: real keys and real signatures, besides generated ones.
IDENTITIES = [auth.Identity() for _ in range(3)]

# --- Strategies for the fields ---------------------------------------------------------


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _node_ip(ip) -> bool:
    return not (ip.is_unspecified or ip.is_multicast)


ips = st.ip_addresses(v=4).filter(_node_ip).map(str)
ports = st.integers(1, 65535)
addresses = st.builds(Address, ips, ports)
digits = "0123456789"
timestamps = st.one_of(
    st.builds(lambda whole, frac: whole if frac is None else f"{whole}.{frac}",
              st.text(digits, min_size=1, max_size=12), st.none() | st.text(digits, min_size=1, max_size=9)),
    # What nodes write: seconds since the epoch with 6 decimals.
    st.floats(0, 10**11, allow_nan=False).map(lambda t: f"{t:.6f}"),
)
numbers = st.integers(1, 10**wire.MAX_NUMBER_DIGITS - 1)
degrees = st.integers(0, 10**wire.MAX_DEGREE_DIGITS - 1)
keys = st.sampled_from([identity.key for identity in IDENTITIES]) | st.binary(min_size=32, max_size=32).map(_b64)
generated_signatures = st.binary(min_size=64, max_size=64).map(_b64)
# One line's worth of free text: any character but a line break (and lone
# surrogates, which no UTF-8 line can carry).
free_text = st.text(st.characters(exclude_categories=("Cs",), exclude_characters="\r\n"), max_size=40)


@st.composite
def signed(draw, unsigned):
    """A Signable message: unsigned, with a generated signature, or really signed."""
    message = draw(unsigned)
    how = draw(st.sampled_from(["none", "generated", "real"]))
    if how == "generated":
        return dataclasses.replace(message, signature=draw(generated_signatures))
    if how == "real":
        return message.signed(draw(st.sampled_from(IDENTITIES)))
    return message


@st.composite
def peer_lists(draw):
    items = draw(st.lists(st.tuples(addresses, degrees, st.none() | keys), max_size=12,
                          unique_by=lambda item: item[0]))
    return PeerList(tuple((address, degree) for address, degree, _ in items),
                    {address: key for address, _, key in items if key is not None})


@st.composite
def link_reports(draw):
    reporter = draw(addresses)
    neighbour = draw(addresses.filter(lambda a: a != reporter))
    return LinkReport(reporter, neighbour)


STRATEGIES = {
    Register: st.builds(Register, addresses, st.none() | keys),
    PeerListRequest: st.just(PeerListRequest()),
    PeerList: peer_lists(),
    LinkReport: signed(link_reports()),
    DeadNodeReport: signed(st.builds(DeadNodeReport, addresses, timestamps, addresses)),
    Ok: st.builds(Ok, free_text),
    Error: st.builds(Error, free_text.filter(str.strip)),
    Hello: st.builds(Hello, addresses),
    GossipMessage: signed(st.builds(GossipMessage, addresses, timestamps, numbers)),
    LivenessRequest: st.builds(LivenessRequest, addresses, timestamps),
    LivenessReply: signed(st.builds(LivenessReply, addresses, timestamps, ips)),
    KeysRequest: st.builds(KeysRequest, st.lists(addresses, min_size=1, max_size=20).map(tuple)),
    Keys: st.builds(Keys, st.lists(st.tuples(addresses, keys), max_size=12).map(tuple)),
    RemovalNotice: st.builds(RemovalNotice, addresses, addresses),
    Leave: st.builds(Leave, addresses),
    Full: st.builds(Full, addresses, st.lists(addresses, max_size=20, unique=True).map(tuple)).filter(
        lambda full: full.peer not in full.neighbours),
    wire.VouchRequest: st.builds(wire.VouchRequest, addresses),
    wire.Vouched: st.builds(wire.Vouched, keys, addresses, keys,
                            st.builds(wire.Vouch, addresses, timestamps, generated_signatures)),
    wire.KeyBinding: st.builds(wire.KeyBinding, addresses, keys, st.lists(
        st.builds(wire.Vouch, addresses, timestamps, generated_signatures), min_size=1, max_size=4,
        unique_by=lambda vouch: vouch.seed).map(tuple)),
}
messages = st.one_of(*STRATEGIES.values())


def test_a_strategy_for_every_message_kind():
    # A new verb must get a strategy here, or it escapes these properties.
    assert set(STRATEGIES) == set(wire._KINDS.values())


# --- (b) Round trips -----------------------------------------------------------------------


@pytest.mark.parametrize("kind", list(STRATEGIES), ids=lambda kind: kind.__name__)
@PER_KIND
@given(data=st.data())
def test_every_valid_message_round_trips(kind, data):
    message = data.draw(STRATEGIES[kind])
    encoded = wire.encode(message)
    assert encoded.endswith(b"\n") and encoded.count(b"\n") == 1
    line = encoded.decode("utf-8")[:-1]
    parsed = wire.parse(line)
    assert type(parsed) is kind
    assert parsed == message
    assert wire.encode(parsed) == encoded  # keys and signatures too, which equality ignores
    signature = getattr(message, "signature", None)
    if signature is not None:
        assert parsed.signature == signature
        signer = next((i for i in IDENTITIES if auth.verify(i.key, message.body(), signature)), None)
        if signer is not None:  # a real signature still verifies after the trip
            assert auth.verify(signer.key, parsed.body(), parsed.signature)


# --- (a) Arbitrary input -----------------------------------------------------------------

# Pieces of real lines, so generated text gets past the verb and into the fields.
TOKENS = [
    *wire._KINDS, " ", ":", ".", "/", "0", "1", "65535", "65536", "127.0.0.1", "10.0.0.1", "0.0.0.0", "224.0.0.1",
    "256.1.1.1", "1732406400.123456", "Dead Node", "Liveness Request", "Liveness Reply", "\r", "\n", "\t",
    "\u0661", "\u00b2", "\x00", "-", "_", "=", IDENTITIES[0].key, IDENTITIES[0].sign("x"), "A" * 43, "A" * 86,
]
protocolish = st.lists(st.sampled_from(TOKENS) | st.text(max_size=5), max_size=20).map("".join)


@FAST
@given(line=st.text() | protocolish)
def test_any_text_is_a_message_or_a_protocol_error(line):
    try:
        message = wire.parse(line)
    except ProtocolError:
        return
    assert type(message) in wire._KINDS.values()


@FAST
@given(verb=st.sampled_from(list(wire._KINDS)), rest=st.text() | protocolish)
def test_any_fields_after_a_real_verb_are_a_message_or_a_protocol_error(verb, rest):
    try:
        message = wire.parse(f"{verb} {rest}")
    except ProtocolError:
        return
    assert verb == message.VERB


@FAST
@given(text=st.text() | protocolish)
def test_any_text_is_an_address_or_a_protocol_error(text):
    try:
        address = Address.parse(text)
    except ProtocolError:
        return
    assert str(address) == text


class ShortReads:
    """The real socket, but every recv returns at most ``limit`` bytes, as TCP may."""

    def __init__(self, sock: socket.socket, limit: int) -> None:
        self.sock = sock
        self.limit = limit

    def recv(self, size: int) -> bytes:
        return self.sock.recv(min(size, self.limit))


def expected_lines(data: bytes, max_line: int) -> tuple[list[str], bool]:
    """What a reader must make of ``data`` then a close: its lines, and whether it ends in an error."""
    lines = []
    rest = data
    while rest:
        raw, newline, rest = rest.partition(b"\n")
        if not newline or len(raw) >= max_line:
            return lines, True  # a line cut by the close, or one too long
        try:
            lines.append(raw.decode("utf-8").removesuffix("\r"))
        except UnicodeDecodeError:
            return lines, True
    return lines, False


def read_all(data: bytes, max_line: int, chunk: int) -> tuple[list[str], bool]:
    """Send ``data`` and close; read lines until the clean close or the first ProtocolError."""
    writer, reader_sock = socket.socketpair()
    for sock in (writer, reader_sock):
        sock.settimeout(10)  # a reader bug fails the test instead of hanging it

    def send() -> None:
        try:
            writer.sendall(data)
        except OSError:
            pass  # the reader stopped reading
        finally:
            writer.close()

    sender = threading.Thread(target=send, daemon=True)
    sender.start()
    reader = framing.LineReader(ShortReads(reader_sock, chunk), max_line=max_line)
    lines: list[str] = []
    failed = False
    try:
        while (line := reader.read_line()) is not None:
            lines.append(line)
    except ProtocolError:
        failed = True
    finally:
        reader_sock.close()
        sender.join(10)
    assert not sender.is_alive()
    return lines, failed


line_bytes = st.one_of(
    st.binary(max_size=300),
    st.text(max_size=60).map(lambda text: text.encode("utf-8")),
    st.lists(st.sampled_from([b"\n", b"\r\n", b"\r", b"GOSSIP ", b"\xc3", b"\xa9", b"\xff", b"x" * 70]),
             max_size=30).map(b"".join),
)


@SOCKETS
@given(pieces=st.lists(line_bytes, max_size=8), max_line=st.sampled_from([16, 64, wire.MAX_LINE_BYTES]),
       chunk=st.sampled_from([1, 3, 7, 4096, 1 << 17]))
def test_any_bytes_read_as_lines_or_a_protocol_error(pieces, max_line, chunk):
    data = b"".join(pieces)
    assert read_all(data, max_line, chunk) == expected_lines(data, max_line)


@SOCKETS
@given(length=st.integers(wire.MAX_LINE_BYTES - 3, wire.MAX_LINE_BYTES + 3), newline=st.booleans(),
       chunk=st.sampled_from([1000, 4096, 1 << 17]))
def test_lines_around_the_size_limit(length, newline, chunk):
    data = b"OK " + b"z" * (length - 3) + (b"\n" if newline else b"")
    assert read_all(data, wire.MAX_LINE_BYTES, chunk) == expected_lines(data, wire.MAX_LINE_BYTES)


# --- (c) Mutations of valid lines ------------------------------------------------------------

# Characters a mutation puts in: the protocol's separators and digits, the
# base64 alphabet's edges, line breaks, non-ASCII digits and any character.
INSERTS = st.sampled_from(list(" :./0159AQgw_-\r\n\t\x00é\u0661\u00b2")) | st.characters(exclude_categories=("Cs",))


@st.composite
def mutated(draw):
    line = wire.encode(draw(messages)).decode("utf-8")[:-1]
    for _ in range(draw(st.integers(1, 3))):
        at = draw(st.integers(0, len(line)))
        operation = draw(st.sampled_from(["insert", "delete", "replace"]))
        if operation == "insert":
            line = line[:at] + draw(INSERTS) + line[at:]
        elif operation == "delete":
            line = line[:at] + line[at + 1:]
        else:
            line = line[:at] + draw(INSERTS) + line[at + 1:]
    return line


# Verbs whose empty argument list may be written with a trailing space,
# which reads as the bare verb (docs/PROTOCOL.md section 1).
BARE = {"OK", "PEER_LIST", "GET_PEERS", "KEYS"}


@settings(max_examples=1000, deadline=None)
@given(line=mutated())
def test_mutated_lines_read_back_exactly_or_fail_cleanly(line):
    try:
        message = wire.parse(line)
    except ProtocolError:
        return
    encoded = message.encode()
    if encoded != line:
        # The one tolerated non-canonical spelling: "VERB " for a bare VERB.
        assert encoded in BARE and line == encoded + " ", (line, encoded)


@pytest.mark.parametrize("text", ["\ud800", "reason \udfff"], ids=["high-surrogate", "low-surrogate"])
def test_free_text_that_is_not_unicode_text_is_a_protocol_error(text):
    # Not reachable from the wire (a decoded line never holds one); a node's own text could.
    for kind in (Ok, Error):
        with pytest.raises(ProtocolError):
            wire.encode(kind(text))
