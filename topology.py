"""Whom a joining peer connects to: the overlay's degree distribution.

Pure functions over plain values, with an injected ``random.Random``; the
peer, the tests and a simulator run the same code.

Two models:

``preferential`` (default)
    Preferential attachment (Barabasi-Albert): the newcomer opens
    :data:`LINKS_PER_JOIN` links, each to a known peer chosen with probability
    proportional to its degree + 1.  Growing a network this way yields a true
    power law, P(k) ~ k^-3.

``report``
    The report's formula P(k) ~ 40 * 1.5^(-k/10).  Despite the report's
    wording this is an *exponential* (geometric) law, not a power law: the
    newcomer draws its number of links k >= 1 from it (mean ~25) and picks
    that many known peers uniformly.

Connectivity, whatever the model: a seed's reply to a registration lists
exactly the peers registered with it *earlier*.  If every newcomer links to
at least one peer from each non-empty list it received, the peers of any one
seed form a connected subgraph; any two peers share a seed (two majorities
of the seeds intersect), so the whole overlay is connected, even when peers
join concurrently.  :func:`next_neighbours` enforces that cover.

:class:`DegreePool` holds peers numbered 0..n-1 with their degrees, so that a
simulator growing an overlay of 10^5 peers runs this same join rule in
O(log n) per pick, with the same picks a dict would give.

:func:`anchor_candidates`, :func:`repair_short` and :class:`RepairSchedule`
decide how a peer repairs the overlay after deaths (see the Repair section).

:func:`fit_power_law` summarises a degree sequence (maximum-likelihood
exponent and a likelihood comparison against an exponential).
"""

from __future__ import annotations

import bisect
import contextlib
import itertools
import math
import random
from collections.abc import Hashable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import TypeVar

Node = TypeVar("Node", bound=Hashable)

PREFERENTIAL = "preferential"
REPORT = "report"
DEGREE_MODELS = (PREFERENTIAL, REPORT)

# Links a newcomer opens under preferential attachment (the model's m).  With
# m = 1 the overlay is a tree that any single death splits; m = 2 gives every
# peer a second path while keeping most degrees small.
LINKS_PER_JOIN = 2

# Ratio of the report's law: 1.5^(-k/10) = RATIO^k.
REPORT_RATIO = 1.5 ** -0.1


def report_degree_probability(k: int) -> float:
    """P(k) of the report's law, normalised over k >= 1."""
    if k < 1:
        return 0.0
    return (1 - REPORT_RATIO) * REPORT_RATIO ** (k - 1)


def sample_report_degree(rng: random.Random) -> int:
    """Draw k >= 1 with P(k) proportional to 40 * 1.5^(-k/10)."""
    # Inverse transform of the geometric law; 1 - random() lies in (0, 1].
    return 1 + int(math.log(1.0 - rng.random()) / math.log(REPORT_RATIO))


def join_target(model: str, rng: random.Random) -> int:
    """How many links a newcomer aims to open under ``model``."""
    if model == PREFERENTIAL:
        return LINKS_PER_JOIN
    if model == REPORT:
        return sample_report_degree(rng)
    raise ValueError(f"unknown degree model {model!r}; choose from {DEGREE_MODELS}")


