"""The wire format: every line any node sends or accepts, and nothing else.

Each message kind is a frozen dataclass named for what it is.  Its ``encode``
(write) and ``decode`` (read) sit side by side; :func:`parse` reads any line.
Anything malformed raises :class:`ProtocolError`, never an ``IndexError`` or
``ValueError`` from inside a split.  The report's texts (the gossip message,
the liveness request and reply, and ``Dead Node:...``) travel verbatim as the
last field of their lines; the verb and the sender's ``IP:port`` beside them
keep identities unique when many nodes share one IP.

Framing is newline-delimited UTF-8 (one line at most MAX_LINE_BYTES), read
off a socket by gossipnet.node.framing.LineReader.  This module does no I/O.

With authentication on, some lines end with an Ed25519 signature (see
auth.py) over the rest of the line, and keys travel beside addresses.  This
module only checks their shape; auth.py checks what they prove.

The list of verbs is append-only: a new kind gets a new verb.
"""

from __future__ import annotations

import dataclasses
import functools
import ipaddress
import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, ClassVar

if TYPE_CHECKING:
    from gossipnet.protocol.auth import Identity

# Longest line accepted, newline included.  The longest legitimate line is a
# seed's peer list at ~25 bytes per peer: 64 KiB holds ~2,500 peers, well
# past one machine's reach, while a 1 MB line is refused before it is kept.
MAX_LINE_BYTES = 64 * 1024

# Digits of a message number: --gossip-count can be at most 10^9 - 1.
MAX_NUMBER_DIGITS = 9
# Digits of a degree in a peer list: no peer has a million neighbours.
MAX_DEGREE_DIGITS = 6

# Addresses one GET_KEYS request may ask about.  Unknown origins come a few
# at a time; the reply (up to KEY_HISTORY keys each) stays well under a line.
MAX_KEYS_PER_REQUEST = 128
# Keys a seed keeps per address across restarts, and returns in KEYS.
KEY_HISTORY = 4
# Seeds' signatures one KEY line may carry: a binding carries those of the
# majority of seeds its peer registered with; 32 covers a config of 63 seeds,
# and 32 vouches (~140 bytes each) stay well inside a line.
MAX_VOUCHES = 32

# Error codes: a stable token that opens an ERROR reason, ``<code>: <text>``,
# for the receiver to act on; the text after it is for people and may change.
# A reason that opens with anything else has no code.  Append-only.
NOT_LISTED = "not-listed"  # a seed does not list the reporter of a LINK: it must register there again
ERROR_CODES = frozenset({NOT_LISTED})

_TIMESTAMP = re.compile(r"[0-9]{1,12}(\.[0-9]{1,9})?")
# Ed25519 public keys (32 bytes) and signatures (64 bytes) as unpadded
# URL-safe base64: no space, colon or slash, so they sit inside any line.
KEY_CHARS = 43
SIGNATURE_CHARS = 86
_KEY = re.compile(rf"[A-Za-z0-9_-]{{{KEY_CHARS - 1}}}[AEIMQUYcgkosw048]")
_SIGNATURE = re.compile(rf"[A-Za-z0-9_-]{{{SIGNATURE_CHARS - 1}}}[AQgw]")


class ProtocolError(Exception):
    """A line, field or connection does not follow the protocol."""


@dataclass(frozen=True, order=True)
class Address:
    """An IPv4 ``IP:port`` a node listens on.

    IPv4 only: the report's texts separate fields with colons.  Unspecified
    and multicast addresses are refused because no node can be reached there.
    """

    ip: str
    port: int

    def __post_init__(self) -> None:
        try:
            ip = ipaddress.IPv4Address(self.ip)
        except (ipaddress.AddressValueError, TypeError):
            raise ProtocolError(f"{self.ip!r} is not an IPv4 address") from None
        if ip.is_unspecified or ip.is_multicast:
            raise ProtocolError(f"{self.ip} cannot be a node's address")
        if str(ip) != self.ip:
            raise ProtocolError(f"{self.ip!r} is not in canonical dotted form")
        if type(self.port) is not int or not 1 <= self.port <= 65535:
            raise ProtocolError(f"{self.port!r} is not a port (1-65535)")
        # Addresses key every table of a node and of a log reader (tens of
        # millions of lookups for a big log): hash once, not per lookup.
        object.__setattr__(self, "_hash", hash((self.ip, self.port)))

    def __hash__(self) -> int:
        return self._hash  # type: ignore[attr-defined, no-any-return]

    def __reduce__(self) -> tuple[type[Address], tuple[str, int]]:
        # Rebuilt, not restored: string hashes differ between processes.
        return Address, (self.ip, self.port)

    @classmethod
    def parse(cls, text: str) -> Address:
        return _parse_address(text)

    def __str__(self) -> str:
        return f"{self.ip}:{self.port}"


