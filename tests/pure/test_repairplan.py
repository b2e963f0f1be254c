"""One repair round as a plan (repairplan.RepairRound), with no network: each dial is answered by hand.

A round dials the anchor (the smallest listed peer below the repairing one
that links), then covers each list and fills up to the target, within
config.REPAIR_DIALS dials, and says whether it fell short.  The same plan
runs on plain dicts (a real peer) and on degreepool.DegreePool lists (the
simulator), with the same dials.
"""

from __future__ import annotations

import random

import pytest

from gossipnet.config import REPAIR_DIALS
from gossipnet.protocol import topology
from gossipnet.protocol.degreepool import DegreePool
from gossipnet.protocol.repairplan import LINKED, REFUSED, UNREACHABLE, RepairRound
from gossipnet.protocol.topology import PREFERENTIAL, REPORT


def run(plan: RepairRound, outcomes: dict | None = None) -> list:
    """Drive ``plan`` to its end; a peer not in ``outcomes`` links.  Returns every dial, in order."""
    outcomes = outcomes or {}
    dialled = []
    while dials := plan.next_dials():
        for peer in dials:
            dialled.append(peer)
            plan.dialled(peer, outcomes.get(peer, LINKED))
    return dialled


def plan_for(own, lists, links=(), target=2, seed=1, **options) -> RepairRound:
    return RepairRound(own, lists, links, target, PREFERENTIAL, random.Random(seed), **options)


# --- Anchor -------------------------------------------------------------------------


def test_the_anchor_is_the_smallest_listed_peer_below_that_links():
    plan = plan_for(50, [{10: 3, 20: 1, 60: 0}, {10: 3, 30: 2, 60: 0}], target=0)
    assert run(plan) == [10]  # target 0 and every list covered: the anchor is the only dial
    assert (plan.anchor, plan.opened, plan.complete) == (10, [10], True)


def test_an_anchor_already_linked_costs_no_dial():
    plan = plan_for(50, [{10: 3, 20: 1, 60: 0}], links={10, 60}, target=2)
    assert run(plan) == []
    assert (plan.anchor, plan.complete) == (10, True)


def test_the_anchor_walk_skips_refusals_and_falls_short_on_the_unreachable():
    outcomes = {10: UNREACHABLE, 20: REFUSED}
    plan = plan_for(50, [{10: 0, 20: 0, 30: 0, 40: 0}], target=0)
    assert run(plan, outcomes) == [10, 20, 30]
    # 10 may be alive (hung, or across a partition): the anchor is not settled.
    assert (plan.anchor, plan.complete) == (30, False)
    refused_only = plan_for(50, [{10: 0, 20: 0, 30: 0}], target=0)
    assert run(refused_only, {10: REFUSED}) == [10, 20]
    assert (refused_only.anchor, refused_only.complete) == (20, True)  # a refusal is skipped by every peer


def test_a_link_known_unreachable_before_the_round_is_not_dialled_but_leaves_it_short():
    plan = plan_for(50, [{10: 0, 20: 0}], links={20}, target=1, unreachable={10})
    assert run(plan) == []
    assert (plan.anchor, plan.complete) == (20, False)


def test_the_smallest_peer_is_its_own_anchor():
    plan = plan_for(5, [{10: 0, 20: 0}], target=1)
    dials = run(plan)
    assert len(dials) == 1 and dials[0] in (10, 20)
    assert (plan.anchor, plan.complete) == (5, True)


def test_dials_that_run_out_in_the_anchor_walk_leave_the_round_short():
    lists = [{peer: 0 for peer in range(REPAIR_DIALS + 2)}]
    plan = plan_for(100, lists, target=0)
    outcomes = dict.fromkeys(range(100), REFUSED)
    assert run(plan, outcomes) == list(range(REPAIR_DIALS))
    assert (plan.anchor, plan.dials, plan.complete) == (100, 0, False)


# --- Cover and fill -------------------------------------------------------------------


def test_fill_links_up_to_the_target_by_the_degree_model():
    lists = [{peer: 0 for peer in range(60, 80)}]
    for model in (PREFERENTIAL, REPORT):
        plan = RepairRound(50, lists, (), 5, model, random.Random(3))
        dials = run(plan)
        assert len(dials) == 5 == len(set(dials)) and set(dials) <= set(range(60, 80))
        assert plan.complete and plan.links == set(dials)


