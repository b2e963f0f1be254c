"""Settings of the gossip network: defaults, bounds and the seed list file.

This module owns every number a node runs with.  The report's timings are the
defaults of :class:`PeerSettings`; each can be overridden on the command line
so tests and demos run fast, by the flags of :data:`PEER_FLAGS`: one definition
that peer.py, the runners, the lab, the simulator and the grader add to their
parsers, read back, and turn into a child peer's argv.  The hard bounds that
protect a node from hostile or broken input are module constants, each named
once with the reason for its value.  It also reads ``config.txt``.  It does no
networking.
"""

from __future__ import annotations

import argparse
import math
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, replace
from pathlib import Path

from gossipnet.protocol import topology
from gossipnet.protocol.liveness import APP, LIVENESS_MODES
from gossipnet.protocol.wire import MAX_NUMBER_DIGITS, Address, ProtocolError

# --- Bounds -----------------------------------------------------------------

# (The longest line accepted, MAX_LINE_BYTES, is a wire bound: see wire.py.)

# Connections a node serves at once.  Each costs a thread; a peer needs one per
# neighbour plus short-lived seed probes, a seed one per concurrent request.
# Past this, new connections are refused with an ERROR line and closed.
MAX_CONNECTIONS = 256

# Seconds a new connection may stay silent before its first line.  Keeps a
# connection that says nothing from pinning a thread forever.
HANDSHAKE_TIMEOUT = 10.0

# Seconds a seed keeps a quiet client connection open.  A peer holds its
# connection to each seed it registered with and sends a keepalive on it at
# least every SEED_KEEPALIVE_MAX (a third of this), so only a connection
# whose peer is gone, hung or cut off stays quiet this long.
SEED_IDLE_TIMEOUT = 30.0

# Seconds a peer's connection to a seed may stay idle before the peer sends a
# keepalive on it (a LIVENESS_REQUEST, which seeds answer): half the ping
# interval (PeerSettings.seed_keepalive), but at most a third of
# SEED_IDLE_TIMEOUT, so two keepalives may be late on a loaded machine before
# the seed gives up on the connection.
SEED_KEEPALIVE_MAX = SEED_IDLE_TIMEOUT / 3

# Seconds between a peer's attempts to register again with a seed whose
# connection it lost: doubling from REGISTER_BACKOFF up to this (and to the
# keepalive interval, if shorter), with jitter.  A seed that restarted
# relearns its peers within this much of coming back; a seed that is down for
# long costs each peer one refused connect this often.
SEED_RECONNECT_CAP = 4.0

# Seconds to wait for a TCP connect or for a reply to one request.
CONNECT_TIMEOUT = 3.0

# Seconds a peer waits for a seed's answer to a link or dead-node report.  A
# seed answers a dead-node report only after its own liveness check (connect
# and reply, each up to its probe timeout), so this outlasts two of those.
SEED_REPORT_TIMEOUT = 10.0

# Seconds a stopping peer waits, for all its seeds at once, for them to take
# its LEAVE (PROTOCOL.md §3.7): a seed answers at once, so this allows for a
# loaded machine, and a seed that does not answer in time only keeps the peer
# listed until its neighbours' reports remove it, as one that crashed.
LEAVE_TIMEOUT = 2.0

# Seconds a peer waits for a seed's answer to its registration.  With
# authentication the seed first asks the peer to prove its address (a
# connect and a reply, each up to the probe timeout), so this outlasts two.
REGISTER_TIMEOUT = 10.0

# Peers a seed holds in its Peer List: a bound on its memory (a few hundred
# bytes a peer: its record, links, claims and keys; about 0.3 GB at this
# size), not on any line, since a reply carries at most PEER_SAMPLE of them.
# Past this, registrations are refused as busy.
MAX_PEERS = 500_000

# Peers a seed's reply to REGISTER or GET_PEERS names, besides its anchor
# candidates (protocol/handout.py): while the Peer List holds at most this
# many, the reply is the whole list, as in the report; past it, a random
# sample of this many, drawn by the degree model.  Bitcoin's addr replies
# stop at 1,000 addresses and gossipsub's peer exchange at 16; 64 names far
# more peers than a newcomer links to (2, or ~25 under the report's law)
# while the reply stays ~5 KB, under a tenth of MAX_LINE_BYTES even with keys.
PEER_SAMPLE = 64

# The smallest listed addresses a seed adds to every sampled reply, so that
# every repairing peer finds the same anchor (topology.py, Repair): the first
# is the anchor while it lives; the others stand in while a seed has not yet
# removed a dead one.
ANCHOR_CANDIDATES = 8

