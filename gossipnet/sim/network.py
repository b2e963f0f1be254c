"""Membership of a simulated network: seeds, peer lists and links, joins replayed through the seeds.

No clock and no events here: sim/engine.py calls in at the moment each thing
happens.  What is decided here is decided by the project's own code:

- a seed keeps a :class:`seed.PeerTable` (registrations, link claims, the
  reports counted) and decides about dead nodes by :mod:`deadnode`'s rule
  (confirmations, its own liveness check, reconsidering, removal notices),
  as ``seed.Seed`` does; its probe looks up who is alive, and its
  announcements and reconsidering are put on the simulation's calendar;
- a joining peer registers with a random majority of the seeds and picks its
  neighbours with :func:`topology.next_neighbours`, as ``peer.Peer`` does.
- a peer that lost a link runs repair rounds planned by
  :class:`repairplan.RepairRound`, as ``peer.Peer`` does.

A seed's reply (to a registration, and to a repairing peer's request) is
what :func:`handout.hand_out` names, as a real seed's: the whole list, or a
sample and the anchor candidates.  What the simulator adds is speed: each
seed's list is a :class:`degreepool.DegreePool` kept in step with its table,
drawn from in O(log N).  Every listed degree is the peer's current number of
links, which is what a seed learns from the link reports of both ends (a
real seed that misses one end's report can list a degree one lower).  A peer
at its link limit refuses a dial as a real one does: FULL, naming its
neighbours (:func:`repairplan.referrals`).

A real seed refuses peers past ``MAX_PEERS`` and a real peer refuses links past
``MAX_CONNECTIONS``: the first protects one seed process and is lifted here,
the second shapes the overlay (a hub stops taking links) and is kept unless
``max_links`` says otherwise.
"""

from __future__ import annotations

import random
import sys
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from gossipnet.config import MAX_CONNECTIONS, majority
from gossipnet.protocol import deadnode, topology
from gossipnet.protocol.degreepool import DegreePool
from gossipnet.protocol.handout import drawable, hand_out
from gossipnet.protocol.liveness import LivenessTracker
from gossipnet.protocol.messagelist import MessageList
from gossipnet.protocol.peertable import PeerRecord, PeerTable
from gossipnet.protocol.repairplan import LINKED, REFUSED, UNREACHABLE, RepairRound, referrals

# Latencies drawn from numpy at a time: one call per block, not per link.
LATENCY_BLOCK = 65_536


class SimulationError(Exception):
    """A simulation cannot be set up as asked (bad latency spec, no seeds, ...)."""


class Latency:
    """One-way link latency, drawn once per link: ``KIND:ARGS`` in milliseconds.

    ``const:M``, ``uniform:LOW:HIGH``, ``normal:MEAN:SD`` (cut at 0),
    ``lognormal:MEDIAN:SIGMA`` (SIGMA of the underlying normal) or
    ``exp:MEAN``.
    """

    ARGS = {"const": 1, "uniform": 2, "normal": 2, "lognormal": 2, "exp": 1}

    def __init__(self, spec: str, rng: np.random.Generator) -> None:
        kind, _, rest = spec.partition(":")
        if kind not in self.ARGS:
            raise SimulationError(f"unknown latency kind {kind!r} in {spec!r}; choose from {', '.join(self.ARGS)}")
        try:
            args = [float(part) / 1000.0 for part in rest.split(":")] if rest else []
        except ValueError:
            raise SimulationError(f"latency {spec!r}: arguments must be numbers (milliseconds)") from None
        if len(args) != self.ARGS[kind]:
            raise SimulationError(f"latency {spec!r}: {kind} takes {self.ARGS[kind]} argument(s)")
        if any(arg < 0 for arg in args) or (kind == "uniform" and args[0] > args[1]):
            raise SimulationError(f"latency {spec!r}: arguments must be >= 0 (and LOW <= HIGH)")
        if kind == "lognormal":
            args[1] *= 1000.0  # sigma is not a time
        self.spec, self.kind, self.args = spec, kind, args
        self._rng = rng
        self._block: list[float] = []

    def _draw_block(self) -> list[float]:
        rng, args, size = self._rng, self.args, LATENCY_BLOCK
        if self.kind == "const":
            values = np.full(size, args[0])
        elif self.kind == "uniform":
            values = rng.uniform(args[0], args[1], size)
        elif self.kind == "normal":
            values = np.maximum(rng.normal(args[0], args[1], size), 0.0)
        elif self.kind == "lognormal":
            values = args[0] * np.exp(rng.normal(0.0, args[1], size))
        else:
            values = rng.exponential(args[0], size)
        return values.tolist()[::-1]

    def draw(self) -> float:
        """Seconds."""
        if not self._block:
            self._block = self._draw_block()
        return self._block.pop()