def test_every_list_gets_a_link_even_past_the_target():
    plan = plan_for(50, [{60: 0, 61: 0}, {70: 0}], links={60, 61}, target=2)
    assert run(plan) == [70]
    assert plan.complete


def test_cover_takes_the_join_lists_with_the_current_degrees_less_the_peers_gone():
    # Joined with 60, 61 and 62 through one seed; 62 has gone since (no seed lists it).
    lists = [{60: 9, 61: 0, 70: 0}]
    plan = plan_for(50, lists, links={70}, target=1, cover=[{60, 61, 62}])
    assert plan.seed_lists[0] == {60: 9, 61: 0}
    dials = run(plan)
    assert len(dials) == 1 and dials[0] in (60, 61)
    assert plan.complete


def test_a_pick_that_fails_is_replaced_within_the_round():
    lists = [{peer: 0 for peer in range(60, 70)}]
    outcomes = {peer: UNREACHABLE for peer in range(60, 65)} | {65: REFUSED}
    plan = plan_for(50, lists, target=2, seed=4)
    dials = run(plan, outcomes)
    assert len(dials) == len(set(dials))  # a failed peer is not dialled twice
    assert len(plan.links) == 2 and plan.links <= set(range(66, 70))
    # Every failed pick was replaced, but the unreachable ones listed below the target may be alive.
    assert plan.opened == [peer for peer in dials if peer >= 66]


# --- Shortfall and retry ------------------------------------------------------------


def test_too_few_seeds_leave_any_round_short():
    plan = plan_for(50, [{60: 0, 70: 0}], target=2, too_few_seeds=True)
    assert len(run(plan)) == 2
    assert plan.done and not plan.complete


def test_below_the_target_a_listed_peer_that_cannot_be_reached_leaves_the_round_short():
    plan = plan_for(50, [{60: 0, 70: 0}], target=2)
    run(plan, {70: UNREACHABLE})
    assert plan.links == {60} and not plan.complete  # 70 may be hung: try again later
    declined = plan_for(50, [{60: 0, 70: 0}], target=2)
    run(declined, {70: REFUSED})
    assert declined.links == {60} and declined.complete  # 70 declines: nothing more to do


def test_a_round_that_fell_short_is_retried_and_completes_once_the_peer_answers():
    lists = [{10: 0, 60: 0, 70: 0}]
    first = plan_for(50, lists, target=2)
    run(first, {10: UNREACHABLE})
    assert (first.anchor, first.complete) == (50, False)
    # The next round: 10 answers now (it was hung), and the links opened stay.
    retry = plan_for(50, lists, links=first.links, target=2)
    assert run(retry) == [10]
    assert (retry.anchor, retry.complete, retry.opened) == (10, True, [10])
    # Or 10 died and the seeds removed it: the retry has nothing left to do.
    removed = plan_for(50, [{60: 0, 70: 0}], links=first.links, target=2)
    assert run(removed) == [] and removed.complete and removed.anchor == 50


def test_the_dial_budget_bounds_a_round():
    lists = [{peer: 0 for peer in range(60, 100)}]
    outcomes = dict.fromkeys(range(60, 100), UNREACHABLE)
    plan = plan_for(50, lists, target=20)
    assert len(run(plan, outcomes)) == REPAIR_DIALS
    assert not plan.complete
    assert len(run(plan_for(50, lists, target=20, dials=3), outcomes)) == 3


# --- Feeding outcomes back ------------------------------------------------------------


def test_every_dial_is_fed_back_before_the_next():
    plan = plan_for(50, [{10: 0, 60: 0}], target=2)
    assert plan.next_dials() == [10]
    with pytest.raises(RuntimeError):
        plan.next_dials()
    with pytest.raises(ValueError):
        plan.dialled(10, "maybe")
    with pytest.raises(ValueError):
        plan.dialled(60, LINKED)  # not handed out
    plan.dialled(10, LINKED)
    assert plan.next_dials() == [60]


def test_links_passed_again_count_for_the_rest_of_the_round():
    # Peer 10 dialled in while this round was under way: it is the anchor, and no dial goes to it.
    plan = plan_for(50, [{10: 0, 20: 0, 60: 0}], target=1)
    assert plan.next_dials(links=set()) == [10]
    plan.dialled(10, REFUSED)  # refused: an incoming link from it won the race
    later = plan.next_dials(links={10})
    assert 10 not in later
    for peer in later:
        plan.dialled(peer, LINKED)
    assert plan.next_dials(links={10, *later}) == []
    assert plan.complete