# Seed connections a seed holds at once: every peer it lists keeps one open
# (SEED_KEEPALIVE_MAX), and each costs the seed a thread.  Threads, not the
# Peer List, bound how many live peers one seed serves (docs/LIMITS.md).
SEED_HELD_CONNECTIONS = 800

# Connections a seed serves at once: the seed connections it holds
# (SEED_HELD_CONNECTIONS), and MAX_CONNECTIONS more serve one-off requests
# (a dead-node report to a seed the reporter did not register with, a
# removal notice, a newcomer).
SEED_MAX_CONNECTIONS = SEED_HELD_CONNECTIONS + MAX_CONNECTIONS

# Connections a peer serves beyond MAX_CONNECTIONS, its link limit: a peer
# with MAX_CONNECTIONS links still answers a dial (FULL, naming its
# neighbours, so the dialler links to one of them: PROTOCOL.md, Repair) and
# its seeds' liveness checks, instead of a bare "busy".  32 covers the dials
# and probes one peer sees at once.
PEER_EXTRA_CONNECTIONS = 32

# Links a seed records for one reporting peer.  A peer cannot serve more
# connections than MAX_CONNECTIONS, so more claims are lies that would only
# inflate degrees and the seed's memory.
MAX_LINKS_PER_PEER = MAX_CONNECTIONS

# Lines queued for one neighbour before it is judged unable to keep up and
# its link is dropped.  Generous: a catch-up of the whole Message List at link
# opening is ~10 lines per peer in the network.
SEND_QUEUE_LINES = 50_000

# Neighbours of an accused peer that must report it dead before a seed
# checks it (all of them if it has fewer): one liar is never enough.
CONFIRMATIONS = 2

# Silent neighbours of an accused peer a seed checks itself before it stops
# waiting for their reports (deadnode.reconsider): only when every one of
# them is accused too, as when neighbours die together.  Each check can take
# two probe timeouts; past this many, the seed waits for reports instead.
MAX_SILENT_PROBES = 4

# Times a node's background loop (gossip, liveness, repair, ...) is started
# again after an unexpected exception before the node gives up and stops with
# an error.  A fault that one odd value caused should not stop a node; one that
# fires every time would otherwise spin and fill the log.
LOOP_RESTARTS = 3

# Seconds before a failed background loop is started again (times the
# failures so far): long enough that a loop failing at once does not spin.
LOOP_RESTART_PAUSE = 0.5

# Registrations a seed checks at once.  Each holds a thread while the seed
# asks the registering address to prove it holds its key (up to two probe
# timeouts); past this, registrations are refused as busy and peers retry.
MAX_PENDING_REGISTRATIONS = 32

# Liveness requests a seed started on its state file has out at once to the
# peers it loaded (protocol/restore.py).  Each holds a thread for up to two
# probe timeouts when the peer's host does not answer; at 32, 800 such peers
# are checked in under three minutes at the default 3 s timeout (a dead peer
# on a live host refuses the connection at once).
RESTORE_CHECKS_AT_ONCE = 32

# Gossip messages from one neighbour that a peer holds while it asks the
# seeds for their origins' keys (an origin that joined later, or one whose
# signature fails against the key held, since it may have restarted with a
# new key).  Normally a handful; a neighbour past this is cut off, so a flood
# costs at most this many messages per connection.
MAX_UNVERIFIED_PER_NEIGHBOUR = 5_000

# Passes a peer makes over its seeds to find a key before it drops the
# messages waiting on it, and the pause between passes.
KEY_LOOKUP_ATTEMPTS = 3
KEY_LOOKUP_BACKOFF = 0.5

# Registration: passes over the unreached seeds, and the pause before each
# further pass (0.5, 1, 2 s).  Bounded so a peer facing dead seeds gives up
# within seconds (3.5 s of pauses, plus connect timeouts of silent hosts).
REGISTER_ATTEMPTS = 4
REGISTER_BACKOFF = 0.5

# --liveness icmp or both (node/icmp.py): the share of the ping interval one
# system ping waits for its echo reply (ping -W).  Under the interval, so that
# each neighbour's ping has ended before the next is due (one at a time per
# neighbour); the other half is room for starting the process on a loaded
# machine.  A ping still running at ICMP_KILL_SHARE of the interval is killed
# and counts as unanswered.
ICMP_WAIT_SHARE = 0.5
ICMP_KILL_SHARE = 0.9
# Seconds the peer's start-up check of the ping utility (an echo request to
# 127.0.0.1) may take: loopback answers at once, so this is only for a slow start.
ICMP_CHECK_TIMEOUT = 5.0

