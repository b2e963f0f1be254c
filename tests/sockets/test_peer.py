"""A peer in this process on a free port, driven by hand-made neighbours over real sockets."""

from __future__ import annotations

import random
import socket
import threading
from dataclasses import replace

import pytest

from gossipnet.config import PeerSettings
from gossipnet.logs import logformat
from gossipnet.node import keywait, peerlinks
from gossipnet.node.framing import LineReader
from gossipnet.node.peer import Peer
from gossipnet.node.transport import NodeServer
from gossipnet.protocol.auth import Identity, verify
from gossipnet.protocol.repairplan import REFUSED
from gossipnet.protocol.wire import (
    NOT_LISTED,
    Address,
    Error,
    Full,
    GossipMessage,
    Hello,
    KeyBinding,
    Keys,
    KeysRequest,
    LinkReport,
    LivenessRequest,
    Vouch,
    binding_body,
    encode,
)
from netharness import wait_for

X = Address("127.0.0.1", 9101)
Y = Address("127.0.0.1", 9102)
ORIGIN = Address("127.0.0.1", 9200)
ORIGIN_ID, X_ID, Y_ID = Identity(), Identity(), Identity()


def _serve(tmp_path, settings: PeerSettings):
    server = NodeServer("127.0.0.1", 0, handler=lambda conn: None)
    log = logformat.NodeLog("peer", server.address, tmp_path / "log.txt", console=False)
    server.log = log
    node = Peer(server, log, seeds=[], settings=settings, rng=random.Random(1))
    server.start()  # serve links without joining: no seeds are needed for these tests
    try:
        yield node
    finally:
        node.stop()
        log.close()


@pytest.fixture
def peer(tmp_path):
    """A peer speaking the report's plain format (--no-auth)."""
    yield from _serve(tmp_path, PeerSettings(auth=False))


@pytest.fixture
def signed_peer(tmp_path):
    """A peer with authentication on that already knows the keys of ORIGIN, X and Y."""
    for node in _serve(tmp_path, PeerSettings()):
        node.key_wait.learn([(ORIGIN, ORIGIN_ID.key), (X, X_ID.key), (Y, Y_ID.key)])
        node._start(node._key_lookup_loop, "key lookup")
        yield node


class Neighbour:
    """A hand-driven neighbour: one socket that greets the peer as ``address``."""

    def __init__(self, peer: Peer, address: Address):
        self.sock = socket.create_connection((peer.address.ip, peer.address.port), timeout=10)
        self.reader = LineReader(self.sock)
        self.sock.sendall(encode(Hello(address)))

    def read(self):
        return self.reader.read_message()

    def send(self, message) -> None:
        self.sock.sendall(encode(message))

    def close(self) -> None:
        self.sock.close()


def message(origin: Address, number: int) -> GossipMessage:
    return GossipMessage(origin, f"1700000000.{number}", number)


def test_new_link_gets_hello_then_the_whole_message_list(peer):
    own = [message(peer.address, n) for n in (1, 2)]
    for m in own:
        peer.on_gossip(m, None)
    x = Neighbour(peer, X)
    assert x.read() == Hello(peer.address)
    assert [x.read(), x.read()] == own


def test_message_is_forwarded_once_to_everyone_but_its_sender(peer):
    x, y = Neighbour(peer, X), Neighbour(peer, Y)
    assert x.read() == Hello(peer.address) and y.read() == Hello(peer.address)
    wait_for(lambda: peer.link_table.neighbours() == {X, Y}, "both links")
    m = message(Address("127.0.0.1", 9200), 1)
    x.send(m)
    x.send(m)  # a duplicate from the same neighbour is dropped
    assert y.read() == m
    # X gets nothing back: the next line it sees answers its liveness request.
    x.send(LivenessRequest(X, "1.5"))
    assert x.read() == LivenessRequest(X, "1.5").reply(peer.address)
    y.send(m)  # and a copy arriving from Y is not sent on again
    y.send(LivenessRequest(Y, "2.5"))
    assert y.read() == LivenessRequest(Y, "2.5").reply(peer.address)
    assert len(peer.message_list) == 1


def test_second_link_from_a_live_neighbour_is_refused(peer):
    first = Neighbour(peer, X)
    assert first.read() == Hello(peer.address)
    wait_for(lambda: X in peer.link_table.neighbours(), "the first link")
    second = Neighbour(peer, X)
    assert second.read() == Error("already linked")
    assert peer.link_table.get(X).conn.closed is False