@functools.lru_cache(maxsize=1 << 16)
def _parse_address(text: str) -> Address:
    """``IP:port`` into an Address, remembered: a node or a log reader sees the
    same few hundred addresses millions of times, and checking one is costly.
    Addresses are immutable, so sharing them is safe; errors are not cached."""
    host, sep, port = text.rpartition(":")
    if not sep:
        raise ProtocolError(f"{text[:60]!r} is not IP:port")
    return Address(host, _natural(port, 5, "port"))


def _timestamp(text: str) -> str:
    if not _TIMESTAMP.fullmatch(text):
        raise ProtocolError(f"{text!r} is not a timestamp (seconds since the epoch)")
    return text


def _natural(text: str, digits: int, what: str) -> int:
    """A decimal whole number written canonically (ASCII digits, no leading zero)."""
    if (not text.isascii() or not text.isdigit() or len(text) > digits
            or (len(text) > 1 and text[0] == "0")):
        raise ProtocolError(f"{text[:20]!r} is not a {what}")
    return int(text)


def _free_text(text: str) -> str:
    """Free text fits on one line: no line breaks that would smuggle a second line."""
    if "\n" in text or "\r" in text:
        raise ProtocolError("free text must not contain line breaks")
    if not text.isascii():
        try:
            text.encode("utf-8")
        except UnicodeEncodeError:
            raise ProtocolError("free text must be Unicode text (no lone surrogates)") from None
    return text


def _ip(text: str) -> str:
    return Address(text, 1).ip


def is_key(text: str) -> bool:
    """``text`` has the shape of a public key (32 bytes of canonical base64)."""
    return bool(_KEY.fullmatch(text))


def is_signature(text: str) -> bool:
    """``text`` has the shape of a signature (64 bytes of canonical base64)."""
    return bool(_SIGNATURE.fullmatch(text))


def _key(text: str) -> str:
    if not is_key(text):
        raise ProtocolError(f"{text[:60]!r} is not a public key")
    return text


def _unsign(rest: str, spaces: int) -> tuple[str, str | None]:
    """Split the signature off ``rest``, whose unsigned form holds ``spaces`` spaces."""
    if rest.count(" ") <= spaces:
        return rest, None
    body, _, signature = rest.rpartition(" ")
    if body.count(" ") != spaces or not is_signature(signature):
        raise ProtocolError(f"malformed signature {signature[:100]!r}")
    return body, signature


class Signable:
    """A message that may end with its sender's signature over the rest of the line.

    ``signature`` is not part of a message's identity: the same message with
    a forged signature is the same message, and fails verification.
    """

    VERB: ClassVar[str]
    signature: str | None

    def body(self) -> str:
        """The line without its signature: what the signature covers."""
        raise NotImplementedError

    def encode(self) -> str:
        body = self.body()
        return body if self.signature is None else f"{body} {self.signature}"

    def signed(self, identity: Identity):  # -> Self (3.11)
        return dataclasses.replace(self, signature=identity.sign(self.body()))


def _split(text: str, count: int, what: str) -> list[str]:
    parts = text.split(":")
    if len(parts) != count:
        raise ProtocolError(f"{what} must have {count} ':'-separated fields: {text!r}")
    return parts


# --- Peer <-> seed --------------------------------------------------------------