class DegreePool(Mapping[int, int]):
    """Peers numbered ``0 .. capacity - 1`` with their degrees: a dict (peer -> degree) for large overlays.

    :func:`preferential_choice` and :func:`uniform_choice` draw from a pool
    in O(log capacity) per pick where a dict costs a sort and a sum over all
    peers, and pick exactly what they pick from ``dict(pool)`` for the same
    ``rng`` state: that is what lets a simulator grow 10^5 peers by the rule
    real peers run.  Two Fenwick (binary indexed) trees over the ids hold
    each member's weight (degree + 1) and its count (1); a non-member holds
    0 in both, so cumulative weights over the ids are those over the sorted
    members.  Members iterate in ascending order, the order ``sorted`` gives
    the dict path; changing the pool while iterating over it is not
    supported.

    ``add`` of a member and ``remove`` of a non-member raise (ValueError,
    KeyError), as a peer joins and leaves once: a simulator's slip shows.
    """

    def __init__(self, capacity: int) -> None:
        if capacity < 0:
            raise ValueError("capacity must be >= 0")
        self.capacity = capacity
        self._present = bytearray(capacity)
        self._degrees = [0] * capacity
        # Fenwick trees, 1-based: node i sits at position i + 1.
        self._weights = [0] * (capacity + 1)
        self._counts = [0] * (capacity + 1)
        self._top = 1 << (capacity.bit_length() - 1) if capacity else 0  # largest power of two <= capacity
        self._count = 0
        self._total = 0

    def __repr__(self) -> str:
        return f"DegreePool({self.capacity}, {dict(self)!r})"

    def __getitem__(self, node: int) -> int:
        if node in self:
            return self._degrees[node]
        raise KeyError(node)

    def __contains__(self, node: object) -> bool:
        return isinstance(node, int) and 0 <= node < self.capacity and self._present[node] == 1

    def __iter__(self) -> Iterator[int]:
        return itertools.compress(range(self.capacity), self._present)

    def __len__(self) -> int:
        return self._count

    def add(self, node: int, degree: int = 0) -> None:
        """Make ``node`` a member with ``degree``."""
        if not (isinstance(node, int) and 0 <= node < self.capacity):
            raise IndexError(f"node {node!r} is not in range({self.capacity})")
        if self._present[node]:
            raise ValueError(f"node {node} is a member already")
        if degree < 0:
            raise ValueError("degree must be >= 0")
        self._present[node] = 1
        self._degrees[node] = degree
        self._shift(node, degree + 1, 1)

    def remove(self, node: int) -> int:
        """Take ``node`` out of the pool; returns its degree."""
        degree = self[node]
        self._present[node] = 0
        self._shift(node, -(degree + 1), -1)
        return degree

    def set_degree(self, node: int, degree: int) -> None:
        if degree < 0:
            raise ValueError("degree must be >= 0")
        self._shift(node, degree - self[node], 0)
        self._degrees[node] = degree

    def add_degree(self, node: int, delta: int = 1) -> None:
        self.set_degree(node, self[node] + delta)

    def _shift(self, node: int, weight: int, count: int) -> None:
        weights, counts, end = self._weights, self._counts, self.capacity
        position = node + 1
        if count:
            while position <= end:
                weights[position] += weight
                counts[position] += count
                position += position & -position
        else:  # a degree change: the count tree is untouched, so skip it
            while position <= end:
                weights[position] += weight
                position += position & -position
        self._total += weight
        self._count += count

    def total_weight(self) -> int:
        """Sum of degree + 1 over the members."""
        return self._total

    def find_weight(self, r: float) -> int:
        """The first member, in ascending order, whose running total of weight exceeds ``r``.

        That is ``pool[bisect_right(cumulative, r)]`` on the sorted members,
        on a boundary too: Python compares an int with a float exactly, and
        the running totals here are ints.  IndexError when ``r`` is not below
        :meth:`total_weight`, as the list would raise.
        """
        if not r < self._total:
            raise IndexError("r is not below the total weight")
        # Walk down to the last position whose running total is <= r: the
        # member at the next position is the one sought.  A negative r would
        # stop at position 0, which need not hold a member, hence the clamp.
        r = max(r, 0)
        weights, end = self._weights, self.capacity
        position = below = 0
        step = self._top
        while step:
            following = position + step
            if following <= end and below + weights[following] <= r:
                position, below = following, below + weights[following]
            step >>= 1
        return position  # the member at position + 1, whose id is position

    def kth(self, k: int) -> int:
        """The member with ``k`` members below it."""
        if not 0 <= k < self._count:
            raise IndexError(f"no member of rank {k} among {self._count}")
        counts, end = self._counts, self.capacity
        position = 0
        step = self._top
        while step:
            following = position + step
            if following <= end and counts[following] <= k:
                position, k = following, k - counts[following]
            step >>= 1
        return position

    def members(self) -> _Members:
        """The members in ascending order as a Sequence, without a copy: what ``rng.sample`` takes."""
        return _Members(self)

    @contextlib.contextmanager
    def excluding(self, nodes: Iterable[object]) -> Iterator[DegreePool]:
        """The pool without those of ``nodes`` that are members, for the ``with`` block.

        They are put back with the degrees they had, even if the block
        raises; the block must not add them itself.  Costs O(log capacity)
        per node, where a filtered copy costs O(members).
        """
        removed = {node: self[node] for node in nodes if node in self}
        for node in removed:
            self.remove(node)
        try:
            yield self
        finally:
            for node, degree in removed.items():
                self.add(node, degree)