def test_a_peer_at_its_link_limit_answers_full_naming_its_neighbours(peer, monkeypatch):
    monkeypatch.setattr(peerlinks, "MAX_CONNECTIONS", 2)
    x, y = Neighbour(peer, X), Neighbour(peer, Y)
    assert x.read() == Hello(peer.address) and y.read() == Hello(peer.address)
    wait_for(lambda: peer.link_table.neighbours() == {X, Y}, "both links")
    third = Neighbour(peer, ORIGIN)
    refusal = third.read()
    assert isinstance(refusal, Full) and refusal.peer == peer.address and set(refusal.neighbours) == {X, Y}
    assert third.read() is None  # and the connection ends
    assert peer.link_table.neighbours() == {X, Y}
    # A peer it is linked to is answered as before, not as full.
    again = Neighbour(peer, X)
    assert again.read() == Error("already linked")


def test_a_dial_refused_full_leaves_the_named_neighbours_for_repair(peer, tmp_path):
    listener = socket.create_server(("127.0.0.1", 0))
    full = Address("127.0.0.1", listener.getsockname()[1])

    def answer_full():
        conn, _ = listener.accept()
        with conn:
            LineReader(conn).read_message()
            conn.sendall(encode(Full(full, (X, Y))))

    thread = threading.Thread(target=answer_full, daemon=True)
    thread.start()
    try:
        assert peer._link_to(full) == REFUSED
        assert peer.referrals.pop(full) == (X, Y)
    finally:
        thread.join(10)
        listener.close()


def test_a_neighbour_that_comes_back_replaces_its_stale_link(peer):
    first = Neighbour(peer, X)
    assert first.read() == Hello(peer.address)
    wait_for(lambda: X in peer.link_table.neighbours(), "the first link")
    stale = peer.link_table.get(X)
    first.close()  # it died: the link stays until the liveness rule decides
    wait_for(lambda: stale.conn.closed, "the peer to see the close")
    again = Neighbour(peer, X)
    assert again.read() == Hello(peer.address)
    wait_for(lambda: peer.link_table.get(X) is not stale, "the new link to replace the stale one")
    # The stale link's verdict no longer applies to the neighbour that came back.
    peer.report_dead(stale)
    assert X in peer.link_table.neighbours()
    assert not any(e.event == logformat.DEAD_NODE_REPORTED for e in _events(peer))


def test_garbage_on_a_link_gets_error_and_cuts_the_link_without_a_report(peer):
    x = Neighbour(peer, X)
    assert x.read() == Hello(peer.address)
    wait_for(lambda: X in peer.link_table.neighbours(), "the link")
    x.sock.sendall(b"NONSENSE here\n")
    reply = x.read()
    assert isinstance(reply, Error) and "unknown verb" in reply.reason
    assert x.read() is None  # then closed
    wait_for(lambda: X not in peer.link_table.neighbours(), "the link to be dropped")
    names = [e.event for e in _events(peer)]
    assert logformat.BAD_INPUT in names and logformat.DEAD_NODE_REPORTED not in names


def _events(peer: Peer):
    return logformat.parse_log(peer.log.path).events


# --- With authentication on -------------------------------------------------------


def linked(peer: Peer, *addresses: Address) -> list[Neighbour]:
    neighbours = [Neighbour(peer, address) for address in addresses]
    for neighbour in neighbours:
        assert neighbour.read() == Hello(peer.address)
    wait_for(lambda: peer.link_table.neighbours() == set(addresses), "the links")
    return neighbours


def test_a_signed_message_is_accepted_and_forwarded_with_its_signature(signed_peer):
    x, y = linked(signed_peer, X, Y)
    m = message(ORIGIN, 1).signed(ORIGIN_ID)
    x.send(m)
    got = y.read()
    assert got == m and got.signature == m.signature
    assert m in signed_peer.message_list


@pytest.mark.parametrize("forge", [
    lambda m: replace(m, signature=None),  # unsigned
    lambda m: m.signed(X_ID),  # signed by the neighbour, not by the origin
    lambda m: replace(m, number=2),  # altered in transit, signature kept
    lambda m: replace(m, timestamp="1700000009.5"),
], ids=["unsigned", "wrong-signer", "altered-number", "altered-timestamp"])
def test_a_forged_message_is_dropped_logged_and_its_sender_cut_off(signed_peer, forge):
    x, y = linked(signed_peer, X, Y)
    real = message(ORIGIN, 1).signed(ORIGIN_ID)
    fake = forge(real)
    x.send(fake)
    wait_for(lambda: X not in signed_peer.link_table.neighbours(), "the forger's link to be cut")
    assert x.read() is None  # closed
    assert len(signed_peer.message_list) == 0
    # The forgery did not take the real message's identity: it still gets through.
    y.send(real)
    wait_for(lambda: real in signed_peer.message_list, "the real message")
    rejected = [e for e in _events(signed_peer) if e.event == logformat.GOSSIP_REJECTED]
    assert len(rejected) == 1 and rejected[0].fields["from"] == str(X)
    assert rejected[0].fields["reason"] in ("bad signature", "unsigned")
    assert not any(e.event == logformat.DEAD_NODE_REPORTED for e in _events(signed_peer))


