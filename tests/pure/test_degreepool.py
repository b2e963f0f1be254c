"""DegreePool: the simulator's pool of peers and degrees must behave as the dict
(peer -> degree) real peers hold, and the join rule must pick from it exactly
what it picks from that dict, draw for draw on the same rng."""

from __future__ import annotations

import bisect
import itertools
import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gossipnet.protocol import topology
from gossipnet.protocol.topology import (
    PREFERENTIAL,
    REPORT,
    DegreePool,
    next_neighbours,
    preferential_choice,
    uniform_choice,
)


def pool_of(degrees: dict[int, int], capacity: int) -> DegreePool:
    pool = DegreePool(capacity)
    for node, degree in degrees.items():
        pool.add(node, degree)
    return pool


def random_degrees(rng: random.Random, capacity: int) -> dict[int, int]:
    """Some of range(capacity), so that ids are missing between members and at both ends."""
    members = rng.sample(range(capacity), rng.randint(0, capacity))
    return {node: rng.choice([0, 0, 1, 2, 5, rng.randint(0, 50)]) for node in members}


def bisect_picker(degrees: dict[int, int]):
    """What the dict path picks for r: pool[bisect_right(cumulative, r)] on the sorted members."""
    ordered = sorted(degrees)
    cumulative = list(itertools.accumulate(degrees[node] + 1 for node in ordered))
    return lambda r: ordered[bisect.bisect_right(cumulative, r)]


def assert_matches(pool: DegreePool, reference: dict[int, int]) -> None:
    """The pool holds exactly ``reference``: as a mapping, by rank and by weight."""
    ordered = sorted(reference)
    assert dict(pool) == reference
    assert pool == reference
    assert len(pool) == len(reference)
    assert list(pool) == ordered
    assert list(pool.members()) == ordered
    assert [pool.kth(k) for k in range(len(ordered))] == ordered
    assert [pool.members()[k] for k in range(-len(ordered), 0)] == ordered
    assert pool.total_weight() == sum(degree + 1 for degree in reference.values())
    for node in range(-2, pool.capacity + 2):
        assert (node in pool) == (node in reference)
        assert (node in pool.members()) == (node in reference)
    # Every boundary of every member's range: its first and last integer, and r just below its end.
    below = 0
    for node in ordered:
        end = below + reference[node] + 1
        for r in (below, end - 1, end - 0.5, end - 1e-9):
            assert pool.find_weight(r) == node, (node, r)
        below = end


# --- The pool as a Mapping ----------------------------------------------------------------------

CAPACITY = 40
operations = st.lists(st.tuples(st.sampled_from(["add", "remove", "set", "shift"]),
                                st.integers(0, CAPACITY - 1), st.integers(0, 30)), max_size=120)


@settings(max_examples=300, deadline=None)
@given(operations)
def test_pool_equals_a_dict_after_any_changes(steps):
    pool, reference = DegreePool(CAPACITY), {}
    for operation, node, degree in steps:
        if operation == "add":
            if node in reference:
                with pytest.raises(ValueError):
                    pool.add(node, degree)
            else:
                pool.add(node, degree)
                reference[node] = degree
        elif operation == "remove":
            if node in reference:
                assert pool.remove(node) == reference.pop(node)
            else:
                with pytest.raises(KeyError):
                    pool.remove(node)
        elif node not in reference:
            with pytest.raises(KeyError):
                pool.set_degree(node, degree)
            with pytest.raises(KeyError):
                pool.add_degree(node, degree)
        elif operation == "set":
            pool.set_degree(node, degree)
            reference[node] = degree
        else:
            delta = degree - 15
            if reference[node] + delta < 0:
                with pytest.raises(ValueError):
                    pool.add_degree(node, delta)
            else:
                pool.add_degree(node, delta)
                reference[node] += delta
        assert dict(pool) == reference
    assert_matches(pool, reference)


def test_pool_rejects_what_a_peer_list_cannot_hold():
    pool = DegreePool(5)
    for bad in (-1, 5, 2.0, "2"):
        with pytest.raises(IndexError):
            pool.add(bad)
        assert bad not in pool
        with pytest.raises(KeyError):
            pool[bad]
    with pytest.raises(ValueError):
        pool.add(1, -1)
    pool.add(1, 3)
    with pytest.raises(ValueError):
        pool.set_degree(1, -1)
    with pytest.raises(ValueError):
        pool.add_degree(1, -4)
    assert pool == {1: 3}
    with pytest.raises(KeyError):
        pool[0]
    for rank in (-1, 1):
        with pytest.raises(IndexError):
            pool.kth(rank)
    with pytest.raises(ValueError):
        DegreePool(-1)
    empty = DegreePool(0)
    assert len(empty) == 0 and list(empty) == [] and empty.total_weight() == 0


