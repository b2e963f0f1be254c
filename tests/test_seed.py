"""A seed in this process on a free port: registration, links and every dead-node decision."""

from __future__ import annotations

import socket
import threading

import pytest

import logformat
import transport
from config import MAX_LINKS_PER_PEER, SeedSettings
from seed import Seed
from transport import NodeServer
from wire import (
    Address,
    DeadNodeReport,
    Error,
    LinkReport,
    LivenessRequest,
    Ok,
    PeerList,
    PeerListRequest,
    Register,
    encode,
)


@pytest.fixture
def seed(tmp_path):
    server = NodeServer("127.0.0.1", 0, handler=lambda conn: None)
    log = logformat.NodeLog("seed", server.address, tmp_path / "log.txt", console=False)
    server.log = log
    node = Seed(server, log, SeedSettings(probe_timeout=1.0))
    server.start()
    try:
        yield node
    finally:
        server.stop()
        log.close()


class Responder:
    """A stand-in peer that answers every liveness request with ``answer(request)``."""

    def __init__(self, answer):
        self.server = NodeServer("127.0.0.1", 0, handler=self.handle)
        self.answer = answer
        self.server.start()

    def handle(self, conn):
        while (request := conn.read()) is not None:
            assert isinstance(request, LivenessRequest)
            conn.send(self.answer(request))

    @property
    def address(self) -> Address:
        return self.server.address


def unused_address() -> Address:
    """An address where nothing listens: bound, never listening, then released."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return Address("127.0.0.1", sock.getsockname()[1])


def ask(seed: Seed, message):
    return transport.request(seed.address, message)


def decisions(log_path):
    return [(e.fields["decision"], e.fields["reason"]) for e in logformat.parse_log(log_path).events
            if e.event == logformat.DEAD_NODE_DECISION]


A, B, C = (Address("127.0.0.1", port) for port in (9001, 9002, 9003))


def test_registration_returns_the_list_as_it_was_before(seed):
    assert ask(seed, Register(A)) == PeerList(())
    assert ask(seed, Register(B)) == PeerList(((A, 0),))
    assert ask(seed, LinkReport(B, A)) == Ok()
    assert ask(seed, Register(C)) == PeerList(((A, 1), (B, 1)))
    assert ask(seed, PeerListRequest()) == PeerList(((A, 1), (B, 1), (C, 0)))
    # Registering again (a restart) keeps the peer once and forgets its links.
    assert ask(seed, Register(B)) == PeerList(((A, 1), (C, 0)))
    assert ask(seed, PeerListRequest()) == PeerList(((A, 0), (B, 0), (C, 0)))


def test_links_only_from_registered_reporters_and_bounded(seed):
    assert ask(seed, LinkReport(A, B)) == Error("the reporter is not registered here")
    ask(seed, Register(A))
    with socket.create_connection((seed.address.ip, seed.address.port)) as sock:
        lines = b"".join(encode(LinkReport(A, Address("10.0.0.1", 1000 + i)))
                         for i in range(MAX_LINKS_PER_PEER + 1))
        sock.sendall(lines)
        replies = sock.makefile("rb").read().decode().splitlines()
    assert replies[:MAX_LINKS_PER_PEER] == ["OK"] * MAX_LINKS_PER_PEER
    assert replies[MAX_LINKS_PER_PEER].startswith("ERROR more than")
    assert dict(ask(seed, PeerListRequest()).peers)[A] == MAX_LINKS_PER_PEER


def test_dead_node_decisions(seed, tmp_path):
    alive = Responder(lambda request: request.reply(alive.address))
    busy = Responder(lambda request: Error("busy: too many connections"))
    dead = unused_address()
    outsider = Address("127.0.0.1", 9999)
    try:
        for peer in (A, alive.address, busy.address, dead):
            ask(seed, Register(peer))
        cases = [
            (DeadNodeReport(B, "1.0", A), "ignored", "not in the peer list"),
            (DeadNodeReport(A, "1.0", A), "rejected", "a peer cannot report itself"),
            (DeadNodeReport(dead, "1.0", outsider), "rejected",
             "reporter is neither registered here nor a neighbour of the accused"),
            (DeadNodeReport(alive.address, "1.0", A), "rejected", "accused answered the seed's liveness check"),
            (DeadNodeReport(busy.address, "1.0", A), "rejected", "accused answered the seed's liveness check"),
            (DeadNodeReport(dead, "1.0", A), "removed", f"reported by {A} and the seed's liveness check failed"),
            (DeadNodeReport(dead, "2.0", A), "ignored", "not in the peer list"),
        ]
        for report, decision, reason in cases:
            assert ask(seed, report) == Ok(f"{decision}: {reason}")
        assert decisions(tmp_path / "log.txt") == [(decision, reason) for _, decision, reason in cases]
        listed = {address for address, _ in ask(seed, PeerListRequest()).peers}
        assert listed == {A, alive.address, busy.address}
    finally:
        alive.server.stop()
        busy.server.stop()


def test_a_neighbour_registered_elsewhere_may_report(seed):
    dead = unused_address()
    ask(seed, Register(dead))
    ask(seed, LinkReport(dead, B))  # the accused itself said B is its neighbour
    assert ask(seed, DeadNodeReport(dead, "1.0", B)).detail.startswith("removed")


def test_concurrent_registrations_each_see_a_consistent_list(seed):
    peers = [Address("127.0.0.1", 20000 + i) for i in range(40)]
    replies = {}

    def register(peer):
        replies[peer] = {address for address, _ in ask(seed, Register(peer)).peers}

    threads = [threading.Thread(target=register, args=(peer,)) for peer in peers]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    # Registrations are serialised: the lists are strictly nested, one new peer each.
    ordered = sorted(peers, key=lambda peer: len(replies[peer]))
    for position, peer in enumerate(ordered):
        assert replies[peer] == set(ordered[:position])
