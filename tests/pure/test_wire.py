"""The wire format: every message kind round-trips, and every malformed line is a ProtocolError."""
from __future__ import annotations

import pytest

from gossipnet.protocol import wire
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
    Vouch,
    Vouched,
    VouchRequest,
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


def roundtrip(message: wire.Message) -> wire.Message:
    return wire.parse(wire.encode(message).decode().rstrip("\n"))


# --- Round trips -----------------------------------------------------------------

MESSAGES = [
    Register(A),
    PeerListRequest(),
    PeerList(()),
    PeerList(((A, 0),)),
    PeerList(((A, 3), (B, 0), (C, 999_999))),
    LinkReport(A, B),
    DeadNodeReport(C, TS, A),
    DeadNodeReport(C, "1732406400", A),
    Ok(),
    Ok("removed: no liveness reply"),
    Error("busy: too many connections"),
    Error.coded(wire.NOT_LISTED, "reporter is not a registered live peer here"),
    Hello(B),
    GossipMessage(A, TS, 1),
    GossipMessage(A, "1732406400", 10),
    GossipMessage(Address("255.255.255.254", 65535), "0", 999_999_999),
    LivenessRequest(A, TS),
    LivenessReply(B, TS, A.ip),
    # With authentication on
    Register(A, KEY),
    PeerList(((A, 3), (B, 0)), {B: KEY}),
    LinkReport(A, B, SIG),
    DeadNodeReport(C, TS, A, SIG),
    GossipMessage(A, TS, 1, SIG),
    LivenessReply(B, TS, A.ip, SIG),
    KeysRequest((A, B)),
    Keys(()),
    Keys(((A, KEY), (C, KEY))),
    RemovalNotice(A, C),
    Leave(A),
    Full(A),
    Full(A, (B, C)),
    # Keys that travel with the gossip
    VouchRequest(A),
    Vouched(KEY, A, KEY, Vouch(C, TS, SIG)),
    wire.KeyBinding(A, KEY, (Vouch(B, TS, SIG),)),
    wire.KeyBinding(A, KEY, (Vouch(B, TS, SIG), Vouch(C, "1732406400", SIG))),
]


@pytest.mark.parametrize("message", MESSAGES, ids=lambda m: f"{type(m).__name__}")
def test_every_message_kind_round_trips(message):
    data = wire.encode(message)
    assert isinstance(data, bytes)
    assert data.endswith(b"\n") and data.count(b"\n") == 1
    assert data.decode().rstrip("\n").split(" ", 1)[0] == message.VERB
    assert roundtrip(message) == message
    assert wire.encode(roundtrip(message)) == data  # signatures and keys too, which identity ignores


def test_round_trip_covers_every_verb():
    assert {m.VERB for m in MESSAGES} == set(wire._KINDS)


def test_encoded_lines_are_exact():
    assert wire.encode(Register(A)) == b"REGISTER 10.0.0.1:9001\n"
    assert wire.encode(PeerListRequest()) == b"GET_PEERS\n"
    assert wire.encode(PeerList(())) == b"PEER_LIST\n"
    assert wire.encode(PeerList(((A, 3), (B, 0)))) == b"PEER_LIST 10.0.0.1:9001/3 10.0.0.2:9002/0\n"
    assert wire.encode(LinkReport(A, B)) == b"LINK 10.0.0.1:9001 10.0.0.2:9002\n"
    assert wire.encode(Ok()) == b"OK\n"
    assert wire.encode(Ok("fine")) == b"OK fine\n"
    assert wire.encode(Error("no")) == b"ERROR no\n"
    assert wire.encode(Hello(B)) == b"HELLO 10.0.0.2:9002\n"


def test_peer_list_keeps_order_and_degrees():
    message = wire.parse("PEER_LIST 10.0.0.3:9003/7 10.0.0.1:9001/0 10.0.0.2:9002/12")
    assert message == PeerList(((C, 7), (A, 0), (B, 12)))