@dataclass(frozen=True)
class Report:
    """A dead-node report as a seed reads it (wire.DeadNodeReport without addresses or signature)."""

    dead: int
    reporter: int


@dataclass(frozen=True)
class Notice:
    """A removal notice from one seed to another (wire.RemovalNotice without addresses)."""

    seed: str
    dead: int


class _Table(PeerTable):
    # The seed hands out from its own pool instead (true degrees, peers as ints): no listing here.
    def _reply(self, exclude=None):
        return None

    def _listed(self, peer):
        pass

    def _unlisted(self, peer):
        pass

    def _degree_changed(self, peer):
        pass


class SimSeed:
    """A seed of the simulation: a PeerTable and deadnode's rule, carried out as seed.Seed does.

    Its probe is a look at who is alive; its announcements and reconsidering
    go on the simulation's calendar; its decisions are counted, not logged.
    Its peers register without keys, so vetting is whether the reporter is listed.
    """

    def __init__(self, name: str, bit: int, network: Network) -> None:
        self.address = name
        self.bit = bit  # this seed's bit in a mask of seeds
        self.network = network
        self.table = _Table(max_peers=sys.maxsize, max_links=sys.maxsize)
        self.pool = DegreePool(network.capacity)

    def hand_out(self, requester: int) -> dict[int, int]:
        """This seed's reply to ``requester`` (handout.hand_out)."""
        return hand_out(self.pool, self.network.rng, full=self.network.full, requester=requester)

    def on_dead_node(self, report: Report) -> None:
        """seed.Seed.decide."""
        record = self.table.get(report.dead)
        decision = (deadnode.screen(report.reporter, report.dead, listed=record is not None)
                    or deadnode.vet(listed=self.table.get(report.reporter) is not None))
        if decision is None:
            counted = self.table.count(record, report)
            decision = counted if isinstance(counted, deadnode.Reject) else deadnode.carry_out(
                deadnode.on_report(record.address, counted), record, self)
        self.network.decisions[decision.decision] += 1

    def reconsider(self, accused: int) -> None:
        """seed.Seed.reconsider."""
        if (found := deadnode.look_again(self.table, accused, self)) is not None:
            self.network.decisions[found[1].decision] += 1

    def on_removal_notice(self, notice: Notice) -> None:
        """seed.Seed.on_removal_notice (its decisions are not counted)."""
        record = self.table.get(notice.dead)
        check = deadnode.on_notice(notice.seed, notice.dead, notice.seed in self.network.seed_names,
                                   listed=record is not None)
        deadnode.carry_out(check, record, self)

    # --- What the seed does for the rule (deadnode.Seat) ---------------------------------

    def probe(self, peer: int) -> bool:
        return self.network.is_alive(peer)

    probe_silent = probe

    def neighbours_of(self, record: PeerRecord) -> deadnode.Neighbours | None:
        return self.table.neighbours(record)

    def void_reports(self, record: PeerRecord) -> None:
        self.table.cleared(record)

    def reconsider_later(self, accused: list[int]) -> None:
        self.network.schedule_reconsider(self.address, accused)

    def remove(self, record: PeerRecord, reason: str, announce: bool) -> bool:
        """seed.Seed.remove (the reason is not logged here)."""
        removed = self.table.remove(record)
        if removed is None:
            return False
        _, accused = removed
        self.network.on_removed(self.address, record.address)
        if announce:
            self.network.schedule_notices(self.address, record.address)
        if accused:  # they lost a neighbour that could have reported them
            self.reconsider_later(accused)
        return True


