"""The lab's fault scenarios: which faults strike, when, and whom.

A :class:`Scenario` is plain data that every backend of the lab runs the same
way.  Faults are written ``KIND:AT[:ARG...]``, AT in seconds after every peer
of the run is up (has made its first message):

=================================  =================================================================
``crash:AT:COUNT``                 SIGKILL COUNT peers (COUNT may be a share: ``30%``)
``hang:AT:DURATION[:COUNT]``       SIGSTOP COUNT peers (default 1); SIGCONT them DURATION s later
``cut:AT:DURATION[:COUNT]``        set the links of COUNT peers (default 1) down, each cut off alone;
                                   up again DURATION s later (namespace backend only)
``seeds-down:AT:COUNT[:DURATION]`` SIGKILL COUNT running seeds; with DURATION, start them again on
                                   their own addresses DURATION s later
``join:AT[:COUNT]``                start COUNT new peers (default 1)
``restart:AT``                     start every dead peer (crashed, or failed to join) again on its own
                                   address
``seeds-restart:AT[:COUNT]``       SIGKILL COUNT running seeds (default: a majority), chosen so that
                                   the most peers lose every seed they registered with, and start them
                                   again at once on their own addresses, with empty Peer Lists
``churn:AT:DURATION[:EVERY]``      every EVERY s (default 2) for DURATION s, SIGKILL one peer (a
                                   neighbour of the last one, when one can be detected, but never the
                                   last live neighbour of one not reported yet) and start one
=================================  =================================================================

Whom a fault strikes is decided when it strikes, from the overlay at that
moment (:func:`choose_crash`, :func:`choose_group`, :func:`choose_churn`,
:func:`choose_seeds`, :func:`choose_seeds_to_restart`): plain functions of
the adjacency or the registrations, with the randomness injected.  This
module starts nothing.
"""

from __future__ import annotations

import itertools
import math
import random
from collections.abc import Sequence
from dataclasses import dataclass, replace

from gossipnet.config import CONFIRMATIONS, PeerSettings, majority
from gossipnet.protocol.wire import Address

KINDS = ("crash", "hang", "cut", "seeds-down", "join", "restart", "seeds-restart", "churn")

# Seconds between a churn's steps unless EVERY says otherwise (the fault: one every 2 s).
CHURN_EVERY = 2.0

# Sets of seeds tried before choosing at random: enough for any lab's handful of seeds.
SEED_CHOICES = 5_000

# The arguments each kind takes after AT, and how many of them are required.
_ARGUMENTS = {"crash": (("COUNT",), 1), "hang": (("DURATION", "COUNT"), 1), "cut": (("DURATION", "COUNT"), 1),
              "seeds-down": (("COUNT", "DURATION"), 1), "join": (("COUNT",), 0), "restart": ((), 0),
              "seeds-restart": (("COUNT",), 0), "churn": (("DURATION", "EVERY"), 1)}


class FaultError(ValueError):
    """A fault spec or scenario that cannot run.  The message is one line."""


@dataclass(frozen=True)
class Fault:
    kind: str
    at: float  # seconds after every peer is up
    count: int = 1  # seeds-restart: 0 for a majority of the seeds
    share: float | None = None  # COUNT given as a share of the peers (crash only)
    duration: float | None = None  # hang, cut, churn: required; seeds-down: optional (None: they stay down)
    every: float | None = None  # churn: seconds between its steps (None: CHURN_EVERY)

    def __str__(self) -> str:
        count = f"{100 * self.share:g}%" if self.share is not None else str(self.count)
        parts = {"crash": [count], "hang": [self.duration, count], "cut": [self.duration, count],
                 "seeds-down": [count] + ([self.duration] if self.duration is not None else []),
                 "join": [count], "restart": [], "seeds-restart": [count] if self.count else [],
                 "churn": [self.duration] + ([self.every] if self.every is not None else [])}[self.kind]
        return ":".join([self.kind, f"{self.at:g}", *(f"{part:g}" if isinstance(part, float) else str(part)
                                                      for part in parts)])