@pytest.mark.parametrize("capacity", [1, 2, 3, 7, 8, 9, 64, 100, 1000])
def test_pool_equals_a_dict_at_every_capacity(capacity):
    # Powers of two and their neighbours: the tree walks' edge cases.
    rng = random.Random(capacity)
    for _ in range(20):
        reference = random_degrees(rng, capacity)
        assert_matches(pool_of(reference, capacity), reference)
    full = {node: node % 3 for node in range(capacity)}
    assert_matches(pool_of(full, capacity), full)


# --- find_weight is bisect on the sorted cumulative weights --------------------------------------


@pytest.mark.parametrize("capacity", [1, 5, 16, 17, 300])
def test_find_weight_is_bisect_on_the_cumulative_list(capacity):
    rng = random.Random(f"find-{capacity}")
    for _ in range(30):
        reference = random_degrees(rng, capacity)
        if not reference:
            continue
        pool, bisect_pick = pool_of(reference, capacity), bisect_picker(reference)
        total = pool.total_weight()
        draws = [rng.random() * total for _ in range(200)]
        boundaries = [float(k) for k in range(total)] + list(range(total))  # exactly on every boundary
        nudged = [k - 1e-9 for k in range(1, total)] + [k + 1e-9 for k in range(total - 1)]
        for r in [0, 0.0, -0.0, -1.5, *draws, *boundaries, *nudged]:
            assert pool.find_weight(r) == bisect_pick(r), r
        for r in (total, total + 0.5):
            with pytest.raises(IndexError):
                bisect_pick(r)
            with pytest.raises(IndexError):
                pool.find_weight(r)


def test_find_weight_after_changes():
    rng = random.Random(3)
    pool, reference = DegreePool(200), {}
    for step in range(3000):
        node = rng.randrange(200)
        if node in reference and rng.random() < 0.3:
            pool.remove(node)
            del reference[node]
        elif node in reference:
            pool.add_degree(node)
            reference[node] += 1
        else:
            pool.add(node, rng.randint(0, 4))
            reference[node] = pool[node]
        if step % 100 == 0:
            r = rng.random() * pool.total_weight()
            assert pool.find_weight(r) == bisect_picker(reference)(r)
    assert_matches(pool, reference)


# --- The choices: the same picks as from the dict, on the same rng ------------------------------


@pytest.mark.parametrize("choice", [preferential_choice, uniform_choice])
def test_choices_from_a_pool_equal_choices_from_the_dict(choice):
    rng = random.Random(f"choice-{choice.__name__}")
    for case in range(300):
        capacity = rng.choice([1, 2, 10, 50, 400])
        reference = random_degrees(rng, capacity)
        pool = pool_of(reference, capacity)
        counts = {0, 1, 2, 3, len(reference) - 1, len(reference), len(reference) + 1, rng.randint(0, 30)}
        for count in sorted(c for c in counts if c >= 0):
            seed = f"{case}-{count}"
            on_dict, on_pool = random.Random(seed), random.Random(seed)
            expected = choice(dict(reference), count, on_dict)
            assert choice(pool, count, on_pool) == expected, (reference, count)
            assert on_pool.getstate() == on_dict.getstate(), "a different sequence of rng calls"
        assert_matches(pool, reference)


def test_choices_from_a_large_pool_equal_choices_from_the_dict():
    # rng.sample takes another branch, and rejections get rare, for a large pool.
    rng = random.Random(11)
    reference = {node: rng.randint(0, 100) for node in rng.sample(range(20_000), 15_000)}
    pool = pool_of(reference, 20_000)
    for choice in (preferential_choice, uniform_choice):
        for count in (1, 2, 25, 300):
            assert choice(pool, count, random.Random(count)) == choice(reference, count, random.Random(count))


# --- next_neighbours on pools: the same picks as on dicts -----------------------------------------


