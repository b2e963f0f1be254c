"""Hostile inputs for a live seed or peer, drawn from a seeded ``random.Random``.

Each :class:`Case` is one connection: a few well-formed but hostile lines the
node answers and stays on (forged signatures, refused reports, claims to
addresses it cannot prove), then one malformed input that must make the node
drop the connection.  :class:`Attack` builds them for one node and checks
each final input locally with wire.py, so no case is accidentally a valid
request (a registration of junk, a link under a real name) or leaves the node
waiting for more.  This module only builds bytes; tests/test_fuzz_live.py
throws them.
"""

from __future__ import annotations

import base64
import dataclasses
import random
from dataclasses import dataclass, field

from gossipnet.protocol import wire
from gossipnet.protocol.auth import Identity
from gossipnet.protocol.wire import (
    Address,
    DeadNodeReport,
    Error,
    GossipMessage,
    Hello,
    Keys,
    KeysRequest,
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

# Names the forged HELLOs use: few, so the links a seed records for the
# attacked peer stay far below MAX_LINKS_PER_PEER.
FAKE_NEIGHBOURS = [Address("10.77.0.1", 9000 + i) for i in range(12)]


@dataclass
class Case:
    """One connection: well-formed hostile lines the node answers, then one malformed input."""

    category: str
    payload: bytes  # ends the connection
    prelude: list[bytes] = field(default_factory=list)
    half_close: bool = False
    # The name the node logs the connection under, when not our socket's address.
    remote: str | None = None

    @property
    def inputs(self) -> int:
        return len(self.prelude) + 1


# First lines a node answers and stays on, by context; anything else ends the connection.
SERVED = {
    "seed": (Register, PeerListRequest, KeysRequest, LinkReport, DeadNodeReport, RemovalNotice, LivenessRequest),
    "peer": (Hello, LivenessRequest),
    "probe": (LivenessRequest,),
    "link": (GossipMessage, LivenessRequest, LivenessReply),
}

BAD_ADDRESSES = [
    "999.1.1.1:80", "256.0.0.1:9000", "0.0.0.0:8000", "224.0.0.1:5", "239.255.255.255:80", "127.0.0.1:0",
    "127.0.0.1:65536", "127.0.0.1:-1", "127.0.0.1:+80", "127.0.0.1:080", "127.000.0.1:80", "127.0.0.01:80",
    "::1:80", "[::1]:80", "localhost:80", "127.0.0.1", ":80", "127.0.0.1:", "127.0.0.1:8 0",
    "127.0.0.1:\u0661\u0662", "1.2.3:80", "1.2.3.4.5:80", "127.0.0.1:99999999999999999999",
]
BAD_TIMESTAMPS = ["", "-1", "1e9", "nan", "1.", ".5", "1234567890123", "1.1234567890", "\u0661", "1,5", "0x10"]
BINARY = [
    b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03",  # a TLS ClientHello
    b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n",
    b"SSH-2.0-OpenSSH_9.6\r\n",
    b'{"verb": "REGISTER", "peer": "127.0.0.1:9000"}',
    b"\x00" * 64,
    b"\xff\xfe\xfd",
    b"\xc0\xaf",  # an overlong UTF-8 encoding of '/'
    b"\xed\xa0\x80",  # a UTF-16 surrogate encoded in UTF-8
    b"OK caf\xc3",  # a character cut in half
    "REGISTER 127.0.0.1:9000 \u00e9\u20ac".encode("utf-16"),
]
UNKNOWN_VERBS = ["FROBNICATE", "register", "Register", "PING", "GOSSIP_MESSAGE", "DEADNODE", "LIVENESS", "HELO",
                 "GET", "QUIT", "", " REGISTER", "REGISTER\t127.0.0.1:9000", "\u0420EGISTER", "REGISTER\x00"]


class Attack:
    """Builds the cases for one attacked node from a seeded ``random.Random``."""

    def __init__(self, rng: random.Random, role: str, target: Address, honest: list[Address], closed: Address,
                 identity: Identity) -> None:
        self.rng = rng
        self.role = role
        self.target = target
        self.honest = honest
        self.closed = closed  # a port that refuses connections
        self.identity = identity

    def cases(self, count: int) -> list[Case]:
        makers = [
            (self.random_bytes, 14), (self.binary, 8), (self.overlong, 1), (self.unknown_verb, 10),
            (self.impossible_address, 12), (self.truncated, 8), (self.broken_fields, 20), (self.wrong_verb, 6),
            (self.bad_keys_and_signatures, 8),
        ]
        if self.role == "seed":
            makers.append((self.seed_session, 25))
        else:
            makers += [(self.probe_session, 12), (self.forged_link, 2), (self.hello_self, 1)]
        functions, weights = zip(*makers, strict=True)
        return [self.rng.choices(functions, weights)[0]() for _ in range(count)]

    # Helpers

    def pick(self, items):
        return self.rng.choice(items)

    def timestamp(self) -> str:
        return f"{1_700_000_000 + self.rng.random() * 10**8:.6f}"

    def two_honest(self) -> tuple[Address, Address]:
        a, b = self.rng.sample(self.honest, 2)
        return a, b

    def forged(self, message):
        """Signed by the wrong key, or carrying random bytes shaped like a signature."""
        if self.rng.random() < 0.5:
            return message.signed(self.identity)
        return dataclasses.replace(message, signature=random_signature(self.rng))

    def valid(self) -> wire.Message:
        """Any well-formed line, with real addresses: material for truncation and mutation."""
        a, b = self.two_honest()
        fake = self.pick(FAKE_NEIGHBOURS)
        ts = self.timestamp()
        return self.pick([
            Register(a, self.identity.key), PeerListRequest(), self.forged(LinkReport(a, b)),
            self.forged(DeadNodeReport(b, ts, a)), Hello(fake), self.forged(GossipMessage(a, ts, 1)),
            LivenessRequest(fake, ts), LivenessReply(a, ts, b.ip).signed(self.identity),
            KeysRequest((a, b)), Keys(((a, self.identity.key),)), RemovalNotice(fake, a), Ok("x y"),
            Error("no"), PeerList(((a, 1), (b, 2)), {a: self.identity.key}),
        ])

    def ends(self, payload: bytes, context: str, half_close: bool = False) -> bool:
        """``payload`` surely makes the node drop the connection in ``context``."""
        raw, newline, _ = payload.partition(b"\n")
        if len(raw) >= wire.MAX_LINE_BYTES:
            return True
        if not newline:
            return half_close and bool(raw)
        try:
            message = wire.parse(raw.decode("utf-8").removesuffix("\r"))
        except (UnicodeDecodeError, ProtocolError):
            return True
        return not isinstance(message, SERVED[context])

    def case(self, category: str, make, context: str | None = None, half_close: bool = False, **extra) -> Case:
        """A case from ``make()``, drawn again until its payload surely ends the connection."""
        for _ in range(100):
            payload = make()
            if self.ends(payload, context or self.role, half_close):
                return Case(category, payload, half_close=half_close, **extra)
        raise AssertionError(f"no {category} payload that ends the connection")

    def line(self, text: str) -> bytes:
        return (text + self.pick(["\n", "\n", "\n", "\r\n"])).encode("utf-8")

    # Malformed inputs, for either node

    def random_bytes(self) -> Case:
        return self.case("random bytes", lambda: self.rng.randbytes(self.rng.randint(1, 300)) + b"\n")

    def binary(self) -> Case:
        return self.case("binary", lambda: self.pick(BINARY) + self.rng.randbytes(self.rng.randint(0, 8)) + b"\n")

    def overlong(self) -> Case:
        size = wire.MAX_LINE_BYTES + self.rng.randint(-1, 40_000)
        body = self.pick([b"A", b"REGISTER 127.0.0.1:9000 ", b"PEER_LIST "])
        payload = (body * (size // len(body) + 1))[:size] + self.pick([b"", b"\n"])
        return Case("line over 64 KiB", payload)

    def unknown_verb(self) -> Case:
        return self.case("unknown verb", lambda: self.line(f"{self.pick(UNKNOWN_VERBS)} {self.pick(self.honest)}"))

    def impossible_address(self) -> Case:
        def make() -> bytes:
            bad = self.pick(BAD_ADDRESSES + [f"{self.rng.randint(256, 9999)}.0.0.1:{self.rng.randint(1, 9)}",
                                             f"127.0.0.1:{self.rng.randint(65536, 10**7)}"])
            a = self.pick(self.honest)
            template = self.pick(["REGISTER {}", "HELLO {}", "LINK {} " + str(a), "LINK " + str(a) + " {}",
                                  "GET_KEYS {}", "PEER_REMOVED {} " + str(a), "LIVENESS_REQUEST {} Liveness Request:5:"
                                  + bad.rpartition(":")[0], "DEAD_NODE " + str(a) + " Dead Node:{}:5:" + a.ip])
            return self.line(template.format(bad))
        return self.case("impossible address", make)

    def truncated(self) -> Case:
        text = self.valid().encode()
        cut = self.rng.randint(1, len(text) - 1)
        return self.case("truncated line", lambda: text[:cut].encode("utf-8"), half_close=True)

    def broken_fields(self) -> Case:
        def make() -> bytes:
            text = self.valid().encode()
            if self.rng.random() < 0.3:
                a = self.pick(self.honest)
                text = self.pick([
                    f"GOSSIP {a} {self.pick(BAD_TIMESTAMPS)}:{a.ip}:1",
                    f"GOSSIP {a} 5:{a.ip}:{self.pick(['0', '00', '01', '1234567890', '-1', 'x', ''])}",
                    f"GOSSIP {a} 5:10.9.9.9:1",
                    f"DEAD_NODE {a} Dead Node:{a}:{self.pick(BAD_TIMESTAMPS)}:{a.ip}",
                    f"DEAD_NODE {a} Dead Node:{a}:5:10.9.9.9",
                    f"LIVENESS_REQUEST {a} Liveness Request:{self.pick(BAD_TIMESTAMPS)}:{a.ip}",
                    f"LIVENESS_REPLY {a} Liveness Reply:5:0.0.0.0:{a.ip}",
                    f"PEER_LIST {a}/{self.pick(['-1', '01', '1234567', 'x', ''])}",
                    f"LINK {a} {a}", f"GET_PEERS {a}", f"GET_KEYS {' '.join([str(a)] * 257)}", "ERROR ", "ERROR",
                ])
            for _ in range(self.rng.randint(1, 3)):  # insert, delete or replace a character
                at = self.rng.randint(0, len(text))
                new = self.pick(list(" :./0159AQgw_-\t\x00\u00e9\u0661")) if self.rng.random() < 0.8 else ""
                text = text[:at] + new + text[at + self.rng.randint(0, 1):]
            return self.line(text)
        return self.case("broken fields", make)

    def wrong_verb(self) -> Case:
        """A well-formed line this node does not serve (a reply, or the other role's request)."""
        return self.case("verb not served", lambda: self.line(self.valid().encode()))

    def bad_keys_and_signatures(self) -> Case:
        def make() -> bytes:
            a, b = self.two_honest()
            key = self.identity.key
            signature = random_signature(self.rng)
            return self.line(self.pick([
                f"REGISTER {a} {key[:-1]}",  # 42 characters
                f"REGISTER {a} {key[:-1]}B",  # not canonical base64
                f"REGISTER {a} {key}=",
                f"REGISTER {a} {key} {key}",
                f"LINK {a} {b} {signature[:-1]}",
                f"LINK {a} {b} {signature[:-1]}B",
                f"LINK {a} {b} {signature} {signature}",
                f"GOSSIP {a} 5:{a.ip}:1 {signature}x",
                f"PEER_LIST {a}/1/{key[:10]}",
                f"KEYS {a}/{signature}",
            ]))
        return self.case("malformed key or signature", make)

    # Well-formed hostile lines the node answers and keeps the connection for

    def seed_session(self) -> Case:
        """Requests a seed answers and refuses without closing, then a malformed line."""
        case = self.pick([self.random_bytes, self.unknown_verb, self.broken_fields, self.impossible_address])()
        for _ in range(self.rng.randint(1, 6)):
            a, b = self.two_honest()
            ts = self.timestamp()
            fake = self.pick(FAKE_NEIGHBOURS)
            case.prelude.append(wire.encode(self.pick([
                self.forged(LinkReport(a, b)),  # ERROR bad signature (or not registered here)
                LinkReport(fake, a),  # ERROR: not registered here
                self.forged(DeadNodeReport(b, ts, a)),  # OK rejected: bad signature
                DeadNodeReport(a, ts, Address(fake.ip, fake.port + 100)),  # OK rejected: not registered here
                RemovalNotice(fake, a),  # OK rejected: not a seed in the config
                KeysRequest(tuple(self.rng.sample(FAKE_NEIGHBOURS, 3))),
                PeerListRequest(),
                LivenessRequest(fake, ts),
                Register(self.closed, self.identity.key),  # ERROR refused: cannot prove the key
            ])))
        if self.rng.random() < 0.01:  # claim a live peer's address with another key: refused
            case.prelude.append(wire.encode(Register(self.pick(self.honest), self.identity.key)))
        case.category = "seed session: " + case.category
        return case

    def probe_session(self) -> Case:
        """Liveness requests a peer answers on a probe connection, then a line it refuses there."""
        case = self.case("probe session", lambda: self.line(self.valid().encode()) if self.rng.random() < 0.5
                         else self.random_bytes().payload, context="probe")
        for _ in range(self.rng.randint(1, 6)):
            fake = self.pick(FAKE_NEIGHBOURS)
            case.prelude.append(wire.encode(LivenessRequest(fake, self.timestamp())))
        return case

    def forged_link(self) -> Case:
        """A HELLO under a made-up name, forged gossip from real origins, then a line refused on a link."""
        fake = self.pick(FAKE_NEIGHBOURS)
        case = self.case("forged link", lambda: self.line(self.valid().encode()) if self.rng.random() < 0.5
                         else self.broken_fields().payload, context="link", remote=str(fake))
        case.prelude.append(wire.encode(Hello(fake)))
        for _ in range(self.rng.randint(0, 3)):
            origin = self.pick(self.honest)
            case.prelude.append(wire.encode(self.pick([
                LivenessRequest(fake, self.timestamp()),
                LivenessReply(fake, self.timestamp(), self.target.ip),
                self.forged(GossipMessage(origin, self.timestamp(), self.rng.randint(1, 10**6))),
                GossipMessage(origin, self.timestamp(), self.rng.randint(1, 10**6)),  # unsigned
            ])))
        return case

    def hello_self(self) -> Case:
        return Case("HELLO naming the peer itself", wire.encode(Hello(self.target)), remote=str(self.target))


def random_signature(rng: random.Random) -> str:
    """64 random bytes in a signature's shape: well-formed, and never a valid signature."""
    return base64.urlsafe_b64encode(rng.randbytes(64)).rstrip(b"=").decode("ascii")