@dataclass(frozen=True)
class Register:
    """A peer asks a seed to add it to the Peer List (PL)."""

    VERB: ClassVar[str] = "REGISTER"
    peer: Address
    # The peer's public key, with authentication on.  The seed binds it to
    # ``peer`` only after the address proves it holds the key.
    key: str | None = None

    def __post_init__(self) -> None:
        if self.key is not None:
            _key(self.key)

    def encode(self) -> str:
        return f"{self.VERB} {self.peer}" if self.key is None else f"{self.VERB} {self.peer} {self.key}"

    @classmethod
    def decode(cls, rest: str) -> Register:
        address, sep, key = rest.partition(" ")
        return cls(Address.parse(address), key if sep else None)


@dataclass(frozen=True)
class PeerListRequest:
    """A peer asks a seed for its current Peer List."""

    VERB: ClassVar[str] = "GET_PEERS"

    def encode(self) -> str:
        return self.VERB

    @classmethod
    def decode(cls, rest: str) -> PeerListRequest:
        if rest:
            raise ProtocolError("GET_PEERS takes no arguments")
        return cls()


@dataclass(frozen=True)
class PeerList:
    """A seed's Peer List: each peer with its degree as the seed knows it.

    The reply to ``REGISTER`` is the list as it stood just before the
    registration, so it holds exactly the peers registered there earlier.
    Items are ``IP:port/degree``, or ``IP:port/degree/key`` for a peer that
    registered a public key.
    """

    VERB: ClassVar[str] = "PEER_LIST"
    peers: tuple[tuple[Address, int], ...]
    # Public keys of the listed peers that have one.
    keys: dict[Address, str] = field(default_factory=dict, compare=False)

    def __post_init__(self) -> None:
        listed = {address for address, _ in self.peers}
        if len(listed) != len(self.peers):
            raise ProtocolError("peer list names a peer twice")
        for _, degree in self.peers:
            if type(degree) is not int or not 0 <= degree < 10**MAX_DEGREE_DIGITS:
                raise ProtocolError(f"degree {degree!r} is not a whole number below 10^{MAX_DEGREE_DIGITS}")
        for address, key in self.keys.items():
            if address not in listed:
                raise ProtocolError(f"key for {address}, which is not listed")
            _key(key)

    def encode(self) -> str:
        items = (f"{a}/{d}/{self.keys[a]}" if a in self.keys else f"{a}/{d}" for a, d in self.peers)
        return " ".join([self.VERB, *items])

    @classmethod
    def decode(cls, rest: str) -> PeerList:
        peers = []
        keys = {}
        for item in rest.split(" ") if rest else ():
            fields = item.split("/")
            if not 2 <= len(fields) <= 3:
                raise ProtocolError(f"{item[:60]!r} is not IP:port/degree[/key]")
            address = Address.parse(fields[0])
            peers.append((address, _natural(fields[1], MAX_DEGREE_DIGITS, "degree")))
            if len(fields) == 3:
                keys[address] = fields[2]
        return cls(tuple(peers), keys)


@dataclass(frozen=True)
class LinkReport(Signable):
    """A peer tells a seed it opened a link, so the seed knows degrees."""

    VERB: ClassVar[str] = "LINK"
    reporter: Address
    neighbour: Address
    signature: str | None = field(default=None, compare=False)

    def __post_init__(self) -> None:
        if self.reporter == self.neighbour:
            raise ProtocolError("a peer cannot link to itself")

    def body(self) -> str:
        return f"{self.VERB} {self.reporter} {self.neighbour}"

    @classmethod
    def decode(cls, rest: str) -> LinkReport:
        body, signature = _unsign(rest, 1)
        fields = body.split(" ")
        if len(fields) != 2:
            raise ProtocolError("LINK takes two addresses")
        return cls(Address.parse(fields[0]), Address.parse(fields[1]), signature)