def test_ok_and_error_keep_their_free_text():
    assert wire.parse("OK") == Ok("")
    assert wire.parse("OK removed: peer 10.0.0.3:9003 gave no reply") == Ok("removed: peer 10.0.0.3:9003 gave no reply")
    assert wire.parse("ERROR bad line: 'x y'") == Error("bad line: 'x y'")


def test_an_error_code_opens_the_reason_and_survives_the_round_trip():
    error = Error.coded(wire.NOT_LISTED, "reporter is not a registered live peer here")
    assert wire.encode(error) == b"ERROR not-listed: reporter is not a registered live peer here\n"
    assert roundtrip(error) == error
    assert roundtrip(error).code == wire.NOT_LISTED
    # The human text is all a receiver without the code needs: a reason with no known code has none.
    for reason in ("reporter is not a registered live peer here", "busy: too many connections",
                   "refused: not-listed: x", "not-listed", "not-listed:x", "not-listed : x"):
        assert wire.parse(f"ERROR {reason}").code is None, reason
    with pytest.raises(ProtocolError):
        Error.coded("busy", "too many connections")  # not a code: codes are a fixed list
    with pytest.raises(ProtocolError):
        Error.coded(wire.NOT_LISTED, "two\nlines")


# --- The report's texts, verbatim ------------------------------------------------


def test_gossip_message_text():
    message = GossipMessage(A, TS, 7)
    assert message.text == f"{TS}:10.0.0.1:7"
    assert wire.encode(message) == f"GOSSIP 10.0.0.1:9001 {TS}:10.0.0.1:7\n".encode()


def test_dead_node_report_text():
    report = DeadNodeReport(dead=C, timestamp=TS, reporter=A)
    assert report.text == f"Dead Node:10.0.0.3:9003:{TS}:10.0.0.1"
    assert wire.encode(report) == f"DEAD_NODE 10.0.0.1:9001 Dead Node:10.0.0.3:9003:{TS}:10.0.0.1\n".encode()


def test_liveness_request_text():
    request = LivenessRequest(A, TS)
    assert request.text == f"Liveness Request:{TS}:10.0.0.1"
    assert wire.encode(request) == f"LIVENESS_REQUEST 10.0.0.1:9001 Liveness Request:{TS}:10.0.0.1\n".encode()


def test_liveness_reply_text():
    reply = LivenessReply(replier=B, timestamp=TS, requester_ip=A.ip)
    assert reply.text == f"Liveness Reply:{TS}:10.0.0.1:10.0.0.2"
    assert wire.encode(reply) == f"LIVENESS_REPLY 10.0.0.2:9002 Liveness Reply:{TS}:10.0.0.1:10.0.0.2\n".encode()


def test_liveness_request_reply_echoes_the_request():
    request = LivenessRequest(A, TS)
    reply = request.reply(B)
    assert reply == LivenessReply(replier=B, timestamp=TS, requester_ip="10.0.0.1")
    assert reply.text == f"Liveness Reply:{TS}:10.0.0.1:10.0.0.2"
    assert roundtrip(reply) == reply


def test_messages_sharing_an_ip_stay_distinct_by_port():
    # Many peers share 127.0.0.1: the report's text is equal, the values are not.
    one = GossipMessage(Address("127.0.0.1", 9001), TS, 1)
    other = GossipMessage(Address("127.0.0.1", 9002), TS, 1)
    assert one.text == other.text
    assert one != other
    assert len({one, other}) == 2
    assert roundtrip(one) == one and roundtrip(other) == other


# --- Malformed input ---------------------------------------------------------------

BAD_ADDRESSES = [
    "1.2.3:80",
    "256.1.1.1:80",
    "0.0.0.0:80",
    "224.0.0.1:5",
    "127.0.0.1:0",
    "127.0.0.1:70000",
    "127.0.0.1:65536",
    "127.0.0.1:-1",
    "127.0.0.1:+80",
    "127.0.0.1:",
    "127.0.0.1",
    ":80",
    "localhost:80",
    "::1:80",
    "[::1]:80",
    "127.000.0.1:80",
    "127.0.0.01:80",
    " 127.0.0.1:80",
    "127.0.0.1:8 0",
    f"127.0.0.1:{ARABIC_INDIC}",
    "127.0.0.1:080080",
    "127.0.0.1:080",  # non-canonical port
    "127.0.0.1:00080",
]

