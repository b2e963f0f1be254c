"""What a seed hands out in reply to REGISTER and GET_PEERS: its whole Peer List, or a sample of it.

Pure: no socket, thread or clock; randomness comes from an injected
``random.Random``.  The real seed (through protocol/peertable.py) and the
simulator's seeds (sim/network.py) call the same :func:`hand_out`.

While the Peer List (PL) holds at most ``PEER_SAMPLE`` peers the reply is the
whole list, as the report has it.  Past that the reply is

- a uniform sample of ``PEER_SAMPLE`` peers, with their degrees.  The
  newcomer then draws from it by its own degree model, as it would from the
  whole list (topology.next_neighbours), so the model still holds: under
  preferential attachment a peer is in the sample with probability K/N and
  drawn from it with weight degree + 1, so linked with probability
  proportional to degree + 1, as from the whole list.  (A sample drawn by
  degree would square the weights: hubs would grow faster than the model.)
  Peers at the link limit (``full``) are left out of the draw while any
  listed peer has room, since they would refuse the link;
- plus the ``ANCHOR_CANDIDATES`` smallest listed addresses (not drawn
  again, so a sampled reply always names more than ``PEER_SAMPLE`` peers and
  a peer tells a sample from a whole list: :func:`is_sample`), full or not: the
  anchors of repair (topology.py, Repair), which every repairing peer must
  find the same.  A full anchor refuses with the list of its neighbours
  (wire.Full), so the dialler still reaches the anchor's part through one of them.

Why a sample keeps the overlay connected: the reply to a registration holds
only peers registered there earlier, a sample included, so a newcomer that
links into every reply still links to an earlier peer of each of its seeds,
and the join argument of topology.py holds as it did with whole lists.

The listed peers come as a mapping (peer -> degree).  A :class:`degreepool.DegreePool`
(the simulator's) or :class:`degreepool.AddressPool` (the real seed's) is drawn
from in O(log N) a pick and iterated in ascending order; a plain dict costs a
pass and a sort (tests, small lists).
"""

from __future__ import annotations

import itertools
import random
from array import array
from collections.abc import Hashable, Iterable, Mapping, Sequence
from collections.abc import Set as AbstractSet
from typing import TypeVar

from gossipnet.config import ANCHOR_CANDIDATES, PEER_SAMPLE
from gossipnet.protocol.degreepool import POOLS

Node = TypeVar("Node", bound=Hashable)


def hand_out(listed: Mapping[Node, int], rng: random.Random, *, full: Iterable[Node] = (),
             requester: Node | None = None, sample: int = PEER_SAMPLE,
             anchors: int = ANCHOR_CANDIDATES) -> dict[Node, int]:
    """The peers (peer -> degree) a seed names in its reply: all of ``listed``, or a sample and the anchors.

    ``full``: listed peers at the link limit (others are ignored).
    ``requester``: the registering peer, never named in its own reply.
    """
    others = len(listed) - (requester is not None and requester in listed)
    if others <= sample:
        return {node: listed[node] for node in _ascending(listed) if node != requester}
    smallest = list(itertools.islice((node for node in _ascending(listed) if node != requester), anchors))
    excluded = set(full)  # those not listed change nothing below
    excluded.discard(requester)
    if len(excluded) >= others and sum(node in listed for node in excluded) >= others:
        excluded = set()  # every listed peer is full: they are all there is
    excluded.update(smallest)
    if requester is not None:
        excluded.add(requester)
    members = listed.unordered() if isinstance(listed, POOLS) else sorted(listed)
    picks = _uniform(members, sample, rng, excluded)
    if isinstance(listed, POOLS):
        return listed.degrees_of([*picks, *smallest])
    return {node: listed[node] for node in (*picks, *smallest)}


def is_sample(reply: Iterable[Node] | Mapping[Node, int]) -> bool:
    """Whether a seed's reply is a sample of its Peer List rather than the whole of it.

    A sample names more than ``PEER_SAMPLE`` peers (see :func:`hand_out`).
    Linking into a sample means nothing beyond the join argument: a repair
    round covers only whole lists (repairplan.RepairRound).
    """
    return len(reply) > PEER_SAMPLE


def drawable(reply: Mapping[Node, int]) -> dict[Node, int]:
    """The peers of a reply that a peer draws links from by its degree model: a sample's without its anchors.

    A sampled reply always names the ``ANCHOR_CANDIDATES`` smallest listed
    addresses, its own smallest; drawn from like the sampled peers, those
    (the oldest peers, hubs) would be linked far beyond the model.  They
    are there for repair's anchor (repairplan.RepairRound), not for picks.
    """
    if not is_sample(reply):
        return dict(reply)
    anchors = set(sorted(reply)[:ANCHOR_CANDIDATES])
    return {node: degree for node, degree in reply.items() if node not in anchors}


def _uniform(members: Sequence[Node], count: int, rng: random.Random, excluded: AbstractSet[Node]) -> list[Node]:
    """``count`` distinct members not in ``excluded``, uniformly (all of them if there are no more)."""
    if 2 * (len(excluded) + count) > len(members):  # few to spare: a pass costs less than rejections
        return rng.sample(eligible := [node for node in members if node not in excluded], min(count, len(eligible)))
    chosen: dict[Node, None] = {}
    while len(chosen) < count:  # each draw is kept with probability over a half
        wanted = count - len(chosen)
        # One 64-bit word per draw, reduced mod the size (a bias below size / 2^64), all in C:
        # a seed draws a sample for every registration.
        words = array("Q", rng.getrandbits(64 * wanted).to_bytes(8 * wanted, "little"))
        drawn = map(members.__getitem__, map(len(members).__rmod__, words))
        chosen.update(dict.fromkeys(itertools.filterfalse(excluded.__contains__, drawn)))
    return list(chosen)


def _ascending(listed: Mapping[Node, int]) -> Iterable[Node]:
    """The listed peers in ascending order, lazily from a pool."""
    return iter(listed) if isinstance(listed, POOLS) else sorted(listed)