def parse_fault(text: str) -> Fault:
    """``crash:5:30%`` -> Fault; FaultError says what is wrong with a bad spec."""
    kind, *fields = text.strip().split(":")
    if kind not in KINDS:
        raise FaultError(f"fault {text!r}: unknown kind {kind!r} (one of {', '.join(KINDS)})")
    names, required = _ARGUMENTS[kind]
    usage = "".join([kind, ":AT", *(f":{name}" if i < required else f"[:{name}]" for i, name in enumerate(names))])
    if not fields or not required <= len(fields) - 1 <= len(names):
        raise FaultError(f"fault {text!r}: expected {usage}")
    at = _seconds(fields[0], "AT", text, allow_zero=True)
    values = dict(zip(names, fields[1:], strict=False))
    fault = Fault(kind, at, count=0 if kind == "seeds-restart" else 1)
    if "DURATION" in values:
        fault = replace(fault, duration=_seconds(values["DURATION"], "DURATION", text))
    if "EVERY" in values:
        fault = replace(fault, every=_seconds(values["EVERY"], "EVERY", text))
    if "COUNT" in values:
        raw = values["COUNT"]
        if raw.endswith("%") and kind == "crash":
            share = _seconds(raw[:-1], "COUNT", text) / 100
            if share >= 1:
                raise FaultError(f"fault {text!r}: a crash must leave some peers alive (share below 100%)")
            return replace(fault, count=0, share=share)
        if not raw.isdigit() or int(raw) < 1:
            raise FaultError(f"fault {text!r}: COUNT must be a whole number >= 1")
        return replace(fault, count=int(raw))
    return fault


def _seconds(text: str, name: str, spec: str, allow_zero: bool = False) -> float:
    try:
        value = float(text)
    except ValueError:
        raise FaultError(f"fault {spec!r}: {name} {text!r} is not a number of seconds") from None
    if not (value >= 0 if allow_zero else value > 0) or math.isinf(value):
        raise FaultError(f"fault {spec!r}: {name} must be {'>= 0' if allow_zero else '> 0'}")
    return value


@dataclass(frozen=True)
class Action:
    """One step of a scenario's timeline: ``verb`` at ``at``, for the fault at ``index``."""

    at: float
    verb: str  # crash, stop, cont, down, up, seeds-kill, seeds-start, join, restart, seeds-restart, churn
    index: int  # the fault's place in Scenario.faults; an undo acts on the nodes its do chose

    @property
    def fault_kind(self) -> str:
        return {"stop": "hang", "cont": "hang", "down": "cut", "up": "cut",
                "seeds-kill": "seeds-down", "seeds-start": "seeds-down"}.get(self.verb, self.verb)


@dataclass(frozen=True)
class Scenario:
    """A run of the lab: how many seeds and peers, their timings, and the faults."""

    seeds: int
    peers: int
    faults: tuple[Fault, ...] = ()
    gossip_interval: float = 5.0
    gossip_count: int = 10
    ping_interval: float = 13.0
    ping_misses: int = 3
    probe_timeout: float = 3.0
    rng_seed: int | None = None
    liveness: str = PeerSettings.liveness  # the peers' --liveness

    def count(self, fault: Fault) -> int:
        if fault.kind == "seeds-restart" and not fault.count:
            return majority(self.seeds)
        return max(1, round(fault.share * self.peers)) if fault.share is not None else fault.count

    def timeline(self) -> list[Action]:
        """Every action, in time order (a fault's undo after its do; a churn's steps, one by one)."""
        undo = {"hang": ("stop", "cont"), "cut": ("down", "up"), "seeds-down": ("seeds-kill", "seeds-start")}
        actions = []
        for index, fault in enumerate(self.faults):
            if fault.kind == "churn":
                every = fault.every or CHURN_EVERY
                steps = max(1, math.floor(fault.duration / every + 1e-9))
                actions += [Action(fault.at + step * every, "churn", index) for step in range(steps)]
            elif fault.kind in undo:
                first, second = undo[fault.kind]
                actions.append(Action(fault.at, first, index))
                if fault.duration is not None:
                    actions.append(Action(fault.at + fault.duration, second, index))
            else:
                actions.append(Action(fault.at, fault.kind, index))
        return sorted(actions, key=lambda action: action.at)

    @property
    def last_action(self) -> float:
        return max((action.at for action in self.timeline()), default=0.0)

    @property
    def detection_time(self) -> float:
        """Seconds by which a death is reported and removed: misses+1 ping intervals, two probes."""
        return (self.ping_misses + 1) * self.ping_interval + 2 * self.probe_timeout

    def lasting(self) -> Scenario:
        """This scenario with enough messages per peer that gossip goes on until the last fault
        has played out (the last action, then a detection time, then three messages more)."""
        count = math.ceil((self.last_action + self.detection_time) / self.gossip_interval) + 3
        return replace(self, gossip_count=max(self.gossip_count, count))

    def check(self, can_cut: bool) -> None:
        """Raise FaultError when the scenario cannot run as asked."""
        if self.seeds < 1 or self.peers < 2:
            raise FaultError("a scenario needs at least 1 seed and 2 peers")
        down = 0
        for fault in self.faults:
            if fault.kind == "cut" and not can_cut:
                raise FaultError(f"fault {fault}: a cable cut needs the namespace backend (not --loopback)")
            if fault.kind in ("crash", "hang", "cut") and self.count(fault) >= self.peers:
                raise FaultError(f"fault {fault}: must leave at least one of the {self.peers} peers untouched")
            if fault.kind == "seeds-down":
                down += fault.count
            if fault.kind == "seeds-restart" and self.count(fault) > self.seeds:
                raise FaultError(f"fault {fault}: restarts {self.count(fault)} seeds, but the run has {self.seeds}")
            if fault.kind == "churn" and self.peers < 3:
                raise FaultError(f"fault {fault}: a churn needs at least 3 peers (one dies while two report it)")
        if down > self.seeds:
            raise FaultError(f"the faults take down {down} seeds, but the run has {self.seeds}")