@dataclass(frozen=True)
class DeadNodeReport(Signable):
    """``Dead Node:<DeadNode.IP>:<DeadNode.Port>:<timestamp>:<ReportingPeer.IP>``.

    The reporter's port travels beside the report's text so a seed can tell
    apart reporters that share an IP.
    """

    VERB: ClassVar[str] = "DEAD_NODE"
    dead: Address
    timestamp: str
    reporter: Address
    signature: str | None = field(default=None, compare=False)

    def __post_init__(self) -> None:
        _timestamp(self.timestamp)

    @property
    def text(self) -> str:
        return f"Dead Node:{self.dead.ip}:{self.dead.port}:{self.timestamp}:{self.reporter.ip}"

    def body(self) -> str:
        return f"{self.VERB} {self.reporter} {self.text}"

    @classmethod
    def decode(cls, rest: str) -> DeadNodeReport:
        body, signature = _unsign(rest, 2)
        reporter, _, text = body.partition(" ")
        return dataclasses.replace(cls.from_text(text, Address.parse(reporter)), signature=signature)

    @classmethod
    def from_text(cls, text: str, reporter: Address) -> DeadNodeReport:
        label, ip, port, timestamp, reporter_ip = _split(text, 5, "Dead Node report")
        if label != "Dead Node":
            raise ProtocolError(f"expected 'Dead Node:...', got {text!r}")
        if reporter_ip != reporter.ip:
            raise ProtocolError(f"reporter IP {reporter_ip} differs from sender {reporter}")
        return cls(Address.parse(f"{ip}:{port}"), timestamp, reporter)


@dataclass(frozen=True)
class Ok:
    """A seed accepted a request; ``detail`` says what it decided."""

    VERB: ClassVar[str] = "OK"
    detail: str = ""

    def __post_init__(self) -> None:
        _free_text(self.detail)

    def encode(self) -> str:
        return f"{self.VERB} {self.detail}" if self.detail else self.VERB

    @classmethod
    def decode(cls, rest: str) -> Ok:
        return cls(rest)


@dataclass(frozen=True)
class Error:
    """The receiver refused the last line; ``reason`` says why, opening with an error code when it has one."""

    VERB: ClassVar[str] = "ERROR"
    reason: str

    def __post_init__(self) -> None:
        if not _free_text(self.reason).strip():
            raise ProtocolError("ERROR needs a reason")

    @classmethod
    def coded(cls, code: str, text: str) -> Error:
        """An error the receiver can act on: ``<code>: <text>``, ``code`` one of ERROR_CODES."""
        if code not in ERROR_CODES:
            raise ProtocolError(f"{code!r} is not an error code")
        return cls(f"{code}: {text}")

    @property
    def code(self) -> str | None:
        """The error code the reason opens with (one of ERROR_CODES), or None."""
        code, sep, _ = self.reason.partition(": ")
        return code if sep and code in ERROR_CODES else None

    def encode(self) -> str:
        return f"{self.VERB} {self.reason}"

    @classmethod
    def decode(cls, rest: str) -> Error:
        return cls(rest)


# --- Peer <-> peer (and a seed's liveness probe) ----------------------------------


@dataclass(frozen=True)
class PeerNaming:
    """A message that names one peer and nothing else: ``<VERB> <IP:port>``."""

    VERB: ClassVar[str]
    peer: Address

    def encode(self) -> str:
        return f"{self.VERB} {self.peer}"

    @classmethod
    def decode(cls, rest: str) -> PeerNaming:
        return cls(Address.parse(rest))


@dataclass(frozen=True)
class Hello(PeerNaming):
    """First line on a link, both ways: who is at each end."""

    VERB: ClassVar[str] = "HELLO"


@dataclass(frozen=True, order=True)
class GossipMessage(Signable):
    """``<timestamp>:<IP>:<Msg#>``, created by ``origin``.

    Identity is (origin, timestamp, number): the origin's port beside the
    report's text keeps messages of peers sharing one IP apart.  With
    authentication on, ``signature`` is the origin's.
    """

    VERB: ClassVar[str] = "GOSSIP"
    origin: Address
    timestamp: str
    number: int
    signature: str | None = field(default=None, compare=False)

    def __post_init__(self) -> None:
        _timestamp(self.timestamp)
        if type(self.number) is not int or self.number < 1:
            raise ProtocolError(f"message number {self.number!r} must be >= 1")

    @property
    def text(self) -> str:
        return f"{self.timestamp}:{self.origin.ip}:{self.number}"

    def body(self) -> str:
        return f"{self.VERB} {self.origin} {self.text}"

    @classmethod
    def decode(cls, rest: str) -> GossipMessage:
        body, signature = _unsign(rest, 1)
        origin, _, text = body.partition(" ")
        return dataclasses.replace(cls.from_text(text, Address.parse(origin)), signature=signature)

    @classmethod
    def from_text(cls, text: str, origin: Address) -> GossipMessage:
        timestamp, ip, number = _split(text, 3, "gossip message")
        if ip != origin.ip:
            raise ProtocolError(f"message IP {ip} differs from origin {origin}")
        return cls(origin, timestamp, _natural(number, MAX_NUMBER_DIGITS, "message number"))