# Overlay repair (peerrepair.py, repairplan.py, topology.RepairSchedule).  Dials
# one repair round may make: refused connects cost little, but a hung or
# cut-off peer holds a dial for up to two CONNECT_TIMEOUTs, so a round stays
# under a minute even when every candidate is silent.  A round that falls
# short is retried.
REPAIR_DIALS = 8
# Longest pause between two repair rounds that fall short (seeds unreachable,
# or a listed peer that cannot be reached yet), in repair intervals: pauses
# double from one interval up to this.  Bounds how long a peer cut off by a
# partition takes to reconnect once the partition heals, and how often a peer
# that cannot finish its repair asks the seeds (once per this many intervals).
REPAIR_BACKOFF_CAP = 4


def majority(n: int) -> int:
    """Seeds a peer registers with, of ``n``: a majority (⌊n/2⌋+1), so any two peers share a seed."""
    return n // 2 + 1


# --- Defaults (the report's numbers) ------------------------------------------

DEFAULT_CONFIG = "config.txt"
DEFAULT_LOG = "outputfile.txt"


@dataclass(frozen=True)
class PeerSettings:
    """How a peer paces gossip and liveness.  Defaults are the report's."""

    # Seconds between two gossip messages a peer creates.
    gossip_interval: float = 5.0
    # Messages each peer creates in all.
    gossip_count: int = 10
    # Seconds between two liveness requests to each neighbour.
    ping_interval: float = 13.0
    # Consecutive unanswered liveness requests that make a neighbour dead.
    # Higher tolerates slow neighbours; detection takes ~misses x interval.
    ping_misses: int = 3
    # Overlay model: "preferential" (true power law) or "report" (the
    # report's formula, which is exponential; see topology.py).
    degree_model: str = "preferential"
    # Sign gossip, link and dead-node reports with Ed25519 and verify what
    # arrives (auth.py).  Off runs the report's plain format.
    auth: bool = True
    # Overlay repair: when a link is lost, ask the seeds for fresh lists and
    # open new links (rejoining the seeds that removed this peer).  Off keeps
    # the report's behaviour: lost links are not replaced.
    repair: bool = True
    # Seconds between repair rounds while a repair is under way (doubling up
    # to REPAIR_BACKOFF_CAP times this while rounds fall short); None means
    # the ping interval, the pace at which losses are detected anyway.
    # Shorter reconnects sooner after a partition heals and asks the seeds
    # more often while it lasts.
    repair_interval: float | None = None
    # How a neighbour's liveness is checked (liveness.py): "app" (Liveness
    # Request/Reply over the link, the default), "icmp" (the system ping
    # utility, as the course handout asks: it sees a host, not a process, so
    # it misses a crash or a hang whose host is up) or "both" (either failing
    # is a miss).
    liveness: str = APP

    @property
    def repair_period(self) -> float:
        """The repair interval in effect: ``repair_interval``, else the ping interval."""
        return self.repair_interval if self.repair_interval is not None else self.ping_interval

    @property
    def seed_keepalive(self) -> float:
        """Seconds a seed connection may stay idle before a keepalive: half the ping interval (its
        reply is due within the keepalive interval too, at most CONNECT_TIMEOUT, so a seed that went
        silent is noticed within one ping interval), but at most SEED_KEEPALIVE_MAX, under the seed's
        idle timeout."""
        return min(self.ping_interval / 2, SEED_KEEPALIVE_MAX)


@dataclass(frozen=True)
class SeedSettings:
    """How a seed checks an accused peer before removing it."""

    # Seconds the seed waits for the accused to answer its own liveness
    # request.  Longer avoids removing a slow peer; shorter removes faster.
    probe_timeout: float = 3.0
    # Register only peers that prove their address with a public key.  Off
    # also takes the report's plain REGISTER (peers run with --no-auth).
    auth: bool = True


# --- config.txt ---------------------------------------------------------------


# The largest seed list read: 1 MiB is some 50,000 IP:port lines, far more
# seeds than a network has, and a bound on what a wrong --config (a log, a
# device) costs to read.
MAX_CONFIG_BYTES = 1 << 20


class ConfigError(Exception):
    """A user-supplied setting or file is wrong; the message says where."""


