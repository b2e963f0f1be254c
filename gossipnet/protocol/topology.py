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

:class:`degreepool.DegreePool` holds peers numbered 0..n-1 with their degrees, so that a
simulator growing an overlay of 10^5 peers runs this same join rule in
O(log n) per pick, with the same picks a dict would give.

:func:`anchor_candidates`, :func:`repair_short` and :class:`RepairSchedule`
decide how a peer repairs the overlay after deaths (see the Repair section);
repairplan.py puts them in order within one round.

:func:`fit_power_law` summarises a degree sequence (maximum-likelihood
exponent and a likelihood comparison against an exponential).
"""

from __future__ import annotations

import bisect
import itertools
import math
import operator
import random
from collections.abc import Hashable, Iterable, Iterator, Mapping, Sequence
from collections.abc import Set as AbstractSet
from dataclasses import dataclass
from typing import TypeVar

from gossipnet.protocol.degreepool import POOLS, DegreePool

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


def preferential_choice(degrees: Mapping[Node, int], count: int, rng: random.Random) -> list[Node]:
    """``count`` distinct nodes, each drawn with weight degree + 1.

    From a :class:`DegreePool` the draws go through its tree, with the same
    calls on ``rng`` and so the same result as from ``dict(degrees)``.
    """
    if count >= len(degrees):
        pool = sorted(degrees)
        rng.shuffle(pool)
        return pool
    if isinstance(degrees, POOLS):
        total, locate = degrees.total_weight(), degrees.find_weight
    else:
        ordered = sorted(degrees)
        # Running totals of degree + 1: of the degrees, plus the count so far (all in C).
        cumulative = list(map(operator.add, itertools.accumulate(map(degrees.__getitem__, ordered)),
                              range(1, len(ordered) + 1)))
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
    pool = degrees.members() if isinstance(degrees, POOLS) else sorted(degrees)
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
        get = union.get
        for peer_list in seed_lists:
            for node, degree in peer_list.items():
                if degree > get(node, -1) and node not in excluded:
                    union[node] = degree
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
# that loses a link therefore repairs with fresh lists from a majority of the
# seeds, in rounds that repairplan.RepairRound plans (for the peer and the
# simulator alike):
#
# 1. Anchor.  It links to the smallest live address the seeds list (trying
#    the listed peers smaller than itself in order, skipping those that
#    refuse), or, when that peer is at its link limit and answers FULL, to
#    one of the neighbours it names, which lies in its part.  Before the loss
#    the overlay was connected, so every part it falls into holds a peer that
#    lost a link; all of them reach the same anchor's part, so the parts join
#    again, and no peer passes the link limit on the anchor's account.  Any
#    majority of the seeds lists the anchor (it registered with a majority,
#    and two majorities intersect; a sampled reply names the smallest
#    addresses, handout.py), so every repairing peer finds the same one.
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


def anchor_candidates(listed: Iterable[Node], own: Node) -> Iterator[Node]:
    """The listed peers a repairing peer tries as its anchor, in order: those smaller than it, smallest first.

    The first that is linked, or accepts a link, is the anchor; a peer with
    none smaller is its own anchor.  Order is the nodes' own (for addresses:
    IP as a string, then port), the same at every peer.  Lazy: from a
    :class:`DegreePool` each candidate is found by rank in O(log n), so a
    walk that stops at the first few never sorts the pool.
    """
    if isinstance(listed, DegreePool):
        return itertools.takewhile(lambda node: node < own, map(listed.kth, range(len(listed))))
    return iter(sorted(node for node in set(listed) if node < own))


def known_full(listed: Mapping[Node, int], limit: int) -> set[Node]:
    """The listed peers at the link ``limit`` (they would refuse a link), while some listed peer has room.

    Joins and repair leave them out of their picks; when every listed peer
    is full there is nothing better, and none is left out.
    """
    full = {node for node, degree in listed.items() if degree >= limit}
    return full if len(full) < len(listed) else set()


def repair_short(seed_lists: Sequence[Mapping[Node, int]] | Sequence[Iterable[Node]], target: int,
                 linked: Iterable[Node], refused: Iterable[Node] = ()) -> bool:
    """Whether ``linked`` falls short of what the lists allow.

    Short: fewer than ``target`` links while some listed peer is not linked,
    or a non-empty list with no linked member.  Peers that ``refused`` a link
    (alive, but declining) count as absent from the lists; so do any others
    passed there that a list holds but must not count (a simulator's pools
    hold the peer itself).  Lists that are :class:`DegreePool` objects are
    only asked about these peers and the linked ones: no pass over a pool.
    """
    linked, refused = set(linked), set(refused)
    lists = [peer_list if isinstance(peer_list, (Mapping, AbstractSet)) else set(peer_list)
             for peer_list in seed_lists]

    def holds(peer_list, nodes: set) -> int:
        return sum(1 for node in nodes if node in peer_list)

    absent = linked | refused
    if len(linked) < target and any(len(peer_list) > holds(peer_list, absent) for peer_list in lists):
        return True
    counted = linked - refused
    return any(len(peer_list) > holds(peer_list, refused) and not holds(peer_list, counted) for peer_list in lists)


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