class _Members(Sequence[int]):
    """A :class:`DegreePool`'s members in ascending order, indexed by rank in O(log capacity)."""

    def __init__(self, pool: DegreePool) -> None:
        self._pool = pool

    def __len__(self) -> int:
        return len(self._pool)

    def __getitem__(self, index: int) -> int:  # no slices: rng.sample needs none
        return self._pool.kth(index + len(self._pool) if index < 0 else index)

    def __iter__(self) -> Iterator[int]:
        return iter(self._pool)

    def __contains__(self, node: object) -> bool:
        return node in self._pool


def preferential_choice(degrees: Mapping[Node, int], count: int, rng: random.Random) -> list[Node]:
    """``count`` distinct nodes, each drawn with weight degree + 1.

    From a :class:`DegreePool` the draws go through its tree, with the same
    calls on ``rng`` and so the same result as from ``dict(degrees)``.
    """
    if count >= len(degrees):
        pool = sorted(degrees)
        rng.shuffle(pool)
        return pool
    if isinstance(degrees, DegreePool):
        total, locate = degrees.total_weight(), degrees.find_weight
    else:
        ordered = sorted(degrees)
        cumulative = list(itertools.accumulate(degrees[node] + 1 for node in ordered))
        total = cumulative[-1]

        def locate(r: float) -> Node:
            return ordered[bisect.bisect_right(cumulative, r)]

    chosen: list[Node] = []
    while len(chosen) < count:
        # Rejection keeps one pass over the pool: count is small beside it.
        node = locate(rng.random() * total)
        if node not in chosen:
            chosen.append(node)
    return chosen


def uniform_choice(degrees: Mapping[Node, int], count: int, rng: random.Random) -> list[Node]:
    """``count`` distinct nodes, uniformly (from a :class:`DegreePool`, as from ``dict(degrees)``)."""
    pool = degrees.members() if isinstance(degrees, DegreePool) else sorted(degrees)
    return rng.sample(pool, min(count, len(pool)))


def next_neighbours(
    seed_lists: Sequence[Mapping[Node, int]],
    model: str,
    target: int,
    rng: random.Random,
    linked: Iterable[Node] = (),
    unreachable: Iterable[Node] = (),
    union: Mapping[Node, int] | None = None,
) -> list[Node]:
    """The peers to try linking to next.

    ``seed_lists`` are the lists (peer -> degree) received from each seed at
    registration.  Returns new picks so that ``linked`` grows toward
    ``target`` links and touches every non-empty seed list, skipping
    ``unreachable`` peers.  An empty result means nothing more can be done.
    Call again after failed attempts, with them added to ``unreachable``.

    ``union`` is the union of the lists (peer -> degree), when the caller
    already holds it, e.g. a simulator's running pool; by default it is
    built here, each peer with the largest degree a list gives it.  When
    the union and the lists are :class:`DegreePool` objects a call costs
    O(picks * log n), not O(n), and copies nothing.  A list that is a pool
    is covered from itself, by its own degrees: the same picks as the dict
    path when each list's degrees are the union's, as a simulator keeps them.
    """
    linked, unreachable = set(linked), set(unreachable)
    excluded = linked | unreachable
    if union is None:
        union = {}
        for peer_list in seed_lists:
            for node, degree in peer_list.items():
                if node not in excluded:
                    union[node] = max(degree, union.get(node, 0))
    elif not isinstance(union, DegreePool):
        union = {node: degree for node, degree in union.items() if node not in excluded}
    pick = preferential_choice if model == PREFERENTIAL else uniform_choice
    wanted = max(0, target - len(linked))
    if isinstance(union, DegreePool):
        with union.excluding(excluded):
            picks = pick(union, wanted, rng)
    else:
        picks = pick(union, wanted, rng)
    covered = linked | set(picks)
    for peer_list in seed_lists:
        # Asked from the covered side: covered.isdisjoint(pool) would walk the whole pool.
        if peer_list and not any(node in peer_list for node in covered):
            if isinstance(peer_list, DegreePool):
                with peer_list.excluding(excluded):
                    cover = preferential_choice(peer_list, 1, rng)
            else:
                options = {node: union[node] for node in peer_list if node in union and node not in excluded}
                cover = preferential_choice(options, 1, rng)
            for node in cover:
                picks.append(node)
                covered.add(node)
    return picks