@dataclass(frozen=True)
class LivenessRequest:
    """``Liveness Request:<timestamp>:<sender.IP>``."""

    VERB: ClassVar[str] = "LIVENESS_REQUEST"
    sender: Address
    timestamp: str

    def __post_init__(self) -> None:
        _timestamp(self.timestamp)

    @property
    def text(self) -> str:
        return f"Liveness Request:{self.timestamp}:{self.sender.ip}"

    def encode(self) -> str:
        return f"{self.VERB} {self.sender} {self.text}"

    @classmethod
    def decode(cls, rest: str) -> LivenessRequest:
        sender_text, _, text = rest.partition(" ")
        sender = Address.parse(sender_text)
        label, timestamp, ip = _split(text, 3, "liveness request")
        if label != "Liveness Request" or ip != sender.ip:
            raise ProtocolError(f"malformed liveness request {text!r}")
        return cls(sender, timestamp)

    def reply(self, replier: Address) -> LivenessReply:
        return LivenessReply(replier, self.timestamp, self.sender.ip)


@dataclass(frozen=True)
class LivenessReply(Signable):
    """``Liveness Reply:<sender.timestamp>:<sender.IP>:<self.IP>``.

    ``replier`` is the node answering; ``timestamp`` and ``requester_ip``
    echo the request it answers.  Signed, it proves the replier holds its key
    (a seed's check at registration).
    """

    VERB: ClassVar[str] = "LIVENESS_REPLY"
    replier: Address
    timestamp: str
    requester_ip: str
    signature: str | None = field(default=None, compare=False)

    def __post_init__(self) -> None:
        _timestamp(self.timestamp)
        _ip(self.requester_ip)

    @property
    def text(self) -> str:
        return f"Liveness Reply:{self.timestamp}:{self.requester_ip}:{self.replier.ip}"

    def body(self) -> str:
        return f"{self.VERB} {self.replier} {self.text}"

    @classmethod
    def decode(cls, rest: str) -> LivenessReply:
        body, signature = _unsign(rest, 2)
        replier_text, _, text = body.partition(" ")
        replier = Address.parse(replier_text)
        label, timestamp, requester_ip, ip = _split(text, 4, "liveness reply")
        if label != "Liveness Reply" or ip != replier.ip:
            raise ProtocolError(f"malformed liveness reply {text!r}")
        return cls(replier, timestamp, requester_ip, signature)


# --- Peer <-> seed, for authentication; seed <-> seed ------------------------------


def _addresses(text: str, what: str) -> tuple[Address, ...]:
    items = text.split(" ") if text else []
    if len(items) > MAX_KEYS_PER_REQUEST:
        raise ProtocolError(f"{what} names more than {MAX_KEYS_PER_REQUEST} peers")
    return tuple(Address.parse(item) for item in items)


@dataclass(frozen=True)
class KeysRequest:
    """A peer asks a seed for the public keys bound to some addresses."""

    VERB: ClassVar[str] = "GET_KEYS"
    peers: tuple[Address, ...]

    def __post_init__(self) -> None:
        if not 1 <= len(self.peers) <= MAX_KEYS_PER_REQUEST:
            raise ProtocolError(f"GET_KEYS asks about 1 to {MAX_KEYS_PER_REQUEST} peers")

    def encode(self) -> str:
        return " ".join([self.VERB, *map(str, self.peers)])

    @classmethod
    def decode(cls, rest: str) -> KeysRequest:
        return cls(_addresses(rest, "GET_KEYS"))


