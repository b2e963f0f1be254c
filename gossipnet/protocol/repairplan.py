"""One repair round as a plan: whom to dial next, and whether the round fell short.

Pure: no socket, thread or clock.  The caller performs each dial and feeds
its outcome back (LINKED, REFUSED or UNREACHABLE); the real peer
(peerrepair.Repairing._repair) dials over TCP, the simulator
(sim.network.Network.repair) asks its model of the network, and the unit tests
answer by hand, all through the same :class:`RepairRound`.

The rules a round follows are topology.py's (Repair section):
``anchor_candidates``, ``next_neighbours`` and ``repair_short``.  What this
module adds is their order within a round, what each dial's outcome means to
the rest of it, and the dial budget (config.REPAIR_DIALS).

Not here: fetching the seeds' lists and registering again (peerrepair.py), the
pace of rounds (topology.RepairSchedule), the dial itself (peerlinks.py).
"""

from __future__ import annotations

import random
from collections.abc import Hashable, Iterable, Mapping, Sequence
from typing import Generic, TypeVar

from gossipnet.config import MAX_CONNECTIONS, REPAIR_DIALS
from gossipnet.protocol import handout, topology
from gossipnet.protocol.degreepool import POOLS

Node = TypeVar("Node", bound=Hashable)

# How a dial ended (peerlinks.Linking._link_to, or a simulator's model).  REFUSED:
# something answered and declined (an ERROR, FULL, or a close without a word): alive,
# but not to be linked to now.  UNREACHABLE: no connection, or no answer in
# time: dead, hung or cut off.
LINKED, REFUSED, UNREACHABLE = "linked", "refused", "unreachable"
DIAL_OUTCOMES = (LINKED, REFUSED, UNREACHABLE)