# --- Repair -------------------------------------------------------------------
#
# Deaths break the argument above: the peers of a seed stay connected only
# while each keeps a link to a live peer registered there before it.  A peer
# that loses a link therefore repairs (repairing.Repairing._repair) with fresh lists
# from a majority of the seeds:
#
# 1. Anchor.  It links to the smallest live address the seeds list (trying
#    the listed peers smaller than itself in order, skipping those that
#    refuse).  Before the loss the overlay was connected, so every part it
#    falls into holds a peer that lost a link; all of them link to the same
#    anchor, so the parts join again.  Any majority of the seeds lists the
#    anchor (it registered with a majority, and two majorities intersect), so
#    every repairing peer finds the same one.
# 2. Cover and fill, by next_neighbours: a link into each list it holds (the
#    lists its registrations returned, less the peers that left since, which
#    restores the join argument's link to an earlier peer; and the seeds'
#    current lists), and links up to its join target by the degree model.
#
# A round falls short while a majority of the seeds cannot be reached or a
# listed peer that would count cannot be reached yet (dead but not yet
# removed, hung, or across a partition): a further round follows, on the
# RepairSchedule.  That retry is what reconnects the sides of a partition
# once it heals.


def anchor_candidates(listed: Iterable[Node], own: Node) -> list[Node]:
    """The listed peers a repairing peer tries as its anchor, in order: those smaller than it, smallest first.

    The first that is linked, or accepts a link, is the anchor; a peer with
    none smaller is its own anchor.  Order is the nodes' own (for addresses:
    IP as a string, then port), the same at every peer.
    """
    return sorted(node for node in set(listed) if node < own)


def repair_short(seed_lists: Sequence[Mapping[Node, int]] | Sequence[Iterable[Node]], target: int,
                 linked: Iterable[Node], refused: Iterable[Node] = ()) -> bool:
    """Whether ``linked`` falls short of what the lists allow.

    Short: fewer than ``target`` links while some listed peer is not linked,
    or a non-empty list with no linked member.  Peers that ``refused`` a link
    (alive, but declining) count as absent from the lists.
    """
    linked, refused = set(linked), set(refused)
    lists = [set(peer_list) - refused for peer_list in seed_lists]
    listed = set().union(*lists) if lists else set()
    if len(linked) < target and listed - linked:
        return True
    return any(peer_list and linked.isdisjoint(peer_list) for peer_list in lists)