# --- Pools, as the simulator runs it ---------------------------------------------------


def pool_of(capacity: int, degrees: dict[int, int]) -> DegreePool:
    pool = DegreePool(capacity)
    for peer, degree in degrees.items():
        pool.add(peer, degree)
    return pool


@pytest.mark.parametrize("model", [PREFERENTIAL, REPORT])
@pytest.mark.parametrize("trial", range(25))
def test_pools_give_the_same_round_as_dicts(model, trial):
    rng = random.Random(trial)
    capacity = 100  # whole lists (under PEER_SAMPLE), as a pool always is: a sample is not covered
    degrees = {peer: rng.randrange(6) for peer in range(capacity) if rng.random() < 0.6}
    own = rng.choice(sorted(degrees))
    hidden = set(rng.sample(sorted(degrees), 5)) - {own}  # in the union, in none of these lists
    shared = [peer for peer in degrees if peer not in hidden]
    lists = [{peer: degrees[peer] for peer in shared if rng.random() < 0.7 or peer == own} for _ in range(2)]
    for peer_list in lists:
        peer_list[own] = degrees[own]  # a simulated peer's seeds list it
    links = set(rng.sample([peer for peer in shared if peer != own], 2))
    outcomes = {peer: rng.choice((LINKED, LINKED, REFUSED, UNREACHABLE)) for peer in degrees}
    target = rng.randrange(1, 6)

    as_dicts = RepairRound(own, [{p: d for p, d in pl.items() if p != own} for pl in lists], links, target, model,
                           random.Random(trial))
    union = {peer: degrees[peer] for peer in hidden.union(*lists)}
    as_pools = RepairRound(own, [pool_of(capacity, pl) for pl in lists], links, target, model, random.Random(trial),
                           union=pool_of(capacity, union), unlisted=hidden)
    assert run(as_pools, outcomes) == run(as_dicts, outcomes)
    assert (as_pools.anchor, as_pools.complete, as_pools.opened) == (as_dicts.anchor, as_dicts.complete,
                                                                     as_dicts.opened)


@pytest.mark.parametrize("trial", range(50))
def test_the_rules_a_round_uses_say_the_same_of_pools_as_of_dicts(trial):
    rng = random.Random(trial)
    lists = [{peer: rng.randrange(4) for peer in range(40) if rng.random() < 0.3} for _ in range(rng.randrange(4))]
    linked = set(rng.sample(range(40), rng.randrange(4)))
    refused = set(rng.sample(range(40), rng.randrange(6)))
    target, own = rng.randrange(5), rng.randrange(40)
    pools = [pool_of(40, peer_list) for peer_list in lists]
    assert topology.repair_short(pools, target, linked, refused) == topology.repair_short(lists, target, linked,
                                                                                           refused)
    union = {peer: 0 for peer_list in lists for peer in peer_list}
    assert list(topology.anchor_candidates(pool_of(40, union), own)) == list(topology.anchor_candidates(union, own))


class Unwalkable(DegreePool):
    """A pool that fails any pass over its members: what a round must not cost at 100,000 peers."""

    def __iter__(self):
        raise AssertionError("a pass over the whole pool")


def test_a_round_on_pools_never_walks_them():
    capacity = 100_000
    union = Unwalkable(capacity)
    lists = [Unwalkable(capacity), Unwalkable(capacity)]
    for peer in range(0, capacity, 3):
        union.add(peer, peer % 7)
        lists[peer % 2].add(peer, peer % 7)
    own = 90_000
    outcomes = {0: UNREACHABLE, 3: UNREACHABLE, 6: REFUSED}
    plan = RepairRound(own, lists, {99_999}, 4, PREFERENTIAL, random.Random(1), union=union)
    dials = run(plan, outcomes)
    assert dials[:4] == [0, 3, 6, 9]  # the anchor walk, by rank
    assert len(dials) > 4 and all(peer in union for peer in dials)  # then cover and fill, drawn from the pools
    assert (plan.anchor, len(plan.links), plan.complete) == (9, 4, False)  # 0 and 3 may answer later