def pool_case(rng: random.Random):
    """A union of peers and seed lists over it, each list with the union's degrees."""
    capacity = rng.choice([3, 12, 40, 150])
    union = random_degrees(rng, capacity)
    members = sorted(union)
    lists = []
    for _ in range(rng.randint(1, 5)):
        chosen = rng.sample(members, rng.randint(0, len(members)))
        lists.append({node: union[node] for node in chosen})
    listed = {node: union[node] for peer_list in lists for node in peer_list}  # the union is exactly the lists'
    candidates = list(range(-1, capacity + 2))
    linked = set(rng.sample(candidates, rng.randint(0, min(4, len(candidates)))))
    unreachable = set(rng.sample(candidates, rng.randint(0, len(candidates) // 2))) - linked
    return capacity, listed, lists, linked, unreachable


@pytest.mark.parametrize("model", topology.DEGREE_MODELS)
def test_next_neighbours_on_pools_equals_next_neighbours_on_dicts(model):
    rng = random.Random(f"pools-{model}")
    for case in range(1500):
        capacity, union, lists, linked, unreachable = pool_case(rng)
        target = rng.randint(0, 6)
        union_pool = pool_of(union, capacity)
        list_pools = [pool_of(peer_list, capacity) for peer_list in lists]
        on_dict, on_pool, on_mixed = (random.Random(case) for _ in range(3))
        expected = next_neighbours(lists, model, target, on_dict, linked, unreachable)
        assert next_neighbours(list_pools, model, target, on_pool, linked, unreachable, union=union_pool) == expected
        assert on_pool.getstate() == on_dict.getstate()
        # A pool union with plain dict lists, as a simulator might mix them.
        assert next_neighbours(lists, model, target, on_mixed, linked, unreachable, union=union_pool) == expected
        # The exclusions were put back.
        assert_matches(union_pool, union)
        for peer_list, list_pool in zip(lists, list_pools, strict=True):
            assert_matches(list_pool, peer_list)


@pytest.mark.parametrize("model", topology.DEGREE_MODELS)
def test_next_neighbours_with_the_union_as_its_own_list(model):
    # The simulator's call: [pool] with union=pool, the pool excluded from within twice over.
    rng = random.Random(f"own-{model}")
    for case in range(1500):
        capacity, union, _, linked, unreachable = pool_case(rng)
        pool = pool_of(union, capacity)
        target = rng.randint(0, 6)
        expected = next_neighbours([union], model, target, random.Random(case), linked, unreachable)
        assert next_neighbours([pool], model, target, random.Random(case), linked, unreachable, union=pool) == expected
        assert next_neighbours([pool, pool], model, target, random.Random(case), linked, unreachable,
                               union=pool) == next_neighbours([union, union], model, target, random.Random(case),
                                                              linked, unreachable)
        assert_matches(pool, union)


def test_a_dict_union_held_by_the_caller_gives_the_same_picks():
    rng = random.Random(12)
    for case in range(500):
        _, union, lists, linked, unreachable = pool_case(rng)
        model = rng.choice(topology.DEGREE_MODELS)
        expected = next_neighbours(lists, model, 3, random.Random(case), linked, unreachable)
        assert next_neighbours(lists, model, 3, random.Random(case), linked, unreachable, union=union) == expected


def test_a_linked_peer_covers_its_list_on_the_pool_path():
    # Linked peers are out of the pool while the picks are drawn; the cover
    # must still see them in the lists, or it would add needless links.
    pool = pool_of({0: 1, 1: 1, 2: 1, 3: 1}, 4)
    for seed in range(50):
        assert next_neighbours([pool], PREFERENTIAL, 1, random.Random(seed), linked={2}, union=pool) == []
        assert next_neighbours([pool], REPORT, 1, random.Random(seed), linked={2}, union=pool) == []
    assert_matches(pool, {0: 1, 1: 1, 2: 1, 3: 1})


def test_grow_gives_the_edges_of_the_dict_path():
    def grow_on_dicts(count, model, rng):
        degrees, edges = {}, []
        for newcomer in range(count):
            picks = next_neighbours([degrees], model, topology.join_target(model, rng), rng)
            edges.extend((node, newcomer) for node in picks)
            for node in picks:
                degrees[node] += 1
            degrees[newcomer] = len(picks)
        return edges

    for model in topology.DEGREE_MODELS:
        for count, seed in [(0, 1), (1, 1), (2, 1), (30, 2), (400, 3), (400, 4)]:
            assert topology.grow(count, model, random.Random(seed)) == grow_on_dicts(count, model, random.Random(seed))


# --- excluding ------------------------------------------------------------------------------------


def test_excluding_hides_members_and_restores_them():
    reference = {0: 4, 3: 0, 5: 7, 9: 2}
    pool = pool_of(reference, 10)
    with pool.excluding([3, 5, 6, "x", 42, 5]) as inside:
        assert inside is pool
        assert_matches(pool, {0: 4, 9: 2})
        with pool.excluding({0, 3}):  # 3 is out already: only 0 goes, and only 0 comes back
            assert_matches(pool, {9: 2})
        assert_matches(pool, {0: 4, 9: 2})
        pool.add_degree(9)  # a change to a member that stayed in is kept
    assert_matches(pool, {**reference, 9: 3})


def test_excluding_restores_when_the_block_raises():
    reference = {1: 2, 2: 0, 4: 9}
    pool = pool_of(reference, 6)
    with pytest.raises(RuntimeError), pool.excluding([1, 4]):
        assert_matches(pool, {2: 0})
        raise RuntimeError("the body failed")
    assert_matches(pool, reference)
