"""The threat model, claim by claim, on a real network with a malicious peer in it.

Each test backs one claim of the README's Security section.
"""

from __future__ import annotations

import dataclasses

import pytest

from gossipnet.logs import logformat
from gossipnet.node import transport
from gossipnet.protocol.wire import GossipMessage, PeerList, PeerListRequest
from netharness import FAST_PEER
from rogue import Rogue

GOSSIP_COUNT = 10


@pytest.fixture
def rogue():
    node = Rogue()
    try:
        yield node
    finally:
        node.close()


def registered_seeds(network, peer):
    return {e.address("seed") for e in network.events(logformat.REGISTERED, node=peer)}


def test_a_lying_peer_never_gets_a_live_peer_removed(network, rogue):
    seeds = network.start_seeds(3)
    honest = network.start_peers(4)
    network.wait_until(lambda: network.all_delivered(honest, GOSSIP_COUNT), 60, "the honest peers' gossip")
    victim = honest[0].address
    for seed in seeds:
        rogue.register(seed.address)
    # A real neighbour of the victim: the victim itself reports the link, so
    # the rogue's reports count as a neighbour's.
    rogue.link(victim)
    network.wait_until(
        lambda: any({e.fields["a"], e.fields["b"]} == {str(victim), str(rogue.address)}
                    and e.fields["reporter"] == str(victim) for e in network.events(logformat.LINK_RECORDED)),
        30, "the victim's report of its link to the rogue")
    for _ in range(10):
        for seed in seeds:
            rogue.claim_link(seed.address, victim)
            rogue.report_dead(seed.address, victim)
    # And about a peer it is not linked to, in that peer's eyes.
    stranger = honest[1].address
    for seed in seeds:
        rogue.report_dead(seed.address, stranger)

    decisions = network.events(logformat.DEAD_NODE_DECISION)
    reasons = {(e.address("dead"), e.fields["decision"], e.fields["reason"]) for e in decisions}
    # The rogue's reports counted as one neighbour's, never more; where that
    # was enough to check, the victim answered the seed's own liveness check.
    about_victim = {(decision, reason) for dead, decision, reason in reasons if dead == victim}
    assert about_victim and about_victim <= {
        ("accepted", "waiting for confirmation: 1 of 2 neighbours reported"),
        ("rejected", "accused answered the seed's liveness check"),
        ("ignored", "not in the peer list"),  # a seed the victim never registered with
    }
    assert (stranger, "rejected", "not a neighbour of the accused (by the accused's own link reports)") in reasons
    assert not any(decision == "removed" for _, decision, _ in reasons)
    assert network.events(logformat.PL_REMOVED) == []
    for seed in seeds:
        listed = transport.request(seed.address, PeerListRequest())
        assert isinstance(listed, PeerList)
        held = {address for address, _ in listed.peers}
        assert victim in held or seed.address not in registered_seeds(network, victim)


def test_forged_and_altered_gossip_is_dropped_everywhere_and_real_gossip_arrives(network, rogue):
    network.start_seeds(3)
    # Slow enough that gossip is still flowing while the rogue attacks.
    flags = ("--gossip-interval", "0.5", "--gossip-count", str(GOSSIP_COUNT), "--ping-interval", "1.0")
    honest = network.start_peers(4, *flags)
    first, second, impersonated = (peer.address for peer in honest[:3])
    for seed in network.events(logformat.STARTED):
        if seed.role == "seed":
            rogue.register(seed.node)

    # 1. A message in another peer's name, signed with the rogue's own key.
    forged = GossipMessage(impersonated, "1700000000.000001", 99).signed(rogue.identity)
    link = rogue.link(first)
    link.send(forged)
    assert link.closed.wait(30), "the peer kept the forger's link"

    # 2. A real message, altered in transit: its signature no longer fits.
    link = rogue.link(second)
    network.wait_until(lambda: link.heard, 30, "a real message to alter")
    real = link.heard[0]
    altered = dataclasses.replace(real, number=real.number + 1000)
    link.send(altered)
    assert link.closed.wait(30), "the peer kept the link that altered a message"

    network.wait_until(lambda: network.all_delivered(honest, GOSSIP_COUNT), 60, "the real gossip")
    texts = {e.fields["msg"] for e in network.events(logformat.GOSSIP_RECEIVED)}
    assert forged.text not in texts and altered.text not in texts
    rejected = [(e.node, e.fields["from"], e.fields["msg"]) for e in network.events(logformat.GOSSIP_REJECTED)]
    assert (first, str(rogue.address), forged.text) in rejected
    assert (second, str(rogue.address), altered.text) in rejected
    # Cut off, not reported dead: the rogue is alive.
    assert network.events(logformat.DEAD_NODE_REPORTED) == []


