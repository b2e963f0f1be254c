"""runlog's helpers that every tool counts with: the overlay's connected parts, and median/p99/max."""

from __future__ import annotations

import random

import networkx as nx
import numpy as np

from gossipnet.logs import runlog
from gossipnet.protocol.wire import Address


def address(number: int) -> Address:
    return Address("127.0.0.1", 9000 + number)


def test_components_come_in_the_order_of_their_least_node_and_leave_out_links_to_others():
    a, b, c, d, e = map(address, range(5))
    links = [frozenset((b, e)), frozenset((a, d)), frozenset((d, c))]
    assert runlog.components([e, d, c, b, a], links) == [{a, c, d}, {b, e}]
    assert runlog.components([a, b, c], links) == [{a}, {b}, {c}]  # d and e are not among the nodes
    assert runlog.components([], links) == []


def test_components_of_an_adjacency_match_networkx():
    rng = random.Random(3)
    for _ in range(50):
        graph = nx.gnm_random_graph(30, rng.randint(0, 40), seed=rng.randint(0, 10**6))
        adjacency = {address(node): {address(other) for other in graph[node]} for node in graph}
        nodes = {address(node) for node in rng.sample(range(30), 20)}
        expected = nx.connected_components(graph.subgraph([node.port - 9000 for node in nodes]))
        assert sorted(map(sorted, runlog.components(nodes, adjacency))) == \
            sorted(sorted(map(address, part)) for part in expected)


def test_spread_is_the_median_the_nearest_rank_p99_and_the_max():
    assert runlog.spread([]) == {"median": None, "p99": None, "max": None}
    assert runlog.spread([3, 1, 2]) == {"median": 2, "p99": 3, "max": 3}
    assert runlog.spread([4.0, 1.0, 2.0, 3.0]) == {"median": 2.5, "p99": 4.0, "max": 4.0}
    values = list(range(1, 201))  # p99 of 200 values: the 198th smallest
    assert runlog.spread(values)["p99"] == 198 == runlog.percentile(values, 0.99)


def test_spread_of_a_numpy_array_matches_numpys_inverted_cdf():
    rng = np.random.default_rng(5)
    for count in (1, 2, 99, 100, 101, 1000, 4321):
        values = rng.random(count)
        numbers = runlog.spread(values)
        assert numbers["median"] == np.median(values)
        assert numbers["p99"] == np.quantile(values, 0.99, method="inverted_cdf")
        assert numbers["max"] == values.max()
