"""A peer in this process on a free port, driven by hand-made neighbours over real sockets."""

from __future__ import annotations

import random
import socket
import time

import pytest

import logformat
from config import PeerSettings
from peer import Peer
from transport import NodeServer
from wire import Address, Error, GossipMessage, Hello, LineReader, LivenessRequest, encode

X = Address("127.0.0.1", 9101)
Y = Address("127.0.0.1", 9102)


@pytest.fixture
def peer(tmp_path):
    server = NodeServer("127.0.0.1", 0, handler=lambda conn: None)
    log = logformat.NodeLog("peer", server.address, tmp_path / "log.txt", console=False)
    server.log = log
    node = Peer(server, log, seeds=[], settings=PeerSettings(), rng=random.Random(1))
    server.start()  # serve links without joining: no seeds are needed for these tests
    try:
        yield node
    finally:
        node.stop()
        log.close()


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


def wait_for(condition, what: str, timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.02)  # polling interval, not synchronisation


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
    wait_for(lambda: set(peer.links) == {X, Y}, "both links")
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
    wait_for(lambda: X in peer.links, "the first link")
    second = Neighbour(peer, X)
    assert second.read() == Error("already linked")
    assert peer.links[X].conn.closed is False


def test_a_neighbour_that_comes_back_replaces_its_stale_link(peer):
    first = Neighbour(peer, X)
    assert first.read() == Hello(peer.address)
    wait_for(lambda: X in peer.links, "the first link")
    stale = peer.links[X]
    first.close()  # it died: the link stays until the liveness rule decides
    wait_for(lambda: stale.conn.closed, "the peer to see the close")
    again = Neighbour(peer, X)
    assert again.read() == Hello(peer.address)
    wait_for(lambda: peer.links.get(X) is not stale, "the new link to replace the stale one")
    # The stale link's verdict no longer applies to the neighbour that came back.
    peer.report_dead(stale)
    assert X in peer.links
    assert not any(e.event == logformat.DEAD_NODE_REPORTED for e in _events(peer))


def test_garbage_on_a_link_gets_error_and_cuts_the_link_without_a_report(peer):
    x = Neighbour(peer, X)
    assert x.read() == Hello(peer.address)
    wait_for(lambda: X in peer.links, "the link")
    x.sock.sendall(b"NONSENSE here\n")
    reply = x.read()
    assert isinstance(reply, Error) and "unknown verb" in reply.reason
    assert x.read() is None  # then closed
    wait_for(lambda: X not in peer.links, "the link to be dropped")
    names = [e.event for e in _events(peer)]
    assert logformat.BAD_INPUT in names and logformat.DEAD_NODE_REPORTED not in names


def _events(peer: Peer):
    return logformat.parse_log(peer.log.path).events