# Templates with one address slot; each is a valid line with a good address.
ADDRESS_SLOTS = [
    "REGISTER {}",
    "HELLO {}",
    "LINK {} 10.0.0.2:9002",
    "LINK 10.0.0.1:9001 {}",
    "PEER_LIST {}/1",
    "PEER_LIST 10.0.0.1:9001/1 {}/2",
    "GOSSIP {} 5:127.0.0.1:1",
    "DEAD_NODE {} Dead Node:10.0.0.3:9003:5:127.0.0.1",
    "LIVENESS_REQUEST {} Liveness Request:5:127.0.0.1",
    "LIVENESS_REPLY {} Liveness Reply:5:10.0.0.1:127.0.0.1",
]

BAD_TIMESTAMPS = [
    "",
    "abc",
    "-1",
    "+1",
    "1.",
    ".5",
    "1e9",
    "1,5",
    "0x10",
    "inf",
    "nan",
    "1234567890123",  # 13 integer digits
    "1.1234567890",  # 10 decimals
    "1.5.5",
    " 1",
    "1 ",
    ARABIC_INDIC,
    "1.\u0665",  # a non-ASCII digit after the point
]

TIMESTAMP_SLOTS = [
    "GOSSIP 10.0.0.1:9001 {}:10.0.0.1:1",
    "DEAD_NODE 10.0.0.1:9001 Dead Node:10.0.0.3:9003:{}:10.0.0.1",
    "LIVENESS_REQUEST 10.0.0.1:9001 Liveness Request:{}:10.0.0.1",
    "LIVENESS_REPLY 10.0.0.2:9002 Liveness Reply:{}:10.0.0.1:10.0.0.2",
]