def test_a_dead_peer_with_a_single_neighbour_is_removed_from_every_seed(network):
    seeds = network.start_seeds(3)
    # Two peers: each is the other's only neighbour.
    lonely = network.start_peers(1)[0]
    network.wait_until(lambda: network.events(logformat.GOSSIP_GENERATED, node=lonely.address), 30,
                       "the first peer to be running")
    neighbour = network.start_peers(1, *FAST_PEER)[0]
    network.wait_until(lambda: network.links() == {frozenset((lonely.address, neighbour.address))}, 30,
                       "the only link")
    network.wait_until(lambda: any(e.address("b") in (lonely.address, neighbour.address)
                                   for e in network.events(logformat.LINK_RECORDED)), 30, "the link at a seed")
    holders = {e.node for e in network.events(logformat.PL_ADDED) if e.address("peer") == lonely.address}
    network.kill(lonely)

    def gone_everywhere() -> bool:
        removed_at = {e.node for e in network.events(logformat.PL_REMOVED) if e.address("peer") == lonely.address}
        return removed_at >= holders

    network.wait_until(gone_everywhere, 60, "every seed that held the dead peer to remove it")
    for seed in seeds:
        listed = transport.request(seed.address, PeerListRequest())
        assert lonely.address not in {address for address, _ in listed.peers}
    reports = network.events(logformat.DEAD_NODE_REPORTED)
    assert {e.node for e in reports} == {neighbour.address}


def test_a_peer_that_restarts_with_a_new_key_is_heard_again(network):
    network.start_seeds(3)
    peers = network.start_peers(4)
    network.wait_until(lambda: network.all_delivered(peers, GOSSIP_COUNT), 60, "the first run's gossip")
    old = peers[0]
    network.kill(old)
    old.process.wait(timeout=10)
    # Same address, new process, new key: the seeds rebind the address once
    # the old key no longer answers there, and peers holding the old key ask again.
    again = network.spawn("peer", old.address.ip, str(old.address.port), "--log", str(network.log_path),
                          "--quiet", "--config", str(network.config_path), *FAST_PEER)
    network.wait_until(lambda: len(network.events(logformat.STARTED, node=old.address)) == 2, 30, "the restart")
    restarted = network.events(logformat.STARTED, node=old.address)[1]

    def heard_everywhere() -> bool:
        fresh = {e.fields["msg"] for e in network.events(logformat.GOSSIP_GENERATED, node=old.address)
                 if e.line > restarted.line}
        if len(fresh) < GOSSIP_COUNT:
            return False
        received = network.receipts()
        return all(fresh <= {msg for origin, msg in received[peer.address] if origin == old.address}
                   for peer in peers[1:])

    network.wait_until(heard_everywhere, 60, "the restarted peer's messages at every other peer")
    assert again.process.poll() is None
    assert not [e for e in network.events(logformat.GOSSIP_REJECTED) if e.fields["reason"] != "duplicate"]


def test_keys_travel_with_the_gossip_so_the_seeds_answer_few_key_lookups(network):
    # Peers join together, so each receives messages of origins that registered after it.
    # Each origin's binding, vouched for by its seeds, travels ahead of its messages: the seeds
    # are asked about no origin as a rule (the fallback stays for a binding that cannot be checked).
    # The old way asked about every later joiner at every peer: dozens of lookups here.
    network.start_seeds(3)
    peers = network.start_peers(8)
    network.wait_until(lambda: network.all_delivered(peers, GOSSIP_COUNT), 90, "every message everywhere")
    lookups = network.events(logformat.KEYS_LOOKUP)
    assert len(lookups) <= len(peers), [(e.node, e.fields) for e in lookups][:5]
    vouches = [e for e in network.events(logformat.SEED_ERROR) if e.fields["request"] == "VOUCH"]
    assert not vouches
    assert not network.events(logformat.GOSSIP_REJECTED)