def test_liveness_replies_are_signed(signed_peer):
    (x,) = linked(signed_peer, X)
    x.send(LivenessRequest(X, "1.5"))
    reply = x.read()
    assert reply == LivenessRequest(X, "1.5").reply(signed_peer.address)
    assert verify(signed_peer.identity.key, reply.body(), reply.signature)


def test_a_message_from_an_origin_no_seed_knows_is_dropped(signed_peer):
    (x,) = linked(signed_peer, X)
    stranger = Identity()
    m = message(Address("127.0.0.1", 9300), 1).signed(stranger)
    x.send(m)
    wait_for(lambda: any(e.event == logformat.GOSSIP_REJECTED for e in _events(signed_peer)),
             "the message to be dropped")
    assert m not in signed_peer.message_list
    assert X in signed_peer.link_table.neighbours()  # an origin without a key is not the neighbour's fault


def test_a_neighbour_with_too_many_messages_waiting_for_keys_is_cut_off(signed_peer, monkeypatch):
    monkeypatch.setattr(keywait, "MAX_UNVERIFIED_PER_NEIGHBOUR", 3)
    # With no seeds to ask, a key lookup takes its full backoff (seconds): messages pile up.
    x, y = linked(signed_peer, X, Y)
    strangers = [message(Address("127.0.0.1", 9400 + n), 1).signed(Identity()) for n in range(10)]
    for m in strangers:
        x.send(m)
    wait_for(lambda: X not in signed_peer.link_table.neighbours(), "the flooding neighbour to be cut")
    assert Y in signed_peer.link_table.neighbours()  # the others keep their links


def test_a_seed_that_no_longer_lists_the_peer_is_told_by_its_error_code(peer):
    # A stand-in seed: it refuses the LINK report about X with the not-listed code
    # (it removed the peer), and the one about Y with an error that has no code.
    refusals = {X: Error.coded(NOT_LISTED, "reporter is not a registered live peer here"),
                Y: Error("unsigned, but the reporter has a key")}

    def answer(conn):
        while isinstance(report := conn.read(), LinkReport):
            conn.send(refusals[report.neighbour])

    seed = NodeServer("127.0.0.1", 0, handler=answer)
    seed.start()
    try:
        peer.seeds = [seed.address]
        peer._start(peer._seed_report_loop, "seed reports")
        for neighbour in (Y, X):
            peer._to_seeds.put(("all", LinkReport(peer.address, neighbour)))
        wait_for(lambda: peer._repair_wanted.is_set(), "the peer to ask for a repair round")
        # Only the coded refusal asks for one; both are logged with the seed's whole reason.
        assert peer._repair_reasons == [f"seed {seed.address} no longer lists this peer"]
        errors = [e.fields["reason"] for e in logformat.parse_log(peer.log.path).events
                  if e.event == logformat.SEED_ERROR]
        assert errors == [refusals[Y].reason, refusals[X].reason]
    finally:
        seed.stop()


def test_an_origin_its_own_seeds_do_not_know_is_looked_up_at_the_other_seeds(signed_peer):
    # Its seeds restarted and lost the origin (which has not registered again yet); a seed the
    # peer never registered with still holds the key.  Stand-in seeds: they answer GET_KEYS.
    newcomer, its_id = Address("127.0.0.1", 9500), Identity()
    asked: list[tuple[int, tuple[Address, ...]]] = []  # (which seed, the addresses asked)

    def keeper(number: int, keys: tuple[tuple[Address, str], ...]):
        def answer(conn):
            while isinstance(request := conn.read(), KeysRequest):
                asked.append((number, request.peers))
                conn.send(Keys(tuple((peer, key) for peer, key in keys if peer in request.peers)))
        return answer

    seeds = [NodeServer("127.0.0.1", 0, handler=keeper(0, ())), NodeServer("127.0.0.1", 0, handler=keeper(1, ())),
             NodeServer("127.0.0.1", 0, handler=keeper(2, ((newcomer, its_id.key),)))]
    for server in seeds:
        server.start()
    try:
        signed_peer.seeds = [server.address for server in seeds]
        signed_peer.registered_seeds = [server.address for server in seeds[:2]]
        (x,) = linked(signed_peer, X)
        m = message(newcomer, 1).signed(its_id)
        x.send(m)
        wait_for(lambda: m in signed_peer.message_list, "the message, once the other seed gave its key")
        assert not [e for e in _events(signed_peer) if e.event == logformat.GOSSIP_REJECTED]
        # Its own seeds first (in either order), then the other one, for the origin they did not know.
        order = [number for number, peers in asked if newcomer in peers]
        assert sorted(order[:2]) == [0, 1] and order[2] == 2
    finally:
        for server in seeds:
            server.stop()