MALFORMED = [
    # unknown verb, empty line
    "",
    " ",
    "\r",
    "FOO",
    "FOO 10.0.0.1:9001",
    "register 10.0.0.1:9001",
    " REGISTER 10.0.0.1:9001",
    "REGISTER\t10.0.0.1:9001",
    "Dead Node:10.0.0.3:9003:5:10.0.0.1",
    "GOSSIP_MESSAGE 10.0.0.1:9001 5:10.0.0.1:1",
    # REGISTER / HELLO
    "REGISTER",
    "REGISTER ",
    "REGISTER  10.0.0.1:9001",
    "REGISTER 10.0.0.1:9001 ",
    "REGISTER 10.0.0.1:9001 10.0.0.2:9002",
    "REGISTER garbage",
    "HELLO",
    "HELLO 10.0.0.1:9001 x",
    # GET_PEERS
    "GET_PEERS x",
    "GET_PEERS 10.0.0.1:9001",
    # ERROR needs a reason
    "ERROR",
    "ERROR ",
    "ERROR    ",
    # PEER_LIST
    "PEER_LIST 10.0.0.1:9001",
    "PEER_LIST 10.0.0.1:9001/",
    "PEER_LIST 10.0.0.1:9001/x",
    "PEER_LIST 10.0.0.1:9001/-1",
    "PEER_LIST 10.0.0.1:9001/+1",
    "PEER_LIST 10.0.0.1:9001/1.5",
    "PEER_LIST 10.0.0.1:9001/1234567",
    "PEER_LIST 10.0.0.1:9001/1/2",
    f"PEER_LIST 10.0.0.1:9001/{ARABIC_INDIC}",
    "PEER_LIST 10.0.0.1:9001/01",
    "PEER_LIST 10.0.0.1:9001/00",
    "PEER_LIST 10.0.0.1:9001/1 10.0.0.1:9001/1",
    "PEER_LIST 10.0.0.1:9001/1 10.0.0.2:9002/5 10.0.0.1:9001/2",
    "PEER_LIST 10.0.0.1:9001/1  10.0.0.2:9002/1",
    "PEER_LIST 10.0.0.1:9001/1 ",
    "PEER_LIST /1",
    # LINK
    "LINK",
    "LINK 10.0.0.1:9001",
    "LINK 10.0.0.1:9001 10.0.0.1:9001",
    "LINK 10.0.0.1:9001 10.0.0.2:9002 10.0.0.3:9003",
    "LINK 10.0.0.1:9001  10.0.0.2:9002",
    "LINK 10.0.0.1:9001,10.0.0.2:9002",
    # DEAD_NODE
    "DEAD_NODE",
    "DEAD_NODE 10.0.0.1:9001",
    "DEAD_NODE 10.0.0.1:9001 ",
    "DEAD_NODE Dead Node:10.0.0.3:9003:5:10.0.0.1",
    "DEAD_NODE 10.0.0.1:9001 Dead Node:10.0.0.3:9003:10.0.0.1",
    "DEAD_NODE 10.0.0.1:9001 Dead Node:10.0.0.3:9003:5:10.0.0.1:x",
    "DEAD_NODE 10.0.0.1:9001 Dead Node:10.0.0.3:9003:5:10.0.0.1 extra",
    "DEAD_NODE 10.0.0.1:9001 Dead node:10.0.0.3:9003:5:10.0.0.1",
    "DEAD_NODE 10.0.0.1:9001 DeadNode:10.0.0.3:9003:5:10.0.0.1",
    "DEAD_NODE 10.0.0.1:9001 Dead Node:10.0.0.3:0:5:10.0.0.1",
    "DEAD_NODE 10.0.0.1:9001 Dead Node:0.0.0.0:9003:5:10.0.0.1",
    "DEAD_NODE 10.0.0.1:9001 Dead Node:10.0.0.3:9003:5:",
    # the reporter's IP in the text must be the sender's
    "DEAD_NODE 10.0.0.2:9001 Dead Node:10.0.0.3:9003:5:10.0.0.1",
    "DEAD_NODE 10.0.0.1:9001 Dead Node:10.0.0.3:9003:5:10.0.0.3",
    # GOSSIP
    "GOSSIP",
    "GOSSIP 10.0.0.1:9001",
    "GOSSIP 10.0.0.1:9001 ",
    "GOSSIP 5:10.0.0.1:1",
    "GOSSIP 10.0.0.1:9001 5:10.0.0.1",
    "GOSSIP 10.0.0.1:9001 5:10.0.0.1:1:1",
    "GOSSIP 10.0.0.1:9001 10.0.0.1:1",
    # message IP must be the origin's
    "GOSSIP 10.0.0.1:9001 5:10.0.0.2:1",
    "GOSSIP 10.0.0.1:9001 5:127.0.0.1:1",
    # message number
    "GOSSIP 10.0.0.1:9001 5:10.0.0.1:0",
    "GOSSIP 10.0.0.1:9001 5:10.0.0.1:00",
    "GOSSIP 10.0.0.1:9001 5:10.0.0.1:-1",
    "GOSSIP 10.0.0.1:9001 5:10.0.0.1:+1",
    "GOSSIP 10.0.0.1:9001 5:10.0.0.1:",
    "GOSSIP 10.0.0.1:9001 5:10.0.0.1:abc",
    "GOSSIP 10.0.0.1:9001 5:10.0.0.1:1.0",
    "GOSSIP 10.0.0.1:9001 5:10.0.0.1:1 ",
    "GOSSIP 10.0.0.1:9001 5:10.0.0.1:1 x",
    "GOSSIP 10.0.0.1:9001 5:10.0.0.1:1234567890",
    "GOSSIP 10.0.0.1:9001 5:10.0.0.1:007",  # non-canonical number
    f"GOSSIP 10.0.0.1:9001 5:10.0.0.1:{ARABIC_INDIC}",
    "GOSSIP 10.0.0.1:9001 5:10.0.0.1:\u00b2",  # superscript two: isdigit() but not a number
    # LIVENESS_REQUEST
    "LIVENESS_REQUEST",
    "LIVENESS_REQUEST 10.0.0.1:9001",
    "LIVENESS_REQUEST 10.0.0.1:9001 Liveness Request:5",
    "LIVENESS_REQUEST 10.0.0.1:9001 Liveness Request:5:10.0.0.1:x",
    "LIVENESS_REQUEST 10.0.0.1:9001 Liveness Request:5:10.0.0.1 x",
    "LIVENESS_REQUEST 10.0.0.1:9001 Liveness request:5:10.0.0.1",
    "LIVENESS_REQUEST 10.0.0.1:9001 Liveness Reply:5:10.0.0.1",
    "LIVENESS_REQUEST 10.0.0.1:9001 Liveness Request:5:10.0.0.2",
    # LIVENESS_REPLY
    "LIVENESS_REPLY",
    "LIVENESS_REPLY 10.0.0.2:9002",
    "LIVENESS_REPLY 10.0.0.2:9002 Liveness Reply:5:10.0.0.2",
    "LIVENESS_REPLY 10.0.0.2:9002 Liveness Reply:5:10.0.0.1:10.0.0.2:x",
    "LIVENESS_REPLY 10.0.0.2:9002 Liveness Reply:5:10.0.0.1:10.0.0.2 x",
    "LIVENESS_REPLY 10.0.0.2:9002 Liveness Request:5:10.0.0.1:10.0.0.2",
    "LIVENESS_REPLY 10.0.0.2:9002 Liveness Reply:5:10.0.0.1:10.0.0.1",
    "LIVENESS_REPLY 10.0.0.2:9002 Liveness Reply:5:0.0.0.0:10.0.0.2",
    "LIVENESS_REPLY 10.0.0.2:9002 Liveness Reply:5:localhost:10.0.0.2",
    "LIVENESS_REPLY 10.0.0.2:9002 Liveness Reply:5:10.0.0.01:10.0.0.2",
    "LIVENESS_REPLY 10.0.0.2:9002 Liveness Reply:5::10.0.0.2",
    *(slot.format(address) for slot in ADDRESS_SLOTS for address in BAD_ADDRESSES),
    *(slot.format(timestamp) for slot in TIMESTAMP_SLOTS for timestamp in BAD_TIMESTAMPS),
    *(slot.format(ARABIC_INDIC) for slot in TIMESTAMP_SLOTS),
]