class RepairSchedule:
    """When a peer's next repair round is due.  No clock of its own: callers pass ``now``.

    * A lost link asks for a round at once, but rounds are at least one
      ``interval`` apart, so a burst of losses costs one round, not many.
    * A round that falls short is retried after 1, 2, 4, ... intervals, up
      to ``cap`` intervals: a peer whose seeds are unreachable asks them
      less and less often, never in a tight loop, and never gives up.
    * A round that opened links or registered again is followed by one more
      after an interval, to confirm (the seeds may have removed the peer just
      after it asked them); a round with nothing to do ends the repair.
    """

    def __init__(self, interval: float, cap: int) -> None:
        if interval <= 0 or cap < 1:
            raise ValueError("interval must be > 0 and cap >= 1")
        self.interval = interval
        self.cap = cap
        self.due: float | None = None  # when the next round is due; None: no repair under way
        self.pause: float | None = None  # the pause the last round set before the next; None: none due
        self.shortfalls = 0  # rounds in a row that fell short
        self._last: float | None = None  # when the last round ended

    def lost(self, now: float) -> None:
        """A link was lost: a round is wanted as soon as the pace allows."""
        earliest = now if self._last is None else max(now, self._last + self.interval)
        self.due = earliest if self.due is None else min(self.due, earliest)

    def finished(self, now: float, complete: bool, changed: bool) -> None:
        """A round ended: ``complete`` if nothing fell short, ``changed`` if it opened links or registered."""
        self._last = now
        if not complete:
            self.shortfalls += 1
            self.pause = self.interval * min(2 ** (self.shortfalls - 1), self.cap)
        else:
            self.shortfalls = 0
            self.pause = self.interval if changed else None
        self.due = None if self.pause is None else now + self.pause

    def wait(self, now: float) -> float | None:
        """Seconds until the next round is due (0 if it is); None when no round is due."""
        return None if self.due is None else max(0.0, self.due - now)


def grow(count: int, model: str, rng: random.Random) -> list[tuple[int, int]]:
    """Edges of an overlay of ``count`` peers joining one at a time.

    Each newcomer sees every earlier peer with its current degree (as through
    a single seed) and links by :func:`next_neighbours`, exactly as a peer
    does; a :class:`DegreePool` makes that O(log count) per link, with the
    edges a dict would give.
    """
    degrees = DegreePool(count)
    edges: list[tuple[int, int]] = []
    for newcomer in range(count):
        picks = next_neighbours([degrees], model, join_target(model, rng), rng, union=degrees)
        for node in picks:
            edges.append((node, newcomer))
            degrees.add_degree(node)
        degrees.add(newcomer, len(picks))
    return edges


@dataclass(frozen=True)
class PowerLawFit:
    """Maximum-likelihood power-law fit of a degree sequence."""

    alpha: float  # exponent of P(k) ~ k^-alpha for k >= k_min
    k_min: int  # smallest degree the power law is fitted to
    tail: int  # degrees >= k_min
    # Normalised log-likelihood ratio, power law vs exponential: > 0 favours
    # the power law; p_value is its significance (small = trustworthy sign).
    loglikelihood_ratio: float
    p_value: float

    @property
    def favours_power_law(self) -> bool:
        return self.loglikelihood_ratio > 0 and self.p_value < 0.1

    @property
    def verdict(self) -> str:
        if self.p_value >= 0.1:
            return f"inconclusive (R={self.loglikelihood_ratio:+.2f}, p={self.p_value:.2f})"
        winner = "power law" if self.loglikelihood_ratio > 0 else "exponential"
        return f"{winner} favoured (R={self.loglikelihood_ratio:+.2f}, p={self.p_value:.3g})"


def fit_power_law(degrees: Iterable[int]) -> PowerLawFit:
    """Fit P(k) ~ k^-alpha to the degrees >= 1 (Clauset-Shalizi-Newman).

    Uses the ``powerlaw`` package: k_min by the Kolmogorov-Smirnov criterion,
    alpha by discrete maximum likelihood, and Vuong's test against an
    exponential.  Imported here so nodes never load it.
    """
    import warnings

    import powerlaw

    data = [k for k in degrees if k >= 1]
    if len(set(data)) < 2:
        raise ValueError("need at least two distinct positive degrees to fit")
    with warnings.catch_warnings(), _quiet_numpy():
        warnings.simplefilter("ignore")
        fit = powerlaw.Fit(data, discrete=True, verbose=False)
        ratio, p_value = fit.distribution_compare("power_law", "exponential", normalized_ratio=True)
    return PowerLawFit(
        alpha=float(fit.power_law.alpha),
        k_min=int(fit.xmin),
        tail=sum(1 for k in data if k >= fit.xmin),
        loglikelihood_ratio=float(ratio),
        p_value=float(p_value),
    )


def _quiet_numpy():
    import numpy

    return numpy.errstate(all="ignore")