# --- Keys that travel with the gossip, vouched for by the seeds (PROTOCOL.md §4.3) ---------------

SEED = Address("127.0.0.1", 9600)
SEED_ID = Identity()


def binding(peer: Address, identity: Identity, seed_id: Identity = SEED_ID, when: str = "1700000000.5",
            seed: Address = SEED) -> KeyBinding:
    """``peer``'s binding to ``identity``'s key as ``seed`` vouches for it (``seed_id`` signs)."""
    return KeyBinding(peer, identity.key, (Vouch(seed, when, seed_id.sign(binding_body(peer, identity.key, when))),))


def test_a_vouched_binding_lets_a_newcomers_message_verify_with_no_seed_asked(signed_peer):
    # The peer registered with SEED (it knows SEED's key) and has no seed to ask: a lookup would drop the message.
    signed_peer.key_wait.learn_seed(SEED, SEED_ID.key)
    newcomer, its_id = Address("127.0.0.1", 9501), Identity()
    x, y = linked(signed_peer, X, Y)
    vouched = binding(newcomer, its_id)
    first, second = message(newcomer, 1).signed(its_id), message(newcomer, 2).signed(its_id)
    x.send(vouched)
    x.send(first)
    wait_for(lambda: first in signed_peer.message_list, "the newcomer's message")
    # Forwarded with its binding ahead of it, once per link: the next message goes alone.
    assert (y.read(), y.read()) == (vouched, first)
    x.send(second)
    assert y.read() == second
    assert not [e for e in _events(signed_peer) if e.event == logformat.GOSSIP_REJECTED]


def test_a_binding_no_known_seed_vouches_for_makes_no_forgery_verify(signed_peer):
    # A stand-in seed of the peer's config holds the newcomer's real key (the lookup's answer).
    newcomer, its_id, forger = Address("127.0.0.1", 9502), Identity(), Identity()

    def answer(conn):
        while isinstance(request := conn.read(), KeysRequest):
            conn.send(Keys(((newcomer, its_id.key),) if newcomer in request.peers else ()))

    seed = NodeServer("127.0.0.1", 0, handler=answer)
    seed.start()
    try:
        signed_peer.seeds = signed_peer.registered_seeds = [seed.address]
        signed_peer.key_wait.learn_seed(SEED, SEED_ID.key)
        x, y = linked(signed_peer, X, Y)
        fake = message(newcomer, 1).signed(forger)
        # The forger's key, "vouched" in SEED's name but signed by the forger; and SEED's real vouch for the
        # newcomer's real binding, moved onto the forger's key.  Neither is taken.
        real_vouch = binding(newcomer, its_id).vouches
        x.send(binding(newcomer, forger, seed_id=forger))
        x.send(KeyBinding(newcomer, forger.key, real_vouch))
        x.send(fake)
        wait_for(lambda: X not in signed_peer.link_table.neighbours(), "the forger's link to be cut")
        assert signed_peer.key_wait.keys_of(newcomer) == {its_id.key}  # from the seed, not from the forger
        rejected = [e for e in _events(signed_peer) if e.event == logformat.GOSSIP_REJECTED]
        assert [(e.fields["from"], e.fields["reason"]) for e in rejected] == [(str(X), "bad signature")]
        # The real message of that identity still gets through, with its real binding.
        real = message(newcomer, 1).signed(its_id)
        y.send(binding(newcomer, its_id))
        y.send(real)
        wait_for(lambda: real in signed_peer.message_list, "the real message")
    finally:
        seed.stop()


def test_a_peer_hands_a_new_neighbour_its_own_binding_first(signed_peer):
    own = signed_peer.key_wait.vouch_for_self(
        signed_peer.address, signed_peer.identity.key,
        binding(signed_peer.address, signed_peer.identity).vouches[0])
    (x,) = linked(signed_peer, X)  # linked() read the HELLO
    assert x.read() == own