class RepairRound(Generic[Node]):
    """One repair round of peer ``own``: the anchor, then cover and fill, within a budget of dials.

    Drive it like this; ``dial`` is the caller's, and the round never waits::

        plan = RepairRound(own, lists, links, target, model, rng)
        while dials := plan.next_dials():
            for peer in dials:
                plan.dialled(peer, dial(peer))  # a FULL refusal: dialled(peer, REFUSED, its neighbours)
        plan.complete, plan.anchor, plan.opened

    The anchor is the smallest listed peer below ``own`` that answers
    (topology.py, Repair).  One at its link limit refuses with FULL and
    names its neighbours: the round then links to one of them instead, which
    joins the anchor's part as surely, and spreads the load off the anchor.
    It is settled at once when a link to one of them stands already.  Listed
    peers at ``max_links`` (full by the lists' degrees) are left out of the
    cover and fill picks while a listed peer has room.

    ``lists`` are the seeds' current lists (peer -> listed degree); ``own``
    may be in them (a simulator's are), but is never dialled nor counted.
    ``links`` are the peer's working links; a caller whose links change under
    it (other peers dial in) passes them again to each :meth:`next_dials`,
    else the round keeps them itself from the outcomes.  ``cover`` are the
    peer's join lists (the members of each seed's reply to its latest
    registration), taken with the degrees ``union`` gives and without the
    peers it no longer lists.  ``unreachable`` are peers known unreachable
    before the round starts (links whose connection closed, which the
    liveness rule still decides).  ``too_few_seeds``: fewer than a majority
    of the seeds answered, so the round falls short whatever it does.

    ``union`` is the union of the lists (peer -> degree), by default built
    here with each peer's largest listed degree.  A simulator passes its
    running :class:`degreepool.DegreePool` of every listed peer instead, with
    ``unlisted``: the peers the pool holds that none of ``lists`` does (some
    seeds removed them, and these no longer list them).  Those are never
    dialled and are no cause to fall short.  With pools, a round costs
    O(log N) per anchor candidate and per pick, never a pass over the lists.
    """

    def __init__(
        self,
        own: Node,
        lists: Sequence[Mapping[Node, int]],
        links: Iterable[Node],
        target: int,
        model: str,
        rng: random.Random,
        *,
        cover: Iterable[Iterable[Node]] = (),
        unreachable: Iterable[Node] = (),
        too_few_seeds: bool = False,
        union: Mapping[Node, int] | None = None,
        unlisted: Iterable[Node] = (),
        dials: int = REPAIR_DIALS,
        max_links: int = MAX_CONNECTIONS,
    ) -> None:
        self.own, self.target, self.model, self.rng = own, target, model, rng
        self.links: set[Node] = set(links)
        self.unreachable: set[Node] = set(unreachable)
        self.refused: set[Node] = set()
        self.unlisted: set[Node] = set(unlisted)
        self.dials = dials  # left in this round's budget
        self.opened: list[Node] = []  # peers this round linked to, in order
        self.anchor: Node = own  # until a smaller listed peer links
        self.short = too_few_seeds  # something fell short so far; final once the round is done
        self.done = False
        self._union = union  # as the caller gave it: next_neighbours builds its own from dicts
        if union is None:
            union = {}
            for peer_list in lists:
                for peer, degree in peer_list.items():
                    union[peer] = max(degree, union.get(peer, 0))
        cover_lists = [{peer: union[peer] for peer in members if peer in union and peer not in self.unlisted}
                       for members in cover]
        # Covered: the join lists, and the current lists that are whole.  A sample's members
        # change from one reply to the next: a link into each would be a new link each round.
        self.seed_lists: list[Mapping[Node, int]] = [*cover_lists,
                                                     *(peers for peers in lists
                                                       if isinstance(peers, POOLS) or not handout.is_sample(peers))]
        self._pick_union: Mapping[Node, int] = self._union if self._union is not None else {}
        if self._union is None:  # fill draws by the model: from the lists less the anchors of samples
            for peer_list in lists:
                for peer, degree in handout.drawable(peer_list).items():
                    if peer not in self.unlisted and degree >= self._pick_union.get(peer, 0):
                        self._pick_union[peer] = degree
        self._candidates = topology.anchor_candidates(union, own)  # lazily: a walk that stops early
        # Listed at the link limit: no pick of cover or fill (a pool is not scanned).
        self.full: set[Node] = set() if isinstance(union, POOLS) else topology.known_full(union, max_links)
        self._joining: Node | None = None  # a full anchor candidate, reached through its neighbours
        self._part: set[Node] = set()  # ... it and the neighbours it named: one part of the overlay
        self._referred: list[Node] = []  # ... those still to dial
        self._anchoring = True
        self._pending: set[Node] = set()  # dials handed out, outcomes not yet fed back
        self._trying: Node | None = None  # the anchor candidate being dialled

    @property
    def complete(self) -> bool:
        """The round is over and nothing fell short."""
        return self.done and not self.short

    def next_dials(self, links: Iterable[Node] | None = None) -> list[Node]:
        """The peers to dial next, in order; empty when the round is over (see :attr:`complete`).

        ``links``: the working links now, when they may have changed besides
        this round's dials.  Every dial handed out must be fed back through
        :meth:`dialled` before this is called again.
        """
        if self._pending:
            raise RuntimeError(f"dials without an outcome yet: {sorted(map(repr, self._pending))}")
        if self.done:
            return []
        if links is not None:
            self.links = set(links)
        if self._anchoring:
            candidate = self._next_anchor_candidate()
            if candidate is not None:
                return self._hand_out([candidate])
        if self.dials:
            skipped = {self.own} | self.unlisted | self.unreachable | self.refused
            picks = topology.next_neighbours(self.seed_lists, self.model, self.target, self.rng,
                                             linked=self.links, unreachable=skipped | self.full, union=self._pick_union)
            if not picks and self.full:  # only full peers are left: try them after all
                picks = topology.next_neighbours(self.seed_lists, self.model, self.target, self.rng,
                                                 linked=self.links, unreachable=skipped, union=self._pick_union)
            if picks:
                return self._hand_out(picks[:self.dials])
        self.done = True
        # The unlisted are in no list: only ``own`` may be in one and not count.
        self.short = self.short or topology.repair_short(self.seed_lists, self.target, self.links,
                                                         self.refused | {self.own})
        if not self.short and len(self.links) < self.target and not isinstance(self._pick_union, POOLS):
            # Samples are not covered, but a peer one of them names that might still link counts.
            absent = self.links | self.refused | self.unlisted | {self.own}
            self.short = any(peer not in absent for peer in self._pick_union)
        return []

    def dialled(self, peer: Node, outcome: str, neighbours: Iterable[Node] = ()) -> None:
        """The outcome of a dial :meth:`next_dials` handed out: LINKED, REFUSED or UNREACHABLE.

        ``neighbours``: with REFUSED, those a full peer named (wire.Full), in its order of preference.
        """
        if outcome not in DIAL_OUTCOMES:
            raise ValueError(f"unknown dial outcome {outcome!r}; one of {DIAL_OUTCOMES}")
        if peer not in self._pending:
            raise ValueError(f"{peer!r} was not handed out to dial")
        self._pending.discard(peer)
        self.dials -= 1
        if outcome == LINKED:
            self.links.add(peer)
            self.opened.append(peer)
        else:
            (self.unreachable if outcome == UNREACHABLE else self.refused).add(peer)
        if peer == self._trying:
            self._trying = None
            neighbours = [node for node in neighbours if node != self.own] if outcome == REFUSED else []
            if outcome == LINKED:
                self.anchor = self._joining if self._joining is not None else peer
                self._anchoring = False
            elif neighbours:
                # Full, and alive: its part is reached through a neighbour it named, as
                # surely as through itself.  Those known full are tried last.
                if self._joining is None:
                    self._joining, self._part = peer, {peer}
                fresh = [node for node in neighbours if node not in self._part]
                self._part.update(fresh)
                full = self.full
                self._referred += [node for node in fresh if node not in full]
                self._referred += [node for node in fresh if node in full]
            elif outcome == UNREACHABLE and self._joining is None:
                # A smaller peer that cannot be reached yet may be alive (hung, or across a
                # partition): the anchor is not settled.  One that refused is skipped by all.
                self.short = True

    def _next_anchor_candidate(self) -> Node | None:
        """The next listed peer below ``own`` to dial as the anchor; None once the anchor is settled or left."""
        if self._joining is not None:
            referral = self._next_referral()
            if referral is not None or not self._anchoring:
                return referral
        for candidate in self._candidates:
            if candidate in self.unlisted:
                continue
            if candidate in self.links:
                self.anchor, self._anchoring = candidate, False
                return None
            if candidate in self.unreachable:
                self.short = True  # as one that does not answer now
                continue
            if candidate in self.refused:
                continue
            if not self.dials:
                self.short = True  # the anchor is not settled
                break
            self._trying = candidate
            return candidate
        self._anchoring = False  # none smaller links: ``own`` is its own anchor
        return None

    def _next_referral(self) -> Node | None:
        """The next neighbour of the full candidate to dial; None once settled, or none is left (short)."""
        if self._part & self.links:
            self.anchor, self._anchoring = self._joining, False
            return None
        while self._referred:
            referral = self._referred.pop(0)
            if referral in self.unreachable or referral in self.refused or referral in self.unlisted:
                continue
            if not self.dials:
                break
            self._trying = referral
            return referral
        # Its part was not reached: the anchor is not settled.  The walk goes on.
        self.short = True
        self._joining = None
        return None

    def _hand_out(self, peers: list[Node]) -> list[Node]:
        self._pending.update(peers)
        return peers


def referrals(degrees: Mapping[Node, int | None], limit: int, rng: random.Random) -> list[Node]:
    """A full peer's neighbours in the order it names them when it refuses a link (wire.Full).

    ``degrees``: each neighbour's degree as the peer knows it (None: unknown).
    Those with room (below ``limit``) come first, then the unknown, then the
    full, shuffled within each, so that diallers spread over them.  All are
    named: the dialler checks them against its own links (RepairRound).
    """
    # A random key each, sorted: a shuffle within each group for one C-level sort (a full
    # peer of the simulator names 256 neighbours at every refusal).
    draw = rng.random
    keyed = [(1 if degree is None else 0 if degree < limit else 2, draw(), node) for node, degree in degrees.items()]
    keyed.sort()  # the node decides only between equal draws (addresses and ints compare)
    return [node for _, _, node in keyed]