def test_address_slots_accept_a_good_address():
    # Otherwise the bad-address cases below could fail for the wrong reason.
    for slot in ADDRESS_SLOTS:
        verb = slot.split(" ")[0]
        assert isinstance(wire.parse(slot.format("127.0.0.1:9000")), wire._KINDS[verb])
    for slot in TIMESTAMP_SLOTS:
        verb = slot.split(" ")[0]
        assert isinstance(wire.parse(slot.format(TS)), wire._KINDS[verb])


@pytest.mark.parametrize("line", MALFORMED)
def test_malformed_line_raises_protocol_error(line):
    with pytest.raises(ProtocolError):
        wire.parse(line)


@pytest.mark.parametrize("text", BAD_ADDRESSES)
def test_address_parse_refuses(text):
    with pytest.raises(ProtocolError):
        Address.parse(text)


@pytest.mark.parametrize("ip, port", [
    ("127.0.0.1", 0), ("127.0.0.1", 65536), ("127.0.0.1", -1), ("127.0.0.1", True), ("127.0.0.1", 80.0),
    ("127.0.0.1", "80"), ("0.0.0.0", 80), ("239.1.1.1", 80), ("127.0.0.01", 80), ("localhost", 80),
    ("", 80), (None, 80), (2130706433, 80),
])
def test_address_checked_when_built(ip, port):
    with pytest.raises(ProtocolError):
        Address(ip, port)


def test_address_parse_and_str():
    assert Address.parse("127.0.0.1:1") == Address("127.0.0.1", 1)
    assert Address.parse("255.255.255.255:65535") == Address("255.255.255.255", 65535)
    assert str(Address("10.0.0.1", 9001)) == "10.0.0.1:9001"