@dataclass(frozen=True)
class Keys:
    """A seed's answer to ``GET_KEYS``: ``IP:port/key`` for every key bound to each address, current last."""

    VERB: ClassVar[str] = "KEYS"
    keys: tuple[tuple[Address, str], ...]

    def __post_init__(self) -> None:
        if len(self.keys) > MAX_KEYS_PER_REQUEST * KEY_HISTORY:
            raise ProtocolError(f"KEYS holds more than {MAX_KEYS_PER_REQUEST * KEY_HISTORY} keys")
        for _, key in self.keys:
            _key(key)

    def encode(self) -> str:
        return " ".join([self.VERB, *(f"{a}/{k}" for a, k in self.keys)])

    @classmethod
    def decode(cls, rest: str) -> Keys:
        keys = []
        for item in rest.split(" ") if rest else ():
            address, sep, key = item.partition("/")
            if not sep:
                raise ProtocolError(f"{item[:60]!r} is not IP:port/key")
            keys.append((Address.parse(address), key))
        return cls(tuple(keys))


@dataclass(frozen=True)
class RemovalNotice:
    """A seed tells the other seeds it removed a dead peer; each checks for itself."""

    VERB: ClassVar[str] = "PEER_REMOVED"
    seed: Address
    dead: Address

    def encode(self) -> str:
        return f"{self.VERB} {self.seed} {self.dead}"

    @classmethod
    def decode(cls, rest: str) -> RemovalNotice:
        fields = rest.split(" ")
        if len(fields) != 2:
            raise ProtocolError("PEER_REMOVED takes two addresses")
        return cls(Address.parse(fields[0]), Address.parse(fields[1]))


@dataclass(frozen=True)
class Leave(PeerNaming):
    """A peer that stops tells a seed it registered with, over its seed connection (PROTOCOL.md §3.7).

    Unsigned: a seed takes it only on the connection the peer registered on,
    whose address a key challenge or the peer's own dial vouched for.
    """

    VERB: ClassVar[str] = "LEAVE"


# --- Keys that travel with the gossip, vouched for by the seeds (PROTOCOL.md §4.3) ---------


def binding_body(peer: Address, key: str, when: str) -> str:
    """What a seed signs to vouch that it bound ``key`` to ``peer`` (at ``when``, its clock)."""
    return f"BINDING {peer} {key} {when}"


@dataclass(frozen=True)
class VouchRequest(PeerNaming):
    """A peer asks a seed it registered with to vouch for the key bound to an address (its own)."""

    VERB: ClassVar[str] = "VOUCH"


@dataclass(frozen=True)
class Vouch:
    """One seed's signature over a binding_body, made at ``when``: ``IP:port/when/signature``."""

    seed: Address
    when: str
    signature: str

    def __post_init__(self) -> None:
        _timestamp(self.when)
        if not is_signature(self.signature):
            raise ProtocolError(f"malformed signature {self.signature[:100]!r}")

    def encode(self) -> str:
        return f"{self.seed}/{self.when}/{self.signature}"

    @classmethod
    def decode(cls, text: str) -> Vouch:
        fields = text.split("/")
        if len(fields) != 3:
            raise ProtocolError(f"{text[:60]!r} is not IP:port/when/signature")
        return cls(Address.parse(fields[0]), fields[1], fields[2])


@dataclass(frozen=True)
class Vouched:
    """A seed's answer to ``VOUCH``: its own key, and its vouch for the key it bound to ``peer``."""

    VERB: ClassVar[str] = "VOUCHED"
    seed_key: str
    peer: Address
    key: str
    vouch: Vouch

    def __post_init__(self) -> None:
        _key(self.seed_key)
        _key(self.key)

    def encode(self) -> str:
        return f"{self.VERB} {self.seed_key} {self.peer} {self.key} {self.vouch.encode()}"

    @classmethod
    def decode(cls, rest: str) -> Vouched:
        fields = rest.split(" ")
        if len(fields) != 4:
            raise ProtocolError("VOUCHED takes a seed key, an address, a key and a vouch")
        return cls(fields[0], Address.parse(fields[1]), fields[2], Vouch.decode(fields[3]))


