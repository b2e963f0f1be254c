"""runlog's helpers that every tool counts with: the overlay's connected parts, and median/p99/max."""

from __future__ import annotations

import random

import networkx as nx

import runlog
from wire import Address


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