def load_seeds(path: str | Path) -> list[Address]:
    """Read the seed list: one ``IP:port`` a line, blank lines and ``#`` comments.

    Raises :class:`ConfigError` naming the file and line of the first bad
    entry, or when the file is missing or names no seed.
    """
    path = Path(path)
    try:
        with path.open("rb") as file:
            data = file.read(MAX_CONFIG_BYTES + 1)  # --config /dev/zero ends here too
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read seed list: {exc.strerror}") from None
    if len(data) > MAX_CONFIG_BYTES:
        raise ConfigError(f"{path}: larger than {MAX_CONFIG_BYTES} bytes: not a seed list")
    try:
        text = data.decode("utf-8-sig")  # an editor's byte-order mark is not part of line 1
    except UnicodeDecodeError:
        raise ConfigError(f"{path}: not a UTF-8 text file") from None
    seeds: list[Address] = []
    for number, line in enumerate(text.splitlines(), start=1):
        entry = line.split("#", 1)[0].strip()
        if not entry:
            continue
        try:
            address = Address.parse(entry)
        except ProtocolError as exc:
            raise ConfigError(f"{path}:{number}: {exc}") from None
        if address in seeds:
            raise ConfigError(f"{path}:{number}: seed {entry} is listed twice")
        seeds.append(address)
    if not seeds:
        raise ConfigError(f"{path}: names no seed (expected IP:port lines)")
    return seeds


# --- Command-line helpers shared by the scripts -------------------------------


def bounded_float(check: Callable[[float], bool], requirement: str) -> Callable[[str], float]:
    """argparse type: a finite number for which ``check`` holds; ``requirement`` ends the error."""

    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
        if not math.isfinite(value) or not check(value):
            raise argparse.ArgumentTypeError(f"{text} {requirement}")
        return value

    return parse


positive_float = bounded_float(lambda value: value > 0, "must be a positive number")
non_negative_float = bounded_float(lambda value: value >= 0, "must be a number >= 0")


def whole_number(least: int, most: int | None = None) -> Callable[[str], int]:
    """argparse type: a whole number (digits only) from ``least`` (to ``most``, if given)."""
    requirement = f">= {least}" if most is None else f"from {least} to {most}"

    def parse(text: str) -> int:
        text = text.strip()
        if not text.isascii() or not text.isdigit() or int(text) < least or (most is not None and int(text) > most):
            raise argparse.ArgumentTypeError(f"{text!r} must be a whole number {requirement}")
        return int(text)

    return parse


positive_int = whole_number(1)
non_negative_int = whole_number(0)
port_number = whole_number(0, 65535)  # 0: a free port the system picks