# --- Whom a fault strikes ------------------------------------------------------------------


def reportable(neighbours: set[Address], survivors: set[Address]) -> bool:
    """A seed removes a peer once CONFIRMATIONS of its neighbours (all, if fewer) report it."""
    return len(neighbours & survivors) >= max(1, min(CONFIRMATIONS, len(neighbours)))


def choose_crash(adjacency: dict[Address, set[Address]], candidates: Sequence[Address], count: int,
                 rng: random.Random) -> list[Address]:
    """The ``count`` best-linked peers whose deaths stay detectable.

    Killing the hubs is the hardest test of the overlay (the survivors are the
    likeliest to fall apart and need repair), but a victim left without
    enough live neighbours to report it could never be removed: such a pick
    is skipped.  Ties are broken at random; when the rule leaves too few,
    the rest are drawn at random.
    """
    order = sorted(candidates, key=lambda peer: (-len(adjacency.get(peer, ())), rng.random()))
    victims: list[Address] = []
    for peer in order:
        if len(victims) == count:
            break
        trial = victims + [peer]
        survivors = set(candidates) - set(trial)
        if all(reportable(adjacency.get(victim, set()), survivors) for victim in trial):
            victims = trial
    rest = [peer for peer in candidates if peer not in victims]
    return victims + rng.sample(rest, count - len(victims))


def choose_group(adjacency: dict[Address, set[Address]], candidates: Sequence[Address], count: int,
                 rng: random.Random) -> list[Address]:
    """``count`` peers drawn at random, preferring ones whose silence the others can detect:
    linked (a peer with no neighbour has nobody to notice it) and reportable by the rest."""
    pool = list(candidates)
    rng.shuffle(pool)
    pool.sort(key=lambda peer: not reportable(adjacency.get(peer, set()), set(candidates) - {peer})
              or not adjacency.get(peer))
    return pool[:count]


def choose_churn(adjacency: dict[Address, set[Address]], candidates: Sequence[Address], last: frozenset[Address],
                 unreported: Sequence[frozenset[Address]], rng: random.Random) -> Address | None:
    """The next peer a churn kills: a neighbour of the last one (``last``: its neighbours when it
    died), so that neighbours die together and reporters die after (or before) their reports,
    among the peers whose death the others can detect (linked, and reportable by the rest); any
    such peer if none of them is one.  Never the last live neighbour of a peer killed earlier
    and not reported yet (``unreported``: the neighbours each had when it died): a death nobody
    is left to see cannot be reported.  None if no peer may be killed."""
    if len(candidates) < 3:
        return None
    live = set(candidates)
    spare = {peer for neighbours in unreported if len(reporters := neighbours & live) == 1 for peer in reporters}
    pool = [peer for peer in candidates if peer not in spare
            and adjacency.get(peer) and reportable(adjacency[peer], live - {peer})]
    nearby = [peer for peer in pool if peer in last]
    return rng.choice(nearby or pool) if pool else None


def choose_seeds_to_restart(registered: dict[Address, set[Address]], running: Sequence[Address], count: int,
                            rng: random.Random) -> list[Address]:
    """``count`` running seeds to restart: the set that leaves the most peers with none of the
    seeds they registered with (the hardest case: only the seed connections bring them back),
    ties broken at random."""
    choices = list(itertools.islice(itertools.combinations(running, count), SEED_CHOICES))
    rng.shuffle(choices)
    return list(max(choices, key=lambda choice: sum(bool(seeds) and seeds <= set(choice)
                                                    for seeds in registered.values())))


def choose_seeds(registered: dict[Address, set[Address]], running: Sequence[Address], count: int,
                 rng: random.Random) -> list[Address]:
    """``count`` running seeds to take down, sparing, when some choice can, every peer at least one
    running seed it registered with.

    A seed's state (its Peer List and the keys it bound) dies with it: a
    peer whose every seed is down is unknown to the network until they come
    back and it registers there again.  That is seeds-restart's case
    (choose_seeds_to_restart seeks it out); seeds-down is about joining, so
    it avoids it when it can.
    """
    choices = list(itertools.islice(itertools.combinations(running, count), SEED_CHOICES))
    rng.shuffle(choices)
    for choice in choices:
        if all(seeds - set(choice) for seeds in registered.values() if seeds):
            return list(choice)
    return rng.sample(list(running), count)