@pytest.mark.parametrize("build", [
    lambda: GossipMessage(A, "1.", 1),
    lambda: GossipMessage(A, TS, 0),
    lambda: GossipMessage(A, TS, -3),
    lambda: GossipMessage(A, TS, True),
    lambda: GossipMessage(A, TS, 1.0),
    lambda: DeadNodeReport(C, "x", A),
    lambda: LivenessRequest(A, ""),
    lambda: LivenessReply(B, TS, "10.0.0"),
    lambda: LivenessReply(B, TS, "0.0.0.0"),
    lambda: LinkReport(A, Address("10.0.0.1", 9001)),
    lambda: Error(""),
    lambda: Error("   "),
    lambda: PeerList(((A, 1), (B, 2), (Address("10.0.0.1", 9001), 3))),
])
def test_messages_checked_when_built(build):
    with pytest.raises(ProtocolError):
        build()


@pytest.mark.parametrize("build", [
    lambda: Error("bad\nREGISTER 10.0.0.1:9001"),
    lambda: Error("bad\r\nREGISTER 10.0.0.1:9001"),
    lambda: Error("a\rb"),
    lambda: Ok("a\nb"),
    lambda: Ok("a\rb"),
    lambda: Ok("trailing newline\n"),
])
def test_free_text_cannot_smuggle_a_second_line(build):
    # Otherwise encode would put two lines on the wire, the second one forged.
    with pytest.raises(ProtocolError):
        wire.encode(build())


# A PeerList must never encode a degree its own decode refuses.
@pytest.mark.parametrize("degree", [-1, 10**6, True, 1.5])
def test_peer_list_degree_checked_when_built(degree):
    with pytest.raises(ProtocolError):
        PeerList(((A, degree),))


def test_ok_detail_with_trailing_space_round_trips():
    message = Ok("removed: ")
    assert roundtrip(message) == message


# --- encode's size limit -------------------------------------------------------------


def test_encode_refuses_an_oversized_line():
    peers = tuple((Address(f"10.{i // 250}.{i % 250}.1", 10000 + i), i) for i in range(4000))
    with pytest.raises(ProtocolError):
        wire.encode(PeerList(peers))


def test_encode_limit_is_exact():
    # "OK " + detail + "\n"
    fits = Ok("x" * (wire.MAX_LINE_BYTES - 4))
    assert len(wire.encode(fits)) == wire.MAX_LINE_BYTES
    with pytest.raises(ProtocolError):
        wire.encode(Ok("x" * (wire.MAX_LINE_BYTES - 3)))
    # The limit counts bytes, not characters.
    with pytest.raises(ProtocolError):
        wire.encode(Ok("\u00e9" * (wire.MAX_LINE_BYTES // 2)))


def test_full_names_each_neighbour_once_and_never_itself():
    with pytest.raises(ProtocolError):
        wire.parse(f"FULL {A} {B} {B}")
    with pytest.raises(ProtocolError):
        wire.parse(f"FULL {A} {A}")
    with pytest.raises(ProtocolError):
        wire.parse("FULL")
    with pytest.raises(ProtocolError):
        Full(A, tuple(Address("10.0.0.1", port) for port in range(1, wire.MAX_FULL_NEIGHBOURS + 2)))
def test_a_binding_line_is_bounded_and_names_each_seed_once():
    vouches = tuple(Vouch(Address("10.0.1.1", port), TS, SIG) for port in range(1, wire.MAX_VOUCHES + 2))
    line = f"KEY {A} {KEY} " + " ".join(v.encode() for v in vouches)
    with pytest.raises(ProtocolError, match="more than"):
        wire.parse(line)
    assert len(wire.encode(wire.parse(line.rsplit(" ", 1)[0]))) < wire.MAX_LINE_BYTES  # the most a KEY carries fits
    with pytest.raises(ProtocolError, match="twice"):
        wire.parse(f"KEY {A} {KEY} {vouches[0].encode()} {vouches[0].encode()}")
    for bad in (f"KEY {A} {KEY}", f"KEY {A} {KEY} {B}/{TS}", f"KEY {A} {KEY} {B}/x/{SIG}",
                f"KEY {A} nokey {B}/{TS}/{SIG}", f"VOUCHED {KEY} {A} {KEY}"):
        with pytest.raises(ProtocolError):
            wire.parse(bad)
    # What a seed signs: the verb BINDING opens it, so no other signed line can pass for one.
    assert wire.binding_body(A, KEY, TS) == f"BINDING {A} {KEY} {TS}"