def network_sizes(text: str) -> tuple[int, ...]:
    """argparse type: network sizes ``N,N,...``, each at least 2 peers."""
    try:
        sizes = tuple(int(part) for part in text.split(",") if part.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: expected whole numbers separated by commas") from None
    if not sizes or min(sizes) < 2:
        raise argparse.ArgumentTypeError("give at least one size, each >= 2 (a network needs 2 peers)")
    return sizes


def node_address_arguments(parser: argparse.ArgumentParser, role: str) -> None:
    """Add the positional ``IP PORT`` and the ``--config``/``--log``/``--quiet`` flags."""
    parser.add_argument("ip", metavar="IP", help=f"IPv4 address this {role} listens on")
    parser.add_argument(
        "port", metavar="PORT", type=int,
        help=f"TCP port this {role} listens on (0 picks a free port)",
    )
    parser.add_argument(
        "--config", default=DEFAULT_CONFIG, metavar="FILE",
        help=f"seed list, one IP:port a line (default: {DEFAULT_CONFIG})",
    )
    parser.add_argument(
        "--log", default=DEFAULT_LOG, metavar="FILE",
        help=f"output file the log is appended to (default: {DEFAULT_LOG})",
    )
    parser.add_argument(
        "--quiet", action="store_true", help="log only to the file, not the console",
    )


def listen_address(parser: argparse.ArgumentParser, ip: str, port: int) -> tuple[str, int]:
    """Validate the positional ``IP PORT``; exit through argparse when wrong."""
    if not 0 <= port <= 65535:
        parser.error(f"PORT {port} is out of range (0-65535)")
    try:
        Address(ip, 1)
    except ProtocolError as exc:
        parser.error(str(exc))
    return ip, port


# --- The peer's flags ---------------------------------------------------------


@dataclass(frozen=True)
class PeerFlag:
    """One peer setting on the command line, as peer.py, the runners and the lab all spell it."""

    name: str  # the PeerSettings field it sets (rng_seed: the seed of the peer's random.Random)
    flag: str
    meaning: str  # the help, less its "(default: ...)"
    default: str  # the help's words for the default
    type: Callable[[str], object] | None = None
    metavar: str | None = None
    choices: tuple[str, ...] | None = None
    switch: bool = False  # a --no-... flag: given, it turns the setting off

    @property
    def dest(self) -> str:
        return self.flag[2:].replace("-", "_")


_PEER = PeerSettings()
PEER_FLAGS: dict[str, PeerFlag] = {flag.name: flag for flag in (
    PeerFlag("gossip_interval", "--gossip-interval", "seconds between two messages a peer creates",
             f"{_PEER.gossip_interval:g}", positive_float, "S"),
    # A message's number travels with at most MAX_NUMBER_DIGITS digits (wire.py).
    PeerFlag("gossip_count", "--gossip-count", "messages each peer creates in all", str(_PEER.gossip_count),
             whole_number(1, 10 ** MAX_NUMBER_DIGITS - 1), "N"),
    PeerFlag("ping_interval", "--ping-interval", "seconds between liveness requests to each neighbour",
             f"{_PEER.ping_interval:g}", positive_float, "S"),
    PeerFlag("ping_misses", "--ping-misses", "consecutive unanswered requests that make a neighbour dead",
             str(_PEER.ping_misses), positive_int, "N"),
    PeerFlag("liveness", "--liveness", "how a peer checks that a neighbour is alive: app (Liveness Request/Reply "
             "over the link), icmp (the system ping utility, as the course handout asks; it sees the host, not the "
             "process: a crashed or hung peer whose host is up still answers) or both (a miss when either fails)",
             _PEER.liveness, choices=LIVENESS_MODES),
    PeerFlag("degree_model", "--degree-model", "how a peer chooses neighbours: preferential attachment (a true "
             "power law) or the report's formula 40*1.5^(-k/10), which is exponential", _PEER.degree_model,
             choices=topology.DEGREE_MODELS),
    PeerFlag("auth", "--no-auth", "run the report's plain format: no keys, no signatures (every peer of a network "
             "must agree)", "Ed25519 signatures on", switch=True),
    PeerFlag("rng_seed", "--rng-seed", "seed for a peer's random choices, for repeatable runs", "random", int, "N"),
    PeerFlag("repair_interval", "--repair-interval", "seconds between overlay repair rounds while a repair is under "
             "way (doubling while they fall short)", "the ping interval", positive_float, "S"),
    PeerFlag("repair", "--no-repair", "do not replace lost links, dial back a neighbour that closed a link, or "
             "register again after a removal (the report's behaviour)", "repair on", switch=True),
)}


def add_peer_arguments(parser: argparse.ArgumentParser, names: Iterable[str] = tuple(PEER_FLAGS),
                       scripted: Mapping[str, str] | None = None) -> list[argparse.Action]:
    """Add the peer's flags ``names`` (all by default) to ``parser`` (or a group), with PeerSettings' defaults.

    ``scripted`` maps a flag's name to what the script does when it is not
    given (the help says so instead of the default): that flag's default is
    None, for the script to fill in (a runner's --fast intervals, say).
    """
    scripted = scripted or {}
    actions = []
    for name in names:
        flag = PEER_FLAGS[name]
        default = None if name in scripted else getattr(_PEER, name, None)
        note = scripted.get(name, f"default: {flag.default}")
        # "meaning (aside)" + note reads "meaning (aside; note)".
        text = f"{flag.meaning[:-1]}; {note})" if flag.meaning.endswith(")") else f"{flag.meaning} ({note})"
        if flag.switch:
            actions.append(parser.add_argument(flag.flag, action="store_true", help=text))
        else:
            actions.append(parser.add_argument(flag.flag, type=flag.type, default=default, metavar=flag.metavar,
                                               choices=flag.choices, help=text))
    return actions


def peer_settings_from(args: argparse.Namespace, **given: object) -> PeerSettings:
    """The PeerSettings that the peer flags in ``args`` say, then ``given``; unset ones keep their defaults."""
    read: dict[str, object] = {}
    for flag in PEER_FLAGS.values():
        value = getattr(args, flag.dest, None)
        if hasattr(_PEER, flag.name) and value is not None:
            read[flag.name] = not value if flag.switch else value
    return replace(_PEER, **{**read, **given})


def peer_argv(settings: PeerSettings, rng_seed: int | None = None) -> list[str]:
    """The flags that start a peer (peer.py) with ``settings`` and ``rng_seed``: each value, and a switch when set."""
    argv: list[str] = []
    for flag in PEER_FLAGS.values():
        value = rng_seed if flag.name == "rng_seed" else getattr(settings, flag.name)
        if flag.switch:
            argv += [flag.flag] * (not value)
        elif value is not None:
            argv += [flag.flag, _number_text(value) if isinstance(value, float) else str(value)]
    return argv


def _number_text(value: float) -> str:
    """``value`` as short as it reads back exactly: 5.0 -> '5', 0.1 -> '0.1'."""
    short = f"{value:g}"
    return short if float(short) == value else repr(value)