class Network:
    """Who is registered where, who links to whom, who is alive.  Peers are ints 0..capacity-1."""

    def __init__(self, capacity: int, seeds: int, model: str, latency: Latency, rng: random.Random,
                 ping_misses: int, probe_timeout: float, max_links: int = MAX_CONNECTIONS) -> None:
        if seeds < 1:
            raise SimulationError("a network needs at least one seed")
        topology.join_target(model, random.Random(0))  # an unknown model fails here, not mid-run
        self.capacity, self.model, self.latency, self.rng = capacity, model, latency, rng
        self.ping_misses, self.max_links = ping_misses, max_links
        self.full: set[int] = set()  # peers at their link limit
        self.seed_names = [f"seed{index}" for index in range(seeds)]
        self.seeds = {name: SimSeed(name, 1 << index, self)
                      for index, name in enumerate(self.seed_names)}
        self.registered: list[list[SimSeed]] = [[] for _ in range(capacity)]
        self.neighbours: list[dict[int, float]] = [{} for _ in range(capacity)]  # peer -> latency (s)
        self.trackers: list[dict[int, LivenessTracker]] = [{} for _ in range(capacity)]
        self.message_lists: list[MessageList[int, int]] = []
        self.alive = bytearray(capacity)
        self.targets = bytearray(capacity)  # each peer's join target (topology.join_target), capped at 255
        self.peers = 0  # ids handed out so far
        self.decisions = {"removed": 0, "rejected": 0, "accepted": 0, "ignored": 0}
        # Set by the simulation: called as (seed, peer) when a seed removes a peer, and to schedule seed work.
        self.removed: Callable[[str, int], None] = lambda seed, peer: None
        self.later: Callable[[float, Callable[..., object], tuple], None] = lambda delay, fn, args: fn(*args)
        self.probe_timeout = probe_timeout

    # --- Peers ---------------------------------------------------------------------

    def new_peer(self) -> int:
        if self.peers >= self.capacity:
            raise SimulationError(f"more than {self.capacity} peers; raise the capacity")
        peer = self.peers
        self.peers += 1
        self.alive[peer] = 1
        self.message_lists.append(MessageList())
        return peer

    def is_alive(self, peer: int) -> bool:
        return bool(self.alive[peer])

    def live_peers(self) -> list[int]:
        return [peer for peer in range(self.peers) if self.alive[peer]]

    def join(self, peer: int) -> list[int]:
        """Register ``peer`` with a random majority of the seeds and link it as peer.Peer.connect does.

        Returns the neighbours it linked to.
        """
        need = majority(len(self.seed_names))
        chosen = [self.seeds[name] for name in self.rng.sample(self.seed_names, len(self.seed_names))[:need]]
        lists = [drawable(seed.hand_out(peer)) for seed in chosen]  # as they stood before this registration
        target = topology.join_target(self.model, self.rng)
        self.targets[peer] = min(target, 255)
        linked: list[int] = []
        unreachable = topology.known_full({node: degree for peers in lists for node, degree in peers.items()},
                                          self.max_links)
        while True:
            picks = topology.next_neighbours(lists, self.model, target, self.rng, linked=linked,
                                             unreachable=unreachable)
            if not picks:
                break
            for neighbour in picks:
                if self.accepts(neighbour):
                    linked.append(neighbour)
                else:
                    unreachable.add(neighbour)  # refused: dead, or at its connection limit
        for seed in chosen:
            seed.table.register(peer, None, holder=peer)  # it holds its seed connection, as peer.Peer does
            seed.pool.add(peer, 0)
            self.registered[peer].append(seed)
        for neighbour in linked:
            self.link(peer, neighbour)
        return linked

    def accepts(self, peer: int) -> bool:
        """Would a dial to ``peer`` succeed: alive, and below its connection limit."""
        return bool(self.alive[peer]) and len(self.neighbours[peer]) < self.max_links

    def repair(self, peer: int) -> tuple[bool, list[int]]:
        """One repair round, planned by repairplan.RepairRound as a real peer's: (complete, links opened).

        Lists: the replies (handout.hand_out) of the seeds ``peer`` registered
        with (a live peer is never removed here but by a false report, so it
        need not register again).  A dial links when the peer dialled
        accepts; one alive but at its link limit refuses with FULL and its
        neighbours, a dead one (not yet removed) is unreachable.
        Not modelled: the cover of the lists the peer joined with, less those gone.
        """
        lists = [seed.hand_out(peer) for seed in self.registered[peer]]
        plan = RepairRound(peer, lists, self.neighbours[peer], self.targets[peer], self.model, self.rng,
                           max_links=self.max_links)
        while dials := plan.next_dials():
            for candidate in dials:
                plan.dialled(candidate, *self._dial(peer, candidate))
        return plan.complete, plan.opened

    def _dial(self, peer: int, candidate: int) -> tuple[str, list[int]]:
        """How ``peer``'s dial to ``candidate`` ends, with the neighbours a full one names; LINKED opens a link."""
        if self.accepts(candidate):
            self.link(peer, candidate)
            return LINKED, []
        if not self.alive[candidate]:
            return UNREACHABLE, []
        neighbours = self.neighbours[candidate]
        return REFUSED, referrals({node: len(self.neighbours[node]) for node in neighbours}, self.max_links,
                                  self.rng)

    def link(self, a: int, b: int, latency: float | None = None) -> float:
        """Open the link a-b (both ends report it to their seeds); its latency."""
        latency = self.latency.draw() if latency is None else latency
        for one, other in ((a, b), (b, a)):
            self.neighbours[one][other] = latency
            self.trackers[one][other] = LivenessTracker(self.ping_misses)
            for seed in self.registered[one]:
                if seed.table.get(one) is not None:
                    seed.table.record_link(one, other)
            self._degree_changed(one)
        return latency

    def unlink(self, peer: int, neighbour: int) -> None:
        """``peer`` drops its link to ``neighbour`` (it reported it dead)."""
        self.neighbours[peer].pop(neighbour, None)
        self.trackers[peer].pop(neighbour, None)
        self._degree_changed(peer)

    def _degree_changed(self, peer: int) -> None:
        degree = len(self.neighbours[peer])
        if degree >= self.max_links:
            self.full.add(peer)
        else:
            self.full.discard(peer)
        for seed in self.registered[peer]:
            if peer in seed.pool:
                seed.pool.set_degree(peer, degree)

    def crash(self, peer: int) -> None:
        """``peer`` dies: its seeds see its seed connection end (seed.Seed.connection_ended)."""
        self.alive[peer] = 0
        for seed in self.registered[peer]:
            if seed.table.connection_ended(peer, peer):
                seed.reconsider_later([peer])

    # --- Seeds ---------------------------------------------------------------------

    def report_dead(self, dead: int, reporter: int, delay: float) -> None:
        """``reporter`` sends its report to every seed, arriving after ``delay``."""
        report = Report(dead, reporter)
        for seed in self.seeds.values():
            self.later(delay, seed.on_dead_node, (report,))

    def on_removed(self, seed_name: str, peer: int) -> None:
        seed = self.seeds[seed_name]
        if peer in seed.pool:
            seed.pool.remove(peer)
        self.removed(seed_name, peer)

    def schedule_notices(self, sender: str, dead: int) -> None:
        notice = Notice(sender, dead)
        for name, seed in self.seeds.items():
            if name != sender:
                # Sent once the sender's own liveness check of the dead peer has timed out.
                self.later(self.probe_timeout + self.latency.draw(), seed.on_removal_notice, (notice,))

    def schedule_reconsider(self, seed_name: str, accused: list[int]) -> None:
        seed = self.seeds[seed_name]
        for peer in sorted(accused):
            # Its probes of silent neighbours take a probe timeout when they are dead.
            self.later(self.probe_timeout, seed.reconsider, (peer,))