@dataclass(frozen=True)
class KeyBinding:
    """``peer``'s key with the vouches of seeds that bound it; sent over a link before the first
    message of ``peer`` that goes over it (and a peer's own, when the link opens)."""

    VERB: ClassVar[str] = "KEY"
    peer: Address
    key: str
    vouches: tuple[Vouch, ...]

    def __post_init__(self) -> None:
        _key(self.key)
        if not 1 <= len(self.vouches) <= MAX_VOUCHES:
            raise ProtocolError(f"KEY carries 1 to {MAX_VOUCHES} vouches")
        if len({vouch.seed for vouch in self.vouches}) != len(self.vouches):
            raise ProtocolError("KEY names a seed twice")

    def encode(self) -> str:
        return " ".join([self.VERB, str(self.peer), self.key, *(vouch.encode() for vouch in self.vouches)])

    @classmethod
    def decode(cls, rest: str) -> KeyBinding:
        fields = rest.split(" ")
        if len(fields) < 3:
            raise ProtocolError("KEY takes an address, a key and at least one vouch")
        if len(fields) > 2 + MAX_VOUCHES:
            raise ProtocolError(f"KEY carries more than {MAX_VOUCHES} vouches")
        return cls(Address.parse(fields[0]), fields[1], tuple(Vouch.decode(item) for item in fields[2:]))


Message = (
    Register | PeerListRequest | PeerList | LinkReport | DeadNodeReport | Ok | Error
    | Hello | GossipMessage | LivenessRequest | LivenessReply | KeysRequest | Keys | RemovalNotice | Leave
    | VouchRequest | Vouched | KeyBinding
)

_KINDS: dict[str, type] = {
    kind.VERB: kind
    for kind in (
        Register, PeerListRequest, PeerList, LinkReport, DeadNodeReport, Ok, Error,
        Hello, GossipMessage, LivenessRequest, LivenessReply, KeysRequest, Keys, RemovalNotice, Leave,
        VouchRequest, Vouched, KeyBinding,
    )
}


# Neighbours one FULL names: a peer holds at most MAX_CONNECTIONS links (256,
# config.py); twice that leaves room, and 512 addresses of at most 21 bytes
# each stay under a sixth of MAX_LINE_BYTES.
MAX_FULL_NEIGHBOURS = 512


@dataclass(frozen=True)
class Full:
    """The answer to HELLO of a peer at its link limit: it declines, and names its neighbours.

    The dialler may link to one of them instead, which reaches the same part
    of the overlay (PROTOCOL.md, Repair); those with room come first.
    """

    VERB: ClassVar[str] = "FULL"
    peer: Address
    neighbours: tuple[Address, ...] = ()

    def __post_init__(self) -> None:
        if len(self.neighbours) > MAX_FULL_NEIGHBOURS:
            raise ProtocolError(f"FULL names more than {MAX_FULL_NEIGHBOURS} neighbours")
        if len(set(self.neighbours)) != len(self.neighbours) or self.peer in self.neighbours:
            raise ProtocolError("FULL names a neighbour twice, or itself")

    def encode(self) -> str:
        return " ".join([self.VERB, str(self.peer), *map(str, self.neighbours)])

    @classmethod
    def decode(cls, rest: str) -> Full:
        fields = rest.split(" ") if rest else []
        if not fields:
            raise ProtocolError("FULL needs the refusing peer's address")
        return cls(Address.parse(fields[0]), tuple(Address.parse(field) for field in fields[1:]))


Message = Message | Full
_KINDS[Full.VERB] = Full


def parse(line: str) -> Message:
    """Read one line (without its newline) into the message it carries."""
    verb, _, rest = line.partition(" ")
    kind = _KINDS.get(verb)
    if kind is None:
        raise ProtocolError(f"unknown verb {verb[:40]!r}")
    return kind.decode(rest)


def encode(message: Message) -> bytes:
    """One message as the bytes of one line, newline included."""
    data = (message.encode() + "\n").encode("utf-8")
    if len(data) > MAX_LINE_BYTES:
        raise ProtocolError(f"{message.VERB} line of {len(data)} bytes exceeds {MAX_LINE_BYTES}")
    return data
